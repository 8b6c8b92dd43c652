"""What a reward says about one patch: a value, its components, or that it could not say.

Plain rewards are functions ``(patch, task) -> float``. Rewards that run something (tests in a
sandbox) or combine others also have ``evaluate(patch, task) -> RewardOutcome``, which can
report *failure*: the verifier itself broke (a timeout, a crashed sandbox, a missing
interpreter), so the episode carries no signal and trainers drop it. A failure is never a 0.

`evaluate` below gives every reward, plain or not, that richer interface.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = ["EvaluatingReward", "RewardOutcome", "VerifierError", "evaluate", "reward_name"]

log = logging.getLogger(__name__)


class VerifierError(RuntimeError):
    """A reward could not be computed for reasons that are not the patch's fault.

    Calling a sandbox-backed reward as a plain function raises this instead of returning a
    number, so that nobody mistakes a broken verifier for a score of 0.
    """


@dataclass(frozen=True)
class RewardOutcome:
    """A reward's full answer for one patch.

    Attributes:
        value: the reward in [0, 1]; ``None`` when `failed`.
        components: named parts worth logging (every sub-reward of a rubric, the fraction of
            tests passed, ...), each in [0, 1].
        failed: the verifier broke; the episode must be dropped, not scored.
        reason: why it failed, for logs.
        details: what a verifier wants a reader to know about how it decided (the files it
            dropped from the patch, tampering it flagged, why a run scored 0); the env puts
            them in ``info["verifier"]``. JSON-serialisable.
    """

    value: float | None
    components: Mapping[str, float] = field(default_factory=dict)
    failed: bool = False
    reason: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def failure(
        cls, reason: str, components: Mapping[str, float] | None = None, details: Mapping[str, Any] | None = None
    ) -> RewardOutcome:
        """An outcome that says the verifier broke."""
        return cls(
            value=None, components=dict(components or {}), failed=True, reason=reason, details=dict(details or {})
        )


@runtime_checkable
class EvaluatingReward(Protocol):
    """A reward that reports components and failure, as well as being callable."""

    def evaluate(self, patch: str, task: Any) -> RewardOutcome: ...

    def __call__(self, patch: str, task: Any) -> float: ...


def reward_name(reward: Callable[..., Any]) -> str:
    """The name a reward is logged under: its ``name`` attribute, ``__name__``, or class name."""
    name = getattr(reward, "name", None) or getattr(reward, "__name__", None)
    return str(name or type(reward).__name__)


def evaluate(reward: Callable[[str, Any], float], patch: str, task: Any) -> RewardOutcome:
    """Evaluate any reward into a `RewardOutcome`.

    Rewards with an ``evaluate`` method are asked directly. A plain function's value becomes
    the outcome's value and its one component; if it raises, the outcome is a failure (a
    reward that raises is a broken verifier, not a bad patch).

    >>> evaluate(lambda patch, task: 0.5, "", None).value
    0.5
    >>> evaluate(lambda patch, task: 1 / 0, "", None).failed
    True
    """
    if isinstance(reward, EvaluatingReward):
        try:
            return reward.evaluate(patch, task)
        except Exception as exc:
            log.exception("reward %s raised in evaluate()", reward_name(reward))
            return RewardOutcome.failure(f"{type(exc).__name__}: {exc}")
    try:
        value = float(reward(patch, task))
    except Exception as exc:
        log.exception("reward %s raised", reward_name(reward))
        return RewardOutcome.failure(f"{type(exc).__name__}: {exc}")
    if not 0.0 <= value <= 1.0:  # also catches NaN
        return RewardOutcome.failure(f"{reward_name(reward)} returned {value}, outside [0, 1]")
    return RewardOutcome(value=value, components={reward_name(reward): value})
