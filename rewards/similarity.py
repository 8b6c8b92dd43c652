"""Patch-similarity rewards: how close the agent's diff is to the real fix.

Every reward here is pure, deterministic and total: any text in, a float in [0, 1] out, never
an exception. Each is called as ``reward(patch, task)`` where `task` is any object (or dict)
with the SWE-bench fields ``patch`` and ``test_patch``.

**The change, not the context.** `functional_similarity`, `testing_alignment` and
`per_file_similarity` compare what the two patches *change*, and use the unchanged context
lines only to line the two changes up. Both patches are diffs against the same base, so for
each file both touch:

1. every hunk of either patch knows some old lines of the base by number (its context ``' '``
   and removed ``'-'`` lines, counted from ``Hunk.old_start``), and covers the half-open span
   of old lines it replaces (a pure insertion: the empty span at its insertion point);
2. the spans of both patches' hunks that overlap or touch merge into regions;
3. for each region r: ``O_r`` is its old text, ``A_r`` the region after the agent's hunks,
   ``G_r`` after the gold's; every line is whitespace-normalised (runs collapsed, stripped,
   blank lines dropped, comments too with ``strip_comments=True``), lines joined by ``"\\n"``;
4. the file scores ``max(0, 1 - Σ_r d(A_r, G_r) / Σ_r d(O_r, G_r))``, d being the exact
   LCS-based insert/delete (Indel) distance: the fraction of the gold's edit that the agent's
   edit closes. Where the gold changes nothing after normalisation (``Σ d(O_r, G_r) == 0``) it
   is 1 if every ``A_r == G_r`` and 0 otherwise.

So the gold scores exactly 1; an edit that changes nothing after normalisation, re-spaces the
buggy line, adds a comment or edits the wrong line scores 0; an edit that closes half the
distance to the gold scores about 0.5; and an extra edit costs as much as a missed one
(``d(A, G)`` counts both). New and deleted files fall out of the same formula (``O`` or ``G``
is empty). A rename, a mode change, a binary change and the creation or deletion of an empty
file count as atomic items that the agent's file either has or has not. A file only one side
touches scores 0; the reward is the mean over the union of files, in path order.

Inconsistent input never raises. Where both patches state an old line, the gold's wins. An
agent hunk whose old lines contradict the gold's at its stated position is moved to the
offset where its old lines agree best with the gold's (hand-written diffs often carry wrong
line numbers; ``git apply`` finds such hunks by their context too), and stays if none agrees
better. Hunks of one patch that overlap are applied in order of position: each puts its new
lines in, so none is lost and none is free.

`context_similarity` keeps the earlier score, the thesis form: the LCS ratio of each file's
whole normalised change text (`normalize_file`, context included). Unchanged context there
dominates, so a no-op edit near the bug scores high; `swe_rl_similarity` (one ratio over the
whole patch, as SWE-RL publishes it) shares that weakness.

Ratios and distances are exact LCS-based ones, computed bit-parallel in C by rapidfuzz:
``Indel.distance(a, b) = len(a) + len(b) - 2 * LCS(a, b)`` and the ratio
``1 - distance / (len(a) + len(b))``. ``difflib.SequenceMatcher.ratio()`` has the same form
but finds its common subsequence greedily (longest block first, Ratcliff/Obershelp), so it is
only a lower bound, even with ``autojunk=False`` (``"cbc"`` vs ``"bac"``: difflib 0.33, exact
0.67); with its default ``autojunk=True`` it also treats frequent characters of long strings
as junk and under-scores long patches badly. Neither is used.

**Sides.** The fix side and the test side of a patch are decided with the task's gold: a file
is on the test side if the gold ``test_patch`` touches it, or if its path looks like a test
(`is_test_path`), unless the gold ``patch`` (the fix) touches it, which always puts it on the
fix side. So a fix inside ``sympy/testing/`` is a fix, a fixture the test patch adds outside
``tests/`` is a test, and every reward scores the gold patch itself exactly 1.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from typing import Any

from rapidfuzz.distance import Indel

from swerepair.rewards.patch import _COMMENT, FilePatch, is_test_path, normalize_file, parse_patch

__all__ = [
    "RewardFn",
    "context_similarity",
    "file_targeting",
    "functional_similarity",
    "patch_similarity",
    "per_file_similarity",
    "swe_rl_similarity",
    "testing_alignment",
]

#: A reward: ``(patch, task) -> float in [0, 1]``.
RewardFn = Callable[[str, Any], float]

#: One hunk, normalised: ``(first old line number, old lines, new lines)``.
_Edit = tuple[int, tuple[str, ...], tuple[str, ...]]

#: Realigning a hunk: old-line texts found more often than this in the gold vote for no offset
#: (blank lines, ``)``, ``else:``), and at most this many of the best-voted offsets are tried.
_MAX_VOTES_PER_LINE = 32
_MAX_OFFSETS_TRIED = 16


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


# --------------------------------------------------------------------------- the change measure


def _edits(fp: FilePatch, strip_comments: bool) -> list[_Edit]:
    """The file's hunks as normalised edits (each line's whitespace runs collapsed, stripped,
    maybe its comment dropped); a hunk without old lines starts after its `old_start`."""
    out: list[_Edit] = []
    for hunk in fp.hunks:
        lines = [line[:1] + _COMMENT.sub("", line[1:]) for line in hunk.lines] if strip_comments else hunk.lines
        old: list[str] = []
        new: list[str] = []
        keep_old, keep_new = old.append, new.append  # one loop, bound methods: the hot path
        for line in lines:
            tag = line[:1]
            if tag == "+":
                keep_new(" ".join(line[1:].split()))
            elif tag == "-":
                keep_old(" ".join(line[1:].split()))
            elif tag != "\\":  # context; "\\ No newline at end of file" is no line
                text = " ".join(line[1:].split())
                keep_old(text)
                keep_new(text)
        out.append((hunk.old_start if old else hunk.old_start + 1, tuple(old), tuple(new)))
    return out


def _learn(known: dict[int, str], edits: list[_Edit]) -> None:
    """Record the old lines `edits` state, by line number; a line already known keeps its text."""
    for start, old, _ in edits:
        for pos, text in enumerate(old, start):
            known.setdefault(pos, text)


def _fit(start: int, old: tuple[str, ...], known: dict[int, str]) -> int:
    """Old lines placed at `start` that agree with `known`, minus those that contradict it."""
    fit = 0
    for j, text in enumerate(old):
        ref = known.get(start + j)
        if ref is not None:
            fit += 1 if ref == text else -1
    return fit


def _contradicts(edit: _Edit, known: dict[int, str]) -> bool:
    start, old, _ = edit
    return any(known.get(pos, text) != text for pos, text in enumerate(old, start))


def _positions(known: dict[int, str]) -> dict[str, list[int]]:
    """Line numbers of each non-blank known text."""
    index: dict[str, list[int]] = {}
    for pos, text in known.items():
        if text:
            index.setdefault(text, []).append(pos)
    return index


def _realign(edit: _Edit, known: dict[int, str], index: dict[str, list[int]]) -> _Edit:
    """`edit` moved to where its old lines fit the gold's best, if that beats where it says it
    is: offsets are voted for by old lines the gold has, tried in order of votes, then of
    closeness; one where every old line agrees with the gold's is taken at once."""
    start, old, new = edit
    votes: dict[int, int] = {}
    for j, text in enumerate(old):
        found = index.get(text, ())
        if len(found) <= _MAX_VOTES_PER_LINE:
            for pos in found:
                votes[pos - j] = votes.get(pos - j, 0) + 1
    best, best_key = start, (_fit(start, old, known), 0, -start)
    tried = sorted(votes.items(), key=lambda kv: (-kv[1], abs(kv[0] - start), kv[0]))[:_MAX_OFFSETS_TRIED]
    for cand, _ in tried:
        key = (_fit(cand, old, known), -abs(cand - start), -cand)
        if key > best_key:
            best, best_key = cand, key
            if key[0] == len(old):
                break
    return (best, old, new)


