"""The scaffold the env executes: tools (against the sandbox protocol), the prompt, tool-call parsing.

It imports nothing of the model stack: the env depends on this subpackage alone."""

from __future__ import annotations

from swerepair.agents.scaffold.base import Scaffold
from swerepair.agents.scaffold.nano import NANO_SYSTEM_PROMPT, nano_agent
from swerepair.agents.scaffold.parsing import (
    HermesParser,
    ParsedTurn,
    ToolCall,
    ToolCallError,
    ToolCallParser,
    tool_call_from_openai,
)
from swerepair.agents.scaffold.tools import (
    APPLY_PATCH,
    SHELL,
    Tool,
    ToolContext,
    ToolError,
    check_arguments,
    cut_output,
    format_exec_result,
)

__all__ = [
    "APPLY_PATCH",
    "NANO_SYSTEM_PROMPT",
    "SHELL",
    "HermesParser",
    "ParsedTurn",
    "Scaffold",
    "Tool",
    "ToolCall",
    "ToolCallError",
    "ToolCallParser",
    "ToolContext",
    "ToolError",
    "check_arguments",
    "cut_output",
    "format_exec_result",
    "nano_agent",
    "tool_call_from_openai",
]
