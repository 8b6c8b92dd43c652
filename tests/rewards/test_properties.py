"""Property tests for every reward in `REWARDS` (plus `swe_rl_similarity` and `per_file_similarity`).

Every reward is total (any text in, a float out, never an exception), bounded in [0, 1],
scores its own gold 1 and an empty patch 0, ignores the order of file sections, is
deterministic and grows as a patch gets more of the gold's hunks. Some are symmetric in
(patch, gold); where they are not, a concrete counterexample below documents why. The
strategies of `swerepair.rewards.strategies` that drive all this are tested first: their
diffs round-trip through `parse_patch` and their pairs are in the relation they claim.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import subprocess
import sys
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

from swerepair.rewards import REWARDS, is_test_path, parse_patch, per_file_similarity
from swerepair.rewards.similarity import swe_rl_similarity
from swerepair.rewards.strategies import (
    RELATIONS,
    DiffSpec,
    FileSpec,
    GoldTask,
    HunkSpec,
    arbitrary_text,
    as_task,
    diff_specs,
    file_patches,
    file_paths,
    file_sets,
    hunk_specs,
    hunks,
    patch_pairs,
    related_pairs,
    split_gold,
    unified_diffs,
)

#: Every reward under test: the named ones, and SWE-RL's single-ratio score.
ALL_REWARDS = {**REWARDS, "swe_rl_similarity": swe_rl_similarity}
NAMES = sorted(ALL_REWARDS)

#: The task fields each reward compares the agent's patch against: its gold. A reward added to
#: `REWARDS` must be described here (test_every_reward_is_described).
GOLD_FIELDS: dict[str, tuple[str, ...]] = {
    "functional_similarity": ("patch",),
    "context_similarity": ("patch",),
    "file_targeting": ("patch",),
    "swe_rl_similarity": ("patch",),
    "testing_alignment": ("test_patch",),
    "patch_similarity": ("patch", "test_patch"),
    "is_valid_patch": (),  # looks at the patch alone
}

#: Rewards that score a patch on disjoint files 0.
ZERO_ON_DISJOINT = (
    "functional_similarity",
    "context_similarity",
    "file_targeting",
    "testing_alignment",
    "patch_similarity",
)

#: Rewards that score a strict subset of the gold's hunks below 1, with the side of the files
#: (`tests=`) on which that holds: a dropped test hunk does not change R_functional. Those in
#: `CHANGE_MEASURES` only where a dropped hunk changes something after normalisation.
STRICT_ON_SUBSETS = {
    "functional_similarity": False,
    "context_similarity": False,
    "swe_rl_similarity": False,
    "testing_alignment": True,
    "patch_similarity": None,
}

#: Rewards that are symmetric, ``f(a, task(b)) == f(b, task(a))``, on non-test patches.
SYMMETRIC = ("context_similarity", "file_targeting", "swe_rl_similarity")

#: Rewards built on the change measure (see `swerepair.rewards.similarity`): a hunk that
#: changes nothing after whitespace normalisation is worth nothing, dropped or kept.
CHANGE_MEASURES = ("functional_similarity", "testing_alignment", "patch_similarity")

# Budget: the whole file in well under a minute on two cores (most time goes into drawing diffs).
FAST = settings(max_examples=40, deadline=None)
MEDIUM = settings(max_examples=60, deadline=None)
THOROUGH = settings(max_examples=100, deadline=None)


def gold_task(name: str, gold: str) -> GoldTask:
    """The task in which `gold` is what reward `name` compares against."""
    fields = GOLD_FIELDS[name]
    if fields == ("patch",):
        return as_task(gold)
    if fields == ("test_patch",):
        return as_task("", gold)
    return as_task(*split_gold(gold))


def score(name: str, patch: Any, task: Any) -> float:
    value = ALL_REWARDS[name](patch, task)
    assert isinstance(value, float), f"{name} returned {value!r}"
    assert 0.0 <= value <= 1.0, f"{name} returned {value!r}, outside [0, 1]"
    return value


def test_every_reward_is_described() -> None:
    assert set(ALL_REWARDS) <= set(GOLD_FIELDS), f"describe the gold of {set(ALL_REWARDS) - set(GOLD_FIELDS)}"


# --------------------------------------------------------------------------- the strategies


@THOROUGH
@given(diff_specs())
def test_diffs_round_trip_through_parse_patch(spec) -> None:
    files = parse_patch(spec.text)
    assert [f.path for f in files] == spec.paths
    for parsed, drawn in zip(files, spec.files, strict=True):
        assert parsed.status == drawn.status
        assert len(parsed.hunks) == len(drawn.hunks)
        for ph, dh in zip(parsed.hunks, drawn.hunks, strict=True):
            assert (ph.added, ph.removed) == (dh.added, dh.removed)
    assert files == spec.expected()


@FAST
@given(st.data())
def test_hunks_are_valid(data) -> None:
    spec = data.draw(diff_specs(new_files=False))
    for f in spec.files:
        ends = []
        delta = 0
        for h in f.hunks:
            assert h.added or h.removed
            tags = [line[:1] for line in h.lines]
            assert h.old_len == tags.count(" ") + tags.count("-") and h.new_len == tags.count(" ") + tags.count("+")
            ends.append((h.old_pos, h.old_pos + h.old_len, h.new_start(delta)))
            delta += h.new_len - h.old_len
        for (_, end, new_a), (start, _, new_b) in itertools.pairwise(ends):
            assert end < start and new_a < new_b  # increasing, not overlapping, not adjacent
    hunk = data.draw(hunk_specs())
    assert parse_patch("--- a/x\n+++ b/x\n" + hunk.render())[0].hunks == (hunk.expected(),)
    text = data.draw(hunks())
    header = re.match(r"@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@", text)
    assert header, text
    tags = [line[:1] for line in text.split("\n")[1:-1] if not line.startswith("\\")]  # not splitlines: U+2028
    old, new = (int(n) if n is not None else 1 for n in header.groups())
    assert (old, new) == (tags.count(" ") + tags.count("-"), tags.count(" ") + tags.count("+"))
    (parsed,) = parse_patch("--- a/x\n+++ b/x\n" + text)
    assert len(parsed.hunks) == 1
    path = data.draw(file_paths())
    assert [f.path for f in parse_patch(data.draw(file_patches(path)))] == [path]


@FAST
@given(st.sampled_from([True, False, None]).flatmap(lambda t: st.tuples(st.just(t), file_paths(t))))
def test_file_paths_agree_with_is_test_path(drawn: tuple[bool | None, str]) -> None:
    tests, path = drawn
    assert path and not path.startswith("/") and "//" not in path and " " not in path
    if tests is not None:
        assert is_test_path(path) == tests


@FAST
@given(file_sets(2, 6))
def test_file_sets_are_distinct(paths: list[str]) -> None:
    assert 2 <= len(paths) == len(set(paths)) <= 6


@FAST
@given(st.data())
def test_pairs_are_in_their_relation(data) -> None:
    relation, patch, gold = data.draw(related_pairs())
    mine, ref = parse_patch(patch), parse_patch(gold)
    assert mine and ref
    if relation == "identical":
        assert patch == gold
    elif relation == "disjoint":
        assert not {f.path for f in mine} & {f.path for f in ref}
    elif relation == "files_reordered":
        assert len(ref) >= 2 and [f.path for f in mine] != [f.path for f in ref]
        assert sorted(mine, key=lambda f: f.path) == sorted(ref, key=lambda f: f.path)
    else:
        gold_hunks = {(f.path, h.old_start, h.lines) for f in ref for h in f.hunks}
        kept = [(f.path, h.old_start, h.lines) for f in mine for h in f.hunks]
        assert kept and set(kept) <= gold_hunks
        n_gold = sum(len(f.hunks) for f in ref)
        assert (len(kept) < n_gold) == (n_gold > 1) == (patch != gold)


@THOROUGH
@given(st.one_of(unified_diffs(), arbitrary_text()))
def test_split_gold_partitions_the_files(text: str) -> None:
    code, tests = split_gold(text)
    assert len(code) + len(tests) == len(text)
    files = parse_patch(text)
    assert parse_patch(code) == [f for f in files if not is_test_path(f.path)]
    assert parse_patch(tests) == [f for f in files if is_test_path(f.path)]
    assert as_task(code, tests) == GoldTask(code, tests)


@FAST
@given(arbitrary_text())
def test_arbitrary_text_is_text(text: str) -> None:
    assert isinstance(text, str)


def test_unknown_relation_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown relation"):
        patch_pairs("similar")
    assert set(RELATIONS) == {"identical", "disjoint", "subset_of_hunks", "files_reordered"}


# --------------------------------------------------------------------------- total, bounded, deterministic


@pytest.mark.parametrize("name", NAMES)
@THOROUGH
@given(patch=arbitrary_text(), gold=arbitrary_text(), gold_tests=arbitrary_text())
def test_total_bounded_and_deterministic_on_any_text(name: str, patch: str, gold: str, gold_tests: str) -> None:
    first = score(name, patch, as_task(gold, gold_tests))
    for other in ALL_REWARDS.values():  # no state carried over from other calls
        other(gold, as_task(patch, patch))
    assert score(name, "".join(patch), as_task("".join(gold), "".join(gold_tests))) == first


@pytest.mark.parametrize("name", NAMES)
@FAST
@given(st.data())
def test_bounded_on_related_patches(name: str, data) -> None:
    relation, patch, gold = data.draw(related_pairs())
    extra = data.draw(st.one_of(st.just(""), unified_diffs()))
    note(relation)
    for task in (as_task(*split_gold(gold)), as_task(gold, extra), as_task(extra, gold)):
        assert score(name, patch, task) == score(name, patch, task)


ODD_TASKS = [
    None,
    object(),
    {"patch": "--- a/m.py\n+++ b/m.py\n@@ -1 +1 @@\n-a\n+b\n", "test_patch": None},
    SimpleNamespace(patch=None, test_patch=3),
    SimpleNamespace(patch=b"--- a/m.py\n+++ b/m.py\n@@ -1 +1 @@\n-a\n+b\n"),
    SimpleNamespace(patch=["not", "text"], test_patch={"a": 1}),
]
ODD_PATCHES = [None, b"--- a/m.py\n+++ b/m.py\n@@ -1 +1 @@\n-a\n+b\n", 3, ["--- a/m.py"], "", "\x00\ud800"]


@pytest.mark.parametrize("name", NAMES)
def test_total_on_odd_types(name: str) -> None:
    """Documented as "never raises": tasks without the fields, fields and patches that are not str."""
    for task in ODD_TASKS:
        for patch in ODD_PATCHES:
            score(name, patch, task)


@MEDIUM
@given(
    st.one_of(st.tuples(arbitrary_text(), arbitrary_text()), related_pairs().map(lambda r: r[1:])),
    st.sampled_from([None, True, False]),
    st.booleans(),
)
def test_per_file_similarity_total_and_bounded(pair: tuple[str, str], tests: bool | None, strip: bool) -> None:
    """Not symmetric: the gold's change is the yardstick (test_where_symmetry_does_not_hold)."""
    a, b = pair
    for x, y in ((a, b), (b, a)):
        value = per_file_similarity(x, y, tests=tests, strip_comments=strip)
        assert isinstance(value, float) and 0.0 <= value <= 1.0


