"""The verifier's harness mode: the repository's own runner, read by its harness parser.

Two small instances (tests/instances.py) run in the local or bubblewrap sandbox from a local
checkout: a pytest repository (SWE-smith's default spec) and a django-layout repository whose
``tests/runtests.py`` prints unittest's verbosity-2 lines, graded by the real django spec.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from swerepair.core import Task
from swerepair.envs.sandbox import make_sandbox
from swerepair.envs.tasks import task_from_row
from swerepair.rewards import TestsPass
from swerepair.rewards.harness import parse_log, spec_for
from swerepair.rewards.verifier.harness import make_sentinel, needs_reinstall, run_harness, runner_mode, task_spec
from swerepair.rewards.verifier.policy import filter_patch

from helpers import needs_bwrap
from instances import (
    FORGING_CONFTEST,
    FORGING_RUNTESTS,
    UNITTEST_FORGERY,
    Instance,
    append_patch,
    build_instance,
    edit_patch,
    new_file_patch,
)

pytestmark = pytest.mark.filterwarnings("ignore::swerepair.envs.sandbox.LocalSandboxWarning")


@pytest.fixture(scope="module")
def instances(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Instance]:
    root = tmp_path_factory.mktemp("instances")
    return {kind: build_instance(kind, root / kind) for kind in ("pytest", "django")}


def as_task(inst: Instance, **columns) -> Task:
    return task_from_row(inst.row(repo_source=str(inst.path), dataset="princeton-nlp/SWE-bench_Verified", **columns))


def factory(task: Task):
    return make_sandbox("auto", task)


def test_runner_selection_follows_the_harness_spec(instances: dict[str, Instance]) -> None:
    django = as_task(instances["django"])
    assert runner_mode(django) == "harness" and task_spec(django).parser == "django"
    assert task_spec(django).protected == spec_for("django/django", "5.0").protected
    plain = dataclasses.replace(django, extra={"version": "5.0"})
    assert runner_mode(plain) == "trusted" and task_spec(plain) is None
    forced = dataclasses.replace(django, extra={**django.extra, "runner": "trusted"})
    assert runner_mode(forced) == "trusted"
    # the spec a loader stores (a JSON mapping) is read back as the same spec
    stored = dataclasses.replace(
        plain, extra={"harness_spec": {**dataclasses.asdict(spec_for("django/django", "5.0")), "protected": ["x"]}}
    )
    assert task_spec(stored).protected == ("x",) and runner_mode(stored) == "harness"
    assert needs_reinstall(spec_for("psf/requests", "2.0")) and not needs_reinstall(spec_for("django/django", "5.0"))


@pytest.mark.parametrize("kind", ["pytest", "django"])
def test_gold_scores_one_and_empty_zero(kind: str, instances: dict[str, Instance]) -> None:
    task = as_task(instances[kind])
    reward = TestsPass(factory, timeout=120)
    gold = reward.evaluate(task.patch, task)
    assert not gold.failed and gold.value == 1.0, gold
    assert gold.details["runner"] == "harness"
    assert gold.details["sentinels"] == {"pass": "PASSED", "fail": "FAILED"}
    assert "swerepair_sentinel_" in gold.details["command"]
    empty = reward.evaluate("", task)
    assert not empty.failed and empty.value == 0.0
    assert list(empty.details["not_passing"]) == list(task.FAIL_TO_PASS)
    assert empty.components["pass_to_pass_fraction"] == 1.0


def test_the_django_command_is_the_harness_one(instances: dict[str, Instance]) -> None:
    task = as_task(instances["django"])
    out = TestsPass(factory, timeout=120).evaluate(task.patch, task)
    command = out.details["command"]
    assert command.startswith("./tests/runtests.py --verbosity 2 --settings=test_sqlite --parallel 1 text.tests ")
    assert command.split()[-1].startswith("text.swerepair_sentinel_")


def test_an_edited_runner_is_dropped_and_flagged(instances: dict[str, Instance]) -> None:
    inst = instances["django"]
    task = as_task(inst)
    forged = edit_patch(inst.path, "tests/runtests.py", FORGING_RUNTESTS)
    reward = TestsPass(factory, timeout=120)
    for patch in (forged, task.patch + forged):
        out = reward.evaluate(patch, task)
        assert not out.failed and out.value == 0.0 and out.components["tampered"] == 1.0, out
        assert "tests/runtests.py" in out.details["zero_because"]
    # the settings module the runner loads is protected too
    settings = edit_patch(inst.path, "tests/test_sqlite.py", "import minidj.text\n")
    assert reward.evaluate(task.patch + settings, task).components["tampered"] == 1.0


def test_a_forging_runner_would_have_fooled_the_plain_harness(instances: dict[str, Instance]) -> None:
    """What the policy's drop prevents: the edited runner, applied anyway, reports every test ok."""
    inst = instances["django"]
    task = as_task(inst)
    spec = task_spec(task)
    with make_sandbox("auto", task) as sb:
        for patch in (edit_patch(inst.path, "tests/runtests.py", FORGING_RUNTESTS), task.test_patch):
            assert sb.run("git apply -", 30, stdin=patch).ok
        report = run_harness(sb, spec, task.test_patch, [*task.FAIL_TO_PASS, *task.PASS_TO_PASS], 60)
    assert report.verdicts[task.FAIL_TO_PASS[0]] == "PASSED"  # forged: the bug is not fixed
    assert report.problems and "must fail was reported PASSED" in report.problems[0]  # the sentinel saw it


