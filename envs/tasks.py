"""Task sets in the SWE-bench schema: loading, validation of rows, repository sources.

A task set is any of:

- ``"bundled"``: the tasks that ship with swerepair (small Python projects written for it);
- ``"bundled-synth"``: the tasks synthesized from those projects (docs/synthesis.md);
- a path to a ``.jsonl`` (or ``.jsonl.gz``), ``.json`` (a list of rows) or ``.parquet`` file;
- a Hugging Face ``datasets.Dataset`` (or anything iterable over row dicts);
- a list of `Task` objects or row dicts.

Required columns: ``instance_id, repo, base_commit, problem_statement, patch, test_patch,
FAIL_TO_PASS, PASS_TO_PASS``. The last two may be lists or the JSON-encoded strings that the
published datasets use. Other columns are kept in `Task.extra`.

Rows of the published SWE datasets (SWE-bench full/Lite/Verified, SWE-Gym, SWE-smith, R2E-Gym
rows with the SWE-bench test columns) are recognised by their columns, or named with
``dataset=``, and converted by `swerepair.envs.sources` (dataset name, harness spec, Docker
image; docs/tasks.md).

Where a task's repository comes from: a ``repo_source`` column (a local git checkout or a
``.bundle`` file; relative paths are relative to the task file), or the ``repos=`` argument:
a mapping ``{"owner/name": path}`` or a directory holding ``owner__name.bundle`` files,
``owner__name.git`` bare clones or ``owner__name/`` checkouts (`repo_candidates`), which must
hold every task's repository. Nothing is ever downloaded.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from swerepair.core import Task

__all__ = ["REQUIRED_FIELDS", "Task", "TaskFormatError", "load_tasks", "repo_candidates", "task_from_row"]

REQUIRED_FIELDS = (
    "instance_id",
    "repo",
    "base_commit",
    "problem_statement",
    "patch",
    "test_patch",
    "FAIL_TO_PASS",
    "PASS_TO_PASS",
)

TaskSource = str | Path | Iterable[Any]


class TaskFormatError(ValueError):
    """A task row is malformed. The message names the file and the line (or row index)."""


def _test_ids(value: Any, column: str) -> tuple[str, ...]:
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else []
        except json.JSONDecodeError as exc:
            raise ValueError(f"{column} is a string but not a JSON list: {exc.msg}") from None
    if hasattr(value, "tolist"):  # numpy / pyarrow arrays
        value = value.tolist()
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{column} must be a list of test ids (strings)")
    return tuple(value)


def task_from_row(row: Mapping[str, Any], *, base_dir: Path | None = None) -> Task:
    """Build a `Task` from one SWE-bench row; raise `ValueError` naming what is wrong."""
    if not isinstance(row, Mapping):
        raise ValueError(f"a task row must be an object, got {type(row).__name__}")
    missing = [f for f in REQUIRED_FIELDS if f not in row or row[f] is None]
    if missing:
        raise ValueError(f"missing field(s) {', '.join(missing)}")
    for name in ("instance_id", "repo", "base_commit", "problem_statement", "patch", "test_patch"):
        if not isinstance(row[name], str):
            raise ValueError(f"{name} must be a string, got {type(row[name]).__name__}")
    if not row["instance_id"].strip():
        raise ValueError("instance_id is empty")
    source = row.get("repo_source")
    if source is not None:
        if not isinstance(source, str):
            raise ValueError("repo_source must be a string path")
        if base_dir is not None and not Path(source).is_absolute():
            source = str((base_dir / source).resolve())
    extra = {k: v for k, v in row.items() if k not in REQUIRED_FIELDS and k != "repo_source"}
    return Task(
        instance_id=row["instance_id"],
        repo=row["repo"],
        base_commit=row["base_commit"],
        problem_statement=row["problem_statement"],
        patch=row["patch"],
        test_patch=row["test_patch"],
        FAIL_TO_PASS=_test_ids(row["FAIL_TO_PASS"], "FAIL_TO_PASS"),
        PASS_TO_PASS=_test_ids(row["PASS_TO_PASS"], "PASS_TO_PASS"),
        repo_source=source,
        extra=extra,
    )


def _rows_jsonl(path: Path) -> Iterable[tuple[str, Any]]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield f"{path}:{lineno}", json.loads(line)
            except json.JSONDecodeError as exc:
                raise TaskFormatError(f"{path}:{lineno}: invalid JSON: {exc.msg}") from None


def _rows_json(path: Path) -> Iterable[tuple[str, Any]]:
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TaskFormatError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
    if isinstance(data, Mapping):
        data = [data]
    if not isinstance(data, list):
        raise TaskFormatError(f"{path}: expected a list of task objects")
    # Report the line where each row starts, found by re-decoding positions.
    decoder = json.JSONDecoder()
    starts: list[int] = []
    pos = text.index("[") + 1 if text.lstrip().startswith("[") else 0
    for _ in data:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        starts.append(text.count("\n", 0, pos) + 1)
        try:
            _, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            break
    for i, row in enumerate(data):
        where = f"{path}:{starts[i]}" if i < len(starts) else f"{path}[{i}]"
        yield f"{where} (row {i})", row


def _rows_parquet(path: Path) -> Iterable[tuple[str, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("reading Parquet task files needs pyarrow: pip install 'swerepair[data]'") from exc
    table = pq.read_table(path)
    for i, row in enumerate(table.to_pylist()):
        yield f"{path}: row {i}", row


#: The task sets that ship with swerepair, by name: their files in ``envs/bundled/data``.
BUNDLED_SETS = {"bundled": "tasks.jsonl", "bundled-synth": "synth.jsonl.gz"}


def _bundled_path(name: str = "bundled") -> Path:
    return Path(__file__).resolve().parent / "bundled" / "data" / BUNDLED_SETS[name]


def repo_candidates(root: str | Path, repo: str) -> list[Path]:
    """Where a repository directory (``repos=``) may hold `repo` (``owner/name``), in the order
    they are tried: ``owner__name.bundle``, ``owner__name.git`` (a bare clone), ``owner__name/``,
    ``owner/name.git`` and ``owner/name/``."""
    root = Path(root)
    stem = repo.replace("/", "__")
    return [root / f"{stem}.bundle", root / f"{stem}.git", root / stem, root / f"{repo}.git", root / repo]


def _attach_repos(tasks: list[Task], repos: Mapping[str, str | Path] | str | Path | None) -> list[Task]:
    """`tasks` with their ``repo_source`` taken from `repos`.

    A directory must hold every task's repository (`repo_candidates`): a task it lacks is a
    `TaskRepositoryError` naming the directory and the paths tried, even when the row names its
    own source, so that a wrong ``--repos`` is never silently ignored. A mapping may leave
    repositories out (their rows keep their own ``repo_source``)."""
    if repos is None:
        return tasks
    from swerepair.envs.sandbox.workspace import TaskRepositoryError

    if not isinstance(repos, Mapping):
        root = Path(repos)
        if not root.is_dir():
            raise TaskRepositoryError(f"repos directory {root} does not exist or is not a directory")
    out = []
    for task in tasks:
        if isinstance(repos, Mapping):
            found = repos.get(task.repo)
        else:
            candidates = repo_candidates(root, task.repo)
            found = next((c for c in candidates if c.exists()), None)
            if found is None:
                tried = ", ".join(str(c) for c in candidates)
                raise TaskRepositoryError(
                    f"repos directory {root} holds no repository {task.repo} (task {task.instance_id}); tried {tried}"
                )
        if found is not None:
            task = Task(**{**task.__dict__, "repo_source": str(Path(found).resolve())})
        out.append(task)
    return out


def load_tasks(
    source: TaskSource = "bundled",
    *,
    repos: Mapping[str, str | Path] | str | Path | None = None,
    dataset: str | None = "auto",
) -> list[Task]:
    """Load a task set (see the module docstring for what `source` and `repos` may be).

    `dataset` says which published schema the rows are in: ``"auto"`` (recognised by their
    columns), ``"swebench"``, ``"swegym"``, ``"swesmith"``, ``"r2egym"``, or ``"plain"``/None
    (taken as they are); see `swerepair.envs.sources`.

    Raises `TaskFormatError` naming the file and line of the first malformed row, and
    `ValueError` for duplicate instance ids.

    >>> tasks = load_tasks("bundled")
    >>> len(tasks) >= 12 and all(t.FAIL_TO_PASS for t in tasks)
    True
    """
    rows: Iterable[tuple[str, Any]]
    base_dir: Path | None = None
    if isinstance(source, (str, Path)):
        path = _bundled_path(str(source)) if str(source) in BUNDLED_SETS else Path(source)
        if not path.exists():
            raise FileNotFoundError(f"task file {path} does not exist")
        base_dir = path.resolve().parent
        suffix = path.suffix.lower()
        if suffix == ".jsonl" or path.name.lower().endswith(".jsonl.gz"):
            rows = _rows_jsonl(path)
        elif suffix == ".json":
            rows = _rows_json(path)
        elif suffix == ".parquet":
            rows = _rows_parquet(path)
        else:
            raise TaskFormatError(f"{path}: unknown task file type (use .jsonl, .jsonl.gz, .json or .parquet)")
    else:
        rows = ((f"row {i}", row) for i, row in enumerate(source))
    from swerepair.envs.sources import attach_image, convert_row

    tasks: list[Task] = []
    seen: dict[str, str] = {}
    for where, row in rows:
        if isinstance(row, Task):
            task = row
        else:
            try:
                converted, kind = convert_row(row, dataset)
                task = task_from_row(converted, base_dir=base_dir)
            except ValueError as exc:
                raise TaskFormatError(f"{where}: {exc}") from None
            if kind is not None:
                task = attach_image(task)
        if task.instance_id in seen:
            raise TaskFormatError(
                f"{where}: duplicate instance_id {task.instance_id!r} (first at {seen[task.instance_id]})"
            )
        seen[task.instance_id] = where
        tasks.append(task)
    return _attach_repos(tasks, repos)