# --------------------------------------------------------------------------- identity and the empty patch


@pytest.mark.parametrize("name", NAMES)
@THOROUGH
@given(patch=unified_diffs())
def test_the_gold_patch_scores_one(name: str, patch: str) -> None:
    assert score(name, patch, as_task(*split_gold(patch))) == 1.0
    assert score(name, patch, gold_task(name, patch)) == 1.0


@FAST
@given(patch=unified_diffs(), tests=st.sampled_from([None, True, False]), strip=st.booleans())
def test_per_file_similarity_of_a_patch_with_itself_is_one(patch: str, tests: bool | None, strip: bool) -> None:
    assert per_file_similarity(patch, patch, tests=tests, strip_comments=strip) == 1.0


@pytest.mark.parametrize("name", NAMES)
@FAST
@given(
    empty=st.sampled_from(["", "\n", "  \n\t\n", "no diff here\n", "diff --git\n"]),
    gold=unified_diffs(),
    other=st.one_of(st.just(""), unified_diffs()),
)
def test_a_patch_that_changes_nothing_scores_zero(name: str, empty: str, gold: str, other: str) -> None:
    """Against a gold that changes files, whatever the task's other field holds."""
    task = gold_task(name, gold)
    task = replace(task, **{f: other for f in ("patch", "test_patch") if f not in GOLD_FIELDS[name]})
    assert score(name, empty, task) == 0.0


