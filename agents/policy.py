"""Policies: a batch of conversations in, one assistant turn per conversation out.

A `Policy` is what drives SweRepair-v0. Trainable policies (a model behind an inference
backend) also return, for each turn, the exact token ids it was conditioned on, the ids it
generated and their sampling logprobs, so that trainers score exactly what was sampled.

Backends are lower level: a `Backend` turns token-id prompts into generations. `ModelPolicy`
(in `swerepair.agents.model_policy`) glues a backend to a chat renderer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = ["AssistantTurn", "Backend", "Generation", "GenerationError", "Policy", "ScriptedPolicy"]

Message = dict[str, Any]


class GenerationError(RuntimeError):
    """The policy could not produce a turn for reasons outside the model: its inference server
    is unreachable, was restarted, or dropped the connection. Rollouts fail the affected
    episodes (``exit_reason="policy_error"``) instead of stopping; trainers drop them.

    Attributes:
        results: when the batch failed only in part, one entry per prompt (or conversation) of
            the batch, in order: the result (a `Generation` from a backend, an `AssistantTurn`
            from a policy) where it succeeded, the exception where it failed. ``None`` when
            the whole batch failed.
    """

    def __init__(self, message: str, *, results: list[Any] | None = None) -> None:
        super().__init__(message)
        self.results = results


@dataclass(frozen=True)
class Generation:
    """What a backend generated for one prompt.

    Attributes:
        token_ids: the generated ids, the stop token included when generation stopped on one.
        logprobs: log-probability of each generated id under the sampling distribution
            (``log_softmax(logits / temperature)``, before top-p truncation), same length.
        text: the decoded text of `token_ids`, special tokens kept.
        finish_reason: ``"stop"`` (a stop token) or ``"length"`` (max new tokens).
        policy_version: version of the weights that produced it (0 until weights are pushed).
    """

    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...]
    text: str
    finish_reason: str = "stop"
    policy_version: int = 0


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


@runtime_checkable
class Backend(Protocol):
    """Generates continuations of token-id prompts (batched), with sampling logprobs."""

    def generate(self, prompts: Sequence[Sequence[int]]) -> list[Generation]: ...


class ScriptedPolicy:
    """Replays given turns: for tests, demos and building SFT data.

    `script` maps a conversation to its next turn text: either a list of turns (the same
    script for every conversation, indexed by how many assistant turns the conversation
    already has) or a callable ``conversation -> str``.

    >>> policy = ScriptedPolicy(["first", "second"])
    >>> [t.action for t in policy.act([[{"role": "user", "content": "hi"}]])]
    ['first']
    """

    def __init__(self, script: Sequence[str | Message] | Any) -> None:
        self.script = script

    def act(self, conversations: Sequence[Sequence[Message]]) -> list[AssistantTurn]:
        turns = []
        for conv in conversations:
            if callable(self.script):
                turns.append(AssistantTurn(self.script(conv)))
                continue
            k = sum(1 for m in conv if m.get("role") == "assistant")
            if k >= len(self.script):
                raise IndexError(f"the script has {len(self.script)} turns; turn {k + 1} was asked for")
            turns.append(AssistantTurn(self.script[k]))
        return turns
