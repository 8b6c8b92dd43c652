"""The change measure of `functional_similarity`: the change counts, the context only aligns.

A realistic module with a one-character bug, the gold fix, and the edits a policy might learn
to make instead: a partly right fix, a wrong one, cosmetic ones, a comment. Beside them the
thesis form (`context_similarity`) and the SWE-RL score, which pay for unchanged context.
"""

from __future__ import annotations

import difflib
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swerepair.rewards import (
    REWARDS,
    context_similarity,
    functional_similarity,
    patch_similarity,
    per_file_similarity,
    swe_rl_similarity,
    testing_alignment,
)
from swerepair.rewards.strategies import (
    DiffSpec,
    arbitrary_text,
    as_task,
    diff_specs,
    patch_pairs,
    split_gold,
    unified_diffs,
)

BASE = '''\
"""Ranges of scores."""

import math


def clamp(value, low, high):
    """Clamp value into [low, high]."""
    if value < low:
        return low
    if value > high:
        return high
    return value


def in_range(x, y, limit):
    """True if x does not exceed y and their total stays within limit."""
    total = abs(x) + abs(y)
    if x < y:
        return total < limit
    return False


def scale(values, factor):
    return [v * factor for v in values]
'''

BUGGY = "    if x < y:\n"


def diff(old: str, new: str, path: str = "ranges.py") -> str:
    """A unified diff from `old` to `new`, as ``git diff`` writes one (3 lines of context)."""
    src = "/dev/null" if not old else f"a/{path}"
    dst = "/dev/null" if not new else f"b/{path}"
    lines = difflib.unified_diff(old.splitlines(True), new.splitlines(True), src, dst, n=3)
    return f"diff --git a/{path} b/{path}\n" + "".join(lines)


def edited(*pairs: tuple[str, str], text: str = BASE) -> str:
    for old, new in pairs:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


GOLD = diff(BASE, edited((BUGGY, "    if x <= y:\n")))
#: A gold that changes two things, the same size each.
GOLD_TWO = diff(BASE, edited((BUGGY, "    if x <= y:\n"), ("total < limit", "total <= limit")))

#: Agent patches against GOLD.
AGENT = {
    "gold": GOLD,
    "wrong": diff(BASE, edited((BUGGY, "    if x > y:\n"))),
    "wrong_value": diff(BASE, edited((BUGGY, "    if x < y + 1:\n"))),
    "whitespace": diff(BASE, edited((BUGGY, "    if  x <  y :\n"))),
    "parens": diff(BASE, edited((BUGGY, "    if (x < y):\n"))),
    "rename_local": diff(
        BASE, edited(("    total = abs(x)", "    size = abs(x)"), ("return total < limit", "return size < limit"))
    ),
    "comment": diff(BASE, edited(("\n\ndef in_range", "\n\n# x and y may be negative.\ndef in_range"))),
    "docstring": diff(BASE, edited(("does not exceed y", "is at most y"))),
}
TASK = as_task(GOLD)


def test_the_gold_scores_one() -> None:
    assert functional_similarity(GOLD, TASK) == 1.0
    assert functional_similarity(GOLD_TWO, as_task(GOLD_TWO)) == 1.0
    assert functional_similarity("", TASK) == 0.0


def test_a_partly_right_fix_scores_in_between() -> None:
    task = as_task(GOLD_TWO)
    value = functional_similarity(GOLD, task)  # one of the two changes
    assert 0.3 < value < 0.9
    assert value == 0.5  # each change is one inserted "=", so exactly half the distance
    other_half = diff(BASE, edited(("total < limit", "total <= limit")))
    assert functional_similarity(other_half, task) == 0.5


def test_a_wrong_edit_of_the_right_line_scores_about_zero() -> None:
    assert functional_similarity(AGENT["wrong"], TASK) < 0.2
    assert functional_similarity(AGENT["wrong_value"], TASK) < 0.2


@pytest.mark.parametrize("name", ["whitespace", "parens", "rename_local", "docstring"])
def test_a_cosmetic_edit_scores_about_zero(name: str) -> None:
    assert functional_similarity(AGENT[name], TASK) < 0.1


