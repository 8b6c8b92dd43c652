"""The ``swerepair`` command line.

swerepair tasks list      [--tasks SRC]
swerepair tasks validate  [--tasks SRC] [--task-id ID ...] [--sandbox KIND] [--jobs N]
swerepair tasks synth     --repo PATH --out FILE [--seed N] [--makers a,b] [--history] [--limit N] [--jobs N]
swerepair envs build      --tasks SRC [--jobs N] [--installer uv|pip] [--lock]: Docker-free environments
swerepair envs list|prune|report   show, reclaim, and say which instances run Docker-free
swerepair play            [--tasks SRC] [--task-id ID] [--sandbox KIND] [--out FILE]
swerepair solve           --model NAME [--task-id ID ...] [--max-tool-calls N] --out FILE
swerepair eval            --model NAME [--adapter DIR] [--samples K] --out DIR | --episodes FILE | --compare A B
swerepair expert          --model NAME --out FILE [--episodes N]: scripted expert episodes (SFT data)
swerepair pipeline        [--model NAME] [--output-dir DIR]: expert -> SFT -> GRPO, each stage evaluated
swerepair merge           --model NAME --adapter DIR [--adapter DIR] --out DIR: one model for serving
swerepair sft             --episodes FILE [--replay CHAT.jsonl] [--kl-coef L]: LoRA SFT, then train --init-adapter
swerepair check           validate the bundled tasks, then play one scripted episode
swerepair train           [--preset NAME] [--config FILE] [--resume DIR] [--FIELD VALUE ...]
swerepair serve           [--model NAME] [--port N] [--engine vllm]: OpenAI-compatible server with weight updates

A failure the user can fix (a malformed task row, an unknown task id or model, a repository
directory that lacks a repository, a bad setting or port, a missing file) is one line on stderr,
``swerepair COMMAND: error: WHAT (WHERE)``, with exit status 2; ``swerepair --debug ...`` or
``SWEREPAIR_DEBUG=1`` shows its traceback. Output into a closed pipe (``| head``) ends quietly.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from typing import Any

__all__ = ["main"]

#: Command-line names that were renamed: old -> (new, what it is). Using an old one is a parser
#: error (exit status 2) that names the new one.
RENAMED_FLAGS = {"--max-steps": ("--max-tool-calls", "the tool-call budget per episode")}
RENAMED_COMMANDS = {
    "demo": ("check", "validate the task set, then play one scripted episode; training is `make demo`"),
}


class _Renamed(argparse.Action):
    """A renamed option, hidden from --help: giving it is a parser error that names the new one."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(
            option_strings, argparse.SUPPRESS, nargs="?", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )

    def __call__(self, parser: argparse.ArgumentParser, namespace: Any, values: Any, option_string: Any = None) -> None:
        new, what = RENAMED_FLAGS[self.option_strings[0]]
        parser.error(f"{self.option_strings[0]} was renamed {new} ({what})")


def _add_task_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tasks", default="bundled", help="task set: 'bundled', 'bundled-synth' or a .jsonl/.json/.parquet file"
    )
    p.add_argument("--repos", default=None, help="directory of repository bundles/checkouts for the task set")
    p.add_argument(
        "--source",
        default="auto",
        choices=["auto", "plain", "swebench", "swegym", "swesmith", "r2egym"],
        help="the task file's schema: recognised by its columns (auto), or a published dataset's (docs/tasks.md)",
    )
    from swerepair.envs.sandbox import SANDBOX_KINDS

    p.add_argument("--sandbox", default="auto", choices=list(SANDBOX_KINDS))


def _task_set(args: argparse.Namespace) -> Any:
    """What the env gets as its task set: the file itself, or its tasks read with --source."""
    if getattr(args, "source", "auto") == "auto":
        return args.tasks
    from swerepair.envs.tasks import load_tasks

    return load_tasks(args.tasks, repos=args.repos, dataset=args.source)


class UserError(Exception):
    """A failure the user caused and can fix (a wrong id, path, name or value): `main` prints it as
    one line, ``swerepair COMMAND: error: MESSAGE``, and exits with status 2."""


def _select(tasks: list[Any], ids: list[str] | None, where: str = "the task set") -> list[Any]:
    """`tasks` narrowed to `ids` (in that order); `UserError` naming unknown ids (and close ones)."""
    if not ids:
        return tasks
    by_id = {t.instance_id: t for t in tasks}
    missing = [i for i in ids if i not in by_id]
    if missing:
        import difflib

        close = difflib.get_close_matches(missing[0], list(by_id), n=1)
        hint = f"; did you mean {close[0]}?" if close else "; `swerepair tasks list` shows the ids"
        raise UserError(f"unknown task id(s) {', '.join(missing)} in {where}{hint}")
    return [by_id[i] for i in ids]


def _tasks_name(args: argparse.Namespace) -> str:
    return f"--tasks {args.tasks}"


def cmd_tasks_list(args: argparse.Namespace) -> int:
    from swerepair.envs.tasks import load_tasks

    for t in load_tasks(args.tasks, repos=args.repos, dataset=args.source):
        title = t.problem_statement.strip().splitlines()[0].lstrip("# ") if t.problem_statement.strip() else ""
        print(f"{t.instance_id:32s} {t.repo:24s} F2P={len(t.FAIL_TO_PASS):<2d} P2P={len(t.PASS_TO_PASS):<4d} {title}")
    return 0


def cmd_tasks_validate(args: argparse.Namespace) -> int:
    from swerepair.envs.sandbox import make_sandbox, resolve_kind
    from swerepair.envs.tasks import load_tasks
    from swerepair.envs.validate import validate_tasks

    tasks = _select(load_tasks(args.tasks, repos=args.repos, dataset=args.source), args.task_id)
    kind = resolve_kind(args.sandbox)
    print(f"validating {len(tasks)} task(s) in the {kind} sandbox", file=sys.stderr)
    results = validate_tasks(tasks, lambda t: make_sandbox(kind, t), jobs=args.jobs, timeout=args.timeout)
    bad = [r for r in results if not r.ok]
    print(f"{len(results) - len(bad)}/{len(results)} tasks valid")
    return 1 if bad else 0


def _list_arg(text: str | None) -> list[str] | None:
    return [x.strip() for x in text.split(",") if x.strip()] if text else None


def _issue_rewriter(args: argparse.Namespace, failures: list[str]) -> Any:
    """An issue rewriter over an OpenAI-compatible chat endpoint (``--issue-endpoint``)."""
    import os

    from swerepair.agents.inference.http import request_json
    from swerepair.envs.synth.issues import REWRITE_PROMPT

    url = args.issue_endpoint.rstrip("/") + "/chat/completions"
    key = os.environ.get(args.issue_api_key_env or "", "")
    headers = {"Authorization": f"Bearer {key}"} if key else {}

    def rewrite(text: str, facts: Any) -> str:
        body = {
            "model": args.issue_model,
            "messages": [{"role": "system", "content": REWRITE_PROMPT}, {"role": "user", "content": text}],
            "temperature": 0.0,
            "seed": args.seed,
            "max_tokens": 1024,
        }
        try:
            return str(request_json(url, body, timeout=120.0, headers=headers)["choices"][0]["message"]["content"])
        except Exception as exc:
            failures.append(f"{type(exc).__name__}: {exc}")
            raise

    return rewrite