def test_code_that_makes_unittest_report_failures_as_ok_is_caught_by_the_sentinel(
    instances: dict[str, Instance],
) -> None:
    inst = instances["django"]
    task = as_task(inst)
    forgery = append_patch(inst.path, "minidj/text.py", UNITTEST_FORGERY)
    assert not filter_patch(forgery, task.test_patch, task.patch, task.FAIL_TO_PASS).flags  # the scan misses it
    out = TestsPass(factory, timeout=120).evaluate(forgery, task)
    assert not out.failed and out.value == 0.0 and out.components["tampered"] == 1.0, out
    assert out.details["sentinels"]["fail"] == "PASSED"


def test_printed_markers_and_verdict_lines_do_not_end_the_section(instances: dict[str, Instance]) -> None:
    """The plain harness reads from its start marker to the first end marker; code that prints
    an end marker after forged lines would end the section there. Here the markers carry a
    nonce: the printed ones are text, and the runner's own FAIL line later decides."""
    inst = instances["django"]
    task = as_task(inst)
    victim = task.FAIL_TO_PASS[0]
    noisy = edit_patch(  # the id written backwards: the scan for the tests' names does not see it
        inst.path,
        "minidj/__init__.py",
        f"print('>>>>> Start Test Output')\nprint({victim[::-1]!r}[::-1] + ' ... ok')\n"
        "print('>>>>> End Test Output')\n",
    )
    assert not filter_patch(noisy, task.test_patch, task.patch, task.FAIL_TO_PASS).flags
    spec = task_spec(task)
    with make_sandbox("auto", task) as sb:
        for patch in (noisy, task.test_patch):
            assert sb.run("git apply -", 30, stdin=patch).ok
        report = run_harness(sb, spec, task.test_patch, [*task.FAIL_TO_PASS, *task.PASS_TO_PASS], 60)
    # the harness's own reading of this log: the forged pass, the real failure cut off
    assert parse_log(spec, report.result.output.replace(">>>>> Start Test Output ", "x"))[victim] == "PASSED"
    assert report.verdict(victim) == "FAILED"
    assert TestsPass(factory, timeout=120).evaluate(noisy, task).value == 0.0


def test_pytest_infrastructure_in_the_patch_is_dropped(instances: dict[str, Instance]) -> None:
    inst = instances["pytest"]
    task = as_task(inst)
    reward = TestsPass(factory, timeout=120)
    tests_conftest = new_file_patch("tests/conftest.py", FORGING_CONFTEST)
    root_conftest = edit_patch(inst.path, "conftest.py", FORGING_CONFTEST)
    for tamper in (tests_conftest, root_conftest):
        alone = reward.evaluate(tamper, task)
        assert not alone.failed and alone.value == 0.0, alone
        assert alone.details["dropped_files"]
        # dropped, not flagged: the real fix beside it still scores 1
        assert reward.evaluate(task.patch + tamper, task).value == 1.0


