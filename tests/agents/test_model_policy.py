"""Token-exact episodes with the tiny Qwen3 model: rendering, masks, logprobs, batching."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from swerepair.agents.inference.backend import Generation  # noqa: E402
from swerepair.agents.inference.chat import ChatRenderer, hermes_tools_block  # noqa: E402
from swerepair.agents.inference.hf_backend import HFBackend  # noqa: E402
from swerepair.agents.inference.models import load_model  # noqa: E402
from swerepair.agents.policies.model import ModelPolicy  # noqa: E402
from swerepair.agents.policies.scripted import ScriptedPolicy, hermes_call  # noqa: E402
from swerepair.agents.scaffold import nano_agent  # noqa: E402
from swerepair.envs import SweRepairEnv  # noqa: E402
from swerepair.envs.rollout import run_episodes  # noqa: E402

TOOLS = nano_agent().tool_schemas()


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-qwen3")


def recomputed_logprobs(model, episode) -> list[float]:
    """One forward pass over the whole episode at temperature 1."""
    with torch.no_grad():
        logits = model(torch.tensor([episode.tokens])).logits[0].float()
    logp = torch.log_softmax(logits, dim=-1)
    return [float(logp[i - 1, episode.tokens[i]]) for i, m in enumerate(episode.loss_mask) if m]


class ForcedBackend:
    """Emits scripted completions (so that tool calls really happen) with the logprobs the real
    model assigns to them: a stand-in for sampling where a test needs particular text."""

    def __init__(self, model, tokenizer, completions: list[str]) -> None:
        self.model, self.tokenizer, self.completions = model, tokenizer, list(completions)
        self.stop = tokenizer.convert_tokens_to_ids("<|im_end|>")

    def generate(self, prompts):
        out = []
        for prompt in prompts:
            ids = self.tokenizer(self.completions.pop(0), add_special_tokens=False)["input_ids"] + [self.stop]
            with torch.no_grad():
                logits = self.model(torch.tensor([list(prompt) + ids])).logits[0].float()
            logp = torch.log_softmax(logits, dim=-1)
            lps = tuple(float(logp[len(prompt) + k - 1, t]) for k, t in enumerate(ids))
            out.append(Generation(tuple(ids), lps, self.tokenizer.decode(ids), "stop"))
        return out


def test_tools_are_rendered_natively_or_through_the_fallback(tiny) -> None:
    _, tok = tiny
    msgs = [{"role": "system", "content": "SYSTEM"}, {"role": "user", "content": "the bug"}]
    native = ChatRenderer(tok, TOOLS)
    assert native.native_tools
    text = native.render(msgs, add_generation_prompt=True)
    assert '"name": "shell"' in text and '"name": "apply_patch"' in text and "<tools>" in text
    assert text.endswith("<|im_start|>assistant\n")

    class NoTools:
        """The same tokenizer with a template that knows nothing of tools."""

        def __init__(self, inner) -> None:
            self.inner = inner
            self.chat_template = (
                "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endfor %}"
                "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
            )

        def apply_chat_template(self, messages, **kw):
            assert "tools" not in kw
            return self.inner.apply_chat_template(messages, chat_template=self.chat_template, **kw)

    fallback = ChatRenderer(NoTools(tok), TOOLS)
    assert not fallback.native_tools
    text = fallback.render(msgs, add_generation_prompt=True)
    assert text.startswith("<|im_start|>system\nSYSTEM\n\n# Tools") and hermes_tools_block(TOOLS) in text


def test_sampled_episodes_are_token_exact(tiny) -> None:
    model, tok = tiny
    backend = HFBackend(model, tok, temperature=1.0, max_new_tokens=24, seed=3)
    policy = ModelPolicy(backend, ChatRenderer(tok, TOOLS))
    # Two different tasks in one batch: different prompt lengths, so left padding is exercised.
    episodes = run_episodes(
        lambda: SweRepairEnv(max_tool_calls=3), policy, ["swerepair__intervals-1", "swerepair__unitconv-3"], seed=0
    )
    assert len(episodes) == 2
    for ep in episodes:
        assert ep.info["token_exact"] and ep.info["template_prefix_stable"]
        assert len(ep.tokens) == len(ep.loss_mask) and sum(ep.loss_mask) == len(ep.logprobs) > 0
        assert ep.info["exit_reason"] == "tool_call_budget" and ep.info["policy_versions"] == [0, 0, 0]
        diffs = [abs(a - b) for a, b in zip(recomputed_logprobs(model, ep), ep.logprobs, strict=True)]
        assert max(diffs) < 1e-4, max(diffs)
        json.dumps(ep.to_json())


def raw_conversation(messages, completions):
    """The conversation as the builder renders it: assistant turns as the raw completion
    text, up to the last assistant turn (what the model saw and generated)."""
    out, k = [], 0
    for m in messages:
        if m["role"] == "assistant":
            out.append({"role": "assistant", "content": completions[k]})
            k += 1
        else:
            out.append(m)
    last = max(i for i, m in enumerate(out) if m["role"] == "assistant")
    return out[: last + 1]


def test_tool_turns_decode_to_the_rendered_conversation(tiny) -> None:
    model, tok = tiny
    completions = [
        "Let me look.\n" + hermes_call("shell", {"cmd": "ls intervals"}),
        hermes_call("apply_patch", {"file": "README.md", "search": "nothing-matches-this", "replace": "x"}),
        "<tool_call>{broken json</tool_call>",
        "I give up.",  # no call on a clean tree: a nudge, and the 4th step ends the budget
    ]
    renderer = ChatRenderer(tok, TOOLS)
    policy = ModelPolicy(ForcedBackend(model, tok, completions), renderer)
    (ep,) = run_episodes(lambda: SweRepairEnv(max_tool_calls=4), policy, ["swerepair__intervals-2"])
    assert ep.info["exit_reason"] == "tool_call_budget"
    tool_msgs = [m for m in ep.messages if m["role"] == "tool"]
    assert "interval.py" in tool_msgs[0]["content"]
    assert tool_msgs[1]["content"].startswith("Error: apply_patch: the search text was not found")
    assert tool_msgs[2]["content"].startswith("Error: could not parse your tool call")

    # The token ids decode to exactly what the chat template renders for the conversation.
    expected = renderer.render(raw_conversation(ep.messages, completions), add_generation_prompt=False)
    assert renderer.decode(ep.tokens) == expected
    # The mask is 1 exactly on the generated tokens: each completion plus its stop token.
    generated = [t for t, m in zip(ep.tokens, ep.loss_mask, strict=True) if m]
    stop = tok.convert_tokens_to_ids("<|im_end|>")
    expected_ids = [i for c in completions for i in (*tok(c, add_special_tokens=False)["input_ids"], stop)]
    assert generated == expected_ids
    assert ep.info["template_prefix_stable"]
    diffs = [abs(a - b) for a, b in zip(recomputed_logprobs(model, ep), ep.logprobs, strict=True)]
    assert max(diffs) < 1e-4


def test_a_template_that_rewrites_history_is_detected(tiny) -> None:
    """Like templates that strip past reasoning: earlier assistant turns lose their <think>."""
    model, tok = tiny
    stripping = tok.chat_template.replace(
        "{{ '<|im_start|>assistant\\n' + (message.content or '') }}",
        "{{ '<|im_start|>assistant\\n' + ((message.content or '').split('</think>')[-1] if not loop.last "
        "else (message.content or '')) }}",
    )
    assert stripping != tok.chat_template

    class Stripping:
        def __init__(self, inner) -> None:
            self.inner, self.chat_template = inner, stripping

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def __call__(self, *a, **kw):
            return self.inner(*a, **kw)

        def apply_chat_template(self, messages, **kw):
            return self.inner.apply_chat_template(messages, chat_template=stripping, **kw)

    completions = ["<think>hmm</think>" + hermes_call("shell", {"cmd": "ls"}), "done?"]
    policy = ModelPolicy(ForcedBackend(model, tok, completions), ChatRenderer(Stripping(tok), TOOLS))
    (ep,) = run_episodes(lambda: SweRepairEnv(max_tool_calls=2), policy, ["swerepair__intervals-2"])
    assert ep.info["template_prefix_stable"] is False
    # What is kept is still what the model saw: the think block is in the tokens.
    assert "<think>hmm</think>" in ChatRenderer(tok).decode(ep.tokens)


def test_scripted_policies_give_message_only_episodes(toy_task) -> None:
    script = [hermes_call("apply_patch", {"file": "calc.py", "search": "a - b", "replace": "a + b"}), "done"]
    (ep,) = run_episodes(lambda: SweRepairEnv(tasks=[toy_task]), ScriptedPolicy(script), [toy_task.instance_id])
    assert ep.reward == 1.0 and ep.info["token_exact"] is False and ep.tokens == []
