"""`OpenAIPolicy` episodes against swerepair's embedded server: token-exact (tokens, loss mask,
sampling logprobs the model gives those tokens) with a renderer, and a one-time warning where
the server returns no ids or logprobs."""

from __future__ import annotations

import functools
import logging

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import torch

from swerepair.agents.inference.chat import ChatRenderer
from swerepair.agents.inference.models import load_model
from swerepair.agents.inference.server import InferenceServer
from swerepair.agents.policies.openai import OpenAIPolicy
from swerepair.agents.scaffold import nano_agent
from swerepair.envs.env import SweRepairEnv
from swerepair.envs.rollout import run_episodes

TASK = "swerepair__intervals-5"


@pytest.fixture(scope="module")
def served():
    model, tok = load_model("tiny-qwen3")
    with InferenceServer(model, tok, model_name="tiny", default_max_tokens=16) as srv:
        yield srv, model, tok


def make_env() -> SweRepairEnv:
    return SweRepairEnv("bundled", max_tool_calls=3)


def test_episodes_are_token_exact(served, caplog: pytest.LogCaptureFixture) -> None:
    srv, model, tok = served
    scaffold = nano_agent()
    renderer = ChatRenderer(tok, scaffold.tool_schemas())
    policy = OpenAIPolicy(
        base_url=srv.url,
        model="tiny",
        tools=scaffold.tool_schemas(),
        max_tokens=12,
        renderer=renderer,
        extra_body={"seed": 0},
    )
    with caplog.at_level(logging.WARNING), policy:
        episodes = run_episodes(make_env, policy, [TASK, TASK], seed=0)
    assert "not token-exact" not in caplog.text
    for ep in episodes:
        assert ep.info["token_exact"] is True and not ep.info["failed"]
        assert len(ep.tokens) == len(ep.loss_mask) and sum(ep.loss_mask) == len(ep.logprobs) > 0
        assert ep.info["policy_versions"]  # one per turn
        # the recorded logprobs are the model's own at temperature 1 for exactly these tokens
        ids = torch.tensor([ep.tokens])
        with torch.no_grad():
            logits = model(ids).logits[0, :-1].float()
        scored = torch.log_softmax(logits, -1).gather(1, ids[0, 1:, None])[:, 0]
        mask = torch.tensor(ep.loss_mask[1:], dtype=torch.bool)
        assert scored[mask].tolist() == pytest.approx(ep.logprobs, abs=1e-4)


def test_without_ids_or_logprobs_one_warning_and_untrainable_episodes(served, caplog: pytest.LogCaptureFixture) -> None:
    srv, _, tok = served
    scaffold = nano_agent()
    policy = OpenAIPolicy(
        base_url=srv.url,
        model="tiny",
        max_tokens=8,
        renderer=ChatRenderer(tok, scaffold.tool_schemas()),
        extra_body={"logprobs": False},  # as a server that returns no logprobs
    )
    with caplog.at_level(logging.WARNING), policy:
        episodes = run_episodes(functools.partial(make_env), policy, [TASK, TASK], seed=0)
    warnings = [r for r in caplog.records if "not token-exact" in r.getMessage()]
    assert len(warnings) == 1 and "no logprobs" in warnings[0].getMessage()
    for ep in episodes:
        assert ep.info["token_exact"] is False and ep.tokens == [] and ep.messages


def test_without_a_renderer_turns_that_lack_logprobs_warn_once(served, caplog: pytest.LogCaptureFixture) -> None:
    srv, _, _ = served
    with (
        caplog.at_level(logging.WARNING),
        OpenAIPolicy(base_url=srv.url, model="tiny", max_tokens=4, extra_body={"logprobs": False}) as policy,
    ):
        conv = [{"role": "user", "content": "hi"}]
        policy.act([conv])
        policy.act([conv, conv])
    assert sum("not token-exact" in r.getMessage() for r in caplog.records) == 1


def test_the_conversation_sent_after_exactness_drops_is_the_envs(served) -> None:
    """A text turn is recorded as the env records it (well-formed calls with the env's ids), so
    the tool answers stay tool messages for a strict server instead of becoming errors."""
    from swerepair.agents.policies.base import AssistantTurn
    from swerepair.agents.policies.openai import to_openai_messages
    from swerepair.agents.policies.scripted import hermes_call

    srv, _, tok = served
    policy = OpenAIPolicy(base_url=srv.url, model="tiny", renderer=ChatRenderer(tok, nano_agent().tool_schemas()))
    episode = policy.start([{"role": "system", "content": "s"}, {"role": "user", "content": "fix it"}])
    episode.exact = False
    text = "Looking.\n" + hermes_call("shell", {"cmd": "ls"})
    episode.add_turn(AssistantTurn(text), text)
    episode.add_observation([{"role": "tool", "tool_call_id": "call_1_0", "name": "shell", "content": "a.py"}])
    sent = to_openai_messages(episode.conversation)
    assert sent[2]["tool_calls"][0]["id"] == "call_1_0" and sent[2]["content"] == "Looking."
    assert sent[3] == {"role": "tool", "tool_call_id": "call_1_0", "content": "a.py"}
    policy.close()