# --------------------------------------------------------------------------- file order


@st.composite
def overlapping(draw: st.DrawFn, text: str, tests: bool | None = None) -> str:
    """A diff over some of the files of `text` (with other changes) and maybe other files."""
    paths = [f.path for f in parse_patch(text)]
    keep = draw(st.lists(st.sampled_from(paths), unique=True)) if paths else []
    more = [p for p in draw(file_sets(0, 2, tests)) if p not in paths]
    spec = draw(diff_specs(paths=[*keep, *more])) if keep or more else None
    return spec.text if spec else draw(unified_diffs(tests=tests))


@pytest.mark.parametrize("name", NAMES)
@FAST
@given(st.data())
def test_file_order_does_not_matter(name: str, data) -> None:
    reordered, gold = data.draw(patch_pairs("files_reordered"))
    third = data.draw(st.one_of(overlapping(gold), related_pairs().map(lambda r: r[1])))
    assert score(name, reordered, as_task(*split_gold(gold))) == 1.0
    assert score(name, reordered, gold_task(name, gold)) == 1.0
    for make in (lambda g: as_task(*split_gold(g)), lambda g: gold_task(name, g)):
        # Exactly: sums run in path order, never in set order (see test_same_score_in_every_process).
        assert score(name, reordered, make(third)) == score(name, gold, make(third))
        assert score(name, third, make(reordered)) == score(name, third, make(gold))


