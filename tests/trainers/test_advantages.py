"""Group-relative advantages (grpo, dr_grpo, rloo) on hand-computed groups, failed episodes, properties."""

from __future__ import annotations

import dataclasses
import math
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swerepair.core import Episode
from swerepair.trainers.advantages import (
    ESTIMATORS,
    AdvantageResult,
    compute_advantages,
    drop_failed,
    group_advantages,
)

SQRT2 = math.sqrt(2)
SQRT3 = math.sqrt(3)


def adv(rewards, ids, estimator, eps=0.0):
    return compute_advantages(rewards, ids, estimator=estimator, eps=eps).advantages


def ep(instance_id, reward, failed=None):
    info = {} if failed is None else {"failed": failed}
    return SimpleNamespace(instance_id=instance_id, reward=reward, info=info)


# --- hand-computed single groups ---------------------------------------------------------------

# Each case: rewards -> expected advantages per estimator, with the arithmetic.
HAND = [
    (
        [1, 0, 0, 1],
        # mean .5; deviations [.5, -.5, -.5, .5]; population var (4 * .25) / 4 = .25, std .5
        {
            "grpo": [1.0, -1.0, -1.0, 1.0],  # ±.5 / .5
            "dr_grpo": [0.5, -0.5, -0.5, 0.5],
            # leave-one-out: 1 - (0+0+1)/3 = 2/3; 0 - (1+0+1)/3 = -2/3  (= 4/3 * ±.5)
            "rloo": [2 / 3, -2 / 3, -2 / 3, 2 / 3],
        },
    ),
    (
        [1, 0, 0, 0],
        # mean .25; deviations [.75, -.25, -.25, -.25]; var (.5625 + 3 * .0625) / 4 = .1875, std sqrt(3)/4
        {
            "grpo": [SQRT3, -1 / SQRT3, -1 / SQRT3, -1 / SQRT3],  # .75 / (sqrt3/4) = sqrt3; -.25 / (sqrt3/4) = -1/sqrt3
            "dr_grpo": [0.75, -0.25, -0.25, -0.25],
            # 1 - 0/3 = 1; 0 - 1/3 = -1/3  (= 4/3 * .75, 4/3 * -.25)
            "rloo": [1.0, -1 / 3, -1 / 3, -1 / 3],
        },
    ),
    (
        [0.2, 0.5, 0.8],
        # mean .5; deviations [-.3, 0, .3]; var (.09 + 0 + .09) / 3 = .06, std sqrt(.06)
        {
            "grpo": [-0.3 / math.sqrt(0.06), 0.0, 0.3 / math.sqrt(0.06)],  # = ∓sqrt(1.5) ≈ ∓1.2247
            "dr_grpo": [-0.3, 0.0, 0.3],
            # .2 - (.5+.8)/2 = -.45; .5 - (.2+.8)/2 = 0; .8 - (.2+.5)/2 = .45  (= 3/2 * ∓.3)
            "rloo": [-0.45, 0.0, 0.45],
        },
    ),
]


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize(("rewards", "expected"), HAND, ids=["1001", "1000", "258"])
def test_hand_computed_group(rewards, expected, estimator):
    result = compute_advantages(rewards, ["t"] * len(rewards), estimator=estimator, eps=0.0)
    assert result.advantages == pytest.approx(expected[estimator], rel=1e-12, abs=1e-12)
    assert result.groups == 1
    assert result.zero_variance_groups == 0
    assert result.estimator == estimator


def test_grpo_values_with_sqrt_forms():
    assert adv([0.2, 0.5, 0.8], "ttt", "grpo") == pytest.approx([-math.sqrt(1.5), 0.0, math.sqrt(1.5)])