def test_a_missing_passing_sentinel_is_tampering_only_where_the_control_run_reports_it(
    instances: dict[str, Instance], monkeypatch: pytest.MonkeyPatch
) -> None:
    import swerepair.rewards.verifier.harness as harness

    task = as_task(instances["pytest"])
    real = harness.run_harness
    calls = {"n": 0}

    def drop_passing_sentinel(*args, **kwargs):
        report = real(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 1:  # the graded run: as if the runner never ran the passing sentinel
            return dataclasses.replace(report, sentinels={**report.sentinels, "pass": "MISSING"})
        return report

    monkeypatch.setattr(harness, "run_harness", drop_passing_sentinel)
    out = TestsPass(factory, timeout=120).evaluate(task.patch, task)
    assert out.value == 0.0 and out.components["tampered"] == 1.0, out
    assert "control run reports it" in out.details["runner_problems"][0]


def test_a_patch_that_breaks_the_runner_scores_zero_a_broken_verifier_fails(
    instances: dict[str, Instance],
) -> None:
    inst = instances["django"]
    task = as_task(inst)
    broken_import = edit_patch(inst.path, "minidj/text.py", "def slugify(:\n")
    out = TestsPass(factory, timeout=120).evaluate(broken_import, task)
    assert not out.failed and out.value == 0.0, out
    # a task whose runner cannot run at all (no such runner): the control run fails too
    spec = dataclasses.replace(spec_for("django/django", "5.0"), test_cmd="./tests/no_such_runner.py")
    hopeless = dataclasses.replace(task, extra={**task.extra, "harness_spec": dataclasses.asdict(spec)})
    failed = TestsPass(factory, timeout=120).evaluate(task.patch, hopeless)
    assert failed.failed and "control run" in failed.reason


def test_sentinels_only_where_the_runner_allows(instances: dict[str, Instance]) -> None:
    patch = instances["pytest"].test_patch
    sentinel = make_sentinel(spec_for("pallets/flask", "2.3"), patch, "abc")
    assert sentinel.path == "tests/test_swerepair_sentinel_abc.py" and "def test_swerepair_fail_abc" in sentinel.text
    dj = make_sentinel(spec_for("django/django", "5.0"), instances["django"].test_patch, "abc")
    assert dj.path == "tests/text/swerepair_sentinel_abc.py" and "unittest.TestCase" in dj.text
    sympy_patch = "diff --git a/sympy/t/test_x.py b/sympy/t/test_x.py\n"
    assert make_sentinel(spec_for("sympy/sympy", "1.12"), sympy_patch) is None
    assert make_sentinel(spec_for("python/mypy", "1.7"), "diff --git a/test-data/unit/a.test b/x\n") is None
    assert make_sentinel(spec_for("pallets/flask", "2.3"), "diff --git a/docs/x.rst b/docs/x.rst\n") is None
    # no test patch (SWE-smith): next to the first test id's file
    smith = make_sentinel(spec_for("swesmith/a__b.c0ffee12"), "", "abc", ["src/t/test_m.py::T::test_x"])
    assert smith.path == "src/t/test_swerepair_sentinel_abc.py"
    assert make_sentinel(spec_for("django/django", "5.0"), "", "abc", ["test_x (a.tests.T.test_x)"]) is None


def test_setup_patch_must_be_in_place(instances: dict[str, Instance]) -> None:
    """A SWE-smith task's bug is a diff on the image's checkout: a sandbox without it is reported."""
    from swerepair.rewards.tests_pass import setup_missing

    inst = instances["pytest"]
    task = as_task(inst)
    bug = edit_patch(inst.path, "calc/ops.py", Path(inst.path, "calc/ops.py").read_text().replace("x + x", "x * 3"))
    with_bug = dataclasses.replace(task, extra={**task.extra, "setup_patch": bug})
    out = TestsPass(factory, timeout=60).evaluate(task.patch, with_bug)
    assert out.failed and "setup patch" in out.reason
    with make_sandbox("auto", with_bug) as sb:
        assert setup_missing(sb, with_bug, 30)
        assert sb.run("git apply -", 30, stdin=bug).ok
        assert setup_missing(sb, with_bug, 30) is None


def test_a_patch_that_hangs_the_runner_scores_zero_not_failed(instances: dict[str, Instance]) -> None:
    """The control run and timeout rules of the trusted mode hold in harness mode too."""
    inst = instances["django"]
    task = as_task(inst)
    hang = append_patch(inst.path, "minidj/text.py", "\n\nwhile True:\n    pass\n")
    out = TestsPass(factory, timeout=8).evaluate(hang, task)
    assert not out.failed and out.value == 0.0, out
    assert "timed out" in out.details["zero_because"] and "without the patch it finishes" in out.details["zero_because"]


@needs_bwrap
def test_the_tests_cannot_read_the_wrappers_nonce(instances: dict[str, Instance]) -> None:
    """The wrapper that holds the marker nonce is not dumpable: the test command (same user) can
    read neither its memory, nor its environment, nor its file descriptors (its stdin pipe)."""
    task = as_task(instances["pytest"])
    probe = (
        "W=$PPID; ls /proc/$W/fd; cat /proc/$W/environ; cat /proc/$W/fd/0; "
        'python3 -c \'import sys; open("/proc/%s/mem" % sys.argv[1], "rb")\' $W'
    )
    spec = dataclasses.replace(spec_for("x/y"), test_cmd=probe)
    with make_sandbox("bubblewrap", task) as sb:
        report = run_harness(sb, spec, "", [], 30)
    section = report.result.output.split(">>>>> Start Test Output ", 1)[1]
    assert section.count("Permission denied") >= 4, section
    assert report.finished and report.exit_code != 0
