"""CLI runs print no third-party warning that says nothing to the user (`swerepair.QUIET_WARNINGS`),
and the filters stay specific: other warnings still show."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import swerepair

#: A warning printed by a third-party library: ``.../site-packages/x.py:12: FutureWarning: ...``,
#: or a library's own ``[WARNING]`` log line (DeepSpeed's).
THIRD_PARTY = re.compile(r"site-packages/.*\.py:\d+: \w*Warning|\[WARNING\]")


def run_cli(*args: str, cwd: Path, timeout: float = 600) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONWARNINGS", "TRL_EXPERIMENTAL_SILENCE")}
    proc = subprocess.run(
        [sys.executable, "-m", "swerepair", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def third_party_warnings(output: str) -> list[str]:
    return [line for line in output.splitlines() if THIRD_PARTY.search(line)]


def test_quick_commands_print_no_third_party_warning(tmp_path: Path) -> None:
    for args in (["tasks", "list"], ["play", "--task-id", "swerepair__intervals-5"]):
        assert third_party_warnings(run_cli(*args, cwd=tmp_path)) == [], args


def test_a_training_run_prints_no_third_party_warning(tmp_path: Path) -> None:
    """The TRL backend's start imports DeepSpeed, sets gradient checkpointing and uses rollout_func:
    each printed a warning before (transformers' FutureWarnings, DeepSpeed's CPU notice, TRL's
    experimental-feature notice)."""
    pytest.importorskip("trl")
    pytest.importorskip("deepspeed")
    output = run_cli(
        *("train", "--backend", "trl", "--model", "tiny-qwen3", "--device", "cpu", "--output-dir", "run"),
        *("--max-steps", "1", "--group-size", "2", "--tasks-per-step", "1", "--micro-batch-size", "2"),
        *("--max-tool-calls", "1", "--max-new-tokens", "4", "--task-ids", "swerepair__intervals-5"),
        *("--progress", "false"),
        cwd=tmp_path,
    )
    assert "done in" in output
    assert third_party_warnings(output) == []


def test_the_filters_are_specific() -> None:
    swerepair.quiet_third_party_warnings()  # again: nothing doubles
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("default")
        swerepair.quiet_third_party_warnings()
        # the quieted message, from transformers' own module: hidden
        warnings.warn_explicit(
            "`gradient_checkpointing_enable` is deprecated and will be removed in v6. Use x instead.",
            FutureWarning,
            "modeling_utils.py",
            1,
            module="transformers.modeling_utils",
        )
        # another FutureWarning from transformers, and the same text from the user's code: shown
        warnings.warn_explicit("something else is deprecated", FutureWarning, "m.py", 1, module="transformers.x")
        warnings.warn_explicit(
            "`gradient_checkpointing_enable` is deprecated and will be removed in v6.",
            FutureWarning,
            "mine.py",
            1,
            module="mine",
        )
    assert [str(w.message) for w in seen] == [
        "something else is deprecated",
        "`gradient_checkpointing_enable` is deprecated and will be removed in v6.",
    ]
    logger = logging.getLogger("DeepSpeed")
    assert len([f for f in logger.filters if type(f).__name__ == "_DropRecords"]) == len(swerepair.QUIET_LOG_RECORDS)
    record = logging.LogRecord("DeepSpeed", logging.WARNING, "x.py", 1, "Setting accelerator to CPU. If ...", (), None)
    other = logging.LogRecord("DeepSpeed", logging.WARNING, "x.py", 1, "ZeRO stage 3 is slow here", (), None)
    assert not logger.filter(record) and logger.filter(other)
