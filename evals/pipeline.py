"""The two-stage recipe end to end, as the commands a user would type (docs/pipeline.md):

1. **split** the task set into a training and a held-out part (seeded; written to the run);
2. **expert episodes** on the training tasks (``swerepair expert``), token-exact for the model;
3. **evaluate the base model** on both splits (``swerepair eval``, one run over both, reported
   per split);
4. **SFT** on the expert episodes (``swerepair sft``), then evaluate;
5. **GRPO** on a second adapter over the SFT one (``swerepair train --init-adapter``), on the
   training tasks, then evaluate;
6. **merge** base + SFT + GRPO adapters into one model for serving (``swerepair merge``);
7. the **before/after table**: tool-call validity and resolved rate per stage and split, each with
   its 95% CI and denominator, the paired comparison of each stage with the one before
   (McNemar), and the GRPO stage's learning curve (mean reward over its first vs its last steps).

Each step runs as a subprocess whose output goes to ``<run>/logs/<step>.log``; a step already
done (its output present) is skipped, so an interrupted pipeline resumes.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from swerepair.evals.report import compare, load_outcomes
from swerepair.evals.run import write_report

__all__ = ["PipelineSettings", "run_pipeline", "split_tasks"]


@dataclass(frozen=True)
class PipelineSettings:
    """The recipe's knobs (the defaults are a starting point for SmolLM2-135M on CPU; `make demo`
    uses more SFT epochs and fewer tasks, docs/pipeline.md).

    Attributes:
        model: the base model.
        tasks: the task set (``bundled``, ``bundled-synth`` or a file).
        heldout_fraction: the share of tasks held out from training (seeded by `seed`).
        train_tasks / heldout_tasks: cap each split at this many tasks (0: all), drawn by a
            seeded hash of each id so that the cap spans the task set's repositories.
        expert_episodes: expert episodes per training task.
        sft_epochs / sft_lr / sft_lora_layers / kl_coef / replay: the SFT stage.
        tasks_per_step: GRPO tasks per step; 0 (the default) plays every training task at
            every step, so that each step's mean reward is over the same tasks and the
            learning curve compares like with like (a random draw of a few tasks per step
            mixes the policy's progress with the tasks' difficulty).
        grpo_temperature: the GRPO rollouts' sampling temperature (the loss uses the same one).
            A small model that has just learned a multi-step workflow strays from it at 1.0
            more often than it finishes it; a lower temperature keeps the groups near what it
            learned, where some episodes succeed and some do not.
        grpo_steps / group_size / grpo_lr / beta / reward: the GRPO stage. The reward is the
            thesis preset's patch-similarity reward: a small model's first edits rarely pass
            the tests, so under ``tests_pass`` every group is all zeros and nothing is learned,
            while a patch nearer the real fix scores more here. The evaluations count resolved
            by the tests whatever the stage trained on.
        max_tool_calls / max_new_tokens / max_context_tokens: every episode's budgets.
        eval_samples: episodes per task in each evaluation.
        seed: split, expert variations, training and sampling.
    """

    model: str = "smollm2-135m"
    tasks: str = "bundled"
    heldout_fraction: float = 0.3
    train_tasks: int = 0
    heldout_tasks: int = 0
    expert_episodes: int = 2
    sft_epochs: int = 2
    sft_lr: float = 5e-4
    sft_lora_layers: str = "last_third"
    kl_coef: float = 0.05
    replay: str | None = None
    grpo_steps: int = 4
    group_size: int = 4
    tasks_per_step: int = 0
    grpo_lr: float = 1e-4
    grpo_temperature: float = 1.0
    beta: float = 0.02
    reward: str = "functional_similarity"
    max_tool_calls: int = 10
    max_new_tokens: int = 160
    max_context_tokens: int = 6144
    eval_samples: int = 1
    seed: int = 0
    extra_train_args: tuple[str, ...] = field(default_factory=tuple)


def split_tasks(ids: Sequence[str], heldout_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """``(train, heldout)``: a task is held out when a hash of the seed and its id, read as a
    number in [0, 1), is below `heldout_fraction`; so each task's side depends on itself alone,
    and adding tasks never moves an existing one (the held-out share is `heldout_fraction` on
    average, not exactly)."""

    def point(i: str) -> float:
        return int(hashlib.sha256(f"{seed}:{i}".encode()).hexdigest()[:12], 16) / 16**12

    heldout = {i for i in ids if point(i) < heldout_fraction}
    return [i for i in ids if i not in heldout], [i for i in ids if i in heldout]


def _sample(ids: Sequence[str], n: int, seed: int) -> list[str]:
    """`n` of `ids` picked by a seeded hash of each id (so a cap draws from every repository of
    a task set, not the first one's tasks), kept in their original order."""

    def key(i: str) -> str:
        return hashlib.sha256(f"sample:{seed}:{i}".encode()).hexdigest()

    chosen = set(sorted(ids, key=key)[:n])
    return [i for i in ids if i in chosen]


class _Runner:
    def __init__(self, run: Path) -> None:
        self.run = run
        (run / "logs").mkdir(parents=True, exist_ok=True)
        self.started = time.monotonic()
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str, args: Sequence[str], done: Path) -> None:
        if done.exists():
            print(f"[{self._clock()}] {name}: done before ({done})", flush=True)
            return
        command = [sys.executable, "-m", "swerepair.cli", *args]
        log = self.run / "logs" / f"{name}.log"
        print(f"[{self._clock()}] {name}: {shlex.join(command[2:])}  (log: {log})", flush=True)
        t0 = time.monotonic()
        with log.open("w", encoding="utf-8") as out:
            proc = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.seconds[name] = time.monotonic() - t0
        if proc.returncode not in (0, 1):  # 1: an eval/expert run with failures still wrote its output
            tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-5:]
            raise RuntimeError(f"{name} failed (exit {proc.returncode}); {log}:\n" + "\n".join(tail))
        if not done.exists():
            raise RuntimeError(f"{name} wrote no {done}; see {log}")

    def _clock(self) -> str:
        return f"{time.monotonic() - self.started:7.1f}s"


