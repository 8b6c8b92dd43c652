"""Attacks on `tests_pass` through a patch alone: every tampering patch, without the fix,
scores 0 and is never a dropped (failed) episode; the gold patch scores 1 and the empty patch 0.
One task per bundled project by default; every bundled task in the slow run (bubblewrap). Each
runs against bubblewrap and, where an engine answers, Docker (marked ``docker``: the verifier in
a fresh container of the test image)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from swerepair.core import Task
from swerepair.envs.sandbox import SandboxConfig, make_sandbox
from swerepair.rewards import TestsPass
from swerepair.rewards.patch import parse_patch

from attack_kit import TAMPER_RESULTS, TAMPERS, Tamper
from docker_kit import base_image, needs_docker
from helpers import needs_bwrap

PROJECTS = ("confkit", "durations", "intervals", "unitconv")
ALL_TASKS = [f"swerepair__{p}-{n}" for p in PROJECTS for n in range(1, 6)]
QUICK = [f"swerepair__{p}-{n}" for p, n in zip(PROJECTS, (1, 3, 5, 2), strict=True)]


KINDS = [pytest.param("bubblewrap", marks=needs_bwrap), pytest.param("docker", marks=needs_docker)]


@pytest.fixture(params=KINDS)
def kind(request) -> str:
    return request.param


def _config(kind: str, **changes: object) -> SandboxConfig:
    if kind == "docker":
        changes.setdefault("docker_image", base_image())
    return SandboxConfig(**changes)


def _factory_for(kind: str):
    config = _config(kind)

    def factory(task: Task):
        return make_sandbox(kind, task, config)

    return factory


def _check_task(task: Task, kind: str = "bubblewrap") -> None:
    reward = TestsPass(_factory_for(kind), timeout=60)
    gold = reward.evaluate(task.patch, task)
    assert not gold.failed and gold.value == 1.0, gold
    empty = reward.evaluate("", task)
    assert not empty.failed and empty.value == 0.0, empty

    def attempt(tamper: Tamper) -> tuple[str, object]:
        return tamper.name, reward.evaluate(tamper.make(task), task)

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(attempt, TAMPERS))
    TAMPER_RESULTS.extend((task.instance_id, name, o.value, o.failed) for name, o in outcomes)
    wrong = {name: (o.value, o.failed, o.reason, dict(o.details)) for name, o in outcomes if o.failed or o.value != 0.0}
    assert not wrong, wrong
    assert len(outcomes) >= 10


@pytest.mark.parametrize("task_id", QUICK)
def test_tampering_scores_zero(task_id: str, kind: str, bundled: list[Task]) -> None:
    _check_task(next(t for t in bundled if t.instance_id == task_id), kind)


@pytest.mark.slow
@needs_bwrap
@pytest.mark.parametrize("task_id", [t for t in ALL_TASKS if t not in QUICK])
def test_tampering_scores_zero_on_every_bundled_task(task_id: str, bundled: list[Task]) -> None:
    _check_task(next(t for t in bundled if t.instance_id == task_id))


def test_dropped_infrastructure_does_not_hide_a_real_fix(kind: str, bundled: list[Task]) -> None:
    """Dropping is not punishing: the gold fix beside a dropped conftest or test edit still scores 1,
    while a fix beside code that tampers with the runner scores 0."""
    task = next(t for t in bundled if t.instance_id == QUICK[0])
    reward = TestsPass(_factory_for(kind), timeout=60)
    by_name = {t.name: t for t in TAMPERS}
    dropped = reward.evaluate(task.patch + by_name["root conftest report hook"].make(task), task)
    assert dropped.value == 1.0 and dropped.details["dropped_files"], dropped
    flagged = reward.evaluate(task.patch + by_name["package code patches pytest internals"].make(task), task)
    assert flagged.value == 0.0 and flagged.components["tampered"] == 1.0 and flagged.details["flags"]
    stealth = reward.evaluate(
        task.patch + by_name["package code patches the report class, no flagged token"].make(task), task
    )
    assert stealth.value == 0.0 and stealth.components["tampered"] == 1.0, stealth
    assert any("replaced" in p or "sentinel" in p for p in stealth.details["runner_problems"])


def test_a_crash_the_patch_causes_scores_zero_but_a_broken_verifier_fails(kind: str, bundled: list[Task]) -> None:
    task = next(t for t in bundled if t.instance_id == QUICK[0])
    by_name = {t.name: t for t in TAMPERS}
    crash = by_name["package code exits the test process, no flagged token"].make(task)
    out = TestsPass(_factory_for(kind), timeout=60).evaluate(task.patch + crash, task)
    assert not out.failed and out.value == 0.0 and "without the patch it finishes" in out.details["zero_because"]

    def no_python(t: Task):  # Docker runs the image's Python: break the sandbox itself there
        if kind == "docker":
            return make_sandbox(kind, t, _config(kind, sandbox_uid=0))
        return make_sandbox(kind, t, SandboxConfig(python="/nonexistent/python3"))

    broken = TestsPass(no_python, timeout=30).evaluate(task.patch, task)
    assert broken.failed and broken.value is None


def test_files_the_policy_missed_are_caught_by_gits_own_account(kind: str, bundled: list[Task], monkeypatch) -> None:
    """Defence in depth: should the patch reader and `git apply` ever disagree on where a file
    starts (a conftest smuggled inside another file's section), git's status after applying
    shows the extra file and the patch scores 0. The disagreement is simulated by a policy
    stand-in that passes the whole patch on while naming only the fix's file (the real reader
    and git agree on every patch the suite has)."""
    from swerepair.rewards import tests_pass
    from swerepair.rewards.verifier.policy import FilteredPatch

    task = next(t for t in bundled if t.instance_id == QUICK[0])
    smuggled = task.patch + {t.name: t for t in TAMPERS}["root conftest report hook"].make(task)
    fix_files = tuple(fp.path for fp in parse_patch(task.patch))

    def misreads(patch: str, *args: object, **kwargs: object) -> FilteredPatch:
        return FilteredPatch(smuggled, fix_files, (), (), fix_files)

    monkeypatch.setattr(tests_pass, "filter_patch", misreads)
    out = TestsPass(_factory_for(kind), timeout=60).evaluate(smuggled, task)
    assert out.value == 0.0 and out.components["tampered"] == 1.0, out
    assert [f["path"] for f in out.details["flags"]] == ["conftest.py"]
