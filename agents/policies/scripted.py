"""Scripted turns: given turns replayed (`ScriptedPolicy`), and a known patch played through the
nano-agent's tools.

`patch_to_edits` turns a unified diff into ``apply_patch`` arguments (one search/replace per
hunk, new files created from an empty search). `gold_turns` builds the assistant turns of an
episode that looks around, applies a task's gold patch and stops: what the env's tests and
the demo play, and a seed for SFT data.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from swerepair.agents.policies.base import AssistantTurn, Message
from swerepair.rewards.patch import FilePatch, Hunk, parse_patch

__all__ = ["ScriptedPolicy", "gold_turns", "hermes_call", "patch_to_edits"]


def _sides(hunk: Hunk) -> tuple[str, str]:
    old: list[str] = []
    new: list[str] = []
    last: list[list[str]] = []
    for line in hunk.lines:
        tag, body = line[:1], line[1:]
        if tag == "\\":  # "\ No newline at end of file" applies to the previous line's side(s)
            for side in last:
                if side:
                    side[-1] = side[-1].removesuffix("\n")
            continue
        if tag in (" ", ""):
            old.append(body + "\n")
            new.append(body + "\n")
            last = [old, new]
        elif tag == "-":
            old.append(body + "\n")
            last = [old]
        elif tag == "+":
            new.append(body + "\n")
            last = [new]
    return "".join(old), "".join(new)


def patch_to_edits(patch: str) -> list[dict[str, str]]:
    """``apply_patch`` arguments that reproduce `patch`, in order.

    Raises `ValueError` for changes the tool cannot express (deleted, renamed or binary files).

    >>> patch_to_edits("--- a/m.py\\n+++ b/m.py\\n@@ -1,2 +1,2 @@\\n x = 1\\n-y = 2\\n+y = 3\\n")
    [{'file': 'm.py', 'search': 'x = 1\\ny = 2\\n', 'replace': 'x = 1\\ny = 3\\n'}]
    """
    edits: list[dict[str, str]] = []
    files: list[FilePatch] = parse_patch(patch)
    for fp in files:
        if fp.binary or fp.status in ("deleted", "renamed"):
            raise ValueError(f"{fp.path}: apply_patch cannot express a {fp.status} or binary change")
        if fp.status == "added":
            text = "".join(_sides(h)[1] for h in fp.hunks)
            edits.append({"file": fp.path, "search": "", "replace": text})
            continue
        for hunk in fp.hunks:
            old, new = _sides(hunk)
            edits.append({"file": fp.path, "search": old, "replace": new})
    return edits


def hermes_call(name: str, arguments: dict[str, Any]) -> str:
    """One tool call in the Hermes/Qwen text format that `HermesParser` reads."""
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


def gold_turns(patch: str) -> list[str]:
    """Assistant turns (raw text) that inspect the repo, apply `patch` edit by edit, and stop."""
    edits = patch_to_edits(patch)
    turns = [f"Let me look at the repository first.\n{hermes_call('shell', {'cmd': 'git status --short && ls'})}"]
    for edit in edits:
        turns.append(f"Editing {edit['file']}.\n{hermes_call('apply_patch', edit)}")
    turns.append("The fix is in place.")
    return turns


class ScriptedPolicy:
    """Replays given turns: for tests, demos and building SFT data.

    `script` maps a conversation to its next turn text: either a list of turns (the same
    script for every conversation, indexed by how many assistant turns the conversation
    already has) or a callable ``conversation -> str``.

    >>> policy = ScriptedPolicy(["first", "second"])
    >>> [t.action for t in policy.act([[{"role": "user", "content": "hi"}]])]
    ['first']
    """

    def __init__(self, script: Sequence[str | Message] | Any) -> None:
        self.script = script

    def act(self, conversations: Sequence[Sequence[Message]]) -> list[AssistantTurn]:
        turns = []
        for conv in conversations:
            if callable(self.script):
                turns.append(AssistantTurn(self.script(conv)))
                continue
            k = sum(1 for m in conv if m.get("role") == "assistant")
            if k >= len(self.script):
                raise IndexError(f"the script has {len(self.script)} turns; turn {k + 1} was asked for")
            turns.append(AssistantTurn(self.script[k]))
        return turns