def _aligned(agent: list[_Edit], gold: list[_Edit], gold_known: dict[int, str]) -> list[_Edit]:
    """The agent's edits, each that contradicts the gold's old lines realigned (`_realign`),
    except copies of the gold's own edits (a gold that contradicts itself still scores 1)."""
    index: dict[str, list[int]] | None = None
    out: list[_Edit] = []
    for edit in agent:
        if _contradicts(edit, gold_known) and edit not in gold:
            index = _positions(gold_known) if index is None else index
            edit = _realign(edit, gold_known, index)
        out.append(edit)
    return out


def _regions(edits: list[_Edit]) -> list[list[int]]:
    """``[start, end)`` of the merged old-line spans of `edits` (sorted by span)."""
    regions: list[list[int]] = []
    for start, old, _ in edits:
        end = start + len(old)
        if regions and start <= regions[-1][1]:
            regions[-1][1] = max(regions[-1][1], end)
        else:
            regions.append([start, end])
    return regions


def _apply(start: int, end: int, edits: list[_Edit], known: dict[int, str]) -> str:
    """The text of old lines ``[start, end)`` after `edits` (sorted, inside the span); edits
    that overlap an earlier one put their new lines in where the earlier one ended."""
    out: list[str] = []
    pos = start
    for first, old, new in edits:
        if first > pos:
            out += [known.get(p, "") for p in range(pos, first)]
            pos = first
        out += new
        pos = max(pos, first + len(old))
    out += [known.get(p, "") for p in range(pos, end)]
    return "\n".join(filter(None, out))