# --------------------------------------------------------------------------- symmetry


@pytest.mark.parametrize("name", SYMMETRIC)
@MEDIUM
@given(st.data())
def test_symmetric_on_non_test_patches(name: str, data) -> None:
    _, a, b = data.draw(related_pairs(tests=False))
    if data.draw(st.booleans()):
        b = data.draw(overlapping(a, tests=False))
    assert math.isclose(score(name, a, as_task(b)), score(name, b, as_task(a)), abs_tol=1e-12)


FIX = "--- a/m.py\n+++ b/m.py\n@@ -1 +1 @@\n-x\n+y\n"
TEST = "--- a/tests/test_m.py\n+++ b/tests/test_m.py\n@@ -1 +1 @@\n-a\n+b\n"


def test_where_symmetry_does_not_hold() -> None:
    """functional_similarity, per_file_similarity: the gold's change is the yardstick. An
    agent that makes it and one character more closes all but that character of the gold's
    edit; the other way round, the shorter change misses a third of the longer one.

    testing_alignment: the gold decides which files are on the test side. A gold test patch
    that touches m.py puts m.py on the test side, and an agent's test patch without it misses
    half the gold; the other way round the agent's m.py is a fix, outside R_testing.

    patch_similarity: the gold decides which weights apply. A gold with a test patch weighs
    R_testing in, and a patch without tests loses 0.4 of its score; a gold without one leaves
    R_testing out, and the same two patches swapped score 1.
    """
    both = FIX + TEST
    more = FIX.replace("+y", "+yz")  # the gold's change and one more character
    assert REWARDS["functional_similarity"](more, as_task(FIX)) == 0.5  # d(A, G) = 1 of d(O, G) = 2
    assert math.isclose(REWARDS["functional_similarity"](FIX, as_task(more)), 2 / 3)  # 1 of 3
    assert math.isclose(per_file_similarity(more, FIX), 0.5) and math.isclose(per_file_similarity(FIX, more), 2 / 3)
    assert REWARDS["testing_alignment"](TEST, as_task("", both)) == 0.5
    assert REWARDS["testing_alignment"](both, as_task("", TEST)) == 1.0
    assert math.isclose(REWARDS["patch_similarity"](FIX, as_task(*split_gold(both))), 0.6)
    assert REWARDS["patch_similarity"](both, as_task(*split_gold(FIX))) == 1.0


# --------------------------------------------------------------------------- subsets of the gold's hunks


