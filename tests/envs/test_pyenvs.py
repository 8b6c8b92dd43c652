"""Docker-free environments: built from PyPI per (repository, version), used by the bubblewrap
sandbox, locked, listed, pruned, and reported on.

The slow tests install from the package index the machine's pip is configured with: a
repository made here needs ``toolz`` (which the project's own environment does not have) at a
pinned version, one pin per repository version."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest

from swerepair.agents.policies.scripted import gold_turns, hermes_call
from swerepair.envs.pyenvs import (
    BuildOptions,
    build_environments,
    classify_failure,
    compatibility_report,
    environment_for,
    find_python,
    list_environments,
    plan_environments,
    prune_environments,
)
from swerepair.envs.pyenvs.build import build_environment, venv_python
from swerepair.envs.pyenvs.plan import editable_install, environment_python, read_requirements
from swerepair.envs.sandbox import SandboxConfig, make_sandbox
from swerepair.envs.tasks import load_tasks
from swerepair.envs.validate import validate_task

from helpers import needs_bwrap

HOST_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
#: toolz per repository version: the environment decides which one the tests import.
PINS = {"1.0": "0.11.2", "2.0": "0.12.0"}
PYTEST_PIN = "pytest==8.3.3"

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@t",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@t",
    "PATH": "/usr/bin:/bin",
    "HOME": "/tmp",
}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, env=GIT_ENV, check=True, capture_output=True, text=True).stdout


def write(repo: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)


BUGGY = (
    "from toolz import frequencies\n\n\n"
    "def most_common(items):\n    counts = frequencies(items)\n    return min(counts, key=counts.get)\n"
)
FIXED = BUGGY.replace("return min(", "return max(")
NEW_TEST = "\n\ndef test_most_common():\n    assert most_common('abracadabra') == 'a'\n"


def make_tally(root: Path) -> list[dict[str, Any]]:
    """``acme/tally``: a src-layout package that imports toolz, at two versions (commits) whose
    tests check the toolz release their environment must hold; one task row per version."""
    repo = root / "tally"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    rows = []
    for n, (version, pin) in enumerate(PINS.items(), 1):
        tests = (
            "import toolz\n\nfrom tally import most_common\n\n\n"
            f"def test_toolz_pin():\n    assert toolz.__version__ == {pin!r}\n"
        )
        write(
            repo,
            {
                "pyproject.toml": (
                    '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n\n'
                    f'[project]\nname = "tally"\nversion = "{version}"\ndependencies = ["toolz"]\n'
                ),
                "src/tally/__init__.py": BUGGY,
                "tests/test_tally.py": tests,
            },
        )
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", f"version {version}")
        sha = git(repo, "rev-parse", "HEAD").strip()
        write(repo, {"src/tally/__init__.py": FIXED})
        patch = git(repo, "diff")
        git(repo, "checkout", "-q", ".")
        write(repo, {"tests/test_tally.py": tests + NEW_TEST})
        test_patch = git(repo, "diff")
        git(repo, "checkout", "-q", ".")
        rows.append(
            {
                "instance_id": f"acme__tally-{n}",
                "repo": "acme/tally",
                "base_commit": sha,
                "version": version,
                "problem_statement": "most_common('abracadabra') returns 'c', the rarest letter.",
                "patch": patch,
                "test_patch": test_patch,
                "FAIL_TO_PASS": ["tests/test_tally.py::test_most_common"],
                "PASS_TO_PASS": ["tests/test_tally.py::test_toolz_pin"],
                "repo_source": str(repo),
                "install_config": {
                    "python": HOST_PYTHON,
                    "pip_packages": [f"toolz=={pin}", PYTEST_PIN],
                    "install": "python -m pip install -e .",
                    "test_cmd": "pytest -rA",
                    "log_parser": "parse_log_pytest",
                },
            }
        )
    return rows


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# -- planning, without installing ------------------------------------------------------------------
def test_versions_get_their_own_environment_and_tasks_without_a_spec_none(tmp_path: Path, toy_task: Any) -> None:
    rows = make_tally(tmp_path)
    tasks = load_tasks(write_rows(tmp_path / "t.jsonl", rows))
    plans, without = plan_environments([*tasks, toy_task])
    assert [p.spec.version for p in plans] == ["1.0", "2.0"]
    assert all(p.key.startswith("acme__tally/") for p in plans) and plans[0].key != plans[1].key
    assert without == [toy_task.instance_id]  # no harness spec: the host's interpreter, as before
    # the same spec in another row shares the environment; a changed pin does not
    same = dict(rows[0], instance_id="acme__tally-3")
    other = dict(
        rows[0], instance_id="acme__tally-4", install_config={**rows[0]["install_config"], "pip_packages": ["toolz"]}
    )
    keys = {
        p.key: p.tasks for p in plan_environments(load_tasks(write_rows(tmp_path / "u.jsonl", [*rows, same, other])))[0]
    }
    assert sorted(map(len, keys.values())) == [1, 1, 2]


def test_requirements_follow_the_harness_markers(tmp_path: Path) -> None:
    rows = make_tally(tmp_path)
    checkout = tmp_path / "checkout"
    write(
        checkout,
        {
            "requirements/dev.txt": "-r base.txt\npytest>=7  # tests\n-e .\n",
            "requirements/base.txt": "toolz==0.12.0\n\n# comment\n",
            "environment.yml": (
                "dependencies:\n  - python=3.9\n  - numpy=1.21\n  - gxx_linux-64\n  - pip\n"
                "  - pip:\n    - attrs==23.1.0\n"
            ),
        },
    )
    config = rows[0]["install_config"]
    task = load_tasks(
        write_rows(
            tmp_path / "r.jsonl",
            [
                dict(
                    rows[0],
                    install_config={**config, "packages": "requirements.txt", "reqs_path": ["requirements/dev.txt"]},
                )
            ],
        )
    )[0]
    plan = plan_environments([task])[0][0]
    read_requirements(plan, checkout)
    assert plan.requirements == ["toolz==0.12.0", "pytest>=7"] and not plan.blockers
    yml = dict(
        rows[0],
        install_config={
            **config,
            "packages": "environment.yml",
            "python": None,
            "pre_install": ["apt-get install -y libxml2-dev"],
        },
    )
    plan = plan_environments(load_tasks(write_rows(tmp_path / "y.jsonl", [yml])))[0][0]
    read_requirements(plan, checkout)
    assert plan.requirements == ["numpy==1.21.*", "attrs==23.1.0"]
    assert any("gxx_linux-64" in b for b in plan.blockers) and any("apt-get" in b for b in plan.blockers)
    assert "Python 3.9 from environment.yml" in plan.notes and environment_python(plan) == "3.9"


@pytest.mark.parametrize(
    ("install", "expected"),
    [
        ("python -m pip install -e .", "python -m pip install -e ."),
        ("python -m pip install .", "python -m pip install -e ."),
        ("pip install -v --no-build-isolation .", "pip install -v --no-build-isolation -e ."),
        ("python setup.py install", "python setup.py develop"),
        ("python setup.py develop", "python setup.py develop"),
    ],
)
def test_installs_are_made_editable_with_a_note(install: str, expected: str) -> None:
    changed, note = editable_install(install)
    assert changed == expected
    assert (note is None) == (install == expected)


def test_failure_reasons_are_one_line() -> None:
    assert classify_failure("  error: No matching distribution found for toolz==0.0.1\n") == (
        "no matching distribution on the index: toolz==0.0.1"
    )
    assert classify_failure("x.c:1:10: fatal error: libxml/xpath.h: No such file or directory") == (
        "needs system headers (libxml/xpath.h): a system library"
    )
    assert classify_failure("error: command 'gcc' failed: No such file or directory") == "needs a compiler"
    assert classify_failure("Traceback\nSomeError: boom", "install") == "install failed: SomeError: boom"


def test_a_python_the_machine_lacks_is_a_flagged_fallback() -> None:
    found = find_python("2.5")
    assert found.fallback and found.path == sys.executable and "2.5" in found.note()
    here = find_python(HOST_PYTHON)
    assert not here.fallback and here.version.startswith(HOST_PYTHON)


def test_the_report_names_why_from_records(tmp_path: Path, toy_task: Any) -> None:
    rows = make_tally(tmp_path)
    tasks = load_tasks(write_rows(tmp_path / "t.jsonl", rows))
    plans, _ = plan_environments(tasks)
    root = tmp_path / "envs"
    records = [
        {"status": "blocked", "blockers": ["pre_install installs system packages: 'apt-get install -y libgdal-dev'"]},
        {"status": "failed", "failed_step": "install", "reason": "needs a compiler"},
    ]
    for plan, record in zip(plans, records, strict=True):
        (root / plan.key).mkdir(parents=True)
        (root / plan.key / "env.json").write_text(json.dumps(record))
    found, markdown = compatibility_report([*tasks, toy_task], root)
    verdicts = {r.instance_id: (r.verdict, r.category) for r in found}
    assert verdicts == {
        "acme__tally-1": ("needs docker", "system library"),
        "acme__tally-2": ("needs docker", "compiler"),
        toy_task.instance_id: ("host interpreter", ""),
    }
    assert "| acme__tally-2 | needs docker | compiler: install: needs a compiler |" in markdown


# -- building from PyPI ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Both versions' environments, built once with uv under a private root."""
    root = tmp_path_factory.mktemp("tally")
    rows = make_tally(root)
    path = write_rows(root / "tally.jsonl", rows)
    envs = root / "envs"
    cache = str(tmp_path_factory.getbasetemp() / "cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SWEREPAIR_CACHE", cache)
        results = build_environments(load_tasks(path), BuildOptions(root=envs), jobs=2)
    return {"root": root, "path": path, "envs": envs, "results": results, "rows": rows}


