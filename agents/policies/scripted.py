"""Scripted turns: given turns replayed (`ScriptedPolicy`), and a known patch played through the
nano-agent's tools.

`patch_to_edits` turns a unified diff into ``apply_patch`` arguments (one search/replace per
hunk, new files created from an empty search); `minimal_edits` does the same with the smallest
search that is unique in the file, given the files' text. `gold_turns` builds the assistant turns of an
episode that looks around, applies a task's gold patch and stops: what the env's tests and
the demo play, and a seed for SFT data.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Sequence
from typing import Any

from swerepair.agents.policies.base import AssistantTurn, Message
from swerepair.rewards.patch import FilePatch, Hunk, parse_patch

__all__ = ["ScriptedPolicy", "gold_turns", "hermes_call", "minimal_edits", "patch_to_edits"]


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
    return [edit for fp in parse_patch(patch) for edit in _file_edits(fp)]


def _file_edits(fp: FilePatch) -> list[dict[str, str]]:
    """`patch_to_edits` for one file's change."""
    if fp.binary or fp.status in ("deleted", "renamed"):
        raise ValueError(f"{fp.path}: apply_patch cannot express a {fp.status} or binary change")
    if fp.status == "added":
        return [{"file": fp.path, "search": "", "replace": "".join(_sides(h)[1] for h in fp.hunks)}]
    return [dict(zip(("file", "search", "replace"), (fp.path, *_sides(hunk)), strict=True)) for hunk in fp.hunks]


def _apply_once(text: str, search: str, replace: str) -> str | None:
    """`text` with its one occurrence of `search` replaced, or None when there is not exactly one."""
    if text.count(search) != 1:
        return None
    return text.replace(search, replace, 1)


def _unique(text: str, lines: list[str]) -> bool:
    """`lines`, joined, are a search `apply_patch` takes in `text`: not blank, found exactly once."""
    search = "".join(lines)
    return bool(search.strip()) and text.count(search) == 1


def _minimal_file_edits(path: str, old: str, new: str, context: int) -> list[dict[str, str]]:
    """Edits turning `old` into `new`, one per changed block, each searching for the block's old
    lines widened by context lines (one above, then one below, and so on) until the search occurs
    once in the file as it is when the edit runs, then by `context` more lines. Blocks are edited
    bottom-up, so the lines above a block are still the original ones."""
    cur = old.splitlines(keepends=True)
    target = new.splitlines(keepends=True)
    ops = [op for op in difflib.SequenceMatcher(None, cur, target, autojunk=False).get_opcodes() if op[0] != "equal"]
    edits: list[dict[str, str]] = []
    for _, a, b, j1, j2 in reversed(ops):
        text = "".join(cur)
        lo, hi, extra, above = a, b, context, True
        while True:
            if _unique(text, cur[lo:hi]):
                if extra == 0:
                    break
                extra -= 1
            if lo == 0 and hi == len(cur):
                break
            if (above and lo > 0) or hi == len(cur):
                lo -= 1
            else:
                hi += 1
            above = not above
        replacement = cur[lo:a] + target[j1:j2] + cur[b:hi]
        edits.append({"file": path, "search": "".join(cur[lo:hi]), "replace": "".join(replacement)})
        cur[lo:hi] = replacement
    if "".join(cur) != new:  # pragma: no cover - difflib's opcodes always rebuild `new`
        raise AssertionError(f"{path}: minimal edits do not rebuild the fixed file")
    return edits


def minimal_edits(patch: str, read: Callable[[str], str | None], context: int = 0) -> list[dict[str, str]]:
    """``apply_patch`` arguments that reproduce `patch` with the smallest searches that occur
    once in their file: per changed block, its old lines and the fewest surrounding lines that make
    them unique, plus `context` more (a careful agent's edit, not the diff's three context lines).

    `read(path)` gives a file's text before the patch, or None where it is not known; such a
    file, or one the patch's own hunks do not match exactly once, gets `patch_to_edits`'s
    one-edit-per-hunk searches. New files are created as `patch_to_edits` creates them.

    >>> text = "a = 1\\nb = 2\\nc = 3\\nb = 2\\n"
    >>> patch = "--- a/m.py\\n+++ b/m.py\\n@@ -1,3 +1,3 @@\\n a = 1\\n-b = 2\\n+b = 5\\n c = 3\\n"
    >>> minimal_edits(patch, {"m.py": text}.get)
    [{'file': 'm.py', 'search': 'a = 1\\nb = 2\\n', 'replace': 'a = 1\\nb = 5\\n'}]
    """
    edits: list[dict[str, str]] = []
    for fp in parse_patch(patch):
        per_hunk = _file_edits(fp)
        old = new = read(fp.path) if fp.status == "modified" else None
        for edit in per_hunk:
            if new is None:
                break
            new = _apply_once(new, edit["search"], edit["replace"])
        edits.extend(per_hunk if old is None or new is None else _minimal_file_edits(fp.path, old, new, context))
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