@pytest.mark.parametrize("name", NAMES)
@MEDIUM
@given(st.data())
def test_more_of_the_gold_scores_no_less(name: str, data) -> None:
    """Hunks kept: keep_small ⊆ keep_large ⊆ all. Each is a subsequence of the next after
    normalisation, so every per-file LCS ratio, Jaccard and whole-patch ratio can only grow."""
    gold = data.draw(diff_specs())
    ids = gold.hunk_ids
    large = data.draw(st.sets(st.sampled_from(ids), min_size=1))
    small = data.draw(st.sets(st.sampled_from(sorted(large)), min_size=1, max_size=len(large)))
    task = as_task(*split_gold(gold.text))
    own = gold_task(name, gold.text)
    for t in (task, own):
        s, m = score(name, gold.keep_hunks(small).text, t), score(name, gold.keep_hunks(large).text, t)
        assert s <= m <= score(name, gold.text, t) == 1.0


@pytest.mark.parametrize("name", sorted(STRICT_ON_SUBSETS))
@THOROUGH
@given(st.data())
def test_a_dropped_hunk_costs_something(name: str, data) -> None:
    patch, gold = data.draw(patch_pairs("subset_of_hunks", tests=STRICT_ON_SUBSETS[name]))
    value = score(name, patch, gold_task(name, gold))
    costs = patch != gold
    if name in CHANGE_MEASURES and costs:  # a dropped hunk that changes nothing costs nothing
        costs = any(changes_something(h) for h in dropped_hunks(patch, gold)) or dropped_files(patch, gold)
    assert value < 1.0 if costs else value == 1.0


def dropped_hunks(patch: str, gold: str) -> list:
    kept = {(f.path, h.old_start, h.lines) for f in parse_patch(patch) for h in f.hunks}
    return [h for f in parse_patch(gold) for h in f.hunks if (f.path, h.old_start, h.lines) not in kept]


def dropped_files(patch: str, gold: str) -> bool:
    return bool({f.path for f in parse_patch(gold)} - {f.path for f in parse_patch(patch)})


def changes_something(hunk) -> bool:
    """The hunk's old and new lines differ after whitespace normalisation, blank lines dropped."""
    old = [" ".join(x[1:].split()) for x in hunk.lines if x[:1] in " -"]
    new = [" ".join(x[1:].split()) for x in hunk.lines if x[:1] in " +"]
    return [x for x in old if x] != [x for x in new if x]


REMOVAL_AND_ADDITION = DiffSpec(
    tuple(
        FileSpec(path, (HunkSpec(3, ("-    old = 1", "     kept = 2")), HunkSpec(20, ("     x = 3", "+    new = 4"))))
        for path in ("pkg/m.py", "tests/test_m.py")
    )
)


@pytest.mark.parametrize("name", sorted(STRICT_ON_SUBSETS))
@pytest.mark.parametrize("dropped", [0, 1], ids=["removal", "addition"])
def test_a_dropped_removal_or_addition_costs_something(name: str, dropped: int) -> None:
    """Removed lines count as much as added ones: a fix that forgets to delete is not the fix."""
    gold = REMOVAL_AND_ADDITION
    patch = gold.keep_hunks({(i, j) for i, j in gold.hunk_ids if j != dropped})
    assert score(name, patch.text, gold_task(name, gold.text)) < 1.0


@pytest.mark.parametrize("name", ZERO_ON_DISJOINT)
@FAST
@given(pair=patch_pairs("disjoint"))
def test_disjoint_files_score_zero(name: str, pair: tuple[str, str]) -> None:
    patch, gold = pair
    assert score(name, patch, gold_task(name, gold)) == 0.0
    assert per_file_similarity(patch, gold) == 0.0


# --------------------------------------------------------------------------- sides


@pytest.mark.parametrize("name", ["functional_similarity", "file_targeting", "swe_rl_similarity"])
@FAST
@given(st.data())
def test_test_edits_neither_help_nor_hurt_the_functional_side(name: str, data) -> None:
    _, patch, gold = data.draw(related_pairs(tests=False))
    extra = data.draw(unified_diffs(tests=True))
    task = as_task(gold, data.draw(st.one_of(st.just(""), st.just(extra), unified_diffs(tests=True))))
    assert score(name, patch + extra, task) == score(name, patch, task)
    assert score(name, extra + patch, task) == score(name, patch, task)


@FAST
@given(st.data())
def test_non_test_edits_neither_help_nor_hurt_testing_alignment(data) -> None:
    _, patch, gold_tests = data.draw(related_pairs(tests=True))
    extra = data.draw(unified_diffs(tests=False))
    task = as_task(data.draw(st.one_of(st.just(""), st.just(extra), unified_diffs(tests=False))), gold_tests)
    assert score("testing_alignment", patch + extra, task) == score("testing_alignment", patch, task)


