"""The scaffold the env executes: tools (against the sandbox protocol), the prompt, tool-call parsing.

It imports nothing of the model stack: the env depends on this subpackage alone."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

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
    "SCAFFOLDS",
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
    "resolve_scaffold",
    "tool_call_from_openai",
]

#: The bundled scaffolds, by name: functions that build one.
SCAFFOLDS: Mapping[str, Any] = MappingProxyType({"nano": nano_agent, "nano-agent": nano_agent})


def resolve_scaffold(scaffold: str | Scaffold | None) -> Scaffold:
    """A `Scaffold` given as itself, None (the nano-agent), or a name: one of `SCAFFOLDS`, an
    entry point of the group ``swerepair.scaffolds``, or an import path ``module:attr``. The
    named object is a `Scaffold` or a function of no arguments that builds one.

    >>> resolve_scaffold("nano").name
    'nano-agent'
    """
    from swerepair.core import load_plugin

    if scaffold is None:
        return nano_agent()
    if isinstance(scaffold, Scaffold):
        return scaffold
    if not isinstance(scaffold, str):
        raise TypeError(f"scaffold must be a Scaffold or a name, got {type(scaffold).__name__}")
    found = load_plugin("swerepair.scaffolds", scaffold, SCAFFOLDS)
    built = found if isinstance(found, Scaffold) else found() if callable(found) else None
    if not isinstance(built, Scaffold):
        raise ValueError(f"the scaffold {scaffold!r} is not a Scaffold nor a function that builds one")
    return built