def cmd_tasks_synth(args: argparse.Namespace) -> int:
    from swerepair.envs.synth import MAKERS, SynthConfig, SynthError, synthesize

    def positive(name: str, value: int | None) -> int | None:
        if value is not None and value < 0:
            raise SynthError(f"--{name} must be 0 (no cap) or positive, got {value}")
        return value or None

    failures: list[str] = []
    try:
        makers = _list_arg(args.makers)
        if makers == ["none"]:
            makers = []
        if makers == [] and not args.history:
            raise SynthError("--makers none leaves nothing to do without --history")
        if args.issue_endpoint and not args.issue_model:
            raise SynthError("--issue-endpoint needs --issue-model")
        config = SynthConfig(
            seed=args.seed,
            makers=makers,
            max_per_file=positive("max-per-file", args.max_per_file),
            max_per_function=positive("max-per-function", args.max_per_function),
            limit=positive("limit", args.limit),
            jobs=args.jobs,
            history=args.history,
            max_commits=args.max_commits,
            python=args.python,
            sandbox=args.sandbox,
            tests=_list_arg(args.tests),
            paths=_list_arg(args.paths),
            time_budget_s=args.time_budget,
            repo_name=args.repo_name,
            rewrite_issue=_issue_rewriter(args, failures) if args.issue_endpoint else None,
            cache=args.cache,
        )
        result = synthesize(
            args.repo,
            args.out,
            config,
            log=args.log,
            progress=not args.no_progress,
            on_warning=lambda w: print(f"warning: {w}", file=sys.stderr),
        )
    except SynthError as exc:
        print(f"swerepair tasks synth: error: {exc}", file=sys.stderr)
        return 2
    stats = result.stats
    print(f"{'maker':18s} {'tried':>6s} {'kept':>5s}  dropped", file=sys.stderr)
    for name, counts in [*stats["makers"].items(), *([("history", stats["history"])] if "history" in stats else [])]:
        if (name not in MAKERS and name != "history") or not counts.get("generated"):
            continue
        why = ", ".join(f"{k[9:]} {v}" for k, v in sorted(counts.items()) if k.startswith("dropped: "))
        print(f"{name:18s} {counts.get('tried', 0):6d} {counts.get('kept', 0):5d}  {why}", file=sys.stderr)
    if failures:
        print(
            f"warning: the issue endpoint failed {len(failures)} time(s); template text kept: {failures[0]}",
            file=sys.stderr,
        )
    per = f", {stats['seconds_per_kept']:.1f}s per kept task" if stats.get("seconds_per_kept") else ""
    print(f"{len(result.rows)} tasks ({stats['tried']} tried of {stats['candidates']} candidates{per}) -> {result.out}")
    if result.bundle is not None:
        print(f"repository bundle: {result.bundle}; log: {result.log}; counts: {result.stats_path}")
    return 0


def _add_synth_parser(tsub: Any) -> None:
    from swerepair.envs.sandbox import SANDBOX_KINDS

    p = tsub.add_parser("synth", help="synthesize validated bug-repair tasks from a local git repository")
    p.add_argument("--repo", required=True, help="the repository (its committed HEAD is used)")
    p.add_argument("--out", required=True, help="task file to write (.jsonl); the bundle and log go next to it")
    p.add_argument("--python", default=None, help="interpreter that runs the repository's tests (default: this one)")
    p.add_argument("--seed", type=int, default=0, help="orders candidates and picks issue templates")
    p.add_argument("--max-per-file", type=int, default=20, help="kept tasks per source file (0: no cap)")
    p.add_argument("--max-per-function", type=int, default=2, help="kept tasks per function (0: no cap)")
    p.add_argument("--makers", default=None, help="comma-separated bug makers (default: all; 'none': history only)")
    p.add_argument("--history", action="store_true", help="also mine commits that change code and tests")
    p.add_argument("--max-commits", type=int, default=200, help="commits history mining looks at")
    p.add_argument("--limit", type=int, default=None, help="stop after this many kept tasks")
    p.add_argument("--jobs", type=int, default=1, help="candidates validated in parallel")
    p.add_argument("--sandbox", default="auto", choices=list(SANDBOX_KINDS))
    p.add_argument("--tests", default=None, help="comma-separated test files/folders (default: every test module)")
    p.add_argument("--paths", default=None, help="comma-separated files/folders that may be changed (default: all)")
    p.add_argument("--time-budget", type=float, default=None, help="seconds for one test run (default: 5x baseline)")
    p.add_argument("--repo-name", default=None, help="the rows' repo, owner/name (default: local/<dir>)")
    p.add_argument("--log", default=None, help="log file (default: the task file with .log)")
    p.add_argument("--cache", default=None, help="JSONL of validation outcomes to reuse and extend (resumable)")
    p.add_argument("--issue-endpoint", default=None, help="OpenAI-compatible base URL that rewrites the issue texts")
    p.add_argument("--issue-model", default=None, help="model name for --issue-endpoint")
    p.add_argument("--issue-api-key-env", default=None, help="environment variable holding the endpoint's API key")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(fn=cmd_tasks_synth)
    p.epilog = "bug makers: " + ", ".join(_maker_names())


def _maker_names() -> list[str]:
    from swerepair.envs.synth.mutators import MAKERS

    return list(MAKERS)


def _env_root(args: argparse.Namespace) -> Any:
    from pathlib import Path

    from swerepair.envs.pyenvs import default_root

    return Path(args.root) if args.root else default_root()


def cmd_envs_build(args: argparse.Namespace) -> int:
    from swerepair.envs.pyenvs import BuildOptions, build_environments
    from swerepair.envs.pyenvs.build import resolve_installer
    from swerepair.envs.pyenvs.manage import describe, human_bytes
    from swerepair.envs.tasks import load_tasks

    if args.jobs < 1:
        print(f"swerepair envs build: error: --jobs must be at least 1, got {args.jobs}", file=sys.stderr)
        return 2
    tasks = _select(load_tasks(args.tasks, repos=args.repos, dataset=args.source), args.task_id)
    try:
        options = BuildOptions(
            root=_env_root(args), installer=args.installer, lock=args.lock, force=args.force, timeout_s=args.timeout
        )
        resolve_installer(options.installer)
    except ValueError as exc:
        print(f"swerepair envs build: error: {exc}", file=sys.stderr)
        return 2

    def report(plan: Any, result: Any) -> None:
        record = result.record
        size = (
            f", {human_bytes(record['own_bytes'])} own of {human_bytes(record['disk_bytes'])}"
            if record.get("disk_bytes")
            else ""
        )
        python = (record.get("python") or {}).get("version", "")
        why = f": {result.reason}" if result.reason else ""
        print(
            f"{result.status:8s} {plan.key} ({len(plan.tasks)} task(s), Python {python or '?'}, "
            f"{result.seconds:.1f}s{size}){why}",
            file=sys.stderr,
        )
        for note in record.get("notes") or ():
            print(f"         note: {note}", file=sys.stderr)

    results = build_environments(tasks, options, jobs=args.jobs, progress=not args.no_progress, on_result=report)
    ok = sum(r.ok for _, r in results)
    print(f"{ok}/{len(results)} environments ready under {options.root}")
    if args.json:
        print(describe(results))
    return 0 if ok == len(results) else 1