def _by_region(edits: list[_Edit], starts: list[int]) -> list[list[_Edit]]:
    """`edits` grouped by the region (given by its first line) each lies in, order kept."""
    groups: list[list[_Edit]] = [[] for _ in starts]
    for edit in edits:
        groups[bisect_right(starts, edit[0]) - 1].append(edit)
    return groups


def _meta(fp: FilePatch) -> set[str]:
    """What a file's change holds besides its text lines, as atomic items."""
    items = set()
    if fp.status == "renamed":
        items.add(f"rename {fp.old_path} -> {fp.new_path}")
    if fp.binary:
        items.add(f"binary {fp.status}")
    if fp.old_mode and fp.new_mode and fp.old_mode != fp.new_mode:
        items.add(f"mode {fp.old_mode} -> {fp.new_mode}")
    if not fp.hunks and fp.status in ("added", "deleted"):
        items.add(fp.status)
    return items


def _change_score(mine: FilePatch, ref: FilePatch, strip_comments: bool) -> float:
    """The fraction of the gold's change to one file that the agent's change closes."""
    mine_meta, ref_meta = _meta(mine), _meta(ref)
    agent_to_gold = sum(len(item) for item in mine_meta ^ ref_meta)  # Σ d(A, G), regions added below
    old_to_gold = sum(len(item) for item in ref_meta)  # Σ d(O, G), regions added below
    gold = sorted(_edits(ref, strip_comments), key=_span)
    known: dict[int, str] = {}
    _learn(known, gold)
    agent = sorted(_aligned(_edits(mine, strip_comments), gold, known), key=_span)
    _learn(known, agent)
    regions = _regions(sorted(gold + agent, key=_span))
    starts = [start for start, _ in regions]
    for (start, end), g_edits, a_edits in zip(
        regions, _by_region(gold, starts), _by_region(agent, starts), strict=True
    ):
        o = _apply(start, end, [], known)
        g = _apply(start, end, g_edits, known) if g_edits else o
        a = _apply(start, end, a_edits, known) if a_edits else o
        if g != o:
            old_to_gold += Indel.distance(o, g)
        if a != g:
            agent_to_gold += Indel.distance(a, g)
    if old_to_gold == 0:  # the gold changes nothing that survives normalisation
        return 1.0 if agent_to_gold == 0 else 0.0
    return max(0.0, 1.0 - agent_to_gold / old_to_gold)


def _span(edit: _Edit) -> tuple[int, int]:
    return edit[0], edit[0] + len(edit[1])


def _mean_over_files(
    mine: dict[str, FilePatch], ref: dict[str, FilePatch], score: Callable[[FilePatch, FilePatch], float]
) -> float:
    """Mean of `score(mine, ref)` over the union of files either side touches; a file only one
    side touches scores 0, and two empty sides score 1."""
    union = sorted(set(mine) | set(ref))  # sorted: the float sum must not depend on set order
    if not union:
        return 1.0
    total = sum(score(mine[path], ref[path]) for path in union if path in mine and path in ref)
    return total / len(union)


def _mean_change_score(mine: dict[str, FilePatch], ref: dict[str, FilePatch], strip_comments: bool) -> float:
    return _mean_over_files(mine, ref, lambda a, b: _change_score(a, b, strip_comments))


def _mean_file_ratio(mine: dict[str, FilePatch], ref: dict[str, FilePatch], strip_comments: bool) -> float:
    def ratio(a: FilePatch, b: FilePatch) -> float:
        return Indel.normalized_similarity(
            normalize_file(a, strip_comments=strip_comments), normalize_file(b, strip_comments=strip_comments)
        )

    return _mean_over_files(mine, ref, ratio)


# --------------------------------------------------------------------------- the rewards


def per_file_similarity(patch: str, gold: str, *, tests: bool | None = None, strip_comments: bool = False) -> float:
    """Mean, over the union of files either patch touches, of the fraction of `gold`'s change
    to each file that `patch`'s change closes (see the module docstring); a file only one side
    touched scores 0. `tests` restricts both patches to test files (True) or non-test files
    (False). Two patches with no files score 1. Not symmetric: `gold` is the yardstick.

    >>> x, y = "--- a/x\\n+++ b/x\\n@@ -1 +1 @@\\n-a\\n+b\\n", "--- a/y\\n+++ b/y\\n@@ -1 +1 @@\\n-a\\n+b\\n"
    >>> per_file_similarity(x, y), per_file_similarity(x, x)
    (0.0, 1.0)
    >>> gold = "--- a/x\\n+++ b/x\\n@@ -1 +1 @@\\n-total = a\\n+total = a + b\\n"
    >>> per_file_similarity(gold.replace("a + b", "a +"), gold), per_file_similarity(gold, gold.replace("a + b", "a +"))
    (0.5, 0.0)
    """
    return _mean_change_score(_files(patch, tests), _files(gold, tests), strip_comments)


