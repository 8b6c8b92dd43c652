"""The two-stage recipe end to end on the tiny model: expert episodes, SFT, GRPO over the SFT
adapter, each stage evaluated on a training and a held-out split, the merged model, the table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from swerepair.evals.pipeline import split_tasks

from helpers import needs_bwrap


def test_the_split_is_seeded_stable_and_disjoint() -> None:
    ids = [f"t{i}" for i in range(200)]
    train, heldout = split_tasks(ids, 0.3, seed=0)
    assert 40 <= len(heldout) <= 80 and len(train) + len(heldout) == 200 and not set(train) & set(heldout)
    assert split_tasks(ids, 0.3, seed=0) == (train, heldout)
    assert split_tasks(ids, 0.3, seed=1) != (train, heldout)
    # adding tasks never moves an existing one to the other side
    more_train, more_heldout = split_tasks([*ids, *(f"n{i}" for i in range(50))], 0.3, seed=0)
    assert set(heldout) <= set(more_heldout) and set(train) <= set(more_train)


@pytest.mark.slow
@needs_bwrap
def test_sft_then_grpo_then_eval_end_to_end(tmp_path: Path) -> None:
    pytest.importorskip("peft")
    run = tmp_path / "pipe"
    command = [
        sys.executable, "-m", "swerepair.cli", "pipeline", "--model", "tiny-qwen3", "--output-dir", str(run),
        "--train-tasks", "2", "--heldout-tasks", "2", "--expert-episodes", "1", "--sft-epochs", "1",
        "--grpo-steps", "1", "--group-size", "2", "--grpo-temperature", "0.9", "--max-tool-calls", "2",
        "--max-new-tokens", "16",
    ]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    results = json.loads((run / "results.json").read_text())
    assert [(r["stage"], r["split"]) for r in results["rows"]] == [
        (stage, split) for stage in ("base", "sft", "grpo") for split in ("train", "heldout")
    ]
    assert len(results["comparisons"]) == 4 and results["curve"]["steps"] == 1
    expert = [json.loads(line) for line in (run / "expert.jsonl").read_text().splitlines()]
    assert len(expert) == 2 and all(e["reward"] == 1.0 for e in expert)
    assert (run / "sft" / "learning_curve.png").is_file() and (run / "grpo" / "learning_curve.png").is_file()
    # every GRPO step plays every training task (a like-for-like learning curve)
    steps = [json.loads(line) for line in (run / "grpo" / "metrics.jsonl").read_text().splitlines() if line.strip()]
    assert steps and all(m["groups/count"] == 2 for m in steps if "groups/count" in m)
    assert "temperature: 0.9" in (run / "grpo" / "config.yaml").read_text()
    for stage in ("base", "sft", "grpo"):
        for split in ("train", "heldout"):
            assert (run / "eval" / f"{stage}-{split}" / "predictions.jsonl").is_file()
    table = (run / "results.md").read_text()
    assert "| after SFT + GRPO | heldout |" in table
    assert table.count("McNemar p = ") == 4 and "of 2 (task, sample) pairs" in table
    # the merged model serves: it loads as a plain model and generates
    from swerepair.agents.inference.models import load_model

    model, tokenizer = load_model(str(run / "final-model"))
    assert model.generate(**tokenizer("def f():", return_tensors="pt"), max_new_tokens=2).shape[1] > 0
    # a second run resumes: every step is found done
    again = subprocess.run(command, capture_output=True, text=True)
    assert again.returncode == 0 and again.stdout.count("done before") == 7
