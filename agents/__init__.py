"""The nano-agent scaffold: tools, prompt and tool-call parsing (policies and backends build on it)."""

from __future__ import annotations

from swerepair.agents.parsing import (
    HermesParser,
    ParsedTurn,
    ToolCall,
    ToolCallError,
    ToolCallParser,
    tool_call_from_openai,
)
from swerepair.agents.scaffold import NANO_SYSTEM_PROMPT, Scaffold, nano_agent
from swerepair.agents.tools import (
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