def cmd_envs_list(args: argparse.Namespace) -> int:
    from swerepair.envs.pyenvs import list_environments
    from swerepair.envs.pyenvs.build import disk_usage
    from swerepair.envs.pyenvs.manage import human_bytes

    root = _env_root(args)
    infos = list_environments(root)
    if args.json:
        print(json.dumps([{k: v for k, v in vars(i).items() if k != "record"} for i in infos]))
        return 0
    for info in infos:
        reason = info.record.get("reason") or "; ".join(info.record.get("blockers") or ())
        print(
            f"{info.status:8s} {info.key:48s} Python {info.python or '?':8s} "
            f"{human_bytes(info.own_bytes):>9s} own {human_bytes(info.disk_bytes):>9s} total"
            + (f"  {reason}" if info.status != "ok" and reason else "")
        )
    store = disk_usage(root / "store")[0] if (root / "store").is_dir() else 0
    own = sum(i.own_bytes for i in infos)
    print(f"{len(infos)} environment(s) under {root}: {human_bytes(own)} own, shared store {human_bytes(store)}")
    return 0


def cmd_envs_prune(args: argparse.Namespace) -> int:
    from swerepair.envs.pyenvs import prune_environments
    from swerepair.envs.pyenvs.manage import human_bytes
    from swerepair.envs.tasks import load_tasks

    statuses = [s for s, on in (("failed", args.failed), ("blocked", args.failed), ("partial", args.partial)) if on]
    if not (args.tasks or statuses or args.all or args.store):
        print(
            "swerepair envs prune: error: say what to remove: --tasks FILE (keep its environments), "
            "--failed, --partial, --all or --store",
            file=sys.stderr,
        )
        return 2
    keep = load_tasks(args.tasks, repos=args.repos, dataset=args.source) if args.tasks else None
    removed, freed = prune_environments(
        _env_root(args), keep=keep, statuses=statuses, everything=args.all, store=args.store, dry_run=args.dry_run
    )
    verb = "would remove" if args.dry_run else "removed"
    for info in removed:
        print(f"{verb} {info.key} ({info.status}, {human_bytes(info.own_bytes)})")
    print(f"{verb} {len(removed)} environment(s){' and the store' if args.store else ''}: {human_bytes(freed)}")
    return 0


def cmd_envs_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from swerepair.envs.pyenvs import compatibility_report
    from swerepair.envs.sandbox import make_sandbox, resolve_kind
    from swerepair.envs.tasks import load_tasks
    from swerepair.envs.validate import validate_task

    tasks = _select(load_tasks(args.tasks, repos=args.repos, dataset=args.source), args.task_id)
    root = _env_root(args)
    validate = None
    if args.validate:
        kind = resolve_kind(args.sandbox)

        def validate(task: Any) -> Any:
            return validate_task(task, lambda t: make_sandbox(kind, t, _sandbox_config(root)), args.timeout)

    rows, markdown = compatibility_report(tasks, root, validate=validate)
    if args.out:
        Path(args.out).write_text(markdown, encoding="utf-8")
        print(f"report: {args.out}", file=sys.stderr)
    if args.json:
        print(json.dumps([vars(r) for r in rows]))
    else:
        sys.stdout.write(markdown)
    return 0


def _sandbox_config(root: Any) -> Any:
    from swerepair.envs.sandbox import SandboxConfig

    return SandboxConfig(environments=str(root))


def _add_envs_parsers(sub: Any) -> None:
    envs = sub.add_parser("envs", help="Docker-free environments for real instances: build, list, prune, report")
    esub = envs.add_subparsers(dest="envs_command", required=True)

    def common(p: argparse.ArgumentParser, tasks: bool) -> None:
        p.add_argument("--root", default=None, help="environments' directory (default: <cache>/envs)")
        if tasks:
            _add_task_args(p)
            p.add_argument("--task-id", action="append", help="only this task's environment (repeatable)")

    p = esub.add_parser("build", help="build each (repository, version) environment of a task set from PyPI")
    common(p, True)
    p.add_argument("--jobs", type=int, default=1, help="environments built in parallel")
    p.add_argument("--installer", default="auto", choices=["auto", "uv", "pip"], help="auto: uv where installed")
    p.add_argument("--lock", action="store_true", help="rebuild each environment from its lock.txt")
    p.add_argument("--force", action="store_true", help="rebuild environments that are already built")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds one build step may take")
    p.add_argument("--json", action="store_true", help="also print a JSON summary as the last line")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(fn=cmd_envs_build)
    p = esub.add_parser("list", help="environments, their status and disk")
    common(p, False)
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_envs_list)
    p = esub.add_parser("prune", help="remove environments and reclaim disk")
    common(p, False)
    p.add_argument("--tasks", default=None, help="keep the environments this task set uses, remove the others")
    p.add_argument("--repos", default=None)
    p.add_argument("--source", default="auto")
    p.add_argument("--failed", action="store_true", help="remove failed and blocked builds")
    p.add_argument("--partial", action="store_true", help="remove builds that never finished")
    p.add_argument("--all", action="store_true", help="remove every environment")
    p.add_argument("--store", action="store_true", help="also empty the shared package store")
    p.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    p.set_defaults(fn=cmd_envs_prune)
    p = esub.add_parser("report", help="which instances run Docker-free, which need Docker, and why")
    common(p, True)
    p.add_argument("--validate", action="store_true", help="also validate each built instance in the sandbox")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds for one test run (--validate)")
    p.add_argument("--out", default=None, help="write the Markdown report here")
    p.add_argument("--json", action="store_true", help="print the verdicts as JSON instead of Markdown")
    p.set_defaults(fn=cmd_envs_report)


def cmd_play(args: argparse.Namespace) -> int:
    import gymnasium as gym

    from swerepair.agents.policies.scripted import gold_turns
    from swerepair.envs.env import render_transcript

    env = gym.make(
        "SweRepair-v0",
        tasks=_task_set(args),
        repos=args.repos,
        sandbox=args.sandbox,
        reward=args.reward,
        scaffold=_scaffold(args),
    )
    if args.task_id:
        _select(env.unwrapped.tasks, [args.task_id], _tasks_name(args))
    options = {"task_id": args.task_id} if args.task_id else None
    obs, info = env.reset(seed=args.seed, options=options)
    task = env.unwrapped.task
    print(f"== task {info['task_id']} ({info['repo']}), sandbox {info['sandbox']}, policy: scripted gold patch\n")
    reward, terminated, truncated = 0.0, False, False
    for turn in gold_turns(task.patch):
        obs, reward, terminated, truncated, info = env.step(turn)
        if terminated or truncated:
            break
    env.close()
    print(render_transcript(obs))
    print("== final diff\n" + info.get("patch", ""))
    print("== reward", json.dumps({"reward": reward, **info.get("reward_components", {})}, indent=2))
    print(f"== exit: {info.get('exit_reason')}, terminated={terminated}, truncated={truncated}")
    if args.out:
        with open(args.out, "a", encoding="utf-8") as fh:
            record = {"instance_id": info["task_id"], "messages": obs, "reward": reward, "info": info}
            fh.write(json.dumps(record, default=str) + "\n")
        print(f"episode appended to {args.out}")
    return 0 if terminated and not info.get("failed") else 1