def run_python(python: Path, code: str) -> str:
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.slow
def test_two_versions_are_built_side_by_side_from_the_index(built: dict[str, Any]) -> None:
    assert importlib.util.find_spec("toolz") is None  # the project's environment does not have it
    results = built["results"]
    assert [r.status for _, r in results] == ["built", "built"], [r.reason for _, r in results]
    for (plan, result), pin in zip(results, PINS.values(), strict=True):
        python = venv_python(built["envs"] / plan.key)
        assert run_python(python, "import toolz; print(toolz.__version__)") == pin
        # the repository is installed against the sandbox's workspace path, not the build's checkout
        (pth,) = (built["envs"] / plan.key / "venv").glob("lib/python*/site-packages/__editable__.tally-*.pth")
        assert pth.read_text().split() == ["/workspace/src"]
        record = result.record
        assert record["installer"] == "uv" and record["python"]["version"].startswith(HOST_PYTHON)
        assert [s["step"] for s in record["steps"]] == ["venv", "pip_packages", "install", "freeze"]
        assert f"toolz=={pin}" in (built["envs"] / plan.key / "lock.txt").read_text().splitlines()
        assert 0 < record["own_bytes"] < record["disk_bytes"]  # hard links into the shared store
    infos = list_environments(built["envs"])
    assert [(i.status, i.python.startswith(HOST_PYTHON + ".")) for i in infos] == [("ok", True)] * 2


