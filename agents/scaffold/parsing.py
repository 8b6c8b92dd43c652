"""Tool-call parsing: model text -> content, tool calls, and the calls that could not be parsed.

The default format is Hermes/Qwen style: one JSON object per call inside
``<tool_call>...</tool_call>``, with ``name`` and ``arguments`` (an object, or a JSON string
holding one; ``parameters`` is accepted as a synonym)::

    Let me look at the tests.
    <tool_call>
    {"name": "shell", "arguments": {"cmd": "ls tests"}}
    </tool_call>

Well-formed blocks are removed from the content and become `ToolCall`s. A malformed block
(bad JSON, no name, an unclosed tag) stays in the content and yields a `ToolCallError`; the
env answers it with an error observation and the episode goes on.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "HermesParser",
    "ParsedTurn",
    "ToolCall",
    "ToolCallError",
    "ToolCallParser",
    "tool_call_from_openai",
]


@dataclass(frozen=True)
class ToolCall:
    """One parsed call: `arguments` is the decoded JSON object the model gave."""

    id: str
    name: str
    arguments: dict[str, Any]

    def to_openai(self) -> dict[str, Any]:
        """The call as an OpenAI ``tool_calls`` entry (arguments as a JSON string)."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": json.dumps(self.arguments, ensure_ascii=False)},
        }


@dataclass(frozen=True)
class ToolCallError:
    """A call the model attempted but that could not be parsed.

    `raw` is the offending text; `id` the call's id when the model gave one (OpenAI format).
    """

    raw: str
    message: str
    id: str | None = None


@dataclass(frozen=True)
class ParsedTurn:
    """An assistant turn split into free text and call attempts, in the order they appeared.

    `items` holds both well-formed calls and unparseable attempts, in order; `tool_calls`
    and `errors` are the two kinds separately.
    """

    content: str
    items: tuple[ToolCall | ToolCallError, ...] = ()

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        return tuple(i for i in self.items if isinstance(i, ToolCall))

    @property
    def errors(self) -> tuple[ToolCallError, ...]:
        return tuple(i for i in self.items if isinstance(i, ToolCallError))


class ToolCallParser(Protocol):
    """Turns raw completion text into a `ParsedTurn`. `call_id_prefix` makes ids unique."""

    def parse(self, text: str, call_id_prefix: str = "call") -> ParsedTurn: ...


def _decode_arguments(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as exc:
            raise ValueError(f"'arguments' is a string but not valid JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise ValueError(f"'arguments' must be a JSON object, got {type(value).__name__}")
    return value


def _call_from_object(obj: Any, call_id: str) -> ToolCall:
    if not isinstance(obj, dict):
        raise ValueError(f"a tool call must be a JSON object, got {type(obj).__name__}")
    if "function" in obj and isinstance(obj["function"], dict):  # OpenAI shape
        obj = obj["function"]
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError("a tool call needs a string 'name'")
    args = obj.get("arguments", obj.get("parameters"))
    return ToolCall(id=call_id, name=name, arguments=_decode_arguments(args))


def tool_call_from_openai(entry: Any, default_id: str) -> ToolCall:
    """Decode one OpenAI ``tool_calls`` entry; raise `ValueError` when it is malformed."""
    if not isinstance(entry, dict):
        raise ValueError(f"a tool_calls entry must be an object, got {type(entry).__name__}")
    call_id = entry.get("id") or default_id
    if not isinstance(call_id, str):
        raise ValueError("a tool call id must be a string")
    return _call_from_object(entry, call_id)


_BLOCK = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)
_OPEN = "<tool_call>"


class HermesParser:
    """Parser for ``<tool_call>{json}</tool_call>`` blocks (Hermes, Qwen 2.5/3 chat templates).

    >>> turn = HermesParser().parse('ok <tool_call>{"name": "shell", "arguments": {"cmd": "ls"}}</tool_call>')
    >>> turn.content, turn.tool_calls[0].name, turn.tool_calls[0].arguments
    ('ok', 'shell', {'cmd': 'ls'})
    >>> HermesParser().parse('<tool_call>{"name": shell}</tool_call>').errors[0].message
    'invalid JSON in <tool_call>: Expecting value at column 10'
    """

    def parse(self, text: str, call_id_prefix: str = "call") -> ParsedTurn:
        items: list[ToolCall | ToolCallError] = []
        kept: list[str] = []
        pos = 0
        for match in _BLOCK.finditer(text):
            kept.append(text[pos : match.start()])
            pos = match.end()
            body = match.group(1).strip()
            call_id = f"{call_id_prefix}_{len(items)}"
            try:
                obj = json.loads(body)
            except json.JSONDecodeError as exc:
                items.append(
                    ToolCallError(match.group(0), f"invalid JSON in <tool_call>: {exc.msg} at column {exc.colno}")
                )
                kept.append(match.group(0))
                continue
            try:
                items.append(_call_from_object(obj, call_id))
            except ValueError as exc:
                items.append(ToolCallError(match.group(0), str(exc)))
                kept.append(match.group(0))
        rest = text[pos:]
        if _OPEN in rest:
            start = rest.index(_OPEN)
            items.append(ToolCallError(rest[start:], "unclosed <tool_call> (missing </tool_call>)"))
        kept.append(rest)
        content = "".join(kept).strip()
        return ParsedTurn(content=content, items=tuple(items))
