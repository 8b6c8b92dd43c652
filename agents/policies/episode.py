"""Token-exact episodes: the sequence the model saw and generated, with its loss mask.

An `EpisodeBuilder` grows one episode's token sequence from the ids the backend returned,
never by decoding and re-encoding what the model wrote:

    render([system, user], generation prompt)   -> ids, mask 0
    for each turn:
        generated ids (stop token included)      -> ids, mask 1, sampling logprobs
        the rest of the assistant message's end, the new messages and the next generation
        prompt, as the chat template renders them after the turn            -> ids, mask 0

The prompt of every turn is this sequence itself, so the model is always conditioned on
exactly what the trainer will score. The builder also checks, turn by turn, that the
sequence decodes to what the chat template renders for the whole conversation; a template
that rewrites earlier turns (one that strips past reasoning, say) fails that check, which is
recorded as ``info["template_prefix_stable"] = False``: the episode is still exactly what the
model saw, but it differs from what the template would render from scratch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from swerepair.agents.inference.chat import ChatRenderer
from swerepair.agents.policies.base import AssistantTurn, Message
from swerepair.core import Episode

__all__ = ["EpisodeBuilder"]


class EpisodeBuilder:
    """Grows one episode's token sequence (see the module docstring)."""

    def __init__(self, renderer: ChatRenderer, messages: Sequence[Message]) -> None:
        self.renderer = renderer
        self.head = [dict(m) for m in messages[:2]]
        #: the conversation as it is rendered: assistant turns as the raw text generated
        self.rendered_messages: list[Message] = [dict(m) for m in messages]
        self.tokens: list[int] = renderer.encode(renderer.render(messages, add_generation_prompt=True))
        self.loss_mask: list[int] = [0] * len(self.tokens)
        self.logprobs: list[float] = []
        self.versions: list[int] = []
        self.servers: list[str | None] = []  # the inference server of each turn (None in-process)
        self.prefix_stable = True
        self._after_turn = False
        self._end = renderer.assistant_end(self.head)

    @property
    def prompt_ids(self) -> list[int]:
        """The ids the next turn must be generated from: the whole sequence so far."""
        if self._after_turn:
            raise RuntimeError("add the observation of the last turn before asking for a prompt")
        return list(self.tokens)

    def add_turn(self, turn: AssistantTurn, text: str) -> None:
        """Append the generated ids of `turn` (mask 1) and their logprobs; `text` is the
        completion's text without the stop token (what the env receives as the action)."""
        if not turn.trainable:
            raise ValueError("a token-exact episode needs turns with prompt ids, completion ids and logprobs")
        assert turn.completion_ids is not None and turn.logprobs is not None
        if len(turn.logprobs) != len(turn.completion_ids):
            raise ValueError("logprobs and completion ids differ in length")
        if list(turn.prompt_ids or ()) != self.tokens:
            raise ValueError("the turn was not generated from this episode's sequence")
        self.tokens += turn.completion_ids
        self.loss_mask += [1] * len(turn.completion_ids)
        self.logprobs += turn.logprobs
        self.versions.append(turn.policy_version)
        self.servers.append(turn.info.get("server"))
        self.rendered_messages.append({"role": "assistant", "content": text})
        self._last_completion = list(turn.completion_ids)
        self._after_turn = True

    def _missing_end(self) -> str:
        """The part of the template's end-of-assistant text that was not generated."""
        stop_text = self.renderer.decode(self._last_completion[-1:]) if self._last_completion else ""
        if stop_text and self._end.startswith(stop_text):
            return self._end[len(stop_text) :]
        return self._end

    def add_observation(self, new_messages: Sequence[Message]) -> None:
        """Append what the env answered (tool results, a nudge) and the next generation prompt."""
        if not self._after_turn:
            raise RuntimeError("an observation follows a turn")
        text = self._missing_end() + self.renderer.render_new_messages(self.head, new_messages)
        ids = self.renderer.encode(text)
        self.tokens += ids
        self.loss_mask += [0] * len(ids)
        self.rendered_messages += [dict(m) for m in new_messages]
        self._after_turn = False
        self._check(add_generation_prompt=True)

    def _check(self, *, add_generation_prompt: bool) -> None:
        expected = self.renderer.render(self.rendered_messages, add_generation_prompt=add_generation_prompt)
        if self.renderer.decode(self.tokens) != expected:
            self.prefix_stable = False

    def finish(self, messages: Sequence[Message], reward: float, info: dict[str, Any], instance_id: str) -> Episode:
        """Close the episode: after a final turn, append the rest of the assistant message's end."""
        if self._after_turn:
            ids = self.renderer.encode(self._missing_end())
            self.tokens += ids
            self.loss_mask += [0] * len(ids)
            self._after_turn = False
            self._check(add_generation_prompt=False)
        info = dict(info)
        info["policy_versions"] = list(self.versions)
        if any(self.servers):  # generated on inference servers: which one made each turn
            info["policy_servers"] = list(self.servers)
        info["template_prefix_stable"] = self.prefix_stable
        return Episode(
            instance_id=instance_id,
            messages=[dict(m) for m in messages],
            tokens=list(self.tokens),
            loss_mask=list(self.loss_mask),
            logprobs=list(self.logprobs),
            reward=float(reward),
            info=info,
        )
