"""Policies: a batch of conversations in, one assistant turn per conversation out.

A `Policy` is what drives SweRepair-v0. Trainable policies (a model behind an inference
backend) also return, for each turn, the exact token ids it was conditioned on, the ids it
generated and their sampling logprobs, so that trainers score exactly what was sampled.

Backends are lower level (`swerepair.agents.inference.backend`): a `Backend` turns token-id
prompts into generations. `ModelPolicy` (in `swerepair.agents.policies.model`) glues a backend
to a chat renderer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = ["AssistantTurn", "Message", "Policy"]

#: One chat message, in the OpenAI format (``role``, ``content``, optional ``tool_calls``...).
Message = dict[str, Any]


@dataclass(frozen=True)
class AssistantTurn:
    """One assistant turn, as the env takes it and the trainer needs it.

    Attributes:
        action: what to pass to ``env.step``: the raw completion text (tool calls inside it,
            parsed by the scaffold), or an OpenAI assistant message dict.
        prompt_ids: the token ids the model was conditioned on (``None`` for untrainable
            policies: scripted turns, hosted APIs without token ids).
        completion_ids: the generated token ids (``None`` likewise).
        logprobs: sampling logprobs of `completion_ids`.
        finish_reason: ``"stop"`` or ``"length"``.
        policy_version: version of the weights that produced the turn.
    """

    action: str | Message
    prompt_ids: tuple[int, ...] | None = None
    completion_ids: tuple[int, ...] | None = None
    logprobs: tuple[float, ...] | None = None
    finish_reason: str = "stop"
    policy_version: int = 0
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def trainable(self) -> bool:
        """True when the turn carries the ids and logprobs a trainer needs."""
        return self.prompt_ids is not None and self.completion_ids is not None and self.logprobs is not None


@runtime_checkable
class Policy(Protocol):
    """Turns a batch of conversations into assistant turns, one per conversation, in order."""

    def act(self, conversations: Sequence[Sequence[Message]]) -> list[AssistantTurn]: ...
