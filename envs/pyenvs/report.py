"""The compatibility report: for a task set, which instances run Docker-free and which need the
Docker sandbox, and why.

Each instance gets one verdict:

- ``docker-free``: its environment is built (and, with ``validate``, the task validates in the
  bubblewrap sandbox with it: FAIL_TO_PASS fail before the gold patch and pass after, PASS_TO_PASS
  pass both times);
- ``needs docker``: the spec needs what a PyPI environment cannot give, with the category:
  ``system library`` (a ``pre_install`` that installs system packages, a conda-only package, a
  missing C header), ``compiler``, ``python`` (the spec's Python is not on this machine: built
  with a fallback, so the instance is not run as its dataset was made), or ``build`` (any other
  failure, the reason quoted);
- ``does not validate``: built, but the task's claims do not hold with it (the problems quoted);
- ``not built``: no environment yet (run ``swerepair envs build`` first);
- ``host interpreter``: the task carries no harness spec and runs with the host's interpreter.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swerepair.core import Task
from swerepair.envs.pyenvs.build import default_root, read_record
from swerepair.envs.pyenvs.plan import plan_environments

__all__ = ["Compatibility", "compatibility_report", "failure_category"]


@dataclass(frozen=True)
class Compatibility:
    """One instance's verdict (module docstring): `verdict`, `category` (for ``needs docker``),
    `reason`, its environment's `key` and `python` version."""

    instance_id: str
    verdict: str
    category: str = ""
    reason: str = ""
    key: str = ""
    python: str = ""


def failure_category(reason: str, status: str = "failed") -> str:
    """``system library``, ``compiler``, ``python`` or ``build`` for a build's reason."""
    text = reason.lower()
    if "compiler" in text:
        return "compiler"
    if status == "blocked" or "system" in text or "header" in text:
        return "system library"
    if "python" in text and ("another" in text or "not on this machine" in text):
        return "python"
    return "build"


def compatibility_report(
    tasks: Sequence[Task],
    root: Path | str | None = None,
    *,
    validate: Callable[[Task], Any] | None = None,
) -> tuple[list[Compatibility], str]:
    """Verdicts for `tasks` from the environments under `root`, and the report as Markdown.

    `validate`, when given, is called on each task whose environment is built and must return a
    `swerepair.envs.validate.ValidationResult` (e.g. ``validate_task`` with a bubblewrap sandbox
    factory): its problems turn ``docker-free`` into ``does not validate``."""
    root = Path(root) if root is not None else default_root()
    plans, without = plan_environments(tasks)
    by_id = {t.instance_id: t for t in tasks}
    rows: list[Compatibility] = [Compatibility(i, "host interpreter", reason="no harness spec") for i in without]
    for plan in plans:
        record = read_record(root / plan.key) or {}
        status = str(record.get("status") or "")
        python = record.get("python") or {}
        version = str(python.get("version") or "")
        for instance_id in plan.tasks:
            common = {"key": plan.key, "python": version}
            if status == "ok" and python.get("source") == "fallback":
                note = f"Python {python.get('wanted')} is not on this machine (built with {version})"
                rows.append(Compatibility(instance_id, "needs docker", "python", note, **common))
            elif status == "ok":
                verdict, reason = "docker-free", ""
                if validate is not None:
                    result = validate(by_id[instance_id])
                    if not result.ok:
                        verdict, reason = "does not validate", "; ".join(result.problems)[:400]
                rows.append(Compatibility(instance_id, verdict, reason=reason, **common))
            elif status in ("failed", "blocked"):
                reason = str(record.get("reason") or "; ".join(record.get("blockers") or ()))
                if record.get("failed_step"):
                    reason = f"{record['failed_step']}: {reason}"
                category = failure_category(reason, status)
                rows.append(Compatibility(instance_id, "needs docker", category, reason, **common))
            else:
                rows.append(Compatibility(instance_id, "not built", reason="run `swerepair envs build`", **common))
    rows.sort(key=lambda r: r.instance_id)
    return rows, _markdown(rows, root)


def _markdown(rows: Sequence[Compatibility], root: Path) -> str:
    counts = Counter(r.verdict for r in rows)
    categories = Counter(r.category for r in rows if r.verdict == "needs docker")
    lines = [
        "# Docker-free compatibility",
        "",
        f"Environments under `{root}`; {len(rows)} instances.",
        "",
        "| verdict | instances |",
        "| --- | ---: |",
        *(f"| {verdict} | {n} |" for verdict, n in counts.most_common()),
    ]
    if categories:
        lines += ["", "Needs Docker, by reason:", ""]
        lines += [f"- {category}: {n}" for category, n in categories.most_common()]
    lines += ["", "| instance | verdict | why | environment | Python |", "| --- | --- | --- | --- | --- |"]
    for r in rows:
        why = (f"{r.category}: " if r.category else "") + r.reason.replace("|", "\\|")
        lines.append(f"| {r.instance_id} | {r.verdict} | {why} | {r.key} | {r.python} |")
    return "\n".join(lines) + "\n"