def test_grpo_default_eps_is_in_the_denominator():
    # [1, 0, 0, 1]: .5 / (.5 + 1e-6)
    result = compute_advantages([1, 0, 0, 1], ["t"] * 4)
    assert result.advantages == pytest.approx([0.5 / 0.500001, -0.5 / 0.500001, -0.5 / 0.500001, 0.5 / 0.500001])
    # eps=0.1: .5 / .6
    assert adv([1, 0, 0, 1], "tttt", "grpo", eps=0.1) == pytest.approx([5 / 6, -5 / 6, -5 / 6, 5 / 6])


def test_per_group_stats_use_the_population_std():
    stats = compute_advantages([1, 0, 0, 0], ["t"] * 4).per_group["t"]
    assert stats.size == 4
    assert stats.mean == 0.25
    assert stats.std == pytest.approx(SQRT3 / 4)  # not the sample std sqrt(.75/3) = .5
    assert not stats.zero_variance


# --- several groups --------------------------------------------------------------------------


def test_two_interleaved_groups():
    ids = ["a", "b", "a", "b", "a", "b"]
    rewards = [1, 0.5, 0, 0.5, 0, 1]
    # a = [1, 0, 0]: mean 1/3, deviations [2/3, -1/3, -1/3], var (4/9 + 1/9 + 1/9) / 3 = 2/9, std sqrt2/3
    #   grpo: (2/3) / (sqrt2/3) = sqrt2, (-1/3) / (sqrt2/3) = -1/sqrt2
    #   rloo: 1 - 0 = 1, 0 - (1+0)/2 = -.5
    # b = [.5, .5, 1]: mean 2/3, deviations [-1/6, -1/6, 1/3], var (1/36 + 1/36 + 4/36) / 3 = 1/18, std sqrt2/6
    #   grpo: (-1/6) / (sqrt2/6) = -1/sqrt2, (1/3) / (sqrt2/6) = sqrt2
    #   rloo: .5 - (.5+1)/2 = -.25, 1 - (.5+.5)/2 = .5
    result = compute_advantages(rewards, ids, estimator="grpo", eps=0.0)
    assert result.advantages == pytest.approx([SQRT2, -1 / SQRT2, -1 / SQRT2, -1 / SQRT2, -1 / SQRT2, SQRT2])
    assert result.groups == 2
    assert result.zero_variance_groups == 0
    assert list(result.per_group) == ["a", "b"]
    assert result.per_group["a"].mean == pytest.approx(1 / 3)
    assert result.per_group["b"].mean == pytest.approx(2 / 3)

    assert adv(rewards, ids, "dr_grpo") == pytest.approx([2 / 3, -1 / 6, -1 / 3, -1 / 6, -1 / 3, 1 / 3])
    assert adv(rewards, ids, "rloo") == pytest.approx([1.0, -0.25, -0.5, -0.25, -0.5, 0.5])


def test_group_ids_may_be_any_hashable():
    ids = [("task", 1), 7, ("task", 1), 7]
    # (task,1) = [1, 0] -> dr_grpo [.5, -.5]; 7 = [.25, .75] -> [-.25, .25]
    assert adv([1, 0.25, 0, 0.75], ids, "dr_grpo") == pytest.approx([0.5, -0.25, -0.5, 0.25])


def test_zero_variance_groups_are_exactly_zero_and_counted():
    # [.1, .1, .1]: fsum / 3 is not exactly .1 in floats, yet the advantages must be exactly 0
    ids = ["z1", "z1", "z1", "m", "z2", "m", "z2"]
    rewards = [0.1, 0.1, 0.1, 1, 1, 0, 1]
    for estimator in ESTIMATORS:
        result = compute_advantages(rewards, ids, estimator=estimator)
        assert result.groups == 3
        assert result.zero_variance_groups == 2
        assert result.informative_groups == 1
        for i in (0, 1, 2, 4, 6):
            assert result.advantages[i] == 0.0
            assert math.copysign(1.0, result.advantages[i]) == 1.0
        assert result.advantages[3] > 0 > result.advantages[5]
        assert result.per_group["z1"].zero_variance
        assert result.per_group["z1"].std == 0.0
        assert result.per_group["z1"].mean == 0.1
        assert not result.per_group["m"].zero_variance


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_singleton_group_gives_zero(estimator):
    result = compute_advantages([0.7, 1, 0], ["solo", "pair", "pair"], estimator=estimator)
    assert result.advantages[0] == 0.0
    assert result.groups == 2
    assert result.zero_variance_groups == 1
    assert result.per_group["solo"].size == 1
    assert result.per_group["solo"].zero_variance


