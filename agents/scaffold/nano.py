"""The nano-agent: the default scaffold, a restricted `shell` and a search-and-replace `apply_patch`."""

from __future__ import annotations

from swerepair.agents.scaffold.base import Scaffold
from swerepair.agents.scaffold.tools import APPLY_PATCH, SHELL

__all__ = ["NANO_SYSTEM_PROMPT", "nano_agent"]

NANO_SYSTEM_PROMPT = """\
You are an autonomous software engineer fixing a bug in a Python repository. The repository is \
checked out in your working directory at the commit where the bug was reported; the user's \
issue follows.

Work like this:
1. Explore: find the code the issue is about ({tool_names} are your tools).
2. Reproduce: run the relevant tests or a small python snippet.
3. Fix the root cause with minimal edits to the source files.
4. Verify: run the tests again.
When you are done, reply with a short summary and no tool call. Your changes to the working \
tree (as `git diff` shows them) are your answer.

Tools:
{tool_list}"""


def nano_agent() -> Scaffold:
    """The nano-agent: a restricted `shell` and a search-and-replace `apply_patch`."""
    return Scaffold.from_tools("nano-agent", NANO_SYSTEM_PROMPT, [SHELL, APPLY_PATCH])
