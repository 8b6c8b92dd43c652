"""Rewards: patch parsing and similarity (and, building on them, test execution and combinators).

Every reward is called as ``reward(patch, task) -> float`` with `task` any object carrying the
SWE-bench fields as attributes, and returns a float in [0, 1] without ever raising.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from swerepair.rewards.patch import FilePatch, Hunk, is_test_path, normalize_file, parse_patch
from swerepair.rewards.similarity import (
    RewardFn,
    file_targeting,
    functional_similarity,
    patch_similarity,
    per_file_similarity,
    testing_alignment,
)

__all__ = [
    "REWARDS",
    "FilePatch",
    "Hunk",
    "RewardFn",
    "file_targeting",
    "functional_similarity",
    "is_test_path",
    "normalize_file",
    "parse_patch",
    "patch_similarity",
    "per_file_similarity",
    "resolve_reward",
    "testing_alignment",
]

#: The rewards that can be named in ``gymnasium.make("SweRepair-v0", reward=NAME)``.
REWARDS: Mapping[str, RewardFn] = MappingProxyType(
    {
        "functional_similarity": functional_similarity,
        "file_targeting": file_targeting,
        "testing_alignment": testing_alignment,
        "patch_similarity": patch_similarity,
    }
)


def resolve_reward(reward: str | Callable[[str, Any], float]) -> tuple[str, RewardFn]:
    """``(name, function)`` for a reward given by name or as a callable."""
    if callable(reward):
        return getattr(reward, "__name__", type(reward).__name__), reward
    if reward not in REWARDS:
        raise ValueError(f"unknown reward {reward!r}; choose one of {sorted(REWARDS)} or pass a callable")
    return reward, REWARDS[reward]