def test_empty_input():
    result = compute_advantages([], [])
    assert result == AdvantageResult(advantages=[], groups=0, zero_variance_groups=0, per_group={})


def test_result_is_frozen():
    result = compute_advantages([1, 0], ["t", "t"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.groups = 3  # type: ignore[misc]


# --- errors ----------------------------------------------------------------------------------


def test_unknown_estimator_names_the_valid_ones():
    with pytest.raises(ValueError, match="ppo") as excinfo:
        compute_advantages([1, 0], ["t", "t"], estimator="ppo")
    for name in ("grpo", "dr_grpo", "rloo"):
        assert name in str(excinfo.value)
    with pytest.raises(ValueError, match="dr_grpo"):
        group_advantages([ep("t", 1.0)], estimator="GRPO")


def test_mismatched_lengths_and_bad_values():
    with pytest.raises(ValueError, match="2 rewards but 3 group ids"):
        compute_advantages([1, 0], ["a", "a", "b"])
    with pytest.raises(ValueError, match="finite"):
        compute_advantages([1, math.nan], ["a", "a"])
    with pytest.raises(ValueError, match="finite"):
        compute_advantages([1, math.inf], ["a", "b"])
    with pytest.raises(ValueError, match="eps"):
        compute_advantages([1, 0], ["a", "a"], eps=-1e-6)


# --- failed episodes -------------------------------------------------------------------------


def test_drop_failed_counts_and_keeps_order():
    episodes = [ep("a", 1.0), ep("a", 0.0, failed=True), ep("b", 0.5, failed=False), ep("b", 0.0, failed="sandbox")]
    kept, dropped = drop_failed(episodes)
    assert kept == [episodes[0], episodes[2]]
    assert dropped == 2
    assert drop_failed([]) == ([], 0)
    assert drop_failed(iter(episodes[:1])) == ([episodes[0]], 0)


def test_failed_episodes_are_dropped_not_scored_zero():
    episodes = [ep("t", 1.0), ep("t", 0.0), ep("t", 0.0, failed=True), ep("t", 1.0)]
    kept, result, dropped = group_advantages(episodes, estimator="grpo", eps=0.0)
    assert dropped == 1
    assert kept == [episodes[0], episodes[1], episodes[3]]
    # remaining [1, 0, 1]: mean 2/3, deviations [1/3, -2/3, 1/3], var (1/9 + 4/9 + 1/9) / 3 = 2/9, std sqrt2/3
    # grpo: (1/3) / (sqrt2/3) = 1/sqrt2, (-2/3) / (sqrt2/3) = -sqrt2
    assert result.advantages == pytest.approx([1 / SQRT2, -SQRT2, 1 / SQRT2])
    # scored 0 it would have been [1, 0, 0, 1] -> [1, -1, -1, 1]
    assert result.advantages[0] != pytest.approx(1.0)
    assert result.per_group["t"].size == 3

    _, rloo, _ = group_advantages(episodes, estimator="rloo")
    # rloo: 1 - (0+1)/2 = .5, 0 - (1+1)/2 = -1
    assert rloo.advantages == pytest.approx([0.5, -1.0, 0.5])


def test_a_group_with_only_failures_disappears_and_a_lone_survivor_gives_zero():
    episodes = [
        ep("gone", 0.0, failed=True),
        ep("lone", 1.0),
        ep("gone", 0.0, failed=True),
        ep("lone", 0.0, failed=True),
        ep("ok", 1.0),
        ep("ok", 0.0),
    ]
    kept, result, dropped = group_advantages(episodes, estimator="dr_grpo")
    assert dropped == 3
    assert [e.instance_id for e in kept] == ["lone", "ok", "ok"]
    assert result.groups == 2
    assert "gone" not in result.per_group
    assert result.zero_variance_groups == 1  # "lone" is a singleton now
    assert result.advantages == [0.0, 0.5, -0.5]


def test_group_advantages_on_real_episodes():
    def make(instance_id, reward, **info):
        return Episode(instance_id, [], [1, 2], [0, 1], [-0.5], reward=reward, info=info)

    episodes = [make("x", 1.0), make("y", 0.0), make("x", 0.0, failed=True), make("x", 0.0), make("y", 0.0)]
    kept, result, dropped = group_advantages(episodes)
    assert dropped == 1
    assert [e.failed for e in kept] == [False] * 4
    assert result.groups == 2
    assert result.zero_variance_groups == 1  # y = [0, 0]
    # x = [1, 0]: mean .5, std .5 -> ±.5 / (.5 + 1e-6)
    assert result.advantages == pytest.approx([1.0, 0.0, -1.0, 0.0], rel=1e-5)
    assert result.advantages[1] == result.advantages[3] == 0.0


# --- properties ------------------------------------------------------------------------------

# Rewards on a grid in [0, 1] (as real verifier rewards are): with arbitrary floats two rewards a
# hair apart make `sum(r - mean)` a rounding residue comparable to the deviations themselves.
REWARD = st.one_of(st.sampled_from([0.0, 0.5, 1.0]), st.integers(0, 100).map(lambda k: k / 100))
MEMBERS = st.lists(st.tuples(st.integers(0, 4), REWARD), min_size=1, max_size=40)


def _groups(members):
    groups: dict[int, list[int]] = {}
    for i, (gid, _) in enumerate(members):
        groups.setdefault(gid, []).append(i)
    return groups


@settings(max_examples=300, deadline=None)
@given(MEMBERS)
def test_advantages_sum_to_zero_within_each_group(members):
    ids = [gid for gid, _ in members]
    rewards = [r for _, r in members]
    for estimator in ESTIMATORS:
        advantages = compute_advantages(rewards, ids, estimator=estimator).advantages
        for indices in _groups(members).values():
            group = [advantages[i] for i in indices]
            if len(indices) == 1:
                assert group == [0.0]
                continue
            scale = max(1.0, sum(abs(a) for a in group))
            assert abs(math.fsum(group)) <= 1e-9 * scale


@settings(max_examples=300, deadline=None)
@given(MEMBERS)
def test_rloo_is_rescaled_dr_grpo(members):
    ids = [gid for gid, _ in members]
    rewards = [r for _, r in members]
    rloo = adv(rewards, ids, "rloo")
    dr = adv(rewards, ids, "dr_grpo")
    for indices in _groups(members).values():
        g = len(indices)
        for i in indices:
            expected = 0.0 if g == 1 else g / (g - 1) * dr[i]
            assert rloo[i] == pytest.approx(expected, rel=1e-9, abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(MEMBERS)
def test_grpo_has_unit_rms_and_groups_are_independent(members):
    ids = [gid for gid, _ in members]
    rewards = [r for _, r in members]
    result = compute_advantages(rewards, ids, estimator="grpo", eps=0.0)
    zero = 0
    for gid, indices in _groups(members).items():
        group = [result.advantages[i] for i in indices]
        if len({rewards[i] for i in indices}) == 1:
            zero += 1
            assert group == [0.0] * len(indices)
        else:
            assert math.sqrt(math.fsum(a * a for a in group) / len(group)) == pytest.approx(1.0)
        # a group's advantages do not depend on the other groups
        alone = compute_advantages([rewards[i] for i in indices], [gid] * len(indices), estimator="grpo", eps=0.0)
        assert alone.advantages == group
    assert result.zero_variance_groups == zero
    assert result.groups == len(_groups(members))