def _scaffold(args: argparse.Namespace) -> Any:
    """The command's ``--scaffold``: a built-in name, an entry point of ``swerepair.scaffolds`` or
    ``module:attr`` (`swerepair.agents.scaffold.resolve_scaffold`); one line if it does not resolve."""
    from swerepair.agents.scaffold import resolve_scaffold
    from swerepair.core import PluginError

    try:
        return resolve_scaffold(getattr(args, "scaffold", None) or "nano")
    except (PluginError, ValueError, TypeError) as exc:
        raise UserError(f"--scaffold: {exc}") from None


def _env_factory(args: argparse.Namespace, scaffold: Any, **settings: Any) -> Any:
    """A factory of envs over the command's task set, sandbox and `scaffold`, with `settings`."""
    import functools

    from swerepair.envs.env import SweRepairEnv

    return functools.partial(
        SweRepairEnv, tasks=_task_set(args), repos=args.repos, sandbox=args.sandbox, scaffold=scaffold, **settings
    )


def _split_ids(path: str) -> set[str]:
    """The instance ids of a split file: one a line, blank lines ignored."""
    from pathlib import Path

    return {line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()}


def _check_model(name: str) -> None:
    """`UserError` unless `name` is a model that loads offline (a built-in, a directory, a model
    in the local Hugging Face cache)."""
    from swerepair.trainers.config import ConfigError
    from swerepair.trainers.startup import check_model

    try:
        check_model(name)
    except ConfigError as exc:
        raise UserError(str(exc).removeprefix("model: ")) from None


def _policy(args: argparse.Namespace, scaffold: Any) -> Any:
    """The policy `solve` and `eval` run: the hf backend over a local model (with ``--adapter``
    merged in), or an OpenAI-compatible server."""
    if args.backend == "hf":
        from swerepair.agents.inference.chat import ChatRenderer
        from swerepair.agents.inference.hf_backend import HFBackend
        from swerepair.agents.inference.models import adapter_dir, apply_adapter, load_model
        from swerepair.agents.policies.model import ModelPolicy

        _check_model(args.model)
        for adapter in getattr(args, "adapter", None) or ():
            adapter_dir(adapter)  # a wrong path fails before the model loads
        print(f"loading {args.model} ...", file=sys.stderr)
        model, tokenizer = load_model(args.model, device=args.device)
        for adapter in getattr(args, "adapter", None) or ():
            model = apply_adapter(model, adapter)
        backend = HFBackend(
            model,
            tokenizer,
            temperature=args.temperature,
            top_p=args.top_p,
            max_new_tokens=args.max_new_tokens,
            seed=args.seed,
        )
        return ModelPolicy(backend, ChatRenderer(tokenizer, scaffold.tool_schemas()))
    if getattr(args, "adapter", None):
        raise UserError("--adapter needs --backend hf (a server serves its own weights)")
    from swerepair.agents.policies.openai import OpenAIPolicy

    return OpenAIPolicy(
        base_url=args.base_url,
        model=args.model,
        tools=scaffold.tool_schemas(),
        temperature=args.temperature,
        top_p=args.top_p,
        max_tokens=args.max_new_tokens,
        renderer=_served_renderer(args, scaffold),
    )


def _served_renderer(args: argparse.Namespace, scaffold: Any) -> Any:
    """The chat renderer of the served model (``--tokenizer``, default ``--model``: a built-in, a
    directory or a cached hub id), with which `OpenAIPolicy` keeps token-exact episodes; None
    when no such tokenizer is here (the policy then warns once that its episodes are not
    trainable)."""
    from swerepair.agents.inference.chat import ChatRenderer
    from swerepair.agents.inference.models import model_path

    name = getattr(args, "tokenizer", None) or args.model
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_path(name), local_files_only=True)
    except (ImportError, OSError, ValueError) as exc:
        if getattr(args, "tokenizer", None):
            raise UserError(f"--tokenizer: cannot load {name!r}: {_one_line(exc)}") from None
        return None
    return ChatRenderer(tokenizer, scaffold.tool_schemas())


def cmd_eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from swerepair.evals.report import compare, compare_markdown, load_outcomes, markdown, plot, summarize

    if args.compare:
        a_path, b_path = args.compare
        try:
            a, b = load_outcomes(a_path), load_outcomes(b_path)
        except (OSError, ValueError, KeyError) as exc:
            print(f"swerepair eval: error: {exc}", file=sys.stderr)
            return 2
        result = compare(a, b)
        text = compare_markdown(result, Path(a_path).name or str(a_path), Path(b_path).name or str(b_path))
        if args.out:
            Path(args.out).mkdir(parents=True, exist_ok=True)
            (Path(args.out) / "compare.md").write_text(text, encoding="utf-8")
            (Path(args.out) / "compare.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
            sa = summarize(a, name=Path(a_path).name)
            sb = summarize(b, name=Path(b_path).name)
            plot([sa, sb], Path(args.out) / "compare.png")
        sys.stdout.write(text)
        return 0
    if not args.out:
        print("swerepair eval: error: --out DIR is required", file=sys.stderr)
        return 2
    ks = sorted({int(k) for k in (_list_arg(args.pass_at) or ["1"])})
    if args.samples < 1 or any(k < 1 or k > args.samples for k in ks):
        print(f"swerepair eval: error: need 1 <= k <= --samples ({args.samples}) for --pass-at", file=sys.stderr)
        return 2
    from swerepair.evals.run import evaluate, write_report

    if args.episodes:
        try:
            records = [json.loads(line) for line in Path(args.episodes).read_text().splitlines() if line.strip()]
        except (OSError, ValueError) as exc:
            print(f"swerepair eval: error: {args.episodes}: {exc}", file=sys.stderr)
            return 2
        summary = write_report(
            args.out, records, name=args.name or Path(args.episodes).stem, model=args.model or "", ks=ks
        )
    else:
        if not args.model:
            print("swerepair eval: error: --model (or --episodes FILE) is required", file=sys.stderr)
            return 2
        if args.temperature is None:
            args.temperature = 0.0 if args.samples == 1 else 0.8
        scaffold = _scaffold(args)
        make_env = _env_factory(
            args,
            scaffold,
            reward=args.reward,
            max_tool_calls=args.max_tool_calls,
            max_context_tokens=args.max_context_tokens,
        )
        env = make_env()  # the task set, its repositories, the sandbox and the reward, before the model loads
        env.close()
        tasks = env.tasks
        ids = args.task_id or [t.instance_id for t in tasks]
        if args.split:
            wanted = _split_ids(args.split)
            ids = [i for i in ids if i in wanted]
        unknown = sorted(set(ids) - {t.instance_id for t in tasks})
        if unknown:
            print(f"swerepair eval: error: unknown task id(s): {', '.join(unknown)}", file=sys.stderr)
            return 2
        policy = _policy(args, scaffold)
        started = time.monotonic()

        def progress(running: int, finished: int) -> None:
            total = len(ids) * args.samples
            print(
                f"[{time.monotonic() - started:6.1f}s] {finished}/{total} episodes, {running} running", file=sys.stderr
            )

        episodes = evaluate(make_env, policy, ids, samples=args.samples, seed=args.seed, on_step=progress)
        name = args.name or (Path(args.adapter[-1]).name if args.adapter else args.model)
        model = "+".join([args.model, *(args.adapter or ())])
        summary = write_report(args.out, episodes, name=name, model=model, ks=ks)
    sys.stdout.write(markdown(summary))
    print(f"report: {Path(args.out) / 'report.md'}", file=sys.stderr)
    return 0


def cmd_expert(args: argparse.Namespace) -> int:

    from swerepair.agents.inference.chat import ChatRenderer
    from swerepair.agents.inference.models import model_path
    from swerepair.agents.policies.expert import ExpertPolicy, expert_turns
    from swerepair.envs.rollout import run_episodes
    from swerepair.envs.sandbox.workspace import base_file_reader

    if args.episodes < 1:
        print(f"swerepair expert: error: --episodes must be at least 1, got {args.episodes}", file=sys.stderr)
        return 2
    _check_model(args.model)
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_path(args.model), local_files_only=True)
    except (OSError, ValueError) as exc:
        print(f"swerepair expert: error: cannot load the tokenizer of {args.model!r}: {exc}", file=sys.stderr)
        return 2
    scaffold = _scaffold(args)
    renderer = ChatRenderer(tokenizer, scaffold.tool_schemas())
    make_env = _env_factory(args, scaffold, reward=args.reward, max_tool_calls=args.max_tool_calls)
    tasks = _select(make_env().tasks, args.task_id)
    if args.split:
        wanted = _split_ids(args.split)
        tasks = [t for t in tasks if t.instance_id in wanted]
    kept = written = skipped = 0
    started = time.monotonic()
    with open(args.out, "a", encoding="utf-8") as fh:
        for n in range(args.episodes):
            scripts, ids = {}, []
            for task in tasks:
                if task.problem_statement in scripts:
                    continue  # two tasks with one issue text: the first one's script only
                try:
                    read = base_file_reader(task)  # the edits' smallest unique searches need the files
                    scripts[task.problem_statement] = expert_turns(task, seed=args.seed + n, read=read)
                except ValueError as exc:
                    skipped += 1
                    print(f"skipped {task.instance_id}: {exc}", file=sys.stderr)
                    continue
                ids.append(task.instance_id)
            policy = ExpertPolicy(renderer, scripts)
            for ep in run_episodes(make_env, policy, ids, seed=args.seed + n):
                written += 1
                if args.keep_all or ep.reward >= 1.0:
                    kept += 1
                    fh.write(json.dumps(ep.to_json(), default=str) + "\n")
            print(
                f"[{time.monotonic() - started:6.1f}s] round {n + 1}/{args.episodes}: {kept}/{written} kept",
                file=sys.stderr,
            )
    print(f"{kept} expert episode(s) of {written} appended to {args.out} ({skipped} task(s) skipped)")
    return 0 if kept else 1