def functional_similarity(patch: str, task: Any, *, strip_comments: bool = False) -> float:
    """R_functional: how much of the gold ``task.patch``'s change the non-test changes make.

    Per file, the fraction of the gold's edit that the agent's edit closes, context used only
    to line the two up (see the module docstring); the mean over the files either side
    touches. The default reward of SweRepair-v0: the gold patch scores exactly 1, an empty
    patch 0 (against a non-empty gold), edits to test files neither help nor hurt, and an edit
    that changes nothing that matters (whitespace, a comment, the wrong line) earns nothing.

    >>> def fix(line):  # a patch that rewrites line 2 of m.py
    ...     head = "--- a/m.py\\n+++ b/m.py\\n@@ -1,3 +1,3 @@\\n def f(a, b):\\n-    if a < b:\\n"
    ...     return head + f"+{line}\\n     return a\\n"
    >>> task = {"patch": fix("    if a <= b:")}
    >>> functional_similarity(fix("    if a <= b:"), task), functional_similarity("", task)
    (1.0, 0.0)
    >>> functional_similarity(fix("    if  (a < b):"), task), functional_similarity(fix("    if a > b:"), task)
    (0.0, 0.0)
    >>> context_similarity(fix("    if  (a < b):"), task) > 0.9  # the thesis form pays for the context
    True
    """
    if not isinstance(patch, str):
        return 0.0
    fix, tests = _gold(task)
    return _mean_change_score(_split(patch, fix, tests)[0], fix, strip_comments)


def context_similarity(patch: str, task: Any, *, strip_comments: bool = False) -> float:
    """The thesis form of R_functional: per-file LCS ratio of the whole normalised change text
    (`normalize_file`: context lines included, line numbers dropped) of the non-test changes
    against the gold ``task.patch``; the mean over the files either side touches.

    Kept for comparison with published numbers. Not for training: unchanged context lines
    count as matches, so an edit that changes nothing that matters, next to the bug, scores
    high (the no-op edit below: 0.97) and a policy learns to make one.

    >>> task = {"patch": "--- a/m.py\\n+++ b/m.py\\n@@ -1,2 +1,2 @@\\n def f(a, b):\\n-    return a\\n+    return b\\n"}
    >>> context_similarity(task["patch"], task), context_similarity("", task)
    (1.0, 0.0)
    >>> round(context_similarity(task["patch"].replace("+    return b", "+    return  a"), task), 2)
    0.97
    """
    if not isinstance(patch, str):
        return 0.0
    fix, tests = _gold(task)
    return _mean_file_ratio(_split(patch, fix, tests)[0], fix, strip_comments)


def testing_alignment(patch: str, task: Any, *, strip_comments: bool = False) -> float:
    """R_testing: how much of the gold ``task.test_patch``'s change the agent's test changes
    make, measured as `functional_similarity` measures the fix.

    Not symmetric in general: which side counts is decided by the gold patch. A test added at
    another place in the file than the gold's is a different change, and scores 0.

    >>> class T: test_patch = "--- a/tests/test_m.py\\n+++ b/tests/test_m.py\\n@@ -1 +1,2 @@\\n x\\n+y\\n"
    >>> testing_alignment(T.test_patch, T()), testing_alignment("", T())
    (1.0, 0.0)
    """
    if not isinstance(patch, str):
        return 0.0
    fix, tests = _gold(task)
    return _mean_change_score(_split(patch, fix, tests)[1], tests, strip_comments)


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
    patch (files in path order) against the gold ``task.patch``, as published.

    Like `context_similarity` it also rewards context: the unchanged lines around a change are
    part of both texts and count as matches, so an edit that changes nothing that matters,
    next to the bug, scores high (below: re-spacing the line the gold fixes, 0.95).

    `unparseable` is what a non-empty patch that holds no recognisable file change scores
    (SWE-RL gives a format penalty; rewards here stay in [0, 1], so it is clamped to it).

    >>> class T: patch = "--- a/m.py\\n+++ b/m.py\\n@@ -1 +1 @@\\n-x = 1\\n+x = 2\\n"
    >>> swe_rl_similarity(T.patch, T()), swe_rl_similarity("garbage", T(), unparseable=0.1)
    (1.0, 0.1)
    >>> round(swe_rl_similarity(T.patch.replace("+x = 2", "+x  =  1"), T()), 2)
    0.95
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
