"""Group-relative advantages over GRPO groups (G episodes of the same task).

A GRPO step samples G episodes per task; the episodes of one task form a *group* and every
episode's advantage is its reward measured against the rest of its group, with no learned
value function. For a group with rewards r_1..r_G, mean_g = (1/G) Σ_j r_j and

    grpo      A_i = (r_i - mean_g) / (std_g + eps),   std_g = sqrt((1/G) Σ_j (r_j - mean_g)²)
    dr_grpo   A_i = r_i - mean_g                      (Dr. GRPO: no division by the std)
    rloo      A_i = r_i - (1/(G-1)) Σ_{j≠i} r_j       (leave-one-out baseline)
              = G/(G-1) · (r_i - mean_g)

`std_g` is the *population* std (ddof=0): the group is the whole sample the advantages are
computed over, not a draw from which a variance is estimated, and with it the grpo advantages
of a group have mean 0 and root-mean-square exactly 1 (up to `eps`) whatever G is; rewards
[1, 0, 0, 1] give [1, -1, -1, 1]. (TRL's GRPOTrainer uses torch's default, the sample std,
ddof=1, which only rescales every advantage by sqrt((G-1)/G) for a fixed G.)

`eps` only keeps grpo finite for rewards that differ by a hair (equal rewards never reach the
division), so ``eps=0.0`` is safe and gives the exact formula.

In every estimator the advantages of a group of two or more sum to 0. A group whose rewards are
all equal (a group of one included) carries no learning signal: its advantages are exactly 0.0
(not a float residue of ``r - mean``) and it is counted in `zero_variance_groups`.

Episodes that failed for infrastructure reasons (``info["failed"]``: sandbox or verifier
errors) are never scored 0: `drop_failed` removes them, and their group's advantages come from
the members that remain.

>>> compute_advantages([1, 0, 0, 1], ["a"] * 4, eps=0.0).advantages
[1.0, -1.0, -1.0, 1.0]
>>> compute_advantages([1, 0, 0, 1], ["a"] * 4, estimator="dr_grpo").advantages
[0.5, -0.5, -0.5, 0.5]
>>> compute_advantages([1, 0, 0, 1], ["a"] * 4, estimator="rloo").advantages
[0.666..., -0.666..., -0.666..., 0.666...]
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol, TypeVar

__all__ = [
    "ESTIMATORS",
    "AdvantageResult",
    "GroupStats",
    "compute_advantages",
    "drop_failed",
    "group_advantages",
]

#: The estimators `compute_advantages` accepts.
ESTIMATORS: tuple[str, ...] = ("grpo", "dr_grpo", "rloo")


class _Scored(Protocol):
    @property
    def reward(self) -> float: ...

    @property
    def info(self) -> Mapping[str, Any]: ...


class _GroupedScored(_Scored, Protocol):
    @property
    def instance_id(self) -> Hashable: ...


S = TypeVar("S", bound=_Scored)
E = TypeVar("E", bound=_GroupedScored)


@dataclass(frozen=True)
class GroupStats:
    """One group's reward statistics.

    Attributes:
        size: the number of members (G).
        mean: the mean reward.
        std: the population std of the rewards.
        zero_variance: all rewards are equal (or the group has one member): advantages are 0.
    """

    size: int
    mean: float
    std: float
    zero_variance: bool


@dataclass(frozen=True)
class AdvantageResult:
    """Advantages aligned with the input rewards, and per-group statistics.

    Attributes:
        advantages: one advantage per input reward, in input order.
        groups: the number of distinct groups.
        zero_variance_groups: groups whose rewards are all equal (size 1 included); they give
            no gradient and their advantages are exactly 0.
        per_group: group id -> `GroupStats`, in order of first appearance.
        estimator: the estimator used.
    """

    advantages: list[float]
    groups: int
    zero_variance_groups: int
    per_group: Mapping[Hashable, GroupStats] = field(default_factory=dict)
    estimator: str = "grpo"

    @property
    def informative_groups(self) -> int:
        """Groups that carry a learning signal (not zero-variance)."""
        return self.groups - self.zero_variance_groups


def compute_advantages(
    rewards: Sequence[float],
    group_ids: Sequence[Hashable],
    estimator: str = "grpo",
    eps: float = 1e-6,
) -> AdvantageResult:
    """Group-relative advantages of `rewards`, grouped by `group_ids` (see the module docstring).

    Group members need not be contiguous. Raises ValueError on an unknown estimator, lengths
    that differ, a non-finite reward or a negative `eps`.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown advantage estimator {estimator!r}; valid: {', '.join(ESTIMATORS)}")
    if len(rewards) != len(group_ids):
        raise ValueError(f"{len(rewards)} rewards but {len(group_ids)} group ids")
    if not eps >= 0.0:
        raise ValueError(f"eps must be >= 0, got {eps!r}")
    values = [float(r) for r in rewards]
    bad = [r for r in values if not math.isfinite(r)]
    if bad:
        raise ValueError(f"rewards must be finite, got {bad[0]!r}")

    members: dict[Hashable, list[int]] = {}
    for index, gid in enumerate(group_ids):
        members.setdefault(gid, []).append(index)

    advantages = [0.0] * len(values)
    per_group: dict[Hashable, GroupStats] = {}
    for gid, indices in members.items():
        group = [values[i] for i in indices]
        size = len(group)
        mean = math.fsum(group) / size
        zero_variance = all(r == group[0] for r in group)
        if zero_variance:
            per_group[gid] = GroupStats(size=size, mean=group[0], std=0.0, zero_variance=True)
            continue  # advantages stay exactly 0.0
        std = math.sqrt(math.fsum((r - mean) ** 2 for r in group) / size)
        per_group[gid] = GroupStats(size=size, mean=mean, std=std, zero_variance=False)
        if estimator == "grpo":
            group_adv = [(r - mean) / (std + eps) for r in group]
        elif estimator == "dr_grpo":
            group_adv = [r - mean for r in group]
        else:  # rloo; size >= 2 here, as a group of one is zero-variance
            total = math.fsum(group)
            group_adv = [r - (total - r) / (size - 1) for r in group]
        for i, adv in zip(indices, group_adv, strict=True):
            advantages[i] = adv

    return AdvantageResult(
        advantages=advantages,
        groups=len(members),
        zero_variance_groups=sum(s.zero_variance for s in per_group.values()),
        per_group=MappingProxyType(per_group),
        estimator=estimator,
    )


def drop_failed(episodes: Iterable[S]) -> tuple[list[S], int]:
    """The episodes whose ``info.get("failed")`` is false, and how many were dropped.

    Infrastructure failures are dropped from their group rather than scored 0, so that a
    broken sandbox does not read as a bad answer.
    """
    kept: list[S] = []
    dropped = 0
    for episode in episodes:
        if episode.info.get("failed"):
            dropped += 1
        else:
            kept.append(episode)
    return kept, dropped


def group_advantages(
    episodes: Iterable[E], estimator: str = "grpo", eps: float = 1e-6
) -> tuple[list[E], AdvantageResult, int]:
    """Drop failed episodes, group the rest by ``instance_id`` and compute their advantages.

    Returns the kept episodes (in input order), their `AdvantageResult` (aligned with them) and
    the number of episodes dropped.
    """
    kept, dropped = drop_failed(episodes)
    result = compute_advantages(
        [episode.reward for episode in kept], [episode.instance_id for episode in kept], estimator, eps
    )
    return kept, result, dropped
