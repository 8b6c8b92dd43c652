"""Rendering conversations for a model: its own chat template, tools included.

When the tokenizer's chat template knows about tools (it references ``tools``), the tool
schemas go through it, as the model was trained to see them. Otherwise the **Hermes/Qwen
fallback** appends this block to the system message (or makes one), and the model is asked
to answer with ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``, which
`HermesParser` reads::

    # Tools

    You may call one or more functions to assist with the user query.

    You are provided with function signatures within <tools></tools> XML tags:
    <tools>
    {"type": "function", "function": {...}}
    </tools>

    For each function call, return a json object with function name and arguments within
    <tool_call></tool_call> XML tags:
    <tool_call>
    {"name": <function-name>, "arguments": <args-json-object>}
    </tool_call>

`ChatRenderer.render_new_messages` gives the text the template puts between the end of an
assistant turn and the next generation prompt (tool results, a nudge), rendered after a fixed
anchor conversation. This is what keeps episodes token-exact without re-rendering history.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from typing import Any

__all__ = ["ChatRenderer", "hermes_tools_block"]

Message = dict[str, Any]

_ANCHOR = "ANCHOR-2f9c"


def hermes_tools_block(tools: Sequence[dict[str, Any]]) -> str:
    """The fallback tool instructions (see the module docstring)."""
    lines = "\n".join(json.dumps(t, ensure_ascii=False) for t in tools)
    return (
        "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
        f"You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{lines}\n</tools>\n\n"
        "For each function call, return a json object with function name and arguments within "
        "<tool_call></tool_call> XML tags:\n<tool_call>\n"
        '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
    )


class ChatRenderer:
    """A tokenizer's chat template plus a tool set: conversations to text and token ids.

    Args:
        tokenizer: a Hugging Face tokenizer with a chat template.
        tools: OpenAI function schemas (``scaffold.tool_schemas()``).
    """

    def __init__(self, tokenizer: Any, tools: Sequence[dict[str, Any]] = ()) -> None:
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError("the tokenizer has no chat template")
        self.tokenizer = tokenizer
        self.tools = [copy.deepcopy(t) for t in tools]
        self.native_tools = "tools" in tokenizer.chat_template

    # -- text ------------------------------------------------------------------------------
    def prepare(self, messages: Sequence[Message]) -> list[Message]:
        """Messages as the template gets them: tool-call dicts as the template expects and,
        for the fallback, the tools block in the system message."""
        out = [self._plain(m) for m in messages]
        if self.tools and not self.native_tools:
            block = hermes_tools_block(self.tools)
            if out and out[0]["role"] == "system":
                out[0] = {**out[0], "content": f"{out[0]['content']}\n\n{block}"}
            else:
                out.insert(0, {"role": "system", "content": block})
        return out

    @staticmethod
    def _plain(m: Message) -> Message:
        msg: Message = {"role": m["role"], "content": m.get("content") or ""}
        if m.get("tool_calls"):
            msg["tool_calls"] = copy.deepcopy(m["tool_calls"])
        if m.get("tool_call_id"):
            msg["tool_call_id"] = m["tool_call_id"]
        if m.get("name"):
            msg["name"] = m["name"]
        return msg

    def render(self, messages: Sequence[Message], *, add_generation_prompt: bool) -> str:
        """The conversation as text through the chat template."""
        kwargs: dict[str, Any] = {"tokenize": False, "add_generation_prompt": add_generation_prompt}
        if self.tools and self.native_tools:
            kwargs["tools"] = self.tools
        return self.tokenizer.apply_chat_template(self.prepare(messages), **kwargs)

    def encode(self, text: str) -> list[int]:
        """Token ids of rendered text (special tokens in it are recognised; none are added)."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: Sequence[int]) -> str:
        """Text of token ids, special tokens kept."""
        return self.tokenizer.decode(list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False)

    # -- pieces for token-exact episodes -------------------------------------------------------
    def assistant_end(self, head: Sequence[Message]) -> str:
        """What the template writes after an assistant message's content (``<|im_end|>\\n``)."""
        anchor = [*head, {"role": "assistant", "content": _ANCHOR}]
        text = self.render(anchor, add_generation_prompt=False)
        return text[text.rindex(_ANCHOR) + len(_ANCHOR) :]

    def render_new_messages(self, head: Sequence[Message], new: Sequence[Message]) -> str:
        """Text of `new` messages after an assistant turn, up to and including the next
        generation prompt, rendered after the anchor ``head + [assistant]``.

        Raises `ValueError` if the template is not prefix-stable even on the anchor (adding
        messages changes how earlier ones render), which token-exact episodes cannot handle.
        """
        anchor = [*head, {"role": "assistant", "content": _ANCHOR}]
        before = self.render(anchor, add_generation_prompt=False)
        after = self.render([*anchor, *new], add_generation_prompt=True)
        if not after.startswith(before):
            raise ValueError("the chat template is not prefix-stable: new messages change earlier ones")
        return after[len(before) :]
