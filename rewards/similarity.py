"""Patch-similarity rewards: how close the agent's diff is to the real fix.

Every reward here is pure, deterministic and total: any text in, a float in [0, 1] out, never
an exception. Each is called as ``reward(patch, task)`` where `task` is any object (or dict)
with the SWE-bench fields ``patch`` and ``test_patch``.

Similarities are exact LCS-based ratios: rapidfuzz's normalised Indel similarity,
``1 - indel_distance(a, b) / (len(a) + len(b)) = 2 * LCS(a, b) / (len(a) + len(b))``, computed
bit-parallel in C. ``difflib.SequenceMatcher.ratio()`` has the same form but finds its common
subsequence greedily (longest block first, Ratcliff/Obershelp), so it is only a lower bound,
even with ``autojunk=False`` (``"cbc"`` vs ``"bac"``: difflib 0.33, exact 0.67); with its default
``autojunk=True`` it also treats frequent characters of long strings as junk and under-scores
long patches badly. Neither is used.

**Sides.** The fix side and the test side of a patch are decided with the task's gold: a file
is on the test side if the gold ``test_patch`` touches it, or if its path looks like a test
(`is_test_path`), unless the gold ``patch`` (the fix) touches it, which always puts it on the
fix side. So a fix inside ``sympy/testing/`` is a fix, a fixture the test patch adds outside
``tests/`` is a test, and every reward scores the gold patch itself exactly 1.
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
    "swe_rl_similarity",
    "testing_alignment",
]

#: A reward: ``(patch, task) -> float in [0, 1]``.
RewardFn = Callable[[str, Any], float]


def _field(task: Any, name: str) -> str:
    value = task.get(name) if isinstance(task, dict) else getattr(task, name, None)
    return value if isinstance(value, str) else ""


def _files(text: Any, side: bool | None) -> dict[str, FilePatch]:
    """Files of a patch, keyed by path: test files (`side=True`), others (False) or all (None)."""
    out: dict[str, FilePatch] = {}
    for fp in parse_patch(text if isinstance(text, str) else ""):
        if side is None or is_test_path(fp.path) == side:
            out[fp.path] = fp
    return out


def _gold(task: Any) -> tuple[dict[str, FilePatch], dict[str, FilePatch]]:
    """The gold fix's files and the gold test patch's files."""
    return _files(_field(task, "patch"), None), _files(_field(task, "test_patch"), None)


def _split(
    patch: Any, fix: dict[str, FilePatch], tests: dict[str, FilePatch]
) -> tuple[dict[str, FilePatch], dict[str, FilePatch]]:
    """The agent's files on the fix side and on the test side (see the module docstring)."""
    fix_side: dict[str, FilePatch] = {}
    test_side: dict[str, FilePatch] = {}
    for path, fp in _files(patch, None).items():
        on_test_side = path not in fix and (path in tests or is_test_path(path))
        (test_side if on_test_side else fix_side)[path] = fp
    return fix_side, test_side


def _mean_file_ratio(mine: dict[str, FilePatch], ref: dict[str, FilePatch], strip_comments: bool) -> float:
    union = sorted(set(mine) | set(ref))  # sorted: the float sum must not depend on set order
    if not union:
        return 1.0
    total = 0.0
    for path in union:
        if path in mine and path in ref:
            a = normalize_file(mine[path], strip_comments=strip_comments)
            b = normalize_file(ref[path], strip_comments=strip_comments)
            total += Indel.normalized_similarity(a, b)
    return total / len(union)


def per_file_similarity(patch: str, gold: str, *, tests: bool | None = None, strip_comments: bool = False) -> float:
    """Mean, over the union of files either patch touches, of the LCS ratio of each file's
    normalised change; a file only one side touched scores 0. `tests` restricts both patches
    to test files (True) or non-test files (False). Two patches with no files score 1.

    >>> x, y = "--- a/x\\n+++ b/x\\n@@ -1 +1 @@\\n-a\\n+b\\n", "--- a/y\\n+++ b/y\\n@@ -1 +1 @@\\n-a\\n+b\\n"
    >>> per_file_similarity(x, y), per_file_similarity(x, x)
    (0.0, 1.0)
    """
    return _mean_file_ratio(_files(patch, tests), _files(gold, tests), strip_comments)


def functional_similarity(patch: str, task: Any, *, strip_comments: bool = False) -> float:
    """R_functional: per-file similarity of the non-test changes to the gold ``task.patch``.

    The default reward of SweRepair-v0: the gold patch scores exactly 1, an empty patch 0
    (against a non-empty gold), and edits to test files neither help nor hurt.

    >>> class T: patch = "--- a/m.py\\n+++ b/m.py\\n@@ -1 +1 @@\\n-x = 1\\n+x = 2\\n"
    >>> functional_similarity(T.patch, T()), functional_similarity("", T())
    (1.0, 0.0)
    """
    if not isinstance(patch, str):
        return 0.0
    fix, tests = _gold(task)
    return _mean_file_ratio(_split(patch, fix, tests)[0], fix, strip_comments)


