"""Real-instance layout end to end: SWE-bench-layout images, rows in the published Verified
schema, the Docker sandbox, and the verifier with each repository's own runner.

Two images are built locally on the Docker tests' base image (tests/docker_images.py): a pytest
repository and a django-layout repository whose ``tests/runtests.py`` prints unittest's
verbosity-2 lines, each at ``/testbed`` with its environment at
``/opt/miniconda3/envs/testbed``. The rows name only the image (no local checkout): the
repository comes from the image, the harness spec from ``spec_for(repo, version)`` (the django
rows get the real django spec and parser), and the episodes run through
``gymnasium.make("SweRepair-v0", sandbox="docker", reward="tests_pass")``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest

from swerepair.agents.policies.scripted import gold_turns
from swerepair.cli import main
from swerepair.envs.tasks import load_tasks

from docker_kit import needs_docker
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

pytestmark = needs_docker

KINDS = ("pytest", "django")


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The two instances, their images and a task file of Verified rows that name the images."""
    from docker_images import swebench_layout_image

    root = tmp_path_factory.mktemp("real")
    instances = {kind: build_instance(kind, root / kind) for kind in KINDS}
    rows = [inst.row(image=swebench_layout_image(inst)) for inst in instances.values()]
    path = root / "verified.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"instances": instances, "path": path, "tasks": {t.repo: t for t in load_tasks(path)}}


def play(path: Path, task_id: str, turns: list[str]) -> tuple[float, dict[str, Any]]:
    """One episode of `turns` (then turns without a tool call until it ends); reward and info."""
    env = gym.make("SweRepair-v0", tasks=str(path), sandbox="docker", reward="tests_pass", max_tool_calls=8)
    try:
        env.reset(options={"task_id": task_id})
        for turn in [*turns, *["I am done."] * 10]:
            _, reward, terminated, truncated, info = env.step(turn)
            if terminated or truncated:
                return float(reward), info
        raise AssertionError("the episode did not end")
    finally:
        env.close()


def instance_of(real: dict[str, Any], kind: str) -> tuple[Instance, Any]:
    inst = real["instances"][kind]
    return inst, real["tasks"][inst.repo]


def test_rows_name_the_image_and_the_harness_spec(real: dict[str, Any]) -> None:
    for kind in KINDS:
        _inst, task = instance_of(real, kind)
        assert task.repo_source is None and task.extra["image"].startswith("swerepair-test-swebench.")
        assert task.extra["dataset"] == "SWE-bench"
    assert real["tasks"]["django/django"].extra["harness_spec"]["parser"] == "django"


@pytest.mark.parametrize("kind", KINDS)
def test_gold_patch_scores_one_and_empty_patch_zero(kind: str, real: dict[str, Any]) -> None:
    _inst, task = instance_of(real, kind)
    reward, info = play(real["path"], task.instance_id, gold_turns(task.patch))
    assert not info["failed"] and reward == 1.0, info
    assert info["verifier"]["runner"] == "harness"
    assert info["verifier"]["sentinels"] == {"pass": "PASSED", "fail": "FAILED"}
    reward, info = play(real["path"], task.instance_id, [])
    assert not info["failed"] and reward == 0.0 and info["patch"] == "", info
    assert list(info["verifier"]["not_passing"]) == list(task.FAIL_TO_PASS)


def test_editing_the_protected_runner_scores_zero(real: dict[str, Any]) -> None:
    inst, task = instance_of(real, "django")
    forged = edit_patch(inst.path, "tests/runtests.py", FORGING_RUNTESTS)
    reward, info = play(real["path"], task.instance_id, gold_turns(forged))
    assert not info["failed"] and reward == 0.0, info
    assert info["reward_components"]["tampered"] == 1.0
    assert "tests/runtests.py" in info["verifier"]["zero_because"]


def test_in_process_forgery_is_caught_by_the_sentinel(real: dict[str, Any]) -> None:
    inst, task = instance_of(real, "django")
    forgery = append_patch(inst.path, "minidj/text.py", UNITTEST_FORGERY)
    reward, info = play(real["path"], task.instance_id, gold_turns(forgery))
    assert not info["failed"] and reward == 0.0, info
    assert info["reward_components"]["tampered"] == 1.0
    assert info["verifier"]["sentinels"]["fail"] == "PASSED"


def test_an_added_conftest_scores_zero(real: dict[str, Any]) -> None:
    inst, task = instance_of(real, "pytest")
    for tamper in (
        new_file_patch("tests/conftest.py", FORGING_CONFTEST),
        edit_patch(inst.path, "conftest.py", FORGING_CONFTEST),
    ):
        reward, info = play(real["path"], task.instance_id, gold_turns(tamper))
        assert not info["failed"] and reward == 0.0, info
        assert info["verifier"]["dropped_files"], info["verifier"]


def test_tasks_validate_passes_on_the_rows(real: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tasks", "validate", "--tasks", str(real["path"]), "--sandbox", "docker", "--jobs", "2"]) == 0
    assert "2/2 tasks valid" in capsys.readouterr().out


def test_a_swe_smith_row_runs_from_the_clean_image(tmp_path: Path, real: dict[str, Any]) -> None:
    """SWE-smith's schema: the image holds the clean commit, the row's patch is the bug. The
    sandbox applies the bug at the start; the fix (the bug reversed) scores 1, nothing scores 0."""
    from docker_images import swebench_layout_image
    from instances import swesmith_instance

    clean, row = swesmith_instance(real["instances"]["pytest"], tmp_path / "clean")
    row["image_name"] = swebench_layout_image(clean)
    path = tmp_path / "smith.jsonl"
    path.write_text(json.dumps(row) + "\n")
    (task,) = load_tasks(path)
    assert task.extra["dataset"] == "SWE-smith" and task.base_commit == "" and task.test_patch == ""
    assert task.extra["image"] == row["image_name"] and task.extra["setup_patch"] == row["patch"]
    reward, info = play(path, task.instance_id, gold_turns(task.patch))
    assert not info["failed"] and reward == 1.0, info
    assert info["patch"].strip() == task.patch.strip()  # the agent's diff is the fix alone, not the bug
    # no test patch: the whole suite runs, and collects the sentinel put next to the tests
    assert info["verifier"]["sentinels"] == {"pass": "PASSED", "fail": "FAILED"}
    assert "swerepair_sentinel" not in info["verifier"]["command"]
    reward, info = play(path, task.instance_id, [])
    assert not info["failed"] and reward == 0.0, info
    assert main(["tasks", "validate", "--tasks", str(path), "--sandbox", "docker"]) == 0
