"""Shared fixtures: the bundled tasks, a tiny throwaway repository, a private checkout cache."""

from __future__ import annotations

import pytest

import swerepair  # registers SweRepair-v0
from swerepair.core import Task
from swerepair.envs.tasks import load_tasks

from helpers import TOY_FILES, TOY_GOLD, TOY_TEST_PATCH, make_repo


def pytest_configure(config: pytest.Config) -> None:
    """The package's filters of third-party noise (`swerepair.QUIET_WARNINGS`) hold in the tests
    too: pytest restores the warning filters after collecting, which drops the ones the package
    set when it was imported."""
    for category, message, module in swerepair.QUIET_WARNINGS:
        config.addinivalue_line("filterwarnings", f"ignore:{message}:{category.__name__}:{module}")


@pytest.fixture(scope="session")
def bundled() -> list[Task]:
    return load_tasks("bundled")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests use their own checkout cache, never the user's."""
    monkeypatch.setenv("SWEREPAIR_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def toy_task(tmp_path_factory: pytest.TempPathFactory) -> Task:
    """A three-file repository with one bug (`add` subtracts)."""
    root = tmp_path_factory.mktemp("toyrepo")
    sha = make_repo(root, TOY_FILES)
    return Task(
        instance_id="toy__calc-1",
        repo="toy/calc",
        base_commit=sha,
        problem_statement="add(2, 3) returns -1 instead of 5.",
        patch=TOY_GOLD,
        test_patch=TOY_TEST_PATCH,
        FAIL_TO_PASS=("tests/test_calc.py::test_add",),
        PASS_TO_PASS=("tests/test_calc.py::test_twice",),
        repo_source=str(root),
    )
