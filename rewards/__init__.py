"""Rewards: patch parsing and similarity (and, building on them, test execution and combinators).

Every reward is called as ``reward(patch, task) -> float`` with `task` any object carrying the
SWE-bench fields as attributes, and returns a float in [0, 1] without ever raising.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from swerepair.core import PluginError, load_plugin, plugin_name
from swerepair.rewards.adapters import as_trl_reward, extract_patch
from swerepair.rewards.combinators import Gate, Rubric, weighted_sum
from swerepair.rewards.outcome import EvaluatingReward, RewardOutcome, VerifierError, evaluate, reward_name
from swerepair.rewards.patch import FilePatch, Hunk, is_test_path, normalize_file, parse_patch
from swerepair.rewards.similarity import (
    RewardFn,
    context_similarity,
    file_targeting,
    functional_similarity,
    patch_similarity,
    per_file_similarity,
    swe_rl_similarity,
    testing_alignment,
)
from swerepair.rewards.tests_pass import PatchApplies, TestsPass, is_valid_patch

__all__ = [
    "REWARDS",
    "SANDBOX_REWARDS",
    "EvaluatingReward",
    "FilePatch",
    "Gate",
    "Hunk",
    "PatchApplies",
    "RewardFn",
    "RewardOutcome",
    "Rubric",
    "TestsPass",
    "VerifierError",
    "as_trl_reward",
    "context_similarity",
    "evaluate",
    "extract_patch",
    "file_targeting",
    "functional_similarity",
    "is_test_path",
    "is_valid_patch",
    "normalize_file",
    "parse_patch",
    "patch_similarity",
    "per_file_similarity",
    "registered_reward_name",
    "resolve_reward",
    "reward_name",
    "swe_rl_similarity",
    "testing_alignment",
    "weighted_sum",
]

#: The rewards that can be named in ``gymnasium.make("SweRepair-v0", reward=NAME)``.
REWARDS: Mapping[str, RewardFn] = MappingProxyType(
    {
        "functional_similarity": functional_similarity,
        "file_targeting": file_targeting,
        "testing_alignment": testing_alignment,
        "patch_similarity": patch_similarity,
        "swe_rl_similarity": swe_rl_similarity,
        "context_similarity": context_similarity,
        "is_valid_patch": is_valid_patch,
    }
)

#: Rewards that run in a verifier sandbox, by name: built by the env with its sandbox factory.
SANDBOX_REWARDS: Mapping[str, Callable[..., Any]] = MappingProxyType(
    {"tests_pass": TestsPass, "patch_applies": PatchApplies}
)


def resolve_reward(
    reward: str | Callable[[str, Any], float],
    sandbox_factory: Callable[[Any], Any] | None = None,
    **options: Any,
) -> tuple[str, RewardFn]:
    """``(name, reward)`` for a reward given by name or as a callable.

    A name is one of `REWARDS` or `SANDBOX_REWARDS`, an entry point of the group
    ``swerepair.rewards`` (another package's reward), or an import path ``module:function``
    (see `swerepair.core.load_plugin`). Names of `SANDBOX_REWARDS`, and a plugin that is a class,
    need `sandbox_factory` (the env passes its own); `options` go to their constructor
    (``timeout=``).

    >>> resolve_reward("swerepair.rewards.similarity:file_targeting")[1] is file_targeting
    True
    """
    if callable(reward):
        return reward_name(reward), reward
    if reward in REWARDS:
        return reward, REWARDS[reward]
    if reward in SANDBOX_REWARDS:
        if sandbox_factory is None:
            raise ValueError(f"the reward {reward!r} runs tests and needs a sandbox factory")
        return reward, SANDBOX_REWARDS[reward](sandbox_factory, **options)
    try:
        found = load_plugin("swerepair.rewards", reward)
    except PluginError:
        known = sorted([*REWARDS, *SANDBOX_REWARDS])
        raise PluginError(
            f"unknown reward {reward!r}; choose one of {known}, an entry point of the group "
            "swerepair.rewards, an import path module:function, or pass a callable"
        ) from None
    if isinstance(found, type):  # a reward class that runs tests, built like TestsPass
        if sandbox_factory is None:
            raise ValueError(f"the reward {reward!r} is a class and needs a sandbox factory")
        found = found(sandbox_factory, **options)
    if not callable(found):
        raise ValueError(f"the reward {reward!r} is {type(found).__name__}, not a callable (patch, task) -> float")
    return reward, found


def registered_reward_name(reward: Any) -> str | None:
    """The name a config file can carry for `reward` (`resolve_reward` gives it back): its
    built-in name, its entry point's name, or ``module:function``; None for a lambda, a
    closure or an object built at run time.

    >>> registered_reward_name(functional_similarity)
    'functional_similarity'
    >>> registered_reward_name(lambda patch, task: 1.0) is None
    True
    """
    return plugin_name(reward, "swerepair.rewards", {**REWARDS, **SANDBOX_REWARDS})
