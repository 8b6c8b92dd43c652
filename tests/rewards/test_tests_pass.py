"""The test-execution reward on every bundled task, in a separate verifier sandbox."""

from __future__ import annotations

import json

import pytest

from swerepair.core import Task
from swerepair.envs.sandbox import make_sandbox
from swerepair.rewards import PatchApplies, TestsPass, VerifierError

from helpers import package_of, patch_from_edits

TASK_IDS = [f"swerepair__{p}-{n}" for p in ("confkit", "durations", "intervals", "unitconv") for n in range(1, 6)]


def new_file(path: str, text: str) -> str:
    lines = text.splitlines()
    body = "".join(f"+{line}\n" for line in lines)
    header = f"diff --git a/{path} b/{path}\nnew file mode 100644\n--- /dev/null\n+++ b/{path}\n"
    return f"{header}@@ -0,0 +1,{len(lines)} @@\n{body}"


def breaking_conftest(test_id: str) -> str:
    """A root conftest.py that makes exactly one test fail."""
    return new_file(
        "conftest.py",
        f"def pytest_runtest_call(item):\n    if item.nodeid == {json.dumps(test_id)}:\n"
        "        raise AssertionError('broken on purpose')\n",
    )


HANGING_CONFTEST = new_file("conftest.py", "import time\n\n\ndef pytest_configure(config):\n    time.sleep(60)\n")


def factory(task: Task):
    return make_sandbox("auto", task)


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_tests_pass_on_a_bundled_task(task_id: str, bundled: list[Task]) -> None:
    task = next(t for t in bundled if t.instance_id == task_id)
    reward = TestsPass(factory, timeout=120)

    gold = reward.evaluate(task.patch, task)
    assert not gold.failed and gold.value == 1.0, gold
    assert gold.components["tests_passed_fraction"] == 1.0 and gold.components["patch_applies"] == 1.0

    empty = reward.evaluate("", task)
    assert not empty.failed and empty.value == 0.0
    assert empty.components["fail_to_pass_fraction"] == 0.0 and empty.components["pass_to_pass_fraction"] == 1.0

    # A conftest is test infrastructure: dropped, so the gold fix beside it still scores 1 and
    # the empty patch beside it still scores 0, whatever the conftest does.
    victim = task.PASS_TO_PASS[len(task.PASS_TO_PASS) // 2]
    with_conftest = reward.evaluate(task.patch + breaking_conftest(victim), task)
    assert not with_conftest.failed and with_conftest.value == 1.0
    assert with_conftest.details["dropped_files"][0]["path"] == "conftest.py"


def test_a_patch_that_hangs_the_tests_scores_zero_not_failed(bundled: list[Task]) -> None:
    """A hang the patch causes is the patch's fault once the control run finishes in time."""
    task = bundled[0]
    init = f"{package_of(task)}/__init__.py"
    hang = patch_from_edits(task, {init: lambda old: old + "\nwhile True:\n    pass\n"})
    out = TestsPass(factory, timeout=8).evaluate(task.patch + hang, task)
    assert not out.failed and out.value == 0.0, out
    assert "timed out" in out.details["zero_because"]
    # a conftest that hangs is dropped: no effect at all
    assert TestsPass(factory, timeout=60).evaluate(task.patch + HANGING_CONFTEST, task).value == 1.0


def test_calling_a_failed_verifier_raises_instead_of_scoring(bundled: list[Task]) -> None:
    from swerepair.core import SandboxError

    def broken_factory(task):
        raise SandboxError("disk full")

    with pytest.raises(VerifierError, match="disk full"):
        TestsPass(broken_factory)(bundled[0].patch, bundled[0])


def test_patch_that_does_not_apply_scores_zero(bundled: list[Task]) -> None:
    task = bundled[0]
    garbage = task.patch.replace("a/", "a/missing_").replace("b/", "b/missing_")
    out = TestsPass(factory, timeout=120).evaluate(garbage, task)
    assert not out.failed and out.value == 0.0 and out.components["patch_applies"] == 0.0
    assert PatchApplies(factory).evaluate(garbage, task).value == 0.0
    assert PatchApplies(factory)(task.patch, task) == 1.0
    assert PatchApplies(factory)("", task) == 0.0


def test_a_patch_that_breaks_collection_is_the_patchs_fault(bundled: list[Task]) -> None:
    task = bundled[0]
    syntax_error = patch_from_edits(task, {f"{package_of(task)}/__init__.py": lambda old: old + "\ndef broken(:\n"})
    out = TestsPass(factory, timeout=120).evaluate(task.patch + syntax_error, task)
    assert not out.failed and out.value == 0.0, out


def test_a_missing_sandbox_or_interpreter_is_a_failure(bundled: list[Task]) -> None:
    from swerepair.core import SandboxError
    from swerepair.envs.sandbox import SandboxConfig

    def no_sandbox(task):
        raise SandboxError("no space left")

    out = TestsPass(no_sandbox).evaluate(bundled[0].patch, bundled[0])
    assert out.failed and "no space left" in out.reason

    def no_python(task):
        return make_sandbox("auto", task, SandboxConfig(python="/nonexistent/python3"))

    out = TestsPass(no_python, timeout=60).evaluate(bundled[0].patch, bundled[0])
    assert out.failed and "could not start" in out.reason


def test_the_env_uses_a_separate_verifier_sandbox(bundled: list[Task]) -> None:
    """The verifier gets a fresh workspace of its own, made after the agent's last step."""
    import gymnasium as gym

    from swerepair.agents.policies.scripted import gold_turns

    made = []

    def recording_factory(task: Task):
        made.append(make_sandbox("auto", task))
        return made[-1]

    task = bundled[0]
    env = gym.make("SweRepair-v0", sandbox=recording_factory, reward="tests_pass", verifier_timeout_s=120)
    env.reset(options={"task_id": task.instance_id})
    for turn in gold_turns(task.patch)[:-1]:
        env.step(turn)
    assert len(made) == 1
    _, reward, terminated, _, info = env.step("done")
    assert terminated and reward == 1.0
    assert len(made) == 2 and made[1].episode_dir != made[0].episode_dir
    assert not made[1].episode_dir.exists(), "the verifier sandbox is closed after use"
    assert info["reward_components"]["tests_pass"] == 1.0
    assert info["reward_components"]["resolved"] == 1.0
    assert info["reward_components"]["functional_similarity"] == 1.0
    env.close()