def cmd_sft(args: argparse.Namespace) -> int:
    from pathlib import Path

    from swerepair.trainers.config import ConfigError, load_config
    from swerepair.trainers.sft import SFTSettings, SFTTrainer

    overrides = {
        "model": args.model,
        "device": args.device,
        "output_dir": args.output_dir,
        "overwrite": args.overwrite,
        "seed": args.seed,
        "lr": args.lr,
        "warmup_steps": args.warmup_steps,
        "lora_rank": args.lora_rank,
        "lora_alpha": args.lora_alpha,
        "lora_layers": args.lora_layers,
        "micro_batch_size": args.micro_batch_size,
        "progress": not args.no_progress,
        "tensorboard": not args.no_tensorboard,
    }
    # a ConfigError or a missing file is one line from main (exit status 2)
    missing = [e for e in args.episodes if not Path(e).is_file()]
    if missing:
        raise ConfigError(f"no such episodes file: {', '.join(missing)}")
    if args.replay and not Path(args.replay).is_file():
        raise ConfigError(f"no such replay file: {args.replay}")
    config = load_config(overrides=overrides)
    settings = SFTSettings(
        episodes=tuple(args.episodes),
        min_reward=None if args.min_reward is None or args.min_reward < 0 else args.min_reward,
        replay=args.replay,
        replay_ratio=args.replay_ratio,
        kl_coef=args.kl_coef,
        epochs=args.epochs,
        batch_size=args.batch_size,
        max_tokens=args.max_tokens,
    )
    trainer = SFTTrainer(config, settings)
    records = trainer.train()
    print(
        f"sft: {len(trainer.examples)} episodes, {len(records)} steps; per trained token: CE "
        f"{records[0]['sft/ce']:.4f} (first step) -> {records[-1]['sft/ce']:.4f} (last step), KL "
        f"{records[-1]['sft/kl']:.4f}; adapter: {args.output_dir}/checkpoints"
    )
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from pathlib import Path

    from swerepair.agents.inference.models import apply_adapter, load_model

    try:
        model, tokenizer = load_model(args.model)
        for adapter in args.adapter:
            model = apply_adapter(model, adapter)
    except (FileNotFoundError, OSError, ValueError) as exc:
        print(f"swerepair merge: error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    print(
        f"{args.model} + {len(args.adapter)} adapter(s) merged into {out}: serve it with swerepair serve --model {out}"
    )
    return 0


def cmd_pipeline(args: argparse.Namespace) -> int:
    from swerepair.envs.tasks import load_tasks
    from swerepair.evals.pipeline import PipelineSettings, run_pipeline

    settings = PipelineSettings(
        model=args.model,
        tasks=args.tasks,
        heldout_fraction=args.heldout_fraction,
        train_tasks=args.train_tasks,
        heldout_tasks=args.heldout_tasks,
        expert_episodes=args.expert_episodes,
        sft_epochs=args.sft_epochs,
        sft_lr=args.sft_lr,
        sft_lora_layers=args.sft_lora_layers,
        kl_coef=args.kl_coef,
        replay=args.replay,
        grpo_steps=args.grpo_steps,
        group_size=args.group_size,
        tasks_per_step=args.tasks_per_step,
        grpo_lr=args.grpo_lr,
        grpo_temperature=args.grpo_temperature,
        beta=args.beta,
        reward=args.reward,
        max_tool_calls=args.max_tool_calls,
        max_new_tokens=args.max_new_tokens,
        eval_samples=args.eval_samples,
        seed=args.seed,
    )
    ids = [t.instance_id for t in load_tasks(args.tasks)]
    started = time.monotonic()
    try:
        results = run_pipeline(args.output_dir, settings, ids)
    except (RuntimeError, ValueError) as exc:
        print(f"swerepair pipeline: error: {exc}", file=sys.stderr)
        return 1
    print(results["markdown"])
    print(f"pipeline finished in {time.monotonic() - started:.0f}s; {args.output_dir}/results.md")
    return 0


