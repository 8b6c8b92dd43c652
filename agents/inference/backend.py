"""Inference backends: token-id prompts in, generations (ids, sampling logprobs) out.

A `Backend` is the lowest layer of the model stack: it knows token ids, not conversations.
`swerepair.agents.inference.hf_backend.HFBackend` generates in-process;
`swerepair.agents.inference.server_backend.ServerBackend` through OpenAI-compatible servers.
`swerepair.agents.policies.model.ModelPolicy` glues a backend to a chat renderer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = ["Backend", "Generation", "GenerationError"]


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
        server: the root URL of the inference server that generated it (``""`` in-process).
    """

    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...]
    text: str
    finish_reason: str = "stop"
    policy_version: int = 0
    server: str = ""


@runtime_checkable
class Backend(Protocol):
    """Generates continuations of token-id prompts (batched), with sampling logprobs."""

    def generate(self, prompts: Sequence[Sequence[int]]) -> list[Generation]: ...