def test_a_comment_above_the_function_scores_zero() -> None:
    assert functional_similarity(AGENT["comment"], TASK) == 0.0
    assert functional_similarity(AGENT["comment"], TASK, strip_comments=True) == 0.0


@pytest.mark.parametrize("name", ["whitespace", "parens", "comment"])
def test_the_thesis_form_pays_for_the_context(name: str) -> None:
    """What the change measure fixes: context_similarity (and SWE-RL's score) rate no-op edits
    near the bug highly."""
    assert context_similarity(AGENT[name], TASK) > 0.6
    assert swe_rl_similarity(AGENT[name], TASK) > 0.6
    assert functional_similarity(AGENT[name], TASK) < 0.1


def test_the_thesis_form_rates_a_cosmetic_edit_above_0_8() -> None:
    for name in ("whitespace", "parens"):
        assert context_similarity(AGENT[name], TASK) > 0.8


def test_the_thesis_form_is_a_registered_reward() -> None:
    assert REWARDS["context_similarity"] is context_similarity
    assert context_similarity(GOLD, TASK) == 1.0 and context_similarity("", TASK) == 0.0


def test_extra_edits_cost_as_much_as_missed_ones() -> None:
    extra = diff(BASE, edited((BUGGY, "    if x <= y:\n"), ("return value\n", "return value or 0\n")))
    assert 0.0 <= functional_similarity(extra, TASK) < 0.5
    fix_and_comment = diff(
        BASE, edited((BUGGY, "    if x <= y:\n"), ("\n\ndef in_range", "\n\n# x and y may be negative.\ndef in_range"))
    )
    assert functional_similarity(fix_and_comment, TASK) == 0.0  # the comment is 25 characters, the fix 1
    assert functional_similarity(fix_and_comment, TASK, strip_comments=True) == 1.0


def test_whitespace_runs_cost_nothing_but_a_space_between_words_counts() -> None:
    respaced = diff(BASE, edited((BUGGY, "    if x <=  y:\n"), ("    return False\n", "        return  False\n")))
    assert functional_similarity(respaced, TASK) == 1.0
    joined = diff(BASE, edited((BUGGY, "    if x <= y:\n"), ("abs(x) + abs(y)", "abs(x)+ abs(y)")))
    assert functional_similarity(joined, TASK) == 0.0  # one character removed, as much as the fix adds


def test_the_fix_in_the_wrong_file_scores_zero() -> None:
    moved = GOLD.replace("ranges.py", "other.py")
    assert functional_similarity(moved, TASK) == 0.0
    assert functional_similarity(GOLD + moved, TASK) == 0.5  # mean over both files


# --------------------------------------------------------------------------- new and deleted files

NEW_MODULE = """\
def mean(values):
    values = list(values)
    if not values:
        raise ValueError("mean of nothing")
    return sum(values) / len(values)
"""


def test_a_new_file() -> None:
    gold = diff("", NEW_MODULE, "stats.py")
    task = as_task(gold)
    assert functional_similarity(gold, task) == 1.0
    half = diff("", "".join(NEW_MODULE.splitlines(True)[:3]), "stats.py")
    assert 0.3 < functional_similarity(half, task) < 0.9
    other = diff("", "def median(values):\n    return sorted(values)[len(values) // 2]\n", "stats.py")
    assert functional_similarity(other, task) < 0.3
    assert functional_similarity(diff("", NEW_MODULE, "statistics.py"), task) == 0.0


def test_an_empty_new_file() -> None:
    gold = "diff --git a/pkg/py.typed b/pkg/py.typed\nnew file mode 100644\nindex 0000000..e69de29\n"
    task = as_task(gold)
    assert functional_similarity(gold, task) == 1.0
    assert functional_similarity(diff("", "x = 1\n", "pkg/py.typed"), task) == 0.0


def test_a_deleted_file() -> None:
    gold = diff(BASE, "")
    task = as_task(gold)
    assert "+++ /dev/null" in gold and functional_similarity(gold, task) == 1.0
    assert functional_similarity(GOLD, task) < 0.1  # edited instead of deleted
    emptied_but_one = diff(BASE, "import math\n")
    assert 0.9 < functional_similarity(emptied_but_one, task) < 1.0