def cmd_solve(args: argparse.Namespace) -> int:
    from swerepair.envs.env import render_transcript
    from swerepair.envs.rollout import run_episodes

    scaffold = _scaffold(args)
    make_env = _env_factory(
        args,
        scaffold,
        reward=args.reward,
        max_tool_calls=args.max_tool_calls,
        max_context_tokens=args.max_context_tokens,
    )
    env = make_env()  # the task set, its repositories and the sandbox are checked before the model loads
    env.close()
    task_ids = [t.instance_id for t in _select(env.tasks, args.task_id, _tasks_name(args))[: len(args.task_id or [1])]]
    policy = _policy(args, scaffold)
    task_ids = [t for t in task_ids for _ in range(args.episodes)]
    started = time.monotonic()

    def progress(running: int, finished: int) -> None:
        print(
            f"[{time.monotonic() - started:6.1f}s] {finished}/{len(task_ids)} episodes done, {running} running",
            file=sys.stderr,
            flush=True,
        )

    episodes = run_episodes(make_env, policy, task_ids, seed=args.seed, on_step=progress)
    with open(args.out, "a", encoding="utf-8") as fh:
        for ep in episodes:
            if args.keep_resolved and ep.reward < 1.0:
                continue  # distillation: only what solved its task
            fh.write(json.dumps(ep.to_json(), default=str) + "\n")
    for ep in episodes:
        print(f"\n===== {ep.instance_id}: {ep.info.get('exit_reason')}, reward {ep.reward}")
        print(render_transcript(ep.messages))
        print("== final diff\n" + (ep.info.get("patch") or "(no changes)"))
        print("== reward components", json.dumps(ep.info.get("reward_components", {}), indent=2))
        print(f"== tokens {len(ep.tokens)}, generated {sum(ep.loss_mask)}, tool stats {ep.info.get('tool_stats')}")
    print(f"{len(episodes)} episode(s) appended to {args.out} in {time.monotonic() - started:.1f}s")
    return 0 if all(not ep.failed for ep in episodes) else 1


def cmd_check(args: argparse.Namespace) -> int:
    rc = cmd_tasks_validate(argparse.Namespace(**{**vars(args), "task_id": None}))
    if rc != 0:
        return rc
    return cmd_play(args)


def _train_help() -> str:
    from swerepair.trainers.config import MODEL_DEFAULTS, PRESETS, TrainConfig, field_docs

    defaults = TrainConfig()
    lines = ["settings (--name value; any field of TrainConfig, dashes or underscores):"]
    for name, doc in field_docs().items():
        value = getattr(defaults, name)
        shown = ",".join(value) if isinstance(value, list) else value
        lines.append(f"  --{name.replace('_', '-'):24s} {doc} [{shown}]")
    for model, values in MODEL_DEFAULTS.items():
        shown = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in values.items())
        lines.append(f"defaults with --model {model} (unless set): {shown}")
    lines.append("presets: " + ", ".join(PRESETS))
    return "\n".join(lines)


def _train_trl(config: Any, *, resume: bool) -> int:
    import os

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from swerepair.trainers.startup import preflight
    from swerepair.trainers.trl_backend import build_trl_trainer

    preflight(config, resume=resume)  # before anything is written
    trainer = build_trl_trainer(config)
    print(f"training {config.model} with trl's GRPOTrainer; output {config.output_dir}", file=sys.stderr)
    started = time.monotonic()
    trainer.train(resume_from_checkpoint=True if resume else None)
    trainer.save_model(f"{config.output_dir}/final")
    last = next((r for r in reversed(trainer.state.log_history) if "reward" in r), {})
    print(f"done in {time.monotonic() - started:.0f}s: step {trainer.state.global_step}, reward {last.get('reward')}")
    return 0


def cmd_train(args: argparse.Namespace, rest: list[str]) -> int:
    from pathlib import Path

    from swerepair.trainers.config import ConfigError, load_config, parse_overrides

    overrides = parse_overrides(rest)
    if args.resume:
        if args.config or args.preset:
            raise ConfigError("--resume takes the run's own config.yaml; give changes as --name value")
        if not (Path(args.resume) / "config.yaml").is_file():
            raise UserError(f"--resume {args.resume}: not a run directory (it holds no config.yaml)")
        config = load_config(config=f"{args.resume}/config.yaml", overrides=overrides, saved_run=True)
        config = config.replace(output_dir=args.resume)
    else:
        config = load_config(preset=args.preset, config=args.config, overrides=overrides)
    if config.backend == "trl":
        return _train_trl(config, resume=bool(args.resume))
    from swerepair.trainers.grpo import GRPOTrainer

    trainer = GRPOTrainer.from_run_dir(args.resume, overrides=overrides) if args.resume else GRPOTrainer(config)
    cfg = trainer.config
    print(
        f"training {cfg.model} ({cfg.finetune}) on {len(trainer.tasks)} task(s): {cfg.max_steps} steps of "
        f"{cfg.tasks_per_step} x {cfg.group_size} episodes; run directory {trainer.run_dir} "
        f"(tail -f {trainer.run_dir / 'train.log'})",
        file=sys.stderr,
    )
    started = time.monotonic()
    with trainer:
        records = trainer.train()
    last = records[-1] if records else (trainer.history[-1] if trainer.history else {})
    reward = last.get("reward/mean", float("nan"))
    groups = sum(r.get("groups/count", 0.0) for r in records)
    if records and groups and not sum(r.get("groups/informative", 0.0) for r in records):
        print(
            f"note: in each of the {groups:.0f} group(s) every episode scored the same, so no update was made "
            "(groups/zero_variance in metrics.jsonl); a random model such as tiny-qwen3 never edits: --preset "
            "cpu-demo trains SmolLM2 with a shaping reward that varies",
            file=sys.stderr,
        )
    print(
        f"done in {time.monotonic() - started:.0f}s: step {trainer.step}, reward {reward:.3f}"
        f"; metrics {trainer.run_dir / 'metrics.jsonl'}, curve {trainer.run_dir / 'learning_curve.png'}, "
        f"checkpoint {trainer.run_dir / 'checkpoints'}"
    )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    if args.engine == "vllm":
        return _exec_vllm(args)
    from swerepair.agents.inference.server import serve

    _check_model(args.model)
    try:
        serve(
            args.model,
            args.host,
            args.port,
            model_name=args.served_model_name,
            device=args.device,
            max_batch_size=args.max_batch_size,
            default_max_tokens=args.max_tokens,
            seed=args.seed,
        )
    except OSError as exc:
        if exc.errno is None or exc.filename is not None:
            raise
        raise UserError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from exc
    return 0


def _exec_vllm(args: argparse.Namespace) -> int:
    """Replace this process with a vLLM server that accepts live weights (see docs/inference.md)."""
    import os
    import shlex
    from pathlib import Path

    from swerepair.agents.inference.models import model_path
    from swerepair.agents.inference.vllm_server import vllm_command, vllm_environment

    python = args.vllm_python
    if python is None:
        local = Path(".venv-vllm/bin/python")
        python = str(local) if local.exists() else sys.executable
    extra = shlex.split(args.vllm_args or "")
    if args.served_model_name and "--served-model-name" not in extra:
        extra += ["--served-model-name", args.served_model_name]
    command = vllm_command(python, model_path(args.model), args.port, extra, host=args.host)
    print("exec:", shlex.join(command), file=sys.stderr, flush=True)
    try:
        os.execvpe(command[0], command, vllm_environment())
    except OSError as exc:
        print(f"cannot start vLLM with {python!r}: {exc}", file=sys.stderr)
        return 2
    return 0  # not reached


