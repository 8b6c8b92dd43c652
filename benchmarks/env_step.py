"""Latency of `SweRepairEnv.reset` and `SweRepairEnv.step`, per sandbox kind.

For each sandbox ("bubblewrap-session", the hardened one as the env runs it by default: one
bubblewrap per episode whose supervisor spawns each command, `SandboxConfig(session=True)`;
"bubblewrap-per-command", the same isolation with a fresh bubblewrap per command,
`SandboxConfig(session=False)`; "bubblewrap-unhardened", the invocation the
package used before the integrity work, rebuilt here for comparison: bwrap as the caller (root
keeps its capabilities), no seccomp filter, no uid switch, no cgroup, no argument fd, no disk
watch; "gvisor" where runsc runs, with fewer samples; "docker" where a Docker engine answers,
with fewer samples: a container per episode started cold (no warm pool) from the test image of
tests/docker/build_images.sh, or ``$SWEREPAIR_DOCKER_IMAGE``; "local"; the bubblewrap kinds
skipped with a note where `bwrap_available()` is False) this measures, over the bundled tasks:

- reset: ``env.reset(options={"task_id": ...})``, cycling over the tasks, after one warm-up
  reset per task (the first reset of a task builds its cached checkout), so the figures are
  steady-state resets (closing the previous episode's workspace included);
- step: ``env.step('<tool_call>{"name": "shell", "arguments": {"cmd": "true"}}</tool_call>')``,
  the env's whole step (parsing, sandbox launch, formatting), in one episode whose budgets are
  large enough that it never ends during the measurement;

- run: ``sandbox.run("true")`` on the episode's sandbox, the sandbox's share of a step
  (without the env's parsing, formatting and copying of the conversation);
- in turns: bubblewrap's session and per-command modes and a bare ``subprocess.run`` measured
  one sample of each per round (resets, then ``sandbox.run("true")``), so that a machine whose
  load changes during the run weighs on all alike; then ``env.step`` in the session beside the
  same step with "env-only", the session's ``sandbox.run("true")`` and a bare ``subprocess.run``
  (rounds without the per-command mode: a bubblewrap that exits may leave the kernel work,
  namespace teardown, that lands on the next sample; not shown to matter, but kept out);
- "env-only": the env with a sandbox that answers every command at once (`NullSandbox`): the
  env's own share of a step (parsing, handing the tool to the env's reused deadline thread,
  copying and measuring the conversation, which grows by two messages a step);

and, in the same run, a bare ``subprocess.run(["true"])`` as the floor a step is compared to
(and ``bash -c true``, the shell every command starts),
plus the cold cost of a task's first reset (checkout and restricted bin built from scratch in a
fresh ``SWEREPAIR_CACHE``), measured once.

With --built-env, two more rows: bubblewrap on a task of ``benchmarks/pyenvs.py`` with its
Docker-free environment built from PyPI, and the same task with the host's interpreter.

Run:  .venv/bin/python benchmarks/env_step.py [--json] [--n N] [--built-env]
With --json the figures are also printed as one JSON object on the last line of stdout.
The load average (``os.getloadavg()``) before and after the run is printed and in the JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

from swerepair.core import ExecResult, SandboxError
from swerepair.envs import SweRepairEnv
from swerepair.envs.sandbox import BubblewrapSandbox, bwrap_available, runsc_available
from swerepair.envs.sandbox.base import WorkspaceSandbox
from swerepair.envs.sandbox.process import prlimit_prefix, run_process
from swerepair.envs.sandbox.workspace import new_workspace, prepare_checkout


class UnhardenedBubblewrap(BubblewrapSandbox):
    """The bubblewrap launch as it was before the integrity work (for the comparison row only):
    bwrap runs as the caller with its mounts on the command line, ``--unshare-all``, no
    seccomp, no setpriv, no cgroup, no self-check, no disk watch."""

    def __init__(self, episode_dir, repo_dir, base_commit, config) -> None:
        WorkspaceSandbox.__init__(self, episode_dir, repo_dir, base_commit, config)
        self.cgroup = None
        self._base_size = None
        self._bwrap = "bwrap"
        self.mode = "user"  # no setpriv, no user-namespace flags added below
        self._setpriv = []
        self._mounts = [a for a in self._mount_args() if a not in ("--disable-userns", "--unshare-user")]

    def _launch(self, inner, env, timeout, stdin, max_output) -> ExecResult:
        setenv = [x for k, v in env.items() for x in ("--setenv", k, v)]
        argv = [
            self._bwrap,
            *self._mounts,
            "--unshare-all",
            *setenv,
            "--",
            *prlimit_prefix(self.config.limits, timeout),
            *inner,
        ]
        return run_process(
            argv, timeout=timeout, env={"PATH": "/usr/bin:/bin"}, stdin=stdin, max_output_bytes=max_output
        )


def unhardened_factory(task):
    from swerepair.envs.sandbox import SandboxConfig

    episode_dir, repo_dir = new_workspace(prepare_checkout(task))
    try:
        return UnhardenedBubblewrap(episode_dir, repo_dir, task.base_commit, SandboxConfig())
    except SandboxError:
        import shutil

        shutil.rmtree(episode_dir, ignore_errors=True)
        raise


class NullSandbox:
    """A sandbox that answers every command at once with an empty output: the "env only" row,
    the env's own share of a step (parsing the action, the tool's wrapper and the hand-off to its
    deadline thread, copying and measuring the conversation, formatting the observation)."""

    workdir = "/workspace"

    def run(self, cmd: str, timeout: float, **_: object) -> ExecResult:
        return ExecResult(output="", exit_code=0)

    def read_file(self, path: str) -> str:
        raise ValueError(f"{path}: no such file")

    def write_file(self, path: str, text: str) -> None:
        raise ValueError(f"{path}: read-only")

    def diff(self) -> str:
        return ""

    def close(self) -> None:
        pass


def null_factory(task):
    return NullSandbox()


ACTION = '<tool_call>{"name": "shell", "arguments": {"cmd": "true"}}</tool_call>'
TARGET_RESET_MS = 50


def pct(samples: list[float]) -> dict[str, float]:
    """p50 and p90 of `samples` (seconds), in milliseconds."""
    ms = sorted(s * 1e3 for s in samples)
    q = statistics.quantiles(ms, n=10, method="inclusive") if len(ms) > 1 else ms * 9
    return {"p50": round(statistics.median(ms), 3), "p90": round(q[8], 3)}


def timed(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


DOCKER_IMAGE: str | None = None  # set by main() where an engine answers


def docker_image() -> str | None:
    """The image of the docker rows: ``$SWEREPAIR_DOCKER_IMAGE``, else the test image (built by
    tests/docker/build_images.sh once, then found by its tag); None where there is no engine."""
    try:
        from swerepair.envs.sandbox.docker import docker_available
    except ImportError:
        return None
    if not docker_available():
        return None
    if os.environ.get("SWEREPAIR_DOCKER_IMAGE"):
        return os.environ["SWEREPAIR_DOCKER_IMAGE"]
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "docker", "build_images.sh")
    proc = subprocess.run(["bash", script], capture_output=True, text=True)
    return proc.stdout.strip().splitlines()[-1] if proc.returncode == 0 and proc.stdout.strip() else None


def make_env(kind: str) -> SweRepairEnv:
    from swerepair.envs.sandbox import SandboxConfig

    sandbox = {"bubblewrap-unhardened": unhardened_factory, "env-only": null_factory}.get(kind, kind)
    extra: dict = {"docker": {"image": DOCKER_IMAGE, "pool_size": 0}} if kind == "docker" else {}
    if kind in ("bubblewrap-session", "bubblewrap-per-command"):
        sandbox = "bubblewrap"
        extra["sandbox_config"] = SandboxConfig(session=kind == "bubblewrap-session")
    return SweRepairEnv(
        tasks="bundled", sandbox=sandbox, max_tool_calls=10_000, max_context_tokens=10**9, max_wall_s=1e9, **extra
    )


def cold_prepare(kind: str, task_id: str) -> float:
    """Seconds of a task's first reset with an empty cache (checkout, rbin, workspace copy)."""
    old = os.environ.get("SWEREPAIR_CACHE")
    with tempfile.TemporaryDirectory(prefix="swerepair-bench-cache-") as cache:
        os.environ["SWEREPAIR_CACHE"] = cache
        try:
            env = make_env(kind)
            t0 = time.perf_counter()
            env.reset(options={"task_id": task_id})
            elapsed = time.perf_counter() - t0
            env.close()
        finally:
            if old is None:
                os.environ.pop("SWEREPAIR_CACHE", None)
            else:
                os.environ["SWEREPAIR_CACHE"] = old
    return elapsed