def test_a_rename() -> None:
    gold = "diff --git a/old.py b/new.py\nsimilarity index 100%\nrename from old.py\nrename to new.py\n"
    task = as_task(gold)
    assert functional_similarity(gold, task) == 1.0
    assert functional_similarity(gold.replace("old.py", "other.py"), task) == 0.0


# --------------------------------------------------------------------------- inconsistent input


def shift(patch: str, by: int) -> str:
    """`patch` with every hunk header's old line number moved by `by` (a miscounted diff)."""
    out = []
    for line in patch.splitlines(True):
        if line.startswith("@@ -"):
            start, rest = line[4:].split(",", 1)
            line = f"@@ -{int(start) + by},{rest}"
        out.append(line)
    return "".join(out)


@pytest.mark.parametrize("by", [-3, -1, 1, 2, 5])
def test_a_hunk_with_miscounted_line_numbers_is_aligned_by_its_context(by: int) -> None:
    assert functional_similarity(shift(GOLD, by), TASK) == 1.0
    assert functional_similarity(shift(AGENT["whitespace"], by), TASK) == 0.0
    assert functional_similarity(shift(GOLD, by), as_task(GOLD_TWO)) == 0.5


def test_a_hunk_far_from_where_it_says_stays_there() -> None:
    """Nothing the gold knows overlaps it, so nothing tells where it belongs: a change elsewhere."""
    assert functional_similarity(shift(GOLD, 100), TASK) == 0.0


def test_context_that_contradicts_the_gold() -> None:
    """The agent's hunk writes a context line that is not in the file: the region it writes
    differs from the gold's by that line, which costs more than the fix is worth."""
    bad_context = GOLD.replace(" def in_range(x, y, limit):", " def in_range(x, y, limit=10):")
    assert bad_context != GOLD
    value = functional_similarity(bad_context, TASK)
    assert 0.0 <= value < 0.5
    assert functional_similarity(GOLD, as_task(bad_context)) < 0.5


def test_overlapping_hunks_in_one_patch() -> None:
    hunk = GOLD[GOLD.index("@@") :]
    twice = GOLD + hunk
    assert len(twice) > len(GOLD)
    value = functional_similarity(twice, TASK)
    assert 0.0 <= value < 1.0  # the second copy's lines are put in too: none is free
    assert functional_similarity(twice, as_task(twice)) == 1.0
    assert 0.0 <= functional_similarity(GOLD, as_task(twice)) <= 1.0


def test_a_gold_that_contradicts_itself_still_scores_one() -> None:
    """Its second hunk says line 2 is ``a``, the first says ``b``: the agent's copy of it is not
    realigned to where ``a``, ``b``, ``c`` fit, because the gold's own hunks stay put."""
    gold = "--- a/m.py\n+++ b/m.py\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n@@ -2,3 +2,3 @@\n a\n b\n-c\n+C\n"
    assert functional_similarity(gold, as_task(gold)) == 1.0
    assert per_file_similarity(gold, gold) == 1.0


@pytest.mark.parametrize(
    "patch",
    [
        "--- a/ranges.py\n+++ b/ranges.py\n@@ -0,5 +0,5 @@\n-a\n-b\n+c\n",
        "--- a/ranges.py\n+++ b/ranges.py\n@@ -99999999999999999999 +1 @@\n-x\n+y\n",
        "--- a/ranges.py\n+++ b/ranges.py\n@@ -18,2 +18,2 @@\n-    if x < y:\n+    if x <= y:\n@@ -17,5 +17,1 @@\n+\n",
        "--- a/ranges.py\n+++ b/ranges.py\n@@ -18 +18 @@\n-\n+\x00\ud800 \u2028\n",
        "--- a/ranges.py\n+++ b/ranges.py\n@@ -1,3 +1 @@\n",
    ],
)
def test_garbage_hunks_never_raise(patch: str) -> None:
    for gold in (GOLD, patch, GOLD_TWO):
        for reward in (functional_similarity, context_similarity, patch_similarity, testing_alignment):
            value = reward(patch, as_task(gold, gold))
            assert isinstance(value, float) and 0.0 <= value <= 1.0
        assert 0.0 <= per_file_similarity(patch, gold, strip_comments=True) <= 1.0