def _add_reward_arg(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument(
        "--reward",
        default=default,
        help=f"the env's reward: a swerepair.rewards name, an entry point of swerepair.rewards, or "
        f"module:function (default {default})",
    )


def _add_scaffold_args(p: argparse.ArgumentParser, *, served: bool = False) -> None:
    p.add_argument(
        "--scaffold",
        default="nano",
        help="the agent scaffold: nano, an entry point of swerepair.scaffolds, or module:attr (default nano)",
    )
    if served:
        p.add_argument(
            "--tokenizer",
            default=None,
            help="--backend openai: the served model's tokenizer (built-in name or local directory) for "
            "token-exact episodes (default: --model)",
        )


def _port(text: str) -> int:
    """A TCP port number (argparse type): 0 (any free port) to 65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (0 to 65535)")
    return port


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="swerepair", description="RL environments for repository-level bug repair")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of a failure (also: SWEREPAIR_DEBUG=1)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    tasks = sub.add_parser("tasks", help="list, validate or synthesize a task set")
    tsub = tasks.add_subparsers(dest="tasks_command", required=True)
    p = tsub.add_parser("list", help="one line per task")
    _add_task_args(p)
    p.set_defaults(fn=cmd_tasks_list)
    p = tsub.add_parser("validate", help="prove each task's FAIL_TO_PASS/PASS_TO_PASS claims in the sandbox")
    _add_task_args(p)
    p.add_argument("--task-id", action="append", help="validate only this task (repeatable)")
    p.add_argument("--jobs", type=int, default=2, help="tasks validated in parallel")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds for one test run")
    p.set_defaults(fn=cmd_tasks_validate)
    _add_synth_parser(tsub)
    _add_envs_parsers(sub)

    p = sub.add_parser("solve", help="run tasks with a model and write token-exact episodes as JSONL")
    _add_task_args(p)
    p.add_argument(
        "--model", required=True, help="tiny-qwen3, smollm2-135m, a local model path, or the served model name"
    )
    p.add_argument(
        "--adapter", action="append", default=None, help="LoRA adapter (directory, checkpoint or run), merged in order"
    )
    p.add_argument("--task-id", action="append", help="task to run (repeatable; default: the first task)")
    p.add_argument("--episodes", type=int, default=1, help="episodes per task (a group)")
    p.add_argument("--backend", choices=["hf", "openai"], default="hf")
    p.add_argument("--base-url", default="http://127.0.0.1:8000/v1", help="OpenAI-compatible server (--backend openai)")
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--max-tool-calls", type=int, default=30, help="tool-call budget per episode (plus turns without any call)"
    )
    p.add_argument("--max-steps", action=_Renamed)
    p.add_argument("--max-context-tokens", type=int, default=8192)
    p.add_argument("--max-new-tokens", type=int, default=512, help="tokens per turn")
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="append the episodes to this JSONL file")
    p.add_argument("--keep-resolved", action="store_true", help="append only episodes with reward 1 (distillation)")
    _add_reward_arg(p, "functional_similarity")
    _add_scaffold_args(p, served=True)
    p.set_defaults(fn=cmd_solve)

    p = sub.add_parser("sft", help="supervised fine-tuning (LoRA) on episodes, the first stage before GRPO")
    p.add_argument("--model", default="smollm2-135m", help="tiny-qwen3, smollm2-135m or a local model directory")
    p.add_argument("--episodes", action="append", required=True, help="episode JSONL (repeatable)")
    p.add_argument("--min-reward", type=float, default=1.0, help="keep episodes with at least this reward (-1: all)")
    p.add_argument("--replay", default=None, help='general chat data, JSONL of {"messages": [...]}')
    p.add_argument("--replay-ratio", type=float, default=0.2, help="share of each epoch drawn from --replay")
    p.add_argument("--kl-coef", type=float, default=0.05, help="weight of KL(student || base)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=4, help="examples per optimizer step")
    p.add_argument("--micro-batch-size", type=int, default=1, help="examples per forward pass")
    p.add_argument("--max-tokens", type=int, default=4096, help="longer examples are cut")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--warmup-steps", type=int, default=0)
    p.add_argument("--lora-rank", type=int, default=8)
    p.add_argument("--lora-alpha", type=float, default=16.0)
    p.add_argument("--lora-layers", default="last_third", help="all, last_third, last_half or indices like 8,9")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output-dir", default="runs/sft")
    p.add_argument("--overwrite", action="store_true", help="start over in an output dir that holds a run")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--no-tensorboard", action="store_true")
    p.set_defaults(fn=cmd_sft)

    p = sub.add_parser("merge", help="merge LoRA adapters into the model and save it (for serving)")
    p.add_argument("--model", required=True)
    p.add_argument("--adapter", action="append", required=True, help="adapter, checkpoint or run dir (in order)")
    p.add_argument("--out", required=True, help="directory for the merged model and its tokenizer")
    p.set_defaults(fn=cmd_merge)

    p = sub.add_parser(
        "pipeline", help="expert episodes, SFT, GRPO and evaluation of each stage, with a before/after table"
    )
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--tasks", default="bundled")
    p.add_argument("--output-dir", default="runs/pipeline")
    p.add_argument("--heldout-fraction", type=float, default=0.3)
    p.add_argument("--train-tasks", type=int, default=0, help="cap the training split (0: all)")
    p.add_argument("--heldout-tasks", type=int, default=0, help="cap the held-out split (0: all)")
    p.add_argument("--expert-episodes", type=int, default=2)
    p.add_argument("--sft-epochs", type=int, default=2)
    p.add_argument("--sft-lr", type=float, default=5e-4)
    p.add_argument("--sft-lora-layers", default="last_third", help="all, last_third, last_half or indices")
    p.add_argument("--kl-coef", type=float, default=0.05)
    p.add_argument("--replay", default=None)
    p.add_argument("--grpo-steps", type=int, default=4)
    p.add_argument("--group-size", type=int, default=4)
    p.add_argument(
        "--tasks-per-step", type=int, default=0, help="GRPO tasks per step (0: every training task, each step)"
    )
    p.add_argument("--grpo-lr", type=float, default=1e-4)
    p.add_argument(
        "--grpo-temperature", type=float, default=1.0, help="sampling temperature of the GRPO stage's rollouts"
    )
    p.add_argument("--beta", type=float, default=0.02)
    p.add_argument(
        "--reward",
        default="functional_similarity",
        help="the GRPO stage's reward (evaluations always count resolved by the tests)",
    )
    p.add_argument("--max-tool-calls", type=int, default=10)
    p.add_argument("--max-new-tokens", type=int, default=160)
    p.add_argument("--eval-samples", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(fn=cmd_pipeline)

    p = sub.add_parser("expert", help="scripted expert episodes from gold patches, token-exact for a model's template")
    _add_task_args(p)
    p.add_argument("--model", required=True, help="the model whose chat template and tokenizer the episodes use")
    p.add_argument("--task-id", action="append", help="only this task (repeatable)")
    p.add_argument("--split", default=None, help="file of instance ids, one a line: only these")
    p.add_argument("--episodes", type=int, default=1, help="episodes per task, each with its own variations")
    p.add_argument("--reward", default="tests_pass", help="the env's reward (kept episodes score 1)")
    _add_scaffold_args(p)
    p.add_argument("--max-tool-calls", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep-all", action="store_true", help="also keep episodes that did not score 1")
    p.add_argument("--out", required=True, help="append the episodes to this JSONL file")
    p.set_defaults(fn=cmd_expert)

    p = sub.add_parser(
        "eval", help="run a policy over a task set (or score episodes) and report rates with CIs; --compare A B"
    )
    _add_task_args(p)
    p.add_argument("--model", default=None, help="tiny-qwen3, smollm2-135m, a local model path, or a served name")
    p.add_argument(
        "--adapter", action="append", default=None, help="LoRA adapter (directory, checkpoint or run), merged in order"
    )
    p.add_argument("--backend", choices=["hf", "openai"], default="hf")
    p.add_argument("--base-url", default="http://127.0.0.1:8000/v1", help="OpenAI-compatible server (--backend openai)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--task-id", action="append", help="evaluate only this task (repeatable)")
    p.add_argument("--split", default=None, help="file of instance ids, one a line: evaluate only these")
    p.add_argument("--samples", type=int, default=1, help="episodes per task (k)")
    p.add_argument("--pass-at", default="1", help="comma-separated k for unbiased pass@k (each <= --samples)")
    p.add_argument("--reward", default="tests_pass", help="the env's reward (default: the task's tests)")
    _add_scaffold_args(p, served=True)
    p.add_argument("--max-tool-calls", type=int, default=30)
    p.add_argument("--max-context-tokens", type=int, default=8192)
    p.add_argument("--max-new-tokens", type=int, default=512)
    p.add_argument("--temperature", type=float, default=None, help="default: 0 (greedy) for one sample, else 0.8")
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--episodes", default=None, help="score these episodes (JSONL) instead of running a policy")
    p.add_argument("--name", default=None, help="the run's name in reports")
    p.add_argument("--out", default=None, help="directory for episodes, predictions, report.{json,md,png}")
    p.add_argument("--compare", nargs=2, metavar=("A", "B"), default=None, help="compare two eval directories")
    p.set_defaults(fn=cmd_eval)

    p = sub.add_parser("serve", help="OpenAI-compatible server over a local model, with live weight updates")
    p.add_argument("--model", default="tiny-qwen3", help="tiny-qwen3, smollm2-135m or a local model directory")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=_port, default=8000)
    p.add_argument("--served-model-name", default=None, help="the name clients send as `model`")
    p.add_argument("--device", default="cpu")
    p.add_argument("--max-batch-size", type=int, default=8, help="requests generated together")
    p.add_argument("--max-tokens", type=int, default=512, help="default max_tokens of a request")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument(
        "--engine",
        choices=["swerepair", "vllm"],
        default="swerepair",
        help="swerepair: this package's server; vllm: exec a vLLM server with the weight-sync extension "
        "(then only --model, --host, --port and --served-model-name apply; pass vLLM's own flags in --vllm-args)",
    )
    p.add_argument(
        "--vllm-python",
        default=None,
        help="python of the vLLM environment (default: .venv-vllm/bin/python under the current directory)",
    )
    p.add_argument("--vllm-args", default="", help='more vLLM flags, one string: "--dtype float32 --enforce-eager"')
    p.set_defaults(fn=cmd_serve)

    p = sub.add_parser(
        "train",
        help="GRPO on a task set (settings: --preset, --config, --name value)",
        epilog=_train_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--preset", default=None, help="start from a named preset (cpu-demo, thesis, ...)")
    p.add_argument("--config", default=None, help="YAML file of settings (over the preset)")
    p.add_argument("--resume", default=None, metavar="DIR", help="continue the run in DIR from its newest checkpoint")
    p.set_defaults(fn=cmd_train, takes_rest=True)

    for name, fn, text in (
        ("play", cmd_play, "play one episode with the scripted gold-patch policy"),
        ("check", cmd_check, "validate the task set, then play one scripted episode"),
    ):
        p = sub.add_parser(name, help=text)
        _add_task_args(p)
        p.add_argument("--task-id", default=None, help="task to play (default: drawn with --seed)")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--out", default=None, help="append the episode as JSON to this file")
        if name == "check":
            p.add_argument("--jobs", type=int, default=2)
            p.add_argument("--timeout", type=float, default=300.0)
        _add_reward_arg(p, "functional_similarity")
        _add_scaffold_args(p)
        p.set_defaults(fn=fn)
    for old in RENAMED_COMMANDS:  # accepted by the parser (not listed) so that main can name the new one
        sub.add_parser(old, add_help=False).set_defaults(renamed_command=old)
    sub.metavar = "{" + ",".join(c for c in sub.choices if c not in RENAMED_COMMANDS) + "}"
    return parser


def _debug(args: argparse.Namespace | None = None) -> bool:
    """Whether a failure shows its traceback: ``--debug`` or ``SWEREPAIR_DEBUG`` set (not 0)."""
    import os

    return bool(getattr(args, "debug", False)) or os.environ.get("SWEREPAIR_DEBUG", "0") not in ("", "0")


def _user_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean the user gave something wrong (a task file, a path, a name, a
    setting, a repository directory, an address in use), printed as one line."""
    from swerepair.core import PluginError
    from swerepair.envs.sandbox.workspace import TaskRepositoryError
    from swerepair.envs.tasks import TaskFormatError
    from swerepair.trainers.config import ConfigError

    return (UserError, TaskFormatError, TaskRepositoryError, ConfigError, PluginError, OSError)


def _one_line(exc: BaseException) -> str:
    """`exc` as one line: an OSError from the system as ``what: path``, anything else its message
    with the line breaks of a multi-line text folded."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return " ".join(str(exc).split()) or type(exc).__name__


def _run_command(args: argparse.Namespace, rest: list[str]) -> int:
    if getattr(args, "takes_rest", False):
        return int(args.fn(args, rest))
    return int(args.fn(args))


def main(argv: list[str] | None = None) -> int:
    """Run ``swerepair ARGV``; returns the exit status. A failure the user caused (`UserError`, a
    malformed task file, a repository directory that lacks a repository, a bad setting, a missing
    file, an address in use) is one line on stderr, ``swerepair COMMAND: error: ...``, with exit
    status 2; ``--debug`` or ``SWEREPAIR_DEBUG=1`` shows its traceback instead. A closed stdout
    (``swerepair tasks list | head``) ends the command quietly, as it ends other Unix tools."""
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    old = getattr(args, "renamed_command", None)
    if old is not None:
        new, what = RENAMED_COMMANDS[old]
        parser.error(f"the command {old} was renamed {new} ({what})")
    if rest and not getattr(args, "takes_rest", False):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    for handler in logging.getLogger().handlers:  # the console stays quiet; run logs go to files
        handler.setLevel(logging.INFO if args.verbose else logging.WARNING)
    command = " ".join(
        str(c) for c in (args.command, getattr(args, "tasks_command", None), getattr(args, "envs_command", None)) if c
    )
    try:
        return _run_command(args, rest)
    except BrokenPipeError:
        _quiet_stdout()
        return 141  # 128 + SIGPIPE, what a shell reports for a tool that a closed pipe ended
    except _user_errors() as exc:
        if _debug(args):
            raise
        if isinstance(exc, OSError) and _stdout_closed(exc):
            _quiet_stdout()
            return 141
        print(f"swerepair {command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if _debug(args):
            raise
        print(f"swerepair {command}: interrupted", file=sys.stderr)
        return 130


def _stdout_closed(exc: OSError) -> bool:
    import errno

    return exc.errno == errno.EPIPE


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's final flush does not fail again."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    raise SystemExit(main())