@pytest.mark.parametrize("name", NAMES)
@FAST
@given(st.data())
def test_the_gold_fix_plus_the_gold_test_patch_scores_one(name: str, data) -> None:
    """On any task: the fix may touch test-looking files (sympy/testing/...) and the test patch
    files that do not look like tests (fixtures outside tests/); the gold decides the sides."""
    paths = data.draw(file_sets(2, 6))
    k = data.draw(st.integers(1, len(paths) - 1))
    fix, tests = data.draw(diff_specs(paths=paths[:k])).text, data.draw(diff_specs(paths=paths[k:])).text
    for patch in (fix + tests, tests + fix):
        assert score(name, patch, as_task(fix, tests)) == 1.0
    if GOLD_FIELDS[name] == ("patch",):  # the test patch is no part of the fix
        assert score(name, fix, as_task(fix, tests)) == 1.0


# --------------------------------------------------------------------------- regressions

HASH_SEED_SCRIPT = """
from swerepair.rewards import REWARDS
def fp(path, old, new):
    return f"--- a/{path}\\n+++ b/{path}\\n@@ -1 +1 @@\\n-{old}\\n+{new}\\n"
mine = "".join(fp(f"m{i}.py", "x" * (i % 9 + 1), "yz" * (i % 5 + 1)) for i in range(12))
gold = "".join(fp(f"m{i}.py", "x" * ((i * 7) % 9 + 1), "y" * ((i * 5) % 9 + 1)) for i in range(12))
print(repr(REWARDS["functional_similarity"](mine, {"patch": gold})))
"""


def test_same_score_in_every_process() -> None:
    """A mean summed over a set follows its iteration order, which follows the hash seed: this
    pair once scored 0.7379058601366747, ...748 or ...749 depending on PYTHONHASHSEED."""
    values = set()
    for seed in range(6):
        env = {**os.environ, "PYTHONHASHSEED": str(seed)}
        out = subprocess.run([sys.executable, "-c", HASH_SEED_SCRIPT], capture_output=True, text=True, env=env)
        assert out.returncode == 0, out.stderr[-2000:]
        values.add(out.stdout.strip())
    assert len(values) == 1, values


#: Inputs on which `parse_patch`, and so every reward, once raised (found by the totality tests).
ONCE_CRASHED = {
    "octal escape above \\377 in a quoted path": 'diff --git 0 "\\400"\n',
    "octal escape in a ---/+++ header": '--- "a/\\777"\n+++ b/x\n',
    "'Binary files' line with ' differ' before ' and '": "diff --git \nBinary files  differ and \n",
}


@pytest.mark.parametrize("text", list(ONCE_CRASHED.values()), ids=list(ONCE_CRASHED))
def test_once_crashing_inputs(text: str) -> None:
    parse_patch(text)
    for name in NAMES:
        score(name, text, as_task(FIX, TEST))
        score(name, FIX, as_task(text, text))


FIX_IN_TESTING = "--- a/sympy/testing/runtests.py\n+++ b/sympy/testing/runtests.py\n@@ -1 +1 @@\n-x\n+y\n"
DATA_IN_TEST_PATCH = "--- a/pkg/fixtures/data.json\n+++ b/pkg/fixtures/data.json\n@@ -0,0 +1 @@\n+{}\n"


@pytest.mark.parametrize(
    ("fix", "tests"),
    [(FIX_IN_TESTING, TEST), (FIX, TEST + DATA_IN_TEST_PATCH)],
    ids=["fix-in-test-looking-file", "non-test-file-in-test-patch"],
)
def test_gold_fix_plus_gold_tests_on_unusual_tasks(fix: str, tests: str) -> None:
    """Once 0.5 and 0.7: a fix only in test-looking files made the rewards compare all files,
    and a test patch's non-test-looking fixture counted as part of the fix."""
    task = as_task(fix, tests)
    assert REWARDS["patch_similarity"](fix + tests, task) == 1.0
    assert REWARDS["functional_similarity"](fix + tests, task) == REWARDS["functional_similarity"](fix, task) == 1.0