def run_pipeline(run: str | Path, settings: PipelineSettings, task_ids: Sequence[str]) -> dict[str, Any]:
    """Run the recipe into `run` (module docstring) over `task_ids`; returns the results table's data."""
    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)
    (run / "pipeline.json").write_text(json.dumps(asdict(settings), indent=1) + "\n", encoding="utf-8")
    train, heldout = split_tasks(list(task_ids), settings.heldout_fraction, settings.seed)
    if settings.train_tasks:
        train = _sample(train, settings.train_tasks, settings.seed)
    if settings.heldout_tasks:
        heldout = _sample(heldout, settings.heldout_tasks, settings.seed)
    if not train or not heldout:
        raise ValueError(f"the split left {len(train)} training and {len(heldout)} held-out tasks; need both")
    splits = {"train": train, "heldout": heldout}
    for name, ids in splits.items():
        (run / f"{name}.txt").write_text("".join(i + "\n" for i in ids), encoding="utf-8")
    step = _Runner(run)
    s = settings
    budgets = ["--max-tool-calls", str(s.max_tool_calls), "--max-new-tokens", str(s.max_new_tokens)]
    common = ["--tasks", s.tasks, "--seed", str(s.seed)]

    step(
        "expert",
        ["expert", "--model", s.model, *common, "--split", str(run / "train.txt"), "--episodes", str(s.expert_episodes),
         "--max-tool-calls", str(max(s.max_tool_calls, 30)), "--out", str(run / "expert.jsonl")],
        run / "expert.jsonl",
    )  # fmt: skip

    (run / "all.txt").write_text("".join(i + "\n" for i in [*train, *heldout]), encoding="utf-8")

    def evaluate(stage: str, adapters: Sequence[str]) -> None:
        # one run over both splits (one model load, one batch of episodes), reported per split
        out = run / "eval" / stage
        step(
            f"eval-{stage}",
            ["eval", "--model", s.model, *[a for ad in adapters for a in ("--adapter", ad)], *common,
             "--split", str(run / "all.txt"), "--samples", str(s.eval_samples), *budgets,
             "--max-context-tokens", str(s.max_context_tokens), "--name", stage, "--out", str(out)],
            out / "report.json",
        )  # fmt: skip
        records = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines() if line.strip()]
        for split, ids in splits.items():
            wanted = set(ids)
            write_report(
                run / "eval" / f"{stage}-{split}",
                [r for r in records if r["instance_id"] in wanted],
                name=f"{stage} ({split})",
                model="+".join([s.model, *adapters]),
            )

    evaluate("base", [])
    sft_dir = run / "sft"
    step(
        "sft",
        ["sft", "--model", s.model, "--episodes", str(run / "expert.jsonl"), "--epochs", str(s.sft_epochs),
         "--lr", str(s.sft_lr), "--lora-layers", s.sft_lora_layers, "--kl-coef", str(s.kl_coef),
         "--seed", str(s.seed), "--output-dir", str(sft_dir),
         "--overwrite", "--no-progress", *(["--replay", s.replay] if s.replay else [])],
        sft_dir / "learning_curve.png",
    )  # fmt: skip
    evaluate("sft", [str(sft_dir)])
    grpo_dir = run / "grpo"
    step(
        "grpo",
        ["train", "--preset", "cpu-demo", "--model", s.model, "--init-adapter", str(sft_dir), "--output-dir",
         str(grpo_dir), "--overwrite", "true", "--tasks", s.tasks, "--task-ids", ",".join(train),
         "--max-steps", str(s.grpo_steps), "--group-size", str(s.group_size),
         "--tasks-per-step", str(s.tasks_per_step or len(train)), "--lr", str(s.grpo_lr),
         "--temperature", str(s.grpo_temperature),
         "--beta", str(s.beta), "--reward", s.reward, "--shaping", "none", "--max-tool-calls", str(s.max_tool_calls),
         "--max-new-tokens", str(s.max_new_tokens), "--max-context-tokens", str(s.max_context_tokens),
         "--seed", str(s.seed), "--progress", "false", "--tensorboard", "false", *s.extra_train_args],
        grpo_dir / "learning_curve.png",
    )  # fmt: skip
    evaluate("grpo", [str(sft_dir), str(grpo_dir)])
    step(
        "merge",
        ["merge", "--model", s.model, "--adapter", str(sft_dir), "--adapter", str(grpo_dir), "--out",
         str(run / "final-model")],
        run / "final-model" / "config.json",
    )  # fmt: skip
    results = results_table(run)
    (run / "results.md").write_text(results["markdown"], encoding="utf-8")
    (run / "results.json").write_text(json.dumps({**results, "seconds": step.seconds}, indent=1) + "\n")
    return results


