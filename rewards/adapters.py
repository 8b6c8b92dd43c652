"""Adapters from swerepair rewards to other calling conventions.

TRL calls reward functions as ``f(prompts=..., completions=..., **columns) -> list[float | None]``
with every dataset column passed as a list. `as_trl_reward` wraps any swerepair reward in that
convention; a failed verifier becomes ``None``, which TRL treats as "no reward for this
sample" rather than 0.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

from swerepair.rewards.outcome import evaluate, reward_name

__all__ = ["as_trl_reward", "extract_patch"]

_FENCE = re.compile(r"```(?:diff|patch)?\s*\n(.*?)```", re.DOTALL)


def _text(completion: Any) -> str:
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence):  # conversational: a list of messages
        return "\n".join(str(m.get("content") or "") for m in completion if isinstance(m, dict))
    return ""


def extract_patch(text: str) -> str:
    """The unified diff inside a completion: a fenced ```diff block, else from the first
    ``diff --git``/``--- `` line on, else the text itself.

    >>> extract_patch("Here:\\n```diff\\n--- a/x\\n+++ b/x\\n```\\nDone.")
    '--- a/x\\n+++ b/x\\n'
    """
    fenced = _FENCE.findall(text)
    if fenced:
        return "".join(fenced)
    m = re.search(r"^(diff --git |--- )", text, re.MULTILINE)
    return text[m.start() :] if m else text


def as_trl_reward(
    reward: Callable[[str, Any], float], *, patch_column: str | None = None
) -> Callable[..., list[float | None]]:
    """Wrap `reward` as a TRL reward function.

    The patch of sample i is ``columns[patch_column][i]`` when `patch_column` is given (for
    example a column an environment filled with its final ``git diff``), else the diff found
    in the completion (`extract_patch`). The task of sample i is the dataset row: every column
    at index i, as attributes.

    >>> from swerepair.rewards import functional_similarity
    >>> f = as_trl_reward(functional_similarity)
    >>> gold = "--- a/m.py\\n+++ b/m.py\\n@@ -1 +1 @@\\n-x\\n+y\\n"
    >>> f(prompts=["p", "p"], completions=[gold, "no idea"], patch=[gold, gold])
    [1.0, 0.0]
    """

    def trl_reward(
        prompts: Sequence[Any] | None = None, completions: Sequence[Any] = (), **columns: Any
    ) -> list[float | None]:
        scores: list[float | None] = []
        for i, completion in enumerate(completions):
            row = {
                k: v[i] for k, v in columns.items() if isinstance(v, Sequence) and not isinstance(v, str) and len(v) > i
            }
            patch = row.get(patch_column) if patch_column else extract_patch(_text(completion))
            outcome = evaluate(reward, patch if isinstance(patch, str) else "", SimpleNamespace(**row))
            scores.append(None if outcome.failed else outcome.value)
        return scores

    trl_reward.__name__ = reward_name(reward)
    return trl_reward