def bench_kind(kind: str, n_resets: int, n_steps: int) -> dict[str, dict[str, float]]:
    env = make_env(kind)
    ids = [t.instance_id for t in env.tasks]
    for task_id in ids:  # warm-up: builds each task's cached checkout once
        env.reset(options={"task_id": task_id})
    it = iter(range(n_resets))  # cycle over the tasks
    resets = timed(lambda: env.reset(options={"task_id": ids[next(it) % len(ids)]}), n_resets)
    env.reset(options={"task_id": ids[0]})
    for _ in range(3):  # warm-up steps
        env.step(ACTION)

    def step() -> None:
        _, _, terminated, truncated, info = env.step(ACTION)
        if terminated or truncated:
            raise RuntimeError(f"the episode ended during the measurement: {info.get('exit_reason')}")

    steps = timed(step, n_steps)
    sandbox = env.unwrapped._ep.sandbox
    runs = timed(lambda: sandbox.run("true", 30.0), n_steps)
    env.close()
    return {"reset_ms": pct(resets), "step_ms": pct(steps), "run_ms": pct(runs)}


def interleaved(n_resets: int, n_steps: int) -> dict[str, dict[str, dict[str, float]]]:
    """Bubblewrap's two modes and a bare ``subprocess.run(["true"])`` measured in turns (one
    sample of each per round), so that a machine whose load changes during the run weighs on
    both alike: resets (``env.reset``) and commands (``sandbox.run("true")``)."""
    envs = {k: make_env(k) for k in ("bubblewrap-session", "bubblewrap-per-command")}
    ids = [t.instance_id for t in envs["bubblewrap-session"].tasks]
    resets: dict[str, list[float]] = {k: [] for k in envs}
    for i in range(n_resets):
        for k, env in envs.items():
            t0 = time.perf_counter()
            env.reset(options={"task_id": ids[i % len(ids)]})
            resets[k].append(time.perf_counter() - t0)
    runs: dict[str, list[float]] = {k: [] for k in (*envs, "bare")}
    sandboxes = {k: env.unwrapped._ep.sandbox for k, env in envs.items()}
    for sb in sandboxes.values():
        sb.run("true", 30.0)  # the session starts at the first command
    for _ in range(n_steps):
        for k, sb in sandboxes.items():
            t0 = time.perf_counter()
            sb.run("true", 30.0)
            runs[k].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        subprocess.run(["true"])
        runs["bare"].append(time.perf_counter() - t0)
    # env.step in the session and with a sandbox that answers at once (the env's own share), and
    # the session's sandbox.run, without the per-command mode in the rounds (a bubblewrap that
    # exits may leave the kernel namespaces to tear down while the next sample runs)
    envs["env-only"] = make_env("env-only")
    envs["env-only"].reset(options={"task_id": ids[0]})
    steps: dict[str, list[float]] = {k: [] for k in ("bubblewrap-session", "env-only", "run-session", "bare")}
    for _ in range(3):
        for k in ("bubblewrap-session", "env-only"):
            envs[k].step(ACTION)
    for _ in range(n_steps):
        for k in ("bubblewrap-session", "env-only"):
            t0 = time.perf_counter()
            envs[k].step(ACTION)
            steps[k].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        sandboxes["bubblewrap-session"].run("true", 30.0)
        steps["run-session"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        subprocess.run(["true"])
        steps["bare"].append(time.perf_counter() - t0)
    for env in envs.values():
        env.close()
    return {
        "reset_ms": {k: pct(v) for k, v in resets.items()},
        "run_ms": {k: pct(v) for k, v in runs.items()},
        "step_ms": {k: pct(v) for k, v in steps.items()},
    }


def built_env_rows(n_resets: int, n_steps: int) -> dict[str, dict[str, dict[str, float]]]:
    """Reset and step in bubblewrap on one task of benchmarks/pyenvs.py, with its built
    environment and with the host's interpreter (``SandboxConfig(environments=None)``)."""
    from pathlib import Path

    from pyenvs import make_tasks  # benchmarks/pyenvs.py

    from swerepair.envs.pyenvs import BuildOptions, build_environments
    from swerepair.envs.sandbox import SandboxConfig
    from swerepair.envs.tasks import load_tasks

    out = {}
    old = os.environ.get("SWEREPAIR_CACHE")
    with tempfile.TemporaryDirectory(prefix="swerepair-bench-envs-") as tmp:
        os.environ["SWEREPAIR_CACHE"] = os.path.join(tmp, "cache")
        try:
            path = make_tasks(Path(tmp))
            tasks = load_tasks(path)
            ((_, built),) = build_environments(tasks[:1], BuildOptions(root=Path(tmp) / "envs"))
            if not built.ok:
                raise SystemExit(f"building the environment failed: {built.reason}")
            task_id = tasks[0].instance_id
            for kind, where in (("bubblewrap+built-env", str(Path(tmp) / "envs")), ("bubblewrap+host-python", None)):
                env = SweRepairEnv(
                    tasks=str(path),
                    sandbox="bubblewrap",
                    sandbox_config=SandboxConfig(environments=where),
                    max_tool_calls=10_000,
                    max_context_tokens=10**9,
                    max_wall_s=1e9,
                )
                env.reset(options={"task_id": task_id})
                resets = timed(lambda env=env: env.reset(options={"task_id": task_id}), n_resets)
                env.reset(options={"task_id": task_id})
                for _ in range(3):
                    env.step(ACTION)
                steps = timed(lambda env=env: env.step(ACTION), n_steps)
                env.close()
                out[kind] = {"reset_ms": pct(resets), "step_ms": pct(steps)}
        finally:
            if old is None:
                os.environ.pop("SWEREPAIR_CACHE", None)
            else:
                os.environ["SWEREPAIR_CACHE"] = old
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=None, help="samples of each measurement (default: 50 resets, 100 steps)")
    ap.add_argument("--json", action="store_true", help="also print the figures as JSON on the last line")
    ap.add_argument(
        "--built-env",
        action="store_true",
        help="also measure bubblewrap with a Docker-free environment built from PyPI (benchmarks/pyenvs.py's "
        "task) beside the host interpreter on the same task (needs the package index and uv)",
    )
    args = ap.parse_args()
    if args.n is not None and args.n < 1:
        ap.error("--n must be at least 1")
    args.n_resets, args.n_steps = args.n or 50, args.n or 100

    global DOCKER_IMAGE
    kinds = ["bubblewrap-session", "bubblewrap-per-command", "bubblewrap-unhardened", "gvisor", "docker", "local"]
    kinds.append("env-only")
    notes = []
    if not bwrap_available():
        kinds = [k for k in kinds if not k.startswith("bubblewrap")]
        notes.append("bubblewrap skipped: bwrap_available() is False on this machine")
    if not runsc_available():
        kinds.remove("gvisor")
        notes.append("gvisor skipped: runsc is missing or this process is not root")
    DOCKER_IMAGE = docker_image()
    if DOCKER_IMAGE is None:
        kinds.remove("docker")
        notes.append("docker skipped: no Docker engine answers (or the test image could not be built)")
    result: dict = {"loadavg_before": [round(x, 2) for x in os.getloadavg()]}
    logging.getLogger("swerepair").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first_id = make_env(kinds[0]).tasks[0].instance_id
        result["cold_prepare_ms"] = round(cold_prepare(kinds[0], first_id) * 1e3, 3)
        result["cold_prepare_sandbox"] = kinds[0]
        for kind in kinds:
            n_resets, n_steps = args.n_resets, args.n_steps
            if kind == "gvisor":  # about 0.3 s per command: fewer samples
                n_resets, n_steps = min(n_resets, 10), min(n_steps, 20)
            elif kind == "docker":  # about 0.5 s per reset (a container started cold)
                n_resets, n_steps = min(n_resets, 20), min(n_steps, 50)
            result[kind] = bench_kind(kind, n_resets, n_steps)
            result[kind]["n"] = {"resets": n_resets, "steps": n_steps}
        if "bubblewrap-session" in kinds:
            result["interleaved"] = interleaved(args.n_resets, args.n_steps)
        if args.built_env and "bubblewrap-session" in kinds:
            result.update(built_env_rows(args.n_resets, args.n_steps))
        subprocess.run(["true"])  # warm-up
        result["bare_subprocess_ms"] = pct(timed(lambda: subprocess.run(["true"]), args.n_steps))
        bash = ["bash", "--noprofile", "--norc", "-c", "true"]
        result["bare_bash_ms"] = pct(timed(lambda: subprocess.run(bash), args.n_steps))
    result["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    result["target_reset_ms"] = TARGET_RESET_MS
    result["n"] = {"resets": args.n_resets, "steps": args.n_steps}
    machine = {"cpu_count": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
    result["machine"] = machine

    bare = result["bare_subprocess_ms"]
    rows = [("measurement", "sandbox", "n", "p50 ms", "p90 ms", "step/bare p50")]
    for kind in kinds:
        r, s = result[kind]["reset_ms"], result[kind]["step_ms"]
        n = result[kind]["n"]
        what = "reset (cold container)" if kind == "docker" else "reset"
        rows.append((what, kind, str(n["resets"]), f"{r['p50']:.2f}", f"{r['p90']:.2f}", ""))
        ratio = f"{s['p50'] / bare['p50']:.1f}x" if bare["p50"] > 0 else "n/a"
        rows.append(("step (shell true)", kind, str(n["steps"]), f"{s['p50']:.2f}", f"{s['p90']:.2f}", ratio))
        u = result[kind]["run_ms"]
        ratio = f"{u['p50'] / bare['p50']:.1f}x" if bare["p50"] > 0 else "n/a"
        rows.append(("sandbox.run('true')", kind, str(n["steps"]), f"{u['p50']:.2f}", f"{u['p90']:.2f}", ratio))
    for kind in ("bubblewrap+built-env", "bubblewrap+host-python"):
        if kind in result:
            r, s = result[kind]["reset_ms"], result[kind]["step_ms"]
            rows.append(("reset", kind, str(args.n_resets), f"{r['p50']:.2f}", f"{r['p90']:.2f}", ""))
            ratio = f"{s['p50'] / bare['p50']:.1f}x" if bare["p50"] > 0 else "n/a"
            rows.append(("step (shell true)", kind, str(args.n_steps), f"{s['p50']:.2f}", f"{s['p90']:.2f}", ratio))
    rows.append(("bare subprocess", "-", str(args.n_steps), f"{bare['p50']:.2f}", f"{bare['p90']:.2f}", "1.0x"))
    b = result["bare_bash_ms"]
    ratio = f"{b['p50'] / bare['p50']:.1f}x" if bare["p50"] > 0 else "n/a"
    rows.append(("bare bash -c true", "-", str(args.n_steps), f"{b['p50']:.2f}", f"{b['p90']:.2f}", ratio))
    rows.append(("cold prepare", kinds[0], "1", f"{result['cold_prepare_ms']:.2f}", "", ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for k, row in enumerate(rows):
        print("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))))
        if k == 0:
            print("  ".join("-" * w for w in widths))
    m = result["machine"]
    if "bubblewrap-session" in result and "bubblewrap-per-command" in result:
        sess, per = result["bubblewrap-session"], result["bubblewrap-per-command"]
        result["session_vs_per_command"] = {
            "step_p50_speedup": round(per["step_ms"]["p50"] / sess["step_ms"]["p50"], 2),
            "step_p50_over_bare": round(sess["step_ms"]["p50"] / bare["p50"], 2),
            "run_p50_over_bare": round(sess["run_ms"]["p50"] / bare["p50"], 2),
            "run_p50_speedup": round(per["run_ms"]["p50"] / sess["run_ms"]["p50"], 2),
            "reset_p50_ms": {"session": sess["reset_ms"]["p50"], "per-command": per["reset_ms"]["p50"]},
        }
        c = result["session_vs_per_command"]
        print(
            f"\nbubblewrap session vs a bubblewrap per command: step p50 {sess['step_ms']['p50']:.2f} ms vs "
            f"{per['step_ms']['p50']:.2f} ms ({c['step_p50_speedup']:.1f}x faster; {c['step_p50_over_bare']:.1f}x a "
            f"bare subprocess.run); sandbox.run('true') p50 {sess['run_ms']['p50']:.2f} ms vs "
            f"{per['run_ms']['p50']:.2f} ms ({c['run_p50_over_bare']:.1f}x a bare subprocess.run); "
            f"reset p50 {sess['reset_ms']['p50']:.2f} ms vs {per['reset_ms']['p50']:.2f} ms"
        )
    if "interleaved" in result:
        il = result["interleaved"]
        r, u = il["reset_ms"], il["run_ms"]
        print(
            "in turns (one sample of each per round): reset p50 "
            f"{r['bubblewrap-session']['p50']:.2f} ms (session) vs {r['bubblewrap-per-command']['p50']:.2f} ms "
            f"(per command); sandbox.run('true') p50 {u['bubblewrap-session']['p50']:.2f} ms vs "
            f"{u['bubblewrap-per-command']['p50']:.2f} ms; bare subprocess.run {u['bare']['p50']:.2f} ms "
            f"(session {u['bubblewrap-session']['p50'] / u['bare']['p50']:.1f}x bare)"
        )
        st = il["step_ms"]
        print(
            f"in turns: env.step p50 {st['bubblewrap-session']['p50']:.2f} ms (session; "
            f"{st['bubblewrap-session']['p50'] / st['bare']['p50']:.1f}x bare), {st['env-only']['p50']:.2f} ms "
            f"(env only: a sandbox that answers at once), bare subprocess.run {st['bare']['p50']:.2f} ms; "
            f"in the same rounds sandbox.run('true') p50 {st['run-session']['p50']:.2f} ms (session; "
            f"{st['run-session']['p50'] / st['bare']['p50']:.1f}x bare)"
        )
    print(f"\ntarget steady-state reset p50: {TARGET_RESET_MS} ms; {m['cpu_count']} CPUs, Python {m['python']}")
    print(f"load average (1, 5, 15 min) before: {result['loadavg_before']}, after: {result['loadavg_after']}")
    for note in notes:
        print(f"note: {note}")
    if args.json:
        print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