# --------------------------------------------------------------------------- properties

CHANGE_REWARDS = [functional_similarity, testing_alignment, patch_similarity]
PROPERTY = settings(max_examples=60, deadline=None)


@pytest.mark.parametrize("reward", CHANGE_REWARDS, ids=lambda f: f.__name__)
@PROPERTY
@given(patch=unified_diffs())
def test_property_the_gold_scores_one(reward, patch: str) -> None:
    assert reward(patch, as_task(*split_gold(patch))) == 1.0


@PROPERTY
@given(text=arbitrary_text(), strip=st.booleans())
def test_property_any_text_scores_one_against_itself(text: str, strip: bool) -> None:
    """Garbage, cut-short and self-contradicting diffs included: the gold is the gold."""
    assert functional_similarity(text, as_task(text), strip_comments=strip) == 1.0
    assert testing_alignment(text, as_task("", text), strip_comments=strip) == 1.0
    assert per_file_similarity(text, text, strip_comments=strip) == 1.0


@PROPERTY
@given(patch=unified_diffs(), tests=st.sampled_from([None, True, False]), strip=st.booleans())
def test_property_per_file_similarity_of_the_gold_is_one(patch: str, tests: bool | None, strip: bool) -> None:
    assert per_file_similarity(patch, patch, tests=tests, strip_comments=strip) == 1.0


@pytest.mark.parametrize("reward", CHANGE_REWARDS, ids=lambda f: f.__name__)
@PROPERTY
@given(patch=arbitrary_text(), gold=arbitrary_text(), gold_tests=arbitrary_text())
def test_property_bounded_on_any_text(reward, patch: str, gold: str, gold_tests: str) -> None:
    value = reward(patch, as_task(gold, gold_tests))
    assert isinstance(value, float) and 0.0 <= value <= 1.0
    assert reward(patch, as_task(gold, gold_tests)) == value


@PROPERTY
@given(pair=st.sampled_from(["identical", "disjoint", "subset_of_hunks", "files_reordered"]).flatmap(patch_pairs))
def test_property_bounded_on_related_patches(pair: tuple[str, str]) -> None:
    patch, gold = pair
    for a, b in ((patch, gold), (gold, patch)):
        value = functional_similarity(a, as_task(b))
        assert isinstance(value, float) and 0.0 <= value <= 1.0
        assert 0.0 <= per_file_similarity(a, b, strip_comments=True) <= 1.0


def respaced(spec: DiffSpec) -> DiffSpec:
    """A no-op edit of the gold's lines: every line the gold removes is re-spaced instead, and
    nothing is added."""
    files = []
    for f in spec.files:
        hunks = []
        for h in f.hunks:
            lines: list[str] = []
            for line in h.lines:
                if line.startswith("-"):
                    lines += [line, f"+ {line[1:]}  "]
                elif line.startswith(" "):
                    lines.append(line)
            if any(line.startswith("-") for line in lines):
                hunks.append(replace(h, lines=tuple(lines)))
        if hunks:
            files.append(replace(f, hunks=tuple(hunks)))
    return DiffSpec(tuple(files))


def changes_something(spec: DiffSpec) -> bool:
    def text(tags: str, lines: tuple[str, ...]) -> list[str]:
        return [w for w in (" ".join(x[1:].split()) for x in lines if x[:1] in tags) if w]

    return any(text(" -", h.lines) != text(" +", h.lines) for f in spec.files for h in f.hunks)


@PROPERTY
@given(spec=diff_specs(min_files=1, max_files=1, tests=False, new_files=False))
def test_property_a_respaced_copy_of_the_old_lines_scores_zero(spec: DiffSpec) -> None:
    """The no-op edit that rewrites exactly the lines the gold changes, to what they were."""
    noop = respaced(spec)
    value = functional_similarity(noop.text, as_task(spec.text))
    # No files: the gold only adds lines, and the no-op edit touches nothing.
    expected = 0.0 if not noop.files or changes_something(spec) else 1.0  # 1: the gold only re-spaces
    assert value == expected