def _rate(report: dict[str, Any], key: str) -> str:
    entry = report["rates"][key]
    return f"{100 * entry['value']:.1f}% [{100 * entry['low']:.1f}, {100 * entry['high']:.1f}]"


def results_table(run: str | Path) -> dict[str, Any]:
    """The before/after table of a pipeline run directory (module docstring, step 7)."""
    run = Path(run)
    stages = ("base", "sft", "grpo")
    names = {"base": "base", "sft": "after SFT", "grpo": "after SFT + GRPO"}
    rows = []
    lines = [
        "| stage | split | tool-call validity (calls/turn) | made a tool call | resolved [95% CI] | over |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for stage in stages:
        for split in ("train", "heldout"):
            path = run / "eval" / f"{stage}-{split}" / "report.json"
            if not path.is_file():
                continue
            report = json.loads(path.read_text(encoding="utf-8"))
            validity = report["tool_call_validity"]
            rows.append(
                {
                    "stage": stage,
                    "split": split,
                    "report": {
                        k: report[k] for k in ("rates", "tool_call_validity", "tasks", "episodes", "denominator")
                    },
                }
            )
            lines.append(
                f"| {names[stage]} | {split} | {validity['value']:.2f} "
                f"({validity['well_formed_calls']}/{validity['turns']}) "
                f"| {_rate(report, 'made a tool call')} | {_rate(report, 'resolved')} | {report['denominator']} |"
            )
    comparisons = []
    for split in ("train", "heldout"):
        for a, b in (("base", "sft"), ("sft", "grpo")):
            pa, pb = run / "eval" / f"{a}-{split}", run / "eval" / f"{b}-{split}"
            if (pa / "report.json").is_file() and (pb / "report.json").is_file():
                c = compare(load_outcomes(pa), load_outcomes(pb))
                d = c["difference"]
                comparisons.append({"split": split, "a": a, "b": b, **c})
                lines_c = (
                    f"- {split}: {names[b]} vs {names[a]}: resolved {100 * d['value']:+.1f} points "
                    f"[{100 * d['low']:+.1f}, {100 * d['high']:+.1f}], McNemar p = {c['mcnemar_p']:.3g} "
                    f"(of {c['pairs']} (task, sample) pairs, {c['only_a']} resolved only before, "
                    f"{c['only_b']} only after)"
                )
                if len(comparisons) == 1:
                    lines.append("")
                lines.append(lines_c)
    curve = _curve(run / "grpo" / "metrics.jsonl")
    if curve:
        lines += [
            "",
            f"GRPO learning curve: mean reward {curve['first']:.3f} over its first {curve['k']} step(s), "
            f"{curve['last']:.3f} over its last {curve['k']} ({curve['steps']} steps; "
            f"{curve['updated']} with an update).",
        ]
    return {"rows": rows, "comparisons": comparisons, "curve": curve, "markdown": "\n".join(lines) + "\n"}


def _curve(metrics: Path) -> dict[str, Any] | None:
    if not metrics.is_file():
        return None
    records = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    rewards = [r["reward/mean"] for r in records if r.get("reward/mean") is not None]
    if not rewards:
        return None
    k = max(1, len(rewards) // 3)
    return {
        "steps": len(rewards),
        "k": k,
        "first": statistics.fmean(rewards[:k]),
        "last": statistics.fmean(rewards[-k:]),
        "updated": sum(1 for r in records if r.get("train/updated") == 1.0),
        "rewards": rewards,
    }
