"""Task sources: rows of the published SWE datasets' schemas become tasks with their dataset,
harness spec and image; `swerepair tasks validate` runs them under the task's own runner."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

import pytest

from swerepair.cli import main
from swerepair.envs.sandbox import make_sandbox
from swerepair.envs.sources import convert_row, detect_source, reverse_patch
from swerepair.envs.tasks import TaskFormatError, load_tasks
from swerepair.envs.validate import validate_task
from swerepair.rewards.harness import spec_for
from swerepair.rewards.verifier.harness import runner_mode, task_spec

from instances import build_instance

pytestmark = pytest.mark.filterwarnings("ignore::swerepair.envs.sandbox.LocalSandboxWarning")

#: A row of SWE-bench Verified as its Parquet/JSON files have it (test lists as JSON strings).
VERIFIED_ROW = {
    "repo": "django/django",
    "instance_id": "django__django-11099",
    "base_commit": "d26b2424437dabeeca94d7900b37d2df4410da0c",
    "patch": "diff --git a/django/contrib/auth/validators.py b/django/contrib/auth/validators.py\n",
    "test_patch": "diff --git a/tests/auth_tests/test_validators.py b/tests/auth_tests/test_validators.py\n",
    "problem_statement": "UsernameValidator allows trailing newline in usernames",
    "hints_text": "",
    "created_at": "2019-03-20T03:46:18Z",
    "version": "3.0",
    "FAIL_TO_PASS": json.dumps(["test_ascii_validator (auth_tests.test_validators.UsernameValidatorsTests)"]),
    "PASS_TO_PASS": json.dumps(["test_help_text (auth_tests.test_validators.UserAttributeSimilarityValidatorTest)"]),
    "environment_setup_commit": "419a78300f7cd27611196e1e464d50fd0385ff27",
    "difficulty": "<15 min fix",
}
SWEGYM_ROW = {
    **VERIFIED_ROW,
    "repo": "getmoto/moto",
    "instance_id": "getmoto__moto-5406",
    "version": "4.0",
    "FAIL_TO_PASS": ["tests/test_x.py::test_a"],
    "PASS_TO_PASS": [],
}
BUG = "diff --git a/src/m.py b/src/m.py\nindex 1111111..2222222 100644\n--- a/src/m.py\n+++ b/src/m.py\n"
BUG += "@@ -1,3 +1,3 @@\n def f(x):\n-    return x + 1\n+    return x - 1\n \n"
SWESMITH_ROW = {
    "instance_id": "pallets__flask.bc098406.func_basic__abc123",
    "repo": "swesmith/pallets__flask.bc098406",
    "patch": BUG,
    "FAIL_TO_PASS": ["tests/test_basic.py::test_f"],
    "PASS_TO_PASS": ["tests/test_basic.py::test_g"],
    "image_name": "swebench/swesmith.x86_64.pallets_1776_flask.bc098406",
    "problem_statement": "f is off by two",
}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_swe_bench_verified_rows(tmp_path: Path) -> None:
    (task,) = load_tasks(write_jsonl(tmp_path / "verified.jsonl", [VERIFIED_ROW]))
    assert task.FAIL_TO_PASS == ("test_ascii_validator (auth_tests.test_validators.UsernameValidatorsTests)",)
    assert task.extra["dataset"] == "SWE-bench"
    assert task.extra["image"] == "swebench/sweb.eval.x86_64.django_1776_django-11099:latest"
    assert task.extra["version"] == "3.0" and task.extra["hints_text"] == "" and task.extra["difficulty"]
    assert task_spec(task) == spec_for("django/django", "3.0") and runner_mode(task) == "harness"
    # the task stays a JSON row: it loads again as the same task
    again = load_tasks([json.loads(json.dumps(task.to_dict()))])
    assert again == [task]


def test_swe_gym_rows_and_their_images(tmp_path: Path) -> None:
    (task,) = load_tasks(write_jsonl(tmp_path / "gym.jsonl", [SWEGYM_ROW]))
    assert task.extra["dataset"] == "SWE-Gym"
    assert task.extra["image"] == "xingyaoww/sweb.eval.x86_64.getmoto_s_moto-5406:latest"
    assert task.extra["harness_spec"]["parser"] == "pytest" and task.extra["harness_spec"]["repo"] == "getmoto/moto"


def test_parquet_and_a_datasets_object(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([VERIFIED_ROW]), tmp_path / "v.parquet")
    (task,) = load_tasks(tmp_path / "v.parquet")
    assert task.extra["dataset"] == "SWE-bench" and task.extra["image"].startswith("swebench/")
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_list([VERIFIED_ROW, {**VERIFIED_ROW, "instance_id": "django__django-11100"}])
    assert [t.instance_id for t in load_tasks(ds)] == ["django__django-11099", "django__django-11100"]


def test_swe_smith_rows_become_fix_tasks(tmp_path: Path) -> None:
    (task,) = load_tasks([SWESMITH_ROW])
    assert task.extra["dataset"] == "SWE-smith"
    assert task.extra["image"] == SWESMITH_ROW["image_name"]
    assert task.base_commit == "" and task.test_patch == ""
    assert task.extra["setup_patch"] == BUG  # the bug, to be applied at the start
    assert "-    return x - 1\n+    return x + 1\n" in task.patch  # the fix is the bug reversed
    assert task_spec(task).parser == "swesmith" and runner_mode(task) == "harness"
    assert task.FAIL_TO_PASS == ("tests/test_basic.py::test_f",)


def test_reverse_patch_is_what_git_apply_reverses(tmp_path: Path) -> None:
    root = build_instance("pytest", tmp_path / "repo").path
    env = {"PATH": "/usr/bin:/bin", "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}
    (root / "calc" / "new.py").write_text("x = 1\n")
    (root / "calc" / "ops.py").write_text("def add(a, b):\n    return a * b\n")
    (root / "README.md").unlink()
    subprocess.run(["git", "add", "-A"], cwd=root, check=True, env=env)

    def diff(*flags: str) -> str:
        argv = ["git", "diff", "--cached", "--no-renames", *flags, "HEAD"]
        return subprocess.run(argv, cwd=root, check=True, env=env, capture_output=True, text=True).stdout

    forward, git_reverse = diff(), diff("-R")
    subprocess.run(["git", "reset", "-q", "--hard"], cwd=root, check=True, env=env)
    back = reverse_patch(forward)

    # what git itself writes for the undoing diff, line for line (git -R keeps b/ before a/ in
    # the file headers; the reversed patch names them as a forward diff of the fix does)
    def body(patch: str) -> list[str]:
        return [ln for ln in patch.splitlines() if not ln.startswith(("diff --git ", "--- ", "+++ "))]

    assert body(back) == body(git_reverse)
    assert "--- a/README.md" not in back and "+++ b/README.md" in back
    assert "deleted file mode" in back and "new file mode" in back
    # apply forward, then the reversed patch: the tree is back at the base
    for patch in (forward, back):
        subprocess.run(["git", "apply", "-"], cwd=root, check=True, env=env, input=patch, text=True)
    status = subprocess.run(["git", "status", "--porcelain"], cwd=root, env=env, capture_output=True, text=True)
    assert status.stdout == ""
    with pytest.raises(ValueError, match="binary"):
        reverse_patch("diff --git a/x b/x\nGIT binary patch\nliteral 1\n")


def test_detection_and_named_sources() -> None:
    assert detect_source(VERIFIED_ROW) == "swebench"
    assert detect_source(SWEGYM_ROW) == "swegym"
    assert detect_source(SWESMITH_ROW) == "swesmith"
    assert detect_source({"dataset": "SWE-Gym/SWE-Gym", "repo": "x/y"}) == "swegym"
    bundled = load_tasks("bundled")[0].to_dict()
    assert detect_source(bundled) is None
    assert "harness_spec" not in load_tasks([bundled])[0].extra  # plain rows are left as they are
    # a source named explicitly: a plain row becomes a SWE-bench task
    row, source = convert_row(bundled, "swebench")
    assert source == "swebench" and row["dataset"] == "SWE-bench" and row["harness_spec"]["parser"] == "swesmith"
    with pytest.raises(ValueError, match="unknown task source"):
        convert_row(bundled, "nope")


def test_r2e_gym_rows(tmp_path: Path) -> None:
    r2e = {
        **SWEGYM_ROW,
        "instance_id": "r2e-sympy-1",
        "docker_image": "namanjain12/sympy_final:cafe1234",
        "repo_name": "sympy",
    }
    del r2e["repo"]
    (task,) = load_tasks([r2e])
    assert task.repo == "sympy" and task.extra["dataset"] == "R2E-Gym"
    assert task.extra["image"] == "namanjain12/sympy_final:cafe1234"
    native = {"repo_name": "sympy", "docker_image": "namanjain12/sympy_final:cafe", "commit_hash": "cafe"}
    native |= {"problem_statement": "p", "expected_output_json": "{}", "parsed_commit_content": "{}"}
    path = write_jsonl(tmp_path / "r2e.jsonl", [r2e, native])
    with pytest.raises(TaskFormatError, match=r"r2e\.jsonl:2: an R2E-Gym row in its own schema"):
        load_tasks(path)


def test_a_broken_row_names_its_line(tmp_path: Path) -> None:
    bad = {k: v for k, v in SWESMITH_ROW.items() if k != "FAIL_TO_PASS"}
    path = write_jsonl(tmp_path / "smith.jsonl", [SWESMITH_ROW | {"instance_id": "a__b.c0ffee12.x"}, bad])
    with pytest.raises(TaskFormatError, match=r"smith\.jsonl:2: a SWE-smith row needs FAIL_TO_PASS"):
        load_tasks(path)
    broken = {**VERIFIED_ROW, "FAIL_TO_PASS": "[not json"}
    with pytest.raises(TaskFormatError, match=r"v\.jsonl:1: FAIL_TO_PASS is a string but not a JSON list"):
        load_tasks(write_jsonl(tmp_path / "v.jsonl", [broken]))


def test_cli_source_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_jsonl(tmp_path / "t.jsonl", [VERIFIED_ROW, SWESMITH_ROW])
    assert main(["tasks", "list", "--tasks", str(path)]) == 0
    out = capsys.readouterr().out
    assert "django__django-11099" in out and "pallets__flask.bc098406.func_basic__abc123" in out
    # named explicitly as another dataset's rows: one line naming the file and line, no traceback
    assert main(["tasks", "list", "--tasks", str(path), "--source", "r2egym"]) == 2
    assert "t.jsonl:1: an R2E-Gym row must name its image" in capsys.readouterr().err


def test_validate_runs_each_task_under_its_runner_and_names_unknown_ids(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = []
    for kind in ("pytest", "django"):
        inst = build_instance(kind, tmp_path / kind)
        rows.append(inst.row(repo_source=str(inst.path)))
    path = write_jsonl(tmp_path / "tasks.jsonl", rows)
    assert main(["tasks", "validate", "--tasks", str(path), "--jobs", "1"]) == 0
    assert "2/2 tasks valid" in capsys.readouterr().out
    # one id that does not exist: only that id is reported, once, as not found
    django = load_tasks(path)[1]
    wrong = "test_nope (text.tests.TextTests.test_nope)"
    bad = dataclasses.replace(django, PASS_TO_PASS=(*django.PASS_TO_PASS, wrong))

    res = validate_task(bad, lambda t: make_sandbox("auto", t), timeout=120)
    assert not res.ok and len(res.problems) == 1 and res.problems[0].startswith(f"{wrong} not found")
    assert res.after[django.FAIL_TO_PASS[0]] == "PASSED" and res.after[wrong] == "MISSING"


def test_validate_with_the_trusted_runner_names_unknown_ids(toy_task) -> None:
    """A newcomer's task with one wrong id: pytest's "not found" is reported for that id alone;
    the other tests still run (no longer every test MISSING)."""

    wrong = ["tests/test_calc.py::test_nope", "tests/no_such_file.py::test_x"]
    task = dataclasses.replace(toy_task, PASS_TO_PASS=(*toy_task.PASS_TO_PASS, *wrong))
    res = validate_task(task, lambda t: make_sandbox("auto", t), timeout=120)
    assert not res.ok
    assert sorted(res.problems) == [
        "tests/no_such_file.py::test_x not found (no such file or directory)",
        "tests/test_calc.py::test_nope not found (not collected: no such test)",
    ]
    assert res.before["tests/test_calc.py::test_twice"] == "PASSED"
    assert res.before["tests/test_calc.py::test_add"] == "FAILED"
    assert res.after["tests/test_calc.py::test_add"] == "PASSED"