@pytest.mark.slow
@needs_bwrap
def test_each_task_validates_in_bubblewrap_with_its_own_environment(built: dict[str, Any]) -> None:
    tasks = load_tasks(built["path"])
    config = SandboxConfig(environments=str(built["envs"]))
    for task in tasks:
        assert environment_for(task, built["envs"]) is not None
        result = validate_task(task, lambda t: make_sandbox("bubblewrap", t, config), timeout=120)
        assert result.ok, result.problems
    # the host's interpreter alone cannot run them: toolz is missing there
    bare = validate_task(tasks[0], lambda t: make_sandbox("bubblewrap", t, SandboxConfig(environments=None)), 120)
    assert not bare.ok


@pytest.mark.slow
@needs_bwrap
def test_gold_scores_one_and_empty_zero_in_bubblewrap(built: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWEREPAIR_CACHE", str(built["root"]))  # <cache>/envs is the built root: found by default
    tasks = load_tasks(built["path"])
    for task in tasks:
        # the editable install puts /workspace/src on sys.path, so a sitecustomize written there
        # would run in the verifier's interpreter (here: min becomes max, and the bug's test
        # passes): the verifier drops start-up hooks from the patch, and the bug stays a bug
        hook = "import builtins; builtins.min = builtins.max"
        write_hook = f"python -c \"open('src/sitecustomize.py', 'w').write('{hook}')\""
        cheat = [hermes_call("shell", {"cmd": write_hook}), "Done."]
        for turns, expected in ((gold_turns(task.patch), 1.0), ([], 0.0), (cheat, 0.0)):
            env = gym.make(
                "SweRepair-v0", tasks=str(built["path"]), sandbox="bubblewrap", reward="tests_pass", max_tool_calls=8
            )
            try:
                env.reset(options={"task_id": task.instance_id})
                # the agent's shell has the environment too
                probe = "python -c 'import toolz; print(toolz.__version__)'"
                obs = env.unwrapped._ep.sandbox.run(probe, 60, restricted=True)
                assert obs.output.strip() == PINS[task.extra["version"]]
                # ... read-only: the agent cannot change what the verifier will import
                write = 'python -c \'import toolz; open(toolz.__file__, "a").write("x")\''
                obs = env.unwrapped._ep.sandbox.run(write, 60, restricted=True)
                # (mounted read-only; started by root, the agent is also not the files' owner)
                assert obs.exit_code != 0 and (
                    "Read-only file system" in obs.output or "Permission denied" in obs.output
                )
                for turn in [*turns, *["I am done."] * 10]:
                    _, reward, terminated, truncated, info = env.step(turn)
                    if terminated or truncated:
                        break
                assert reward == expected, info
                if turns is cheat:
                    assert info["verifier"]["dropped_files"][0]["path"] == "src/sitecustomize.py"
            finally:
                env.close()


@pytest.mark.slow
def test_the_lock_file_rebuilds_the_same_environment(built: dict[str, Any], tmp_path: Path) -> None:
    plan, _ = built["results"][0]
    again = tmp_path / "again"
    (again / plan.key).mkdir(parents=True)
    shutil.copy(built["envs"] / plan.key / "lock.txt", again / plan.key / "lock.txt")
    rebuilt = build_environment(plan, BuildOptions(root=again, lock=True))
    assert rebuilt.status == "built" and rebuilt.record["from_lock"], rebuilt.reason
    assert [s["step"] for s in rebuilt.record["steps"]] == ["venv", "lock", "install", "freeze"]
    freeze = (
        "import importlib.metadata as m; "
        "print(sorted(f'{d.metadata[\"Name\"]}=={d.version}' for d in m.distributions()))"
    )
    assert run_python(venv_python(again / plan.key), freeze) == run_python(
        venv_python(built["envs"] / plan.key), freeze
    )
    assert (again / plan.key / "lock.txt").read_text() == (built["envs"] / plan.key / "lock.txt").read_text()


@pytest.mark.slow
def test_a_failed_build_is_reported_with_its_reason(built: dict[str, Any], tmp_path: Path) -> None:
    row = dict(built["rows"][0], instance_id="acme__tally-9", version="9.9")
    row["install_config"] = {**row["install_config"], "pip_packages": ["toolz==0.0.1", PYTEST_PIN]}
    path = write_rows(tmp_path / "bad.jsonl", [row])
    root = tmp_path / "envs"
    cli = [sys.executable, "-m", "swerepair.cli", "envs"]
    env = {**os.environ, "SWEREPAIR_CACHE": str(tmp_path / "cache")}
    out = subprocess.run(
        [*cli, "build", "--tasks", str(path), "--root", str(root), "--no-progress"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "failed   acme__tally/9.9-" in out.stderr and "toolz" in out.stderr and "0.0.1" in out.stderr
    record = list_environments(root)[0].record
    assert record["status"] == "failed" and record["failed_step"] == "pip_packages" and "toolz" in record["reason"]
    report = subprocess.run(
        [*cli, "report", "--tasks", str(path), "--root", str(root), "--json"], capture_output=True, text=True, env=env
    )
    (verdict,) = json.loads(report.stdout)
    assert verdict["verdict"] == "needs docker" and verdict["category"] == "build" and "toolz" in verdict["reason"]
    listed = subprocess.run([*cli, "list", "--root", str(root)], capture_output=True, text=True, env=env).stdout
    assert listed.startswith("failed") and "toolz" in listed
    pruned = subprocess.run([*cli, "prune", "--root", str(root), "--failed"], capture_output=True, text=True, env=env)
    assert pruned.returncode == 0 and "removed 1 environment(s)" in pruned.stdout and list_environments(root) == []


@pytest.mark.slow
def test_concurrent_builders_of_one_environment_build_it_once(built: dict[str, Any], tmp_path: Path) -> None:
    plan, _ = built["results"][1]
    options = BuildOptions(root=tmp_path / "envs")
    statuses: list[str] = []
    threads = [
        threading.Thread(target=lambda: statuses.append(build_environment(plan, options).status)) for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == ["built", "cached"]
    # a third run finds it built; an environment killed mid-build (no record) is rebuilt
    assert build_environment(plan, options).status == "cached"
    (tmp_path / "envs" / plan.key / "env.json").unlink()
    assert build_environment(plan, options).status == "built"
    removed, freed = prune_environments(tmp_path / "envs", keep=[], store=True)
    assert [i.key for i in removed] == [plan.key] and freed > 0 and not (tmp_path / "envs" / "store").exists()


def test_real_specs_plan_as_the_harness_installs_them(tmp_path: Path) -> None:
    from swerepair.core import Task

    def plan_of(repo: str, version: str) -> Any:
        task = Task(
            f"{repo.replace('/', '__')}-1", repo, "0" * 40, "", "", "", (), (),
            extra={"dataset": "princeton-nlp/SWE-bench_Verified", "version": version},
        )  # fmt: skip
        plan = plan_environments([task])[0][0]
        read_requirements(plan, tmp_path)
        return plan

    requests = plan_of("psf/requests", "2.0")
    assert (requests.spec.python, requests.requirements, requests.blockers) == ("3.9", ["pytest"], [])
    assert requests.install == "python -m pip install -e ." and "made editable" in requests.notes[0]
    sympy = plan_of("sympy/sympy", "1.12")
    assert sympy.requirements == ["mpmath", "flake8"] and "mpmath==1.3.0" in sympy.pip_packages
    assert not sympy.blockers
    matplotlib = plan_of("matplotlib/matplotlib", "3.5")
    assert any("apt-get" in b for b in matplotlib.blockers)  # system packages: needs Docker


@pytest.mark.slow
def test_pip_builds_the_same_environment_with_copies(built: dict[str, Any], tmp_path: Path) -> None:
    plan, _ = built["results"][0]
    result = build_environment(plan, BuildOptions(root=tmp_path / "envs", installer="pip"))
    assert result.status == "built", result.reason
    record = result.record
    assert record["installer"] == "pip" and [s["step"] for s in record["steps"]][:2] == ["venv", "pip_packages"]
    python = venv_python(tmp_path / "envs" / plan.key)
    assert run_python(python, "import toolz; print(toolz.__version__)") == PINS["1.0"]
    assert record["own_bytes"] == record["disk_bytes"]  # no store: every file is its own copy
