"""Patch-similarity rewards: how close the agent's diff is to the real fix.

Every reward here is pure, deterministic and total: any text in, a float in [0, 1] out, never
an exception. Each is called as ``reward(patch, task)`` where `task` is any object with the
SWE-bench fields as attributes (``patch``, ``test_patch``, ...).

Similarities are exact LCS-based ratios (rapidfuzz's normalised Indel similarity, equal to
``difflib.SequenceMatcher(autojunk=False).ratio()`` on the same strings but exact and fast).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rapidfuzz.distance import Indel
from swerepair.rewards.patch import FilePatch, is_test_path, normalize_file, parse_patch

__all__ = [
    "RewardFn",
    "file_targeting",
    "functional_similarity",
    "patch_similarity",
    "per_file_similarity",
    "testing_alignment",
]

RewardFn = Callable[[str, Any], float]


def _field(task: Any, name: str) -> str:
    value = getattr(task, name, None)
    if value is None and isinstance(task, dict):
        value = task.get(name)
    return value if isinstance(value, str) else ""


def _files(text: str, *, tests: bool | None) -> dict[str, FilePatch]:
    out: dict[str, FilePatch] = {}
    for fp in parse_patch(text):
        if tests is None or is_test_path(fp.path) == tests:
            out[fp.path] = fp
    return out


def per_file_similarity(patch: str, gold: str, *, tests: bool | None = None, strip_comments: bool = False) -> float:
    """Mean over the union of touched files of the LCS ratio of their normalised changes.

    A file only one side touched scores 0. Two patches that touch nothing (after filtering
    by `tests`) score 1 if both are empty, else 0.
    """
    mine, ref = _files(patch, tests=tests), _files(gold, tests=tests)
    union = set(mine) | set(ref)
    if not union:
        return 1.0 if not patch.strip() and not gold.strip() else 0.0
    total = 0.0
    for path in union:
        if path in mine and path in ref:
            a = normalize_file(mine[path], strip_comments=strip_comments)
            b = normalize_file(ref[path], strip_comments=strip_comments)
            total += Indel.normalized_similarity(a, b)
    return total / len(union)


def _side_similarity(patch: Any, gold: str, *, tests: bool) -> float:
    """`per_file_similarity` over one side (test or non-test files); when neither patch
    touches that side, 1 if the gold patch is empty and 0 otherwise."""
    if not isinstance(patch, str):
        return 0.0
    if not _files(gold, tests=tests) and not _files(patch, tests=tests):
        return 1.0 if not gold.strip() else 0.0
    return per_file_similarity(patch, gold, tests=tests)


def functional_similarity(patch: str, task: Any) -> float:
    """R_functional: similarity of the non-test files' changes to the gold ``task.patch``.

    >>> class T: patch = "--- a/m.py\\n+++ b/m.py\\n@@ -1 +1 @@\\n-x = 1\\n+x = 2\\n"
    >>> functional_similarity(T.patch, T()), functional_similarity("", T())
    (1.0, 0.0)
    """
    return _side_similarity(patch, _field(task, "patch"), tests=False)


def testing_alignment(patch: str, task: Any) -> float:
    """R_testing: similarity of the test files' changes to the gold ``task.test_patch``.

    >>> class T: test_patch = "--- a/tests/test_m.py\\n+++ b/tests/test_m.py\\n@@ -1 +1,2 @@\\n x\\n+y\\n"
    >>> testing_alignment(T.test_patch, T())
    1.0
    """
    return _side_similarity(patch, _field(task, "test_patch"), tests=True)


def file_targeting(patch: str, task: Any) -> float:
    """R_files: Jaccard overlap of the non-test files changed by `patch` and by ``task.patch``.

    Jaccard (|A∩B| / |A∪B|) rather than recall: touching unrelated files costs as much as
    missing the right one, so editing everything does not pay.

    >>> class T: patch = "--- a/m.py\\n+++ b/m.py\\n@@ -1 +1 @@\\n-x\\n+y\\n"
    >>> file_targeting(T.patch, T())
    1.0
    """
    if not isinstance(patch, str):
        return 0.0
    mine = set(_files(patch, tests=False))
    ref = set(_files(_field(task, "patch"), tests=False))
    if not mine | ref:
        return 0.0
    return len(mine & ref) / len(mine | ref)


def patch_similarity(
    patch: str,
    task: Any,
    *,
    w_files: float = 0.2,
    w_functional: float = 0.4,
    w_testing: float = 0.4,
) -> float:
    """R_total = w_files R_files + w_functional R_functional + w_testing R_testing (normalised).

    >>> class T:
    ...     patch = "--- a/m.py\\n+++ b/m.py\\n@@ -1 +1 @@\\n-x\\n+y\\n"
    ...     test_patch = ""
    >>> round(patch_similarity(T.patch, T()), 3)
    1.0
    """
    weights = w_files + w_functional + w_testing
    if weights <= 0:
        return 0.0
    score = (
        w_files * file_targeting(patch, task)
        + w_functional * functional_similarity(patch, task)
        + w_testing * testing_alignment(patch, task)
    )
    return min(1.0, max(0.0, score / weights))


# The name starts with "test": keep pytest from collecting it where users import it into tests.
testing_alignment.__test__ = False  # type: ignore[attr-defined]
