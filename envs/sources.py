"""Task sources: the published SWE datasets' rows as `Task`s, ready for the Docker sandbox.

`load_tasks` (``swerepair.envs.tasks``) reads a file (``.jsonl``, ``.json``, ``.parquet``) or a
``datasets.Dataset``; each row goes through `convert_row`, which recognises the dataset by its
columns (or is told it: ``dataset=`` / ``--source``) and turns it into a task row:

- ``swebench``: princeton-nlp/SWE-bench, princeton-nlp/SWE-bench_Lite,
  princeton-nlp/SWE-bench_Verified. Columns: instance_id, repo, base_commit, patch, test_patch,
  problem_statement, hints_text, created_at, version, environment_setup_commit, FAIL_TO_PASS,
  PASS_TO_PASS (JSON strings). Image: ``swebench/sweb.eval.x86_64.<id>``.
- ``swegym``: SWE-Gym/SWE-Gym (and -Lite). The same columns. Image:
  ``xingyaoww/sweb.eval.x86_64.<id>``.
- ``swesmith``: SWE-bench/SWE-smith. Columns: instance_id, repo
  (``swesmith/<owner>__<name>.<commit8>``), patch (the bug), FAIL_TO_PASS, PASS_TO_PASS (lists),
  image_name, problem_statement. Image: ``image_name``.
- ``r2egym``: R2E-Gym rows that carry the SWE-bench test columns (``repo_name`` and
  ``commit_hash`` accepted for ``repo`` and ``base_commit``) and ``docker_image``, the image.

Every converted task gets ``extra["dataset"]`` (the row's own ``dataset`` column, else the
source's name), ``extra["harness_spec"]`` (the fields of `swerepair.rewards.harness.spec_for`
(repo, version), a plain mapping so the task stays JSON) and ``extra["image"]``
(`swerepair.envs.sandbox.docker.images.image_for`: an ``image`` column wins, then
``image_name``/``docker_image``, then the dataset's naming rule). The verifier then grades it
with the repository's own runner (`swerepair.rewards.verifier.harness`).

SWE-smith rows differ: ``patch`` is the diff that *introduces* the bug (SWE-smith's "Bug
Patch"), there is no ``base_commit`` and no ``test_patch`` (the image holds the repository at
the clean commit, the tests are in it). Converted: ``patch`` becomes the reversed diff (the
fix), the row's diff is kept as ``extra["setup_patch"]`` (the Docker sandbox applies it at the
start, unless the checkout already shows it, so the workspace shows the bug), ``base_commit``
is the row's if it has one, else ``""`` (the image's checkout as it is), and ``test_patch`` is
empty.

R2E-Gym's own schema (``expected_output_json``, ``parsed_commit_content``, tests under
``/r2e_tests`` in the image) names no FAIL_TO_PASS/PASS_TO_PASS: such a row is refused with a
message that says so.

Nothing is downloaded: get the files with the ``datasets`` library or from the Hub yourself
(``datasets.load_dataset("princeton-nlp/SWE-bench_Verified", split="test")`` and pass the
object, or save it ``to_json``/``to_parquet``). docs/tasks.md has the details.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from swerepair.core import Task
from swerepair.envs.sandbox.docker.images import SWEGYM_REPOSITORIES, NoImageError, image_for
from swerepair.rewards.harness import spec_for

__all__ = [
    "DATASET_NAMES",
    "HUB_DATASETS",
    "SOURCES",
    "attach_image",
    "convert_row",
    "detect_source",
    "reverse_patch",
]

#: The sources `convert_row` knows (``--source``), plus ``auto`` (detect) and ``plain``.
SOURCES = ("swebench", "swegym", "swesmith", "r2egym")

#: ``extra["dataset"]`` of a converted row whose own columns name none.
DATASET_NAMES = {"swebench": "SWE-bench", "swegym": "SWE-Gym", "swesmith": "SWE-smith", "r2egym": "R2E-Gym"}

#: Where users get each source's files (downloaded by them, never by swerepair).
HUB_DATASETS = {
    "swebench": ("princeton-nlp/SWE-bench", "princeton-nlp/SWE-bench_Lite", "princeton-nlp/SWE-bench_Verified"),
    "swegym": ("SWE-Gym/SWE-Gym", "SWE-Gym/SWE-Gym-Lite"),
    "swesmith": ("SWE-bench/SWE-smith",),
    "r2egym": ("R2E-Gym/R2E-Gym-Subset", "R2E-Gym/R2E-Gym-Lite"),
}

_R2E_NATIVE = ("expected_output_json", "parsed_commit_content", "execution_result_content")


def _dataset_source(name: Any) -> str | None:
    if not isinstance(name, str):
        return None
    key = re.sub(r"[^a-z0-9]", "", name.lower())
    for needle, source in (("smith", "swesmith"), ("r2e", "r2egym"), ("swegym", "swegym"), ("swebench", "swebench")):
        if needle in key:
            return source
    return None


def detect_source(row: Mapping[str, Any]) -> str | None:
    """The source a row's columns say it is from, or None for a plain task row.

    >>> detect_source({"instance_id": "x", "image_name": "swesmith.x86_64.a_1776_b.c0ffee12", "patch": ""})
    'swesmith'
    >>> detect_source({"repo": "python/mypy", "environment_setup_commit": "c", "version": "1.4"})
    'swegym'
    >>> detect_source({"repo": "django/django", "environment_setup_commit": "c", "version": "3.0"})
    'swebench'
    >>> detect_source({"repo": "me/mine", "base_commit": "c", "version": "0.1"}) is None
    True
    """
    named = _dataset_source(row.get("dataset"))
    if named is not None:
        return named
    repo = str(row.get("repo") or row.get("repo_name") or "")
    if "image_name" in row and (not row.get("base_commit") or repo.startswith("swesmith/")):
        return "swesmith"
    if "docker_image" in row and any(k in row for k in ("repo_name", "commit_hash", *_R2E_NATIVE)):
        return "r2egym"
    if "environment_setup_commit" in row:
        return "swegym" if repo.lower() in SWEGYM_REPOSITORIES else "swebench"
    return None


_HUNK = re.compile(r"^@@ -(\d+(?:,\d+)?) \+(\d+(?:,\d+)?) @@(.*)$")


def reverse_patch(patch: str) -> str:
    """The diff that undoes `patch` (``git apply -R`` as text): what SWE-smith's bug diff becomes
    as the fix. In each run of changed lines the removed lines come first, as git writes them,
    so that the reversed diff is the one ``git diff`` gives for the fix. Binary sections cannot
    be reversed and are refused.

    >>> print(reverse_patch("diff --git a/m.py b/m.py\\n--- a/m.py\\n+++ b/m.py\\n@@ -1 +1 @@\\n-x = 1\\n+x = 2\\n"))
    diff --git a/m.py b/m.py
    --- a/m.py
    +++ b/m.py
    @@ -1 +1 @@
    -x = 2
    +x = 1
    <BLANKLINE>
    """
    out: list[str] = []
    header = False
    minus: str | None = None
    removed: list[str] = []
    added: list[str] = []
    last: list[str] | None = None

    def flush() -> None:
        nonlocal last
        out.extend(removed)
        out.extend(added)
        removed.clear()
        added.clear()
        last = None

    for line in patch.splitlines(keepends=True):
        body, nl = (line[:-1], "\n") if line.endswith("\n") else (line, "")
        if not header and body.startswith(("+", "-")) and not body.startswith("diff --git "):
            last = removed if body.startswith("+") else added  # the sides swap
            last.append(("-" if body.startswith("+") else "+") + body[1:] + nl)
            continue
        if not header and body.startswith("\\") and last is not None:
            last.append(line)  # "\ No newline at end of file" stays with its line
            continue
        flush()
        if body.startswith("diff --git "):
            header = True
            m = re.match(r"^diff --git a/(.*) b/(.*)$", body)
            out.append(f"diff --git a/{m[2]} b/{m[1]}{nl}" if m else line)
            continue
        if header:
            if body.startswith("--- "):
                minus = body[4:]
                continue
            if body.startswith("+++ ") and minus is not None:
                old, new = minus, body[4:]
                out.append(f"--- {'a/' + new[2:] if new.startswith('b/') else new}\n")
                out.append(f"+++ {'b/' + old[2:] if old.startswith('a/') else old}{nl}")
                minus = None
                continue
            if body.startswith(("GIT binary patch", "Binary files ")):
                raise ValueError("a binary change cannot be reversed as text")
            swapped = _swap_header(body)
            if swapped is not None:
                out.append(swapped + nl)
                continue
        m = _HUNK.match(body)
        if m:
            header = False
            out.append(f"@@ -{m[2]} +{m[1]} @@{m[3]}{nl}")
        else:
            out.append(line)
    flush()
    return "".join(out)


_SWAPS = (
    ("new file mode ", "deleted file mode "),
    ("old mode ", "new mode "),
    ("rename from ", "rename to "),
    ("copy from ", "copy to "),
)


def _swap_header(line: str) -> str | None:
    for a, b in _SWAPS:
        if line.startswith(a):
            return b + line[len(a) :]
        if line.startswith(b):
            return a + line[len(b) :]
    m = re.match(r"^index ([0-9a-f]+)\.\.([0-9a-f]+)(.*)$", line)
    if m:
        return f"index {m[2]}..{m[1]}{m[3]}"
    return None


def _spec_fields(repo: str, version: Any) -> dict[str, Any]:
    spec = spec_for(repo, None if version is None else str(version))
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(spec).items()}


def convert_row(row: Mapping[str, Any], source: str | None = "auto") -> tuple[dict[str, Any], str | None]:
    """`row` as a task row (`swerepair.envs.tasks.task_from_row`'s columns) and its source.

    `source` is ``"auto"`` (detect, `detect_source`), one of `SOURCES`, or ``None``/``"plain"``
    (the row is used as it is). Raises `ValueError` naming what is wrong.
    """
    if not isinstance(row, Mapping):
        raise ValueError(f"a task row must be an object, got {type(row).__name__}")
    if source in (None, "plain"):
        return dict(row), None
    if source == "auto":
        found = detect_source(row)
        if found is None:
            return dict(row), None
        source = found
    if source not in SOURCES:
        raise ValueError(f"unknown task source {source!r}; choose one of auto, plain, {', '.join(SOURCES)}")
    out = dict(row)
    if source == "swesmith":
        for name in ("instance_id", "repo", "patch", "FAIL_TO_PASS", "PASS_TO_PASS"):
            if out.get(name) is None:
                raise ValueError(f"a SWE-smith row needs {name}")
        if not isinstance(out["patch"], str):
            raise ValueError("patch must be a string")
        if "setup_patch" not in out:
            out["setup_patch"] = out["patch"]
            out["patch"] = reverse_patch(out["patch"])
        out.setdefault("base_commit", "")
        out["base_commit"] = out["base_commit"] or ""
        out["test_patch"] = out.get("test_patch") or ""
        out["problem_statement"] = out.get("problem_statement") or ""
    elif source == "r2egym":
        if "repo" not in out and "repo_name" in out:
            out["repo"] = out["repo_name"]
        if "base_commit" not in out and "commit_hash" in out:
            out["base_commit"] = out["commit_hash"]
        if "FAIL_TO_PASS" not in out and any(k in out for k in _R2E_NATIVE):
            raise ValueError(
                "an R2E-Gym row in its own schema (expected_output_json, parsed_commit_content; tests in the "
                "image's /r2e_tests) names no FAIL_TO_PASS/PASS_TO_PASS: convert it to the SWE-bench columns"
            )
        if not out.get("docker_image") and not out.get("image"):
            raise ValueError("an R2E-Gym row must name its image in a 'docker_image' column")
    if not isinstance(out.get("dataset"), str) or not out["dataset"].strip():
        out["dataset"] = DATASET_NAMES[source]
    if isinstance(out.get("repo"), str) and "harness_spec" not in out:
        out["harness_spec"] = _spec_fields(out["repo"], out.get("version"))
    return out, source


def attach_image(task: Task) -> Task:
    """`task` with ``extra["image"]`` filled by `image_for` (unchanged when no rule applies)."""
    if task.extra.get("image"):
        return task
    try:
        image = image_for(task)
    except NoImageError:
        return task
    return dataclasses.replace(task, extra={**task.extra, "image": image})
