"""Combining rewards: a weighted rubric that logs every part, and a gate.

Both take rewards of any kind (plain functions, `TestsPass`, other combinators) and are
rewards themselves: callable as ``(patch, task) -> float`` and with ``evaluate`` returning a
`RewardOutcome` whose components name every part. If any part fails (a broken verifier), the
whole outcome fails: a partial score would silently change what is being optimised.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from swerepair.rewards.outcome import RewardOutcome, VerifierError, evaluate, reward_name

__all__ = ["Gate", "Rubric", "weighted_sum"]

Reward = Callable[[str, Any], float]


class _Combinator:
    name = "combinator"

    def evaluate(self, patch: str, task: Any) -> RewardOutcome:
        raise NotImplementedError

    def __call__(self, patch: str, task: Any) -> float:
        outcome = self.evaluate(patch, task)
        if outcome.failed or outcome.value is None:
            raise VerifierError(outcome.reason or f"{self.name} failed")
        return outcome.value


class Rubric(_Combinator):
    """Weighted mean of named rewards; every part appears in the outcome's components.

    >>> from swerepair.rewards import file_targeting, functional_similarity
    >>> rubric = Rubric({"files": (file_targeting, 1.0), "functional": (functional_similarity, 3.0)})
    >>> class T: patch = "--- a/m.py\\n+++ b/m.py\\n@@ -1 +1 @@\\n-x\\n+y\\n"
    >>> out = rubric.evaluate(T.patch, T())
    >>> out.value, dict(out.components)
    (1.0, {'files': 1.0, 'functional': 1.0})
    """

    def __init__(self, parts: Mapping[str, tuple[Reward, float]], *, name: str = "rubric") -> None:
        if not parts:
            raise ValueError("a rubric needs at least one part")
        if any(w < 0 for _, w in parts.values()) or sum(w for _, w in parts.values()) <= 0:
            raise ValueError("rubric weights must be >= 0 with a positive sum")
        self.parts = dict(parts)
        self.name = name

    def evaluate(self, patch: str, task: Any) -> RewardOutcome:
        components: dict[str, float] = {}
        details: dict[str, Any] = {}
        total = weights = 0.0
        for part, (reward, weight) in self.parts.items():
            out = evaluate(reward, patch, task)
            details.update(out.details)
            if out.failed or out.value is None:
                return RewardOutcome.failure(f"{part}: {out.reason}", components, details)
            components[part] = out.value
            for sub, value in out.components.items():
                if sub != reward_name(reward) and sub != part:
                    components.setdefault(f"{part}/{sub}", value)
            total += weight * out.value
            weights += weight
        return RewardOutcome(min(1.0, max(0.0, total / weights)), components, details=details)


def weighted_sum(weights: Mapping[str, float], rewards: Mapping[str, Reward] | None = None) -> Rubric:
    """A `Rubric` from ``{name: weight}``, names looked up in `rewards` (default: the built-in
    similarity rewards).

    >>> weighted_sum({"file_targeting": 0.2, "functional_similarity": 0.8}).parts["file_targeting"][1]
    0.2
    """
    if rewards is None:
        from swerepair.rewards import REWARDS

        rewards = REWARDS
    unknown = [n for n in weights if n not in rewards]
    if unknown:
        raise ValueError(f"unknown reward(s) {unknown}; known: {sorted(rewards)}")
    return Rubric({n: (rewards[n], w) for n, w in weights.items()}, name="weighted_sum")


class Gate(_Combinator):
    """`reward` if `condition` scores at least `threshold`, else 0 (the condition is evaluated
    first; `reward` only runs when the gate is open).

    >>> from swerepair.rewards import functional_similarity, is_valid_patch
    >>> gated = Gate(is_valid_patch, functional_similarity)
    >>> class T: patch = "--- a/m.py\\n+++ b/m.py\\n@@ -1 +1 @@\\n-x\\n+y\\n"
    >>> gated(T.patch, T()), gated("not a diff", T())
    (1.0, 0.0)
    """

    def __init__(self, condition: Reward, reward: Reward, *, threshold: float = 1.0, name: str = "gate") -> None:
        self.condition = condition
        self.reward = reward
        self.threshold = threshold
        self.name = name

    def evaluate(self, patch: str, task: Any) -> RewardOutcome:
        cond = evaluate(self.condition, patch, task)
        if cond.failed or cond.value is None:
            return RewardOutcome.failure(f"gate condition: {cond.reason}")
        components = {f"gate/{reward_name(self.condition)}": cond.value}
        if cond.value < self.threshold:
            return RewardOutcome(0.0, components | {reward_name(self.reward): 0.0})
        out = evaluate(self.reward, patch, task)
        if out.failed or out.value is None:
            return RewardOutcome.failure(f"gated reward: {out.reason}", components, out.details)
        return RewardOutcome(out.value, components | dict(out.components), details=out.details)
