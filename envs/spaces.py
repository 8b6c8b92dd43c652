"""Gymnasium spaces for chat conversations (observations) and assistant turns (actions).

Both are JSON-shaped Python values, so they are custom `gymnasium.spaces.Space` subclasses:
`contains` validates the structure, `sample` draws a random valid value from the space's RNG
(seeded through `space.seed`). Vector envs batch them as tuples, as for any custom space.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

__all__ = ["ROLES", "AssistantTurnSpace", "ConversationSpace", "is_message"]

ROLES = ("system", "user", "assistant", "tool")

_WORDS = (
    "the",
    "test",
    "fails",
    "when",
    "value",
    "is",
    "empty",
    "let",
    "me",
    "check",
    "repository",
    "function",
    "returns",
    "wrong",
    "result",
    "for",
    "this",
    "input",
    "I",
    "will",
    "look",
)


def _is_tool_call(call: Any) -> bool:
    if not isinstance(call, dict) or not isinstance(call.get("id"), str):
        return False
    fn = call.get("function")
    return (
        call.get("type", "function") == "function"
        and isinstance(fn, dict)
        and isinstance(fn.get("name"), str)
        and isinstance(fn.get("arguments"), (str, dict))
    )


def is_message(msg: Any) -> bool:
    """True for an OpenAI-style chat message as the env produces them."""
    if not isinstance(msg, dict) or msg.get("role") not in ROLES:
        return False
    content = msg.get("content")
    if not isinstance(content, str) and not (content is None and msg["role"] == "assistant"):
        return False
    if "tool_calls" in msg:
        calls = msg["tool_calls"]
        if msg["role"] != "assistant" or not isinstance(calls, list):
            return False
        if not all(_is_tool_call(c) for c in calls):
            return False
    return not (msg["role"] == "tool" and not isinstance(msg.get("tool_call_id"), str))


def _random_text(rng: np.random.Generator, lo: int = 3, hi: int = 12) -> str:
    n = int(rng.integers(lo, hi))
    return " ".join(_WORDS[int(i)] for i in rng.integers(0, len(_WORDS), size=n))


class _StructuredSpace(spaces.Space[Any]):
    """Base of the JSON-shaped spaces: no shape, no dtype, not flattenable; equal by type."""

    def __init__(self, seed: int | np.random.Generator | None = None) -> None:
        super().__init__(shape=None, dtype=None, seed=seed)

    @property
    def is_np_flattenable(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash(type(self))


class ConversationSpace(_StructuredSpace):
    """A list of chat messages (``role``, ``content``, ``tool_calls``, ``tool_call_id``).

    Observations of SweRepair-v0 live here: the conversation so far, oldest message first,
    starting with the system message.
    """

    def contains(self, x: Any) -> bool:
        return isinstance(x, list) and all(is_message(m) for m in x)

    def sample(self, mask: Any | None = None, probability: Any | None = None) -> list[dict[str, Any]]:
        """A random two-message conversation (system, user)."""
        return [
            {"role": "system", "content": _random_text(self.np_random)},
            {"role": "user", "content": _random_text(self.np_random)},
        ]


class AssistantTurnSpace(_StructuredSpace):
    """One assistant turn: raw completion text (``str``) or an OpenAI-style assistant message
    (``{"role": "assistant", "content": ..., "tool_calls": [...]}``).

    `contains` checks the shape only; whether the tool calls are well formed is the env's
    business (a malformed call is an error observation, not an invalid action).
    """

    def contains(self, x: Any) -> bool:
        if isinstance(x, str):
            return True
        if not isinstance(x, dict) or x.get("role", "assistant") != "assistant":
            return False
        content = x.get("content")
        return (content is None or isinstance(content, str)) and isinstance(x.get("tool_calls", []), list)

    def sample(self, mask: Any | None = None, probability: Any | None = None) -> str:
        """Random completion text without a tool call (the env answers it with a nudge)."""
        return _random_text(self.np_random)