def testing_alignment(patch: str, task: Any, *, strip_comments: bool = False) -> float:
    """R_testing: per-file similarity of the agent's test changes to the gold ``task.test_patch``.

    Not symmetric in general: which side counts is decided by the gold patch.

    >>> class T: test_patch = "--- a/tests/test_m.py\\n+++ b/tests/test_m.py\\n@@ -1 +1,2 @@\\n x\\n+y\\n"
    >>> testing_alignment(T.test_patch, T()), testing_alignment("", T())
    (1.0, 0.0)
    """
    if not isinstance(patch, str):
        return 0.0
    fix, tests = _gold(task)
    return _mean_file_ratio(_split(patch, fix, tests)[1], tests, strip_comments)


def file_targeting(patch: str, task: Any) -> float:
    """R_files: Jaccard overlap |A∩B| / |A∪B| of the non-test files changed by `patch` (A) and
    by the gold ``task.patch`` (B); 1 when neither changes any.

    Jaccard rather than recall (|A∩B| / |B|): editing every file in the repository would
    have full recall; under Jaccard each unrelated file costs as much as a missed one.
    Rather than F1 (Dice): Jaccard is a metric and reads as "fraction of the files involved
    that both agree on".

    >>> class T: patch = "--- a/m.py\\n+++ b/m.py\\n@@ -1 +1 @@\\n-x\\n+y\\n"
    >>> file_targeting(T.patch, T()), file_targeting(T.patch + T.patch.replace("m.py", "n.py"), T())
    (1.0, 0.5)
    """
    if not isinstance(patch, str):
        return 0.0
    fix, tests = _gold(task)
    mine = set(_split(patch, fix, tests)[0])
    union = mine | set(fix)
    return len(mine & set(fix)) / len(union) if union else 1.0


def patch_similarity(
    patch: str,
    task: Any,
    *,
    w_files: float = 0.2,
    w_functional: float = 0.4,
    w_testing: float = 0.4,
) -> float:
    """R_total = w_files R_files + w_functional R_functional + w_testing R_testing, divided by
    the sum of the weights of the components that apply.

    A component applies when its gold is non-empty: R_testing does not apply to a task without
    a ``test_patch``. So the gold patch plus the gold test patch score exactly 1, and an empty
    patch scores 0 whenever the task has any gold.

    >>> class T:
    ...     patch = "--- a/m.py\\n+++ b/m.py\\n@@ -1 +1 @@\\n-x\\n+y\\n"
    ...     test_patch = "--- a/tests/test_m.py\\n+++ b/tests/test_m.py\\n@@ -1 +1 @@\\n-a\\n+b\\n"
    >>> patch_similarity(T.patch + T.test_patch, T()), round(patch_similarity(T.patch, T()), 3)
    (1.0, 0.6)
    """
    fix, tests = _gold(task)
    parts = []
    if fix:
        parts += [(w_files, file_targeting(patch, task)), (w_functional, functional_similarity(patch, task))]
    if tests:
        parts.append((w_testing, testing_alignment(patch, task)))
    weights = sum(w for w, _ in parts)
    if weights <= 0:
        return 1.0 if isinstance(patch, str) and not _files(patch, None) else 0.0
    return min(1.0, max(0.0, sum(w * r for w, r in parts) / weights))


def swe_rl_similarity(patch: str, task: Any, *, unparseable: float = 0.0) -> float:
    """A single score in the style of SWE-RL: the LCS ratio of the whole normalised non-test
    patch (files in path order) against the gold ``task.patch``.

    `unparseable` is what a non-empty patch that holds no recognisable file change scores
    (SWE-RL gives a format penalty; rewards here stay in [0, 1], so it is clamped to it).

    >>> class T: patch = "--- a/m.py\\n+++ b/m.py\\n@@ -1 +1 @@\\n-x = 1\\n+x = 2\\n"
    >>> swe_rl_similarity(T.patch, T()), swe_rl_similarity("garbage", T(), unparseable=0.1)
    (1.0, 0.1)
    """
    if not isinstance(patch, str):
        return 0.0
    if patch.strip() and not _files(patch, None):
        return min(1.0, max(0.0, unparseable))
    ref, tests = _gold(task)
    mine = _split(patch, ref, tests)[0]
    if not mine and not ref:
        return 1.0
    a = "\n".join(f"{p}\n{normalize_file(mine[p])}" for p in sorted(mine))
    b = "\n".join(f"{p}\n{normalize_file(ref[p])}" for p in sorted(ref))
    return Indel.normalized_similarity(a, b)


# The name starts with "test": keep pytest from collecting it where users import it into tests.
testing_alignment.__test__ = False  # type: ignore[attr-defined]
