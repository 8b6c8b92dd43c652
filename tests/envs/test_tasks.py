"""Task loading: formats, repository sources, and errors that name the file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from swerepair.core import Task
from swerepair.envs.sandbox.workspace import TaskRepositoryError
from swerepair.envs.tasks import REQUIRED_FIELDS, TaskFormatError, load_tasks


def row(i: int = 1, **over) -> dict:
    base = {
        "instance_id": f"o__r-{i}",
        "repo": "o/r",
        "base_commit": "a" * 40,
        "problem_statement": "bug",
        "patch": "",
        "test_patch": "",
        "FAIL_TO_PASS": '["t::a"]',
        "PASS_TO_PASS": ["t::b"],
        "version": "1.0",
    }
    return base | over


def test_bundled_tasks() -> None:
    tasks = load_tasks("bundled")
    assert len(tasks) >= 12
    repos = {t.repo for t in tasks}
    assert len(repos) >= 3
    for t in tasks:
        assert t.FAIL_TO_PASS and t.PASS_TO_PASS
        assert t.patch.startswith("diff --git") and t.test_patch.startswith("diff --git")
        assert Path(t.repo_source).is_file() and t.repo_source.endswith(".bundle")
        assert len(t.base_commit) == 40
        assert "tests/" not in t.patch, "gold patches touch source files only"
    assert len({t.instance_id for t in tasks}) == len(tasks)


def test_jsonl_with_json_encoded_test_lists(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(json.dumps(row(i)) for i in range(3)) + "\n\n")
    tasks = load_tasks(path)
    assert [t.instance_id for t in tasks] == ["o__r-0", "o__r-1", "o__r-2"]
    assert tasks[0].FAIL_TO_PASS == ("t::a",) and tasks[0].PASS_TO_PASS == ("t::b",)
    assert tasks[0].extra == {"version": "1.0"}
    assert tasks[0].to_dict()["FAIL_TO_PASS"] == ["t::a"]


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("{not json", "invalid JSON"),
        (json.dumps({k: v for k, v in row().items() if k != "patch"}), "missing field(s) patch"),
        (json.dumps(row(FAIL_TO_PASS="t::a")), "FAIL_TO_PASS is a string but not a JSON list"),
        (json.dumps(row(FAIL_TO_PASS=[1, 2])), "FAIL_TO_PASS must be a list of test ids"),
        (json.dumps(row(base_commit=7)), "base_commit must be a string"),
        (json.dumps([1, 2]), "a task row must be an object"),
    ],
)
def test_malformed_jsonl_row_names_file_and_line(tmp_path: Path, bad_line: str, message: str) -> None:
    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps(row(1)) + "\n" + json.dumps(row(2)) + "\n" + bad_line + "\n")
    with pytest.raises(TaskFormatError) as err:
        load_tasks(path)
    assert f"{path}:3:" in str(err.value)
    assert message in str(err.value)


def test_duplicate_ids(tmp_path: Path) -> None:
    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps(row(1)) + "\n" + json.dumps(row(1)) + "\n")
    with pytest.raises(TaskFormatError, match=r"tasks.jsonl:2: duplicate instance_id 'o__r-1' \(first at .*:1\)"):
        load_tasks(path)


def test_json_list_errors_name_the_line(tmp_path: Path) -> None:
    good, bad = row(1), {k: v for k, v in row(2).items() if k != "repo"}
    path = tmp_path / "tasks.json"
    path.write_text("[\n" + json.dumps(good, indent=2) + ",\n" + json.dumps(bad, indent=2) + "\n]\n")
    start = path.read_text().splitlines().index("{", 2) + 1  # the second object's first line
    with pytest.raises(TaskFormatError, match=rf"tasks.json:{start} \(row 1\): missing field\(s\) repo"):
        load_tasks(path)
    path.write_text("[\n" + json.dumps(good) + ",\n{oops}\n]")
    with pytest.raises(TaskFormatError, match=r"tasks.json:3: invalid JSON"):
        load_tasks(path)
    path.write_text(json.dumps([good]))
    assert load_tasks(path)[0].instance_id == "o__r-1"


def test_parquet(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rows = [row(i) for i in range(4)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "t.parquet")
    tasks = load_tasks(tmp_path / "t.parquet")
    assert [t.instance_id for t in tasks] == [r["instance_id"] for r in rows]
    assert tasks[2].PASS_TO_PASS == ("t::b",)
    pq.write_table(pa.Table.from_pylist([row(1), {**row(2), "FAIL_TO_PASS": "nope"}]), tmp_path / "bad.parquet")
    with pytest.raises(TaskFormatError, match=r"bad.parquet: row 1: FAIL_TO_PASS"):
        load_tasks(tmp_path / "bad.parquet")


def test_datasets_object_and_lists() -> None:
    """A `datasets.Dataset` iterates over row dicts; so do plain lists (used where `datasets`
    is not installed)."""
    rows = [row(i) for i in range(3)]
    try:
        import datasets

        source = datasets.Dataset.from_list(rows)
    except ImportError:
        source = rows
    tasks = load_tasks(source)
    assert [t.instance_id for t in tasks] == ["o__r-0", "o__r-1", "o__r-2"]
    assert load_tasks(tasks) == tasks
    with pytest.raises(TaskFormatError, match="row 1: missing field"):
        load_tasks([row(0), {"instance_id": "x"}])


def test_repository_sources(tmp_path: Path, toy_task: Task) -> None:
    rows = [row(1, repo="toy/calc"), row(2, repo="other/repo")]
    bundles = tmp_path / "repos"
    bundles.mkdir()
    (bundles / "toy__calc.bundle").write_bytes(b"")
    tasks = load_tasks(rows[:1], repos=bundles)
    assert tasks[0].repo_source == str((bundles / "toy__calc.bundle").resolve())
    # a directory must hold every task's repository: the error names it and the paths tried
    lacks = r"no repository other/repo \(task o__r-2\); tried .*other__repo\.bundle"
    with pytest.raises(TaskRepositoryError, match=lacks):
        load_tasks(rows, repos=bundles)
    tasks = load_tasks(rows, repos={"other/repo": toy_task.repo_source})
    assert tasks[1].repo_source == toy_task.repo_source
    # A relative repo_source in a task file is relative to that file.
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(row(3, repo_source="repos/toy__calc.bundle")) + "\n")
    assert load_tasks(path)[0].repo_source == str((bundles / "toy__calc.bundle").resolve())


def test_unknown_files() -> None:
    with pytest.raises(FileNotFoundError):
        load_tasks("/nonexistent/tasks.jsonl")
    with pytest.raises(ValueError, match="unknown task file type"):
        load_tasks(__file__)
    assert set(REQUIRED_FIELDS) <= set(row())


@pytest.mark.slow
def test_bundle_build_is_reproducible(tmp_path: Path) -> None:
    """Rebuilding from the sources gives the shipped base commits and PASS_TO_PASS lists."""
    from swerepair.envs.bundled import build

    if not (build.HERE / "projects").is_dir():
        pytest.skip("the task sources are not installed (only in the repository)")
    rows = build.build(tmp_path)
    shipped = {t.instance_id: t for t in load_tasks("bundled")}
    assert {r["instance_id"] for r in rows} == set(shipped)
    for r in rows:
        t = shipped[r["instance_id"]]
        assert r["base_commit"] == t.base_commit
        assert tuple(r["PASS_TO_PASS"]) == t.PASS_TO_PASS
        assert r["patch"] == t.patch and r["test_patch"] == t.test_patch
