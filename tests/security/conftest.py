"""The security suite's results table: with ``SWEREPAIR_SECURITY_TABLE=FILE``, the run writes
one Markdown row per attack (what it tried, the outcome, who ran the sandbox) to FILE, as
docs/security.md shows it."""

from __future__ import annotations

import os
from collections import defaultdict

import pytest

import attack_kit

_outcomes: dict[str, tuple[str, str]] = {}

_CLASSES = {
    "test_sandbox_attacks.py": "sandbox (tool calls through env.step)",
    "test_verifier_attacks.py": "verifier (a patch through tests_pass)",
    "test_sandbox_session.py": "sandbox session (commands in one bubblewrap per episode)",
}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        path, _, name = report.nodeid.partition("::")
        _outcomes[report.nodeid] = (os.path.basename(path), name)
        if report.outcome != "passed":
            _outcomes[report.nodeid] = (os.path.basename(path), f"{name} **{report.outcome.upper()}**")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    target = os.environ.get("SWEREPAIR_SECURITY_TABLE")
    if not target or not _outcomes:
        return
    who = "root" if os.geteuid() == 0 else f"uid {os.geteuid()}"
    lines = [f"Run as {who}.", "", "| class | attack | outcome |", "|---|---|---|"]
    for path, name in _outcomes.values():
        if "FAILED" in name or "ERROR" in name:
            outcome = "not held"
        elif "verifier" in _CLASSES.get(path, ""):
            outcome = "as asserted (see test)"
        else:
            outcome = "blocked / contained"
        lines.append(f"| {_CLASSES.get(path, path)} | `{name}` | {outcome} |")
    per_tamper: dict[str, list[str]] = defaultdict(list)
    for _task_id, tamper, value, failed in attack_kit.TAMPER_RESULTS:
        per_tamper[tamper].append("failed" if failed else f"{value:g}")
    if per_tamper:
        lines += ["", "| tampering patch (no fix) | tests_pass on each task run |", "|---|---|"]
        for tamper, values in per_tamper.items():
            summary = ", ".join(f"{v} x{values.count(v)}" for v in sorted(set(values)))
            lines.append(f"| {tamper} | {summary} |")
    with open(target, "w") as f:
        f.write("\n".join(lines) + "\n")
