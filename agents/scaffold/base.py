"""The scaffold: the unit a user plugs into the env (system prompt, tool set, parser).

The env knows nothing about particular tools: it renders the scaffold's prompt, parses actions
with the scaffold's parser and dispatches calls to the scaffold's tools. A new scaffold is a
new `Scaffold` value, passed as ``gymnasium.make("SweRepair-v0", scaffold=...)``; no env code
changes (see docs/env.md for a complete example with bash / view_file / str_replace /
write_file tools).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from swerepair.agents.scaffold.parsing import HermesParser, ToolCallParser
from swerepair.agents.scaffold.tools import Tool

__all__ = ["Scaffold"]


@dataclass(frozen=True)
class Scaffold:
    """How an agent sees and acts on a task.

    Attributes:
        name: a short identifier, recorded in episode info.
        system_prompt: the system message. ``{tool_names}`` and ``{tool_list}`` are filled in
            from `tools`; ``{workdir}`` with the sandbox's repository path.
        tools: the tools, by name.
        parser: turns raw completion text into content and tool calls.
        nudge: the user message sent when the agent stops without having changed anything.
    """

    name: str
    system_prompt: str
    tools: Mapping[str, Tool]
    parser: ToolCallParser = field(default_factory=HermesParser)
    nudge: str = (
        "You have not changed any file yet. Keep working on the issue with your tools; "
        "reply without a tool call only once your fix is in place."
    )

    @classmethod
    def from_tools(cls, name: str, system_prompt: str, tools: Sequence[Tool], **kw: Any) -> Scaffold:
        """Build a scaffold from a list of tools (names must be unique)."""
        by_name = {t.name: t for t in tools}
        if len(by_name) != len(tools):
            raise ValueError("tool names must be unique")
        return cls(name=name, system_prompt=system_prompt, tools=by_name, **kw)

    def tool_schemas(self) -> list[dict[str, Any]]:
        """OpenAI function-calling schemas of the tools, fresh objects each call."""
        return [tool.schema() for tool in self.tools.values()]

    def render_system(self, workdir: str) -> str:
        """The system message for an episode whose repository is at `workdir`."""
        tool_list = "\n".join(f"- {t.name}: {t.description}" for t in self.tools.values())
        return self.system_prompt.format(tool_names=", ".join(self.tools), tool_list=tool_list, workdir=workdir)
