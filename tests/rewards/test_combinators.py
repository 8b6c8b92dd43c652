"""Rubric, gate, weighted sum, outcome evaluation and the TRL adapter."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from swerepair.rewards import (
    REWARDS,
    Gate,
    RewardOutcome,
    Rubric,
    VerifierError,
    as_trl_reward,
    context_similarity,
    evaluate,
    file_targeting,
    functional_similarity,
    is_valid_patch,
    resolve_reward,
    swe_rl_similarity,
    weighted_sum,
)

GOLD = "diff --git a/m.py b/m.py\n--- a/m.py\n+++ b/m.py\n@@ -1,3 +1,3 @@\n a\n-b = 1\n+b = 2\n c\n"
NEAR = GOLD.replace("b = 2", "b = 3")
TASK = SimpleNamespace(patch=GOLD, test_patch="")


class Broken:
    name = "broken"

    def evaluate(self, patch, task):
        return RewardOutcome.failure("sandbox died")

    def __call__(self, patch, task):
        raise VerifierError("sandbox died")


def test_rubric_reports_every_part_and_weights_them() -> None:
    rubric = Rubric({"files": (file_targeting, 1.0), "functional": (functional_similarity, 3.0)})
    out = rubric.evaluate(NEAR, TASK)
    f = functional_similarity(NEAR, TASK)
    assert out.components == {"files": 1.0, "functional": f}
    assert out.value == pytest.approx((1.0 + 3.0 * f) / 4.0)
    assert rubric(NEAR, TASK) == out.value
    with pytest.raises(ValueError):
        Rubric({})
    with pytest.raises(ValueError):
        Rubric({"a": (file_targeting, -1.0)})


def test_a_failing_part_fails_the_whole_rubric() -> None:
    rubric = Rubric({"files": (file_targeting, 1.0), "tests": (Broken(), 1.0)})
    out = rubric.evaluate(GOLD, TASK)
    assert out.failed and out.value is None and "sandbox died" in out.reason
    with pytest.raises(VerifierError):
        rubric(GOLD, TASK)


def test_nested_components_are_prefixed() -> None:
    inner = Rubric({"f": (file_targeting, 1.0), "g": (functional_similarity, 1.0)}, name="inner")
    out = Rubric({"sim": (inner, 1.0), "valid": (is_valid_patch, 1.0)}).evaluate(GOLD, TASK)
    assert out.components == {"sim": 1.0, "sim/f": 1.0, "sim/g": 1.0, "valid": 1.0}


def test_weighted_sum_by_name() -> None:
    ws = weighted_sum({"file_targeting": 0.2, "functional_similarity": 0.8})
    assert ws(GOLD, TASK) == 1.0
    assert ws(NEAR, TASK) == pytest.approx(0.2 + 0.8 * functional_similarity(NEAR, TASK))
    with pytest.raises(ValueError, match="unknown reward"):
        weighted_sum({"nope": 1.0})


def test_gate() -> None:
    calls = []

    def spy(patch, task):
        calls.append(patch)
        return 0.7

    gated = Gate(is_valid_patch, spy)
    assert gated("not a patch", TASK) == 0.0 and calls == [], "a closed gate must not run the reward"
    out = gated.evaluate(GOLD, TASK)
    assert out.value == 0.7 and out.components == {"gate/is_valid_patch": 1.0, "spy": 0.7}
    assert Gate(Broken(), spy).evaluate(GOLD, TASK).failed
    assert Gate(is_valid_patch, Broken()).evaluate(GOLD, TASK).failed
    assert Gate(lambda p, t: 0.5, spy, threshold=0.6)(GOLD, TASK) == 0.0


def test_evaluate_turns_exceptions_and_out_of_range_values_into_failures() -> None:
    assert evaluate(functional_similarity, GOLD, TASK) == RewardOutcome(1.0, {"functional_similarity": 1.0})
    assert evaluate(lambda p, t: 1 / 0, GOLD, TASK).failed
    assert evaluate(lambda p, t: 1.5, GOLD, TASK).failed
    assert evaluate(lambda p, t: math.nan, GOLD, TASK).failed
    assert evaluate(Broken(), GOLD, TASK).failed


def test_swe_rl_similarity() -> None:
    assert swe_rl_similarity(GOLD, TASK) == 1.0
    assert 0.8 < swe_rl_similarity(NEAR, TASK) < 1.0
    assert swe_rl_similarity("", TASK) == 0.0
    assert swe_rl_similarity("I could not fix it", TASK) == 0.0
    assert swe_rl_similarity("I could not fix it", TASK, unparseable=0.25) == 0.25
    assert swe_rl_similarity("I could not fix it", TASK, unparseable=-1.0) == 0.0, "clamped to [0, 1]"


def test_trl_adapter() -> None:
    f = as_trl_reward(functional_similarity)
    assert f.__name__ == "functional_similarity"
    completions = [f"Fix:\n```diff\n{GOLD}```", [{"role": "assistant", "content": NEAR}], "nothing"]
    scores = f(prompts=["p"] * 3, completions=completions, patch=[GOLD] * 3, test_patch=[""] * 3)
    assert scores == [1.0, 0.0, 0.0]  # NEAR changes the right line to a wrong value: no part of the fix
    thesis = as_trl_reward(context_similarity)(prompts=["p"] * 3, completions=completions, patch=[GOLD] * 3)
    assert 0.8 < thesis[1] < 1.0, "the conversational completion's patch is read"
    from_column = as_trl_reward(functional_similarity, patch_column="agent_patch")
    assert from_column(completions=["x", "y"], agent_patch=[GOLD, ""], patch=[GOLD, GOLD]) == [1.0, 0.0]
    assert as_trl_reward(Broken())(completions=["x"], patch=[GOLD]) == [None], "a failed verifier is None, not 0"


def test_resolve_reward_names() -> None:
    for name in REWARDS:
        assert resolve_reward(name)[0] == name
    with pytest.raises(ValueError, match="needs a sandbox factory"):
        resolve_reward("tests_pass")
    name, reward = resolve_reward("tests_pass", lambda task: None, timeout=5)
    assert name == "tests_pass" and reward.timeout == 5
    with pytest.raises(ValueError, match="unknown reward"):
        resolve_reward("bogus")
