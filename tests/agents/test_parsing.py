"""Tool-call parsing: well-formed, malformed, several and nested-JSON calls."""

from __future__ import annotations

import json

import pytest

from swerepair.agents import HermesParser, ToolCall, ToolCallError, tool_call_from_openai

parse = HermesParser().parse


def test_one_call_with_text_around() -> None:
    turn = parse('Let me look.\n<tool_call>\n{"name": "shell", "arguments": {"cmd": "ls -la"}}\n</tool_call>\n')
    assert turn.content == "Let me look."
    assert turn.tool_calls == (ToolCall("call_0", "shell", {"cmd": "ls -la"}),)
    assert turn.errors == ()


def test_several_calls_keep_their_order_and_ids() -> None:
    text = "".join(f'<tool_call>{{"name": "t{i}", "arguments": {{"i": {i}}}}}</tool_call>' for i in range(3))
    turn = parse(text, call_id_prefix="call_7")
    assert [(c.id, c.name, c.arguments) for c in turn.tool_calls] == [
        ("call_7_0", "t0", {"i": 0}),
        ("call_7_1", "t1", {"i": 1}),
        ("call_7_2", "t2", {"i": 2}),
    ]
    assert turn.content == ""


def test_nested_json_and_braces_in_strings() -> None:
    args = {
        "file": "a.py",
        "search": "d = {'k': [1, {'x': 2}]}\n",
        "replace": 'd = {"k": [1, {"x": 3}]}  # }}} tricky\n',
        "options": {"nested": {"deep": [1, 2, {"z": None}]}},
    }
    turn = parse(f"<tool_call>{json.dumps({'name': 'apply_patch', 'arguments': args})}</tool_call>")
    assert turn.tool_calls[0].arguments == args


def test_arguments_as_json_string_and_parameters_synonym() -> None:
    turn = parse(
        '<tool_call>{"name": "shell", "arguments": "{\\"cmd\\": \\"pwd\\"}"}</tool_call>'
        '<tool_call>{"name": "shell", "parameters": {"cmd": "id"}}</tool_call>'
    )
    assert [c.arguments for c in turn.tool_calls] == [{"cmd": "pwd"}, {"cmd": "id"}]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('<tool_call>{"name": "shell", "arguments": {"cmd": "ls"}</tool_call>', "invalid JSON"),
        ("<tool_call>not json at all</tool_call>", "invalid JSON"),
        ('<tool_call>{"arguments": {}}</tool_call>', "needs a string 'name'"),
        ('<tool_call>["shell", "ls"]</tool_call>', "must be a JSON object"),
        ('<tool_call>{"name": "shell", "arguments": [1]}</tool_call>', "'arguments' must be a JSON object"),
        ('<tool_call>{"name": "shell", "arguments": "{oops"}</tool_call>', "not valid JSON"),
        ('<tool_call>{"name": "shell", "arguments": {"cmd": "ls"}}', "unclosed <tool_call>"),
    ],
)
def test_malformed_calls_stay_in_the_text(text: str, message: str) -> None:
    turn = parse("before " + text)
    assert turn.tool_calls == ()
    assert len(turn.errors) == 1 and message in turn.errors[0].message
    assert "<tool_call>" in turn.content, "a malformed call must stay in the content"


def test_mixed_good_and_bad_calls_are_ordered() -> None:
    turn = parse(
        '<tool_call>{"name": "a", "arguments": {}}</tool_call>'
        "<tool_call>{bad}</tool_call>"
        '<tool_call>{"name": "b", "arguments": {}}</tool_call>'
    )
    kinds = [type(i).__name__ for i in turn.items]
    assert kinds == ["ToolCall", "ToolCallError", "ToolCall"]
    assert [c.id for c in turn.tool_calls] == ["call_0", "call_2"]
    assert turn.content == "<tool_call>{bad}</tool_call>"


def test_plain_text_has_no_calls() -> None:
    turn = parse("I am done; the fix is in calc.py.")
    assert turn.items == () and turn.content == "I am done; the fix is in calc.py."


def test_openai_entries() -> None:
    entry = {"id": "x1", "type": "function", "function": {"name": "shell", "arguments": '{"cmd": "ls"}'}}
    assert tool_call_from_openai(entry, "d") == ToolCall("x1", "shell", {"cmd": "ls"})
    assert tool_call_from_openai({"function": {"name": "f", "arguments": {}}}, "d").id == "d"
    for bad in [None, {"function": {"arguments": {}}}, {"id": 3, "function": {"name": "f"}}]:
        with pytest.raises(ValueError):
            tool_call_from_openai(bad, "d")
    assert ToolCall("i", "n", {"a": 1}).to_openai()["function"]["arguments"] == '{"a": 1}'
    assert isinstance(ToolCallError("r", "m"), ToolCallError)
