"""`ModelPolicy`: a chat renderer and a token backend (``hf``) as a `Policy`.

`act(conversations)` is stateless: it renders each conversation from scratch. Token-exact
rollouts use `act_on(builders)` instead, which generates from each episode's accumulated
token sequence (see `swerepair.agents.policies.episode`).

When the backend loses part of a batch (`GenerationError` with ``results``, a server that went
away), both raise `GenerationError` whose ``results`` hold the turns that were generated and
the errors of those that were not.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from swerepair.agents.inference.backend import Backend, Generation, GenerationError
from swerepair.agents.inference.chat import ChatRenderer
from swerepair.agents.policies.base import AssistantTurn
from swerepair.agents.policies.episode import EpisodeBuilder

__all__ = ["ModelPolicy"]

Message = dict[str, Any]


class ModelPolicy:
    """A model behind `backend`, seeing conversations through `renderer`."""

    def __init__(self, backend: Backend, renderer: ChatRenderer) -> None:
        self.backend = backend
        self.renderer = renderer

    def _turn(self, prompt: Sequence[int], gen: Generation) -> AssistantTurn:
        ids = list(gen.token_ids)
        body = ids[:-1] if gen.finish_reason == "stop" and ids else ids
        text = self.renderer.decode(body)
        return AssistantTurn(
            action=text,
            prompt_ids=tuple(prompt),
            completion_ids=tuple(ids),
            logprobs=tuple(gen.logprobs),
            finish_reason=gen.finish_reason,
            policy_version=gen.policy_version,
            info={"server": gen.server} if gen.server else {},
        )

    def _turns(self, prompts: Sequence[Sequence[int]]) -> list[AssistantTurn]:
        try:
            generations = self.backend.generate(prompts)
        except GenerationError as exc:
            if exc.results is None or len(exc.results) != len(prompts):
                raise
            partial = [
                self._turn(p, g) if isinstance(g, Generation) else g for p, g in zip(prompts, exc.results, strict=True)
            ]
            raise GenerationError(str(exc), results=partial) from exc
        return [self._turn(p, g) for p, g in zip(prompts, generations, strict=True)]

    def act(self, conversations: Sequence[Sequence[Message]]) -> list[AssistantTurn]:
        """One turn per conversation, each rendered from scratch with the generation prompt."""
        return self._turns(
            [self.renderer.encode(self.renderer.render(c, add_generation_prompt=True)) for c in conversations]
        )

    def start(self, messages: Sequence[Message]) -> EpisodeBuilder:
        """A token-exact episode starting from the env's first observation."""
        return EpisodeBuilder(self.renderer, messages)

    def act_on(self, builders: Sequence[EpisodeBuilder]) -> list[AssistantTurn]:
        """One turn per episode, generated from each episode's own token sequence."""
        return self._turns([b.prompt_ids for b in builders])
