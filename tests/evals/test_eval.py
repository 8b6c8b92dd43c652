"""Evaluation: the statistics against closed forms and reference computations, a hand-made run
with known outcomes (exact figures), predictions in SWE-bench's format, the paired comparison,
and `swerepair eval` end to end with the tiny model."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from swerepair.evals import (
    bootstrap_ci,
    compare,
    mcnemar_exact,
    outcome_of,
    paired_difference_ci,
    pass_at_k,
    summarize,
)
from swerepair.evals.report import load_outcomes
from swerepair.evals.run import write_report


# -- statistics ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("n", "c", "k"), [(5, 2, 1), (5, 2, 2), (6, 1, 3), (6, 0, 2), (4, 4, 4), (7, 3, 5)])
def test_pass_at_k_is_the_probability_over_all_draws(n: int, c: int, k: int) -> None:
    """Against the definition: the share of all k-subsets of the n samples holding a correct one."""
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    expected = sum(any(samples[i] for i in s) for s in subsets) / len(subsets)
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_rejects_impossible_counts() -> None:
    for n, c, k in ((3, 4, 1), (3, 1, 0), (3, 1, 4)):
        with pytest.raises(ValueError):
            pass_at_k(n, c, k)


def test_mcnemar_on_known_tables() -> None:
    # 2 x binomial tail by hand: b=2, c=8: P(X<=2 | n=10) = (1 + 10 + 45)/1024
    assert mcnemar_exact(2, 8) == pytest.approx(2 * 56 / 1024)
    assert mcnemar_exact(8, 2) == mcnemar_exact(2, 8)  # symmetric
    assert mcnemar_exact(0, 6) == pytest.approx(2 / 64)
    assert mcnemar_exact(3, 3) == 1.0 and mcnemar_exact(0, 0) == 1.0


def test_bootstrap_matches_a_reference_computation() -> None:
    """The same resamples computed with numpy give the same percentile interval."""
    import random

    values = [1.0, 0.0, 0.0, 1.0, 1.0, 0.5, 0.0, 1.0, 0.25, 0.0]
    got = bootstrap_ci(values, resamples=2000, seed=7)
    rng = random.Random(7)
    means = [np.mean([values[rng.randrange(10)] for _ in range(10)]) for _ in range(2000)]
    low, high = np.percentile(means, [2.5, 97.5])
    assert got.value == pytest.approx(np.mean(values))
    assert (got.low, got.high) == (pytest.approx(low), pytest.approx(high))
    # and it covers what it should: a wide interval for 10 mixed tasks, none for constant data
    assert got.low < 0.475 < got.high
    flat = bootstrap_ci([1.0] * 5)
    assert (flat.low, flat.value, flat.high) == (1.0, 1.0, 1.0)


def test_paired_difference_keeps_pairs() -> None:
    a, b = [0.0, 0.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]
    d = paired_difference_ci(a, b, resamples=500)
    assert d.value == 0.5 and 0.0 <= d.low <= d.high <= 1.0
    assert paired_difference_ci(a, a).high == 0.0  # identical runs: no difference in any resample
    with pytest.raises(ValueError):
        paired_difference_ci([0.0], [0.0, 1.0])


# -- a hand-made run -----------------------------------------------------------------------------------
def episode(
    task: str,
    *,
    resolved: bool = False,
    patch: str = "",
    applies: float = 1.0,
    exit_reason: str = "agent_stopped",
    failed: bool = False,
    calls: int = 2,
    turns: int = 3,
    malformed: int = 0,
    files: float = 0.0,
    sim: float = 0.0,
    wall: float = 2.0,
    cmds: tuple[str, ...] = (),
) -> dict[str, Any]:
    components = {
        "resolved": float(resolved),
        "tests_pass": float(resolved),
        "patch_applies": applies,
        "file_targeting": files,
        "swe_rl_similarity": sim,
    }
    messages: list[dict[str, Any]] = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    for cmd in cmds:
        call = {"id": "c", "type": "function", "function": {"name": "shell", "arguments": json.dumps({"cmd": cmd})}}
        messages.append({"role": "assistant", "content": "", "tool_calls": [call]})
    return {
        "instance_id": task,
        "messages": messages,
        "tokens": [],
        "loss_mask": [],
        "logprobs": [],
        "reward": float(resolved),
        "info": {
            "patch": patch,
            "exit_reason": exit_reason,
            "failed": failed,
            "elapsed_s": wall,
            "reward_components": {} if failed else components,
            "tool_stats": {"calls": {"shell": calls}, "malformed": malformed, "turns": turns, "errors": 0},
        },
    }


FIX = "diff --git a/a.py b/a.py\n--- a/a.py\n+++ b/a.py\n@@ -1 +1 @@\n-x\n+y\n"


def hand_made_run() -> list[dict[str, Any]]:
    """Four tasks, two samples each, every category once or more."""
    return [
        episode("t1", resolved=True, patch=FIX, files=1.0, sim=1.0, cmds=("cat a.py", "grep -n x a.py b/c.py")),
        episode("t1", resolved=True, patch=FIX, files=1.0, sim=0.9),
        episode("t2", resolved=True, patch=FIX, files=1.0, sim=0.8),
        episode("t2", patch=FIX, files=1.0, sim=0.6),  # tests fail, but right files and a close patch
        episode("t3", patch="", calls=0, turns=2),  # no patch
        episode("t3", patch=FIX, applies=0.0, malformed=1),  # does not apply
        episode("t4", patch=FIX, exit_reason="tool_call_budget", calls=5, turns=5, wall=10.0),  # budget
        episode("t4", failed=True, exit_reason="sandbox_error", calls=0, turns=0),  # infrastructure
    ]


def test_a_hand_made_run_gives_exact_figures() -> None:
    outcomes = [outcome_of(r) for r in hand_made_run()]
    assert [o.category for o in outcomes] == [
        "resolved",
        "resolved",
        "resolved",
        "tests fail",
        "no patch",
        "patch does not apply",
        "budget exhausted",
        "infrastructure",
    ]
    s = summarize(outcomes, ks=(1, 2))
    assert (s["tasks"], s["episodes"], s["infrastructure_failures"]) == (4, 8, 1)
    rates = s["rates"]
    assert rates["resolved"]["value"] == pytest.approx((1 + 0.5 + 0 + 0) / 4)
    # leaving the infrastructure failure out, t4 has one sample left (unresolved)
    assert rates["resolved (infrastructure failures left out)"]["value"] == pytest.approx(1.5 / 4)
    assert rates["valid patch"]["value"] == pytest.approx((1 + 1 + 0 + 0.5) / 4)
    assert rates["right files"]["value"] == pytest.approx((1 + 1 + 0 + 0) / 4)
    assert rates["close patch"]["value"] == pytest.approx((1 + 1 + 0 + 0) / 4)
    assert s["pass_at_k"]["1"]["value"] == pytest.approx(0.375)
    assert s["pass_at_k"]["2"]["value"] == pytest.approx((1 + 1 + 0 + 0) / 4)
    validity = s["tool_call_validity"]
    assert (validity["well_formed_calls"], validity["turns"], validity["malformed_calls"]) == (15, 22, 1)
    assert s["failure_categories"] == {
        "resolved": 3,
        "no patch": 1,
        "patch does not apply": 1,
        "tests fail": 1,
        "budget exhausted": 1,
        "infrastructure": 1,
    }
    assert s["wall_s"]["episode_mean"] == pytest.approx((2.0 * 7 + 10.0) / 8)
    assert s["wall_s"]["task_mean"] == pytest.approx(24.0 / 4)
    assert outcomes[0].commands == 2 and outcomes[0].files_viewed == 2  # a.py, b/c.py
    assert "4 tasks x 2-2 samples = 8 episodes" in s["denominator"]
    assert "1 infrastructure failure(s) counted as unresolved" in s["denominator"]
    for entry in rates.values():
        assert entry["low"] <= entry["value"] <= entry["high"]


def test_the_report_directory_and_predictions(tmp_path: Path) -> None:
    summary = write_report(tmp_path / "run", hand_made_run(), name="hand", model="m", ks=(1, 2))
    files = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert files == [
        "episodes.jsonl",
        "predictions-sample-1.jsonl",
        "predictions.jsonl",
        "report.json",
        "report.md",
        "report.png",
    ]
    predictions = [json.loads(line) for line in (tmp_path / "run/predictions.jsonl").read_text().splitlines()]
    assert [set(p) for p in predictions] == [{"instance_id", "model_name_or_path", "model_patch"}] * 4
    assert [p["instance_id"] for p in predictions] == ["t1", "t2", "t3", "t4"] and predictions[0]["model_patch"] == FIX
    text = (tmp_path / "run/report.md").read_text()
    assert "| resolved | 37.5% [" in text and "| pass@2 (unbiased) | 50.0% [" in text
    assert summary["rates"]["resolved"]["value"] == 0.375
    # the report reloads its outcomes, and so do the episodes
    assert [o.category for o in load_outcomes(tmp_path / "run")] == [
        o.category for o in load_outcomes(tmp_path / "run/episodes.jsonl")
    ]


def test_paired_comparison_of_two_runs() -> None:
    a = [outcome_of(episode(f"t{i}", resolved=i < 2)) for i in range(10)]
    b = [outcome_of(episode(f"t{i}", resolved=i < 9)) for i in range(10)]
    result = compare(a, b)
    assert (result["both"], result["neither"], result["only_a"], result["only_b"]) == (2, 1, 0, 7)
    assert result["mcnemar_p"] == pytest.approx(2 / 2**7)
    assert result["difference"]["value"] == pytest.approx(0.7)
    assert 0 < result["difference"]["low"] <= 0.7 <= result["difference"]["high"] <= 1


# -- the command -------------------------------------------------------------------------------------
def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "swerepair.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_eval_scores_episodes_and_compares(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in hand_made_run()))
    out = run_cli(
        "eval", "--episodes", str(runs / "a.jsonl"), "--out", str(tmp_path / "a"), "--pass-at", "1,2", "--samples", "2"
    )
    assert out.returncode == 0, out.stderr
    assert "| resolved | 37.5%" in out.stdout
    better = [episode(r["instance_id"], resolved=True, patch=FIX) for r in hand_made_run()]
    (runs / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in better))
    assert run_cli("eval", "--episodes", str(runs / "b.jsonl"), "--out", str(tmp_path / "b")).returncode == 0
    cmp = run_cli("eval", "--compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "cmp"))
    assert cmp.returncode == 0, cmp.stderr
    assert "only a / only b | 0 / 5" in cmp.stdout and (tmp_path / "cmp/compare.png").is_file()
    bad = run_cli("eval", "--episodes", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "missing.jsonl" in bad.stderr
    wrong = run_cli("eval", "--model", "tiny-qwen3", "--out", str(tmp_path / "y"), "--pass-at", "3")
    assert wrong.returncode == 2 and "--pass-at" in wrong.stderr


def test_eval_runs_a_model_over_tasks(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    out = run_cli(
        "eval", "--model", "tiny-qwen3", "--task-id", "swerepair__confkit-3", "--task-id", "swerepair__intervals-1",
        "--samples", "2", "--pass-at", "1,2", "--max-tool-calls", "2", "--max-new-tokens", "16",
        "--out", str(tmp_path / "ev"),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads((tmp_path / "ev/report.json").read_text())
    assert (report["tasks"], report["episodes"]) == (2, 4)
    assert set(report["pass_at_k"]) == {"1", "2"} and report["model"] == "tiny-qwen3"
    assert sum(report["failure_categories"].values()) == 4
    lines = (tmp_path / "ev/episodes.jsonl").read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(line)["tokens"] for line in lines)
    assert not math.isnan(report["rates"]["resolved"]["value"])
