"""A scripted expert that solves a task from its gold patch the way a careful agent would, and
records token-exact episodes for a model's chat template: SFT data that teaches the scaffold's
format and a sensible workflow.

Each episode, through the nano-agent's own tools:

1. **find the place**: a search for the definition the fix is in (``def name``), else a name
   it touches (``grep -rn`` or ``git grep -n``, their first 20 lines, or ``grep -n`` in the
   file), with a sentence of intent;
2. **read it**: the lines around each hunk (``sed -n 'a,bp'``, ``nl -ba | sed -n``, or
   ``head``/``tail``);
3. **apply the fix** with ``apply_patch``: given the files' text, one search/replace per changed
   block whose search is the block's old lines and the fewest neighbours that make it unique in
   the file (sometimes one line more), as a careful agent writes it; else one per hunk, with the
   diff's context lines;
4. **run the tests** of the file the failing test lives in (``python -m pytest -q`` with a short
   traceback: ``--tb=line`` or ``--tb=short``, sometimes ``-x``), or the
   whole suite when the test file is new in the test patch (the agent does not have it);
5. **stop** with a one-line summary.

What varies (seeded by the task and the episode's seed): the search command and term, how a
file is read, the wording of every sentence, and whether the tests are run before the fix too.
`ExpertPolicy` turns these scripts into token-exact turns for a `ChatRenderer`: the completion
ids are the text's ids followed by the template's end-of-turn token, with log-probabilities 0
(the expert's choices are not sampled from the model).
"""

from __future__ import annotations

import random
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from swerepair.agents.inference.chat import ChatRenderer
from swerepair.agents.policies.base import AssistantTurn, Message
from swerepair.agents.policies.episode import EpisodeBuilder
from swerepair.agents.policies.scripted import hermes_call, minimal_edits, patch_to_edits
from swerepair.rewards.patch import parse_patch

__all__ = ["ExpertPolicy", "expert_turns"]

_SEARCH_INTENT = (
    "Let me find where `{term}` is defined.",
    "I'll search the repository for `{term}` first.",
    "First, locate `{term}` in the code.",
    "The issue points at `{term}`; let me search for it.",
)
_READ_INTENT = (
    "Now let me read {path} around line {line}.",
    "Let me look at the code in {path} near line {line}.",
    "I'll read the relevant part of {path}.",
)
_EDIT_INTENT = (
    "I see the bug. Fixing it in {path}.",
    "This is the faulty logic; let me correct it in {path}.",
    "Applying the fix to {path}.",
)
_TEST_INTENT = (
    "Now run the tests to check the fix.",
    "Let me run the relevant tests.",
    "Checking the change with the test suite.",
)
_BEFORE_INTENT = ("Let me run the tests first to see the failure.", "First, the current state of the tests.")
_DONE = (
    "The fix is in place and the tests pass.",
    "Done: the bug is fixed.",
    "I fixed the issue in {path}; the tests pass.",
)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,}")
_KEYWORDS = frozenset(
    [
        "def",
        "class",
        "return",
        "self",
        "None",
        "True",
        "False",
        "import",
        "from",
        "elif",
        "else",
        "while",
        "for",
        "and",
        "not",
        "with",
        "assert",
        "raise",
        "pass",
        "lambda",
        "yield",
        "try",
        "except",
        "finally",
        "print",
        "len",
        "str",
        "int",
        "float",
        "dict",
        "list",
        "set",
        "tuple",
    ]
)


def _term(patch: str) -> tuple[str, str] | None:
    """What to search for and the file it is in: the definition the fix is in (``def name`` or
    ``class Name``, from a hunk header: few matches, so a short tool output), else an
    identifier of a changed line."""
    for fp in parse_patch(patch):
        if fp.status != "modified" or not fp.path.endswith(".py"):
            continue
        for hunk in fp.hunks:
            header = re.search(r"(?:def|class)\s+\w+", hunk.section or "")
            if header:
                return header.group(0), fp.path
            for line in hunk.lines:
                if line[:1] in "-+":
                    for word in _IDENT.findall(line[1:]):
                        if word not in _KEYWORDS:
                            return word, fp.path
    return None


def _test_file(task: Any) -> str | None:
    """The failing test's file when the agent's checkout has it (not created by the test patch)."""
    ids = list(getattr(task, "FAIL_TO_PASS", ()) or ())
    if not ids:
        return None
    path = ids[0].split("::")[0]
    if not path.endswith(".py"):
        return None
    for fp in parse_patch(getattr(task, "test_patch", "") or ""):
        if fp.path == path and fp.status == "added":
            return None
    return path


def expert_turns(task: Any, seed: int = 0, read: Callable[[str], str | None] | None = None) -> list[str]:
    """The assistant turns (raw text with Hermes tool calls) of one expert episode of `task`
    (module docstring); `seed` picks the variations. `read(path)`, a file's text at the task's
    base commit (None where unknown), lets the edits search for the smallest unique text
    (`minimal_edits`); without it they search for each hunk's lines. `ValueError` when the gold
    patch cannot be written with ``apply_patch`` (deleted, renamed or binary files)."""
    rng = random.Random(f"{task.instance_id}:{seed}")
    if read is None:
        edits = patch_to_edits(task.patch)
    else:
        edits = minimal_edits(task.patch, read, context=rng.choice((0, 0, 1)))
    turns: list[str] = []
    found = _term(task.patch)
    if found is not None:
        term, path = found
        # at most 20 lines of matches: a common name's every use is most of an episode's tokens
        command = rng.choice(
            (
                f"grep -rn {shlex.quote(term)} --include=*.py . | head -n 20",
                f"git grep -n {shlex.quote(term)} | head -n 20",
                f"grep -n {shlex.quote(term)} {shlex.quote(path)}",
            )
        )
        intent = rng.choice(_SEARCH_INTENT).format(term=term.split()[-1])
        turns.append(f"{intent}\n{hermes_call('shell', {'cmd': command})}")
    tests = _test_file(task)
    # concise reports: a failure's location and message, not its whole traceback (the tool
    # output is most of an episode's tokens otherwise, and the model's context is small)
    flags = rng.choice(("-q --tb=line", "-q --tb=short -x", "-q --tb=line -x"))
    test_cmd = f"python -m pytest {flags} {shlex.quote(tests)}" if tests else f"python -m pytest {flags}"
    if rng.random() < 0.3:
        turns.append(f"{rng.choice(_BEFORE_INTENT)}\n{hermes_call('shell', {'cmd': test_cmd})}")
    for fp in parse_patch(task.patch):
        if fp.status != "modified":
            continue
        for hunk in fp.hunks:
            first = max(1, hunk.old_start - 3)
            last = hunk.old_start + len(hunk.lines) + 3
            path = shlex.quote(fp.path)
            command = rng.choice(
                (
                    f"sed -n '{first},{last}p' {path}",
                    f"nl -ba {path} | sed -n '{first},{last}p'",
                    f"head -n {last} {path} | tail -n {last - first + 1}",
                )
            )
            intent = rng.choice(_READ_INTENT).format(path=fp.path, line=hunk.old_start)
            turns.append(f"{intent}\n{hermes_call('shell', {'cmd': command})}")
    for edit in edits:
        turns.append(f"{rng.choice(_EDIT_INTENT).format(path=edit['file'])}\n{hermes_call('apply_patch', edit)}")
    turns.append(f"{rng.choice(_TEST_INTENT)}\n{hermes_call('shell', {'cmd': test_cmd})}")
    changed = edits[0]["file"] if edits else "the code"
    turns.append(rng.choice(_DONE).format(path=changed))
    return turns


class ExpertPolicy:
    """Plays expert scripts as token-exact turns for `renderer`'s template.

    `scripts` maps each task's issue text (the episode's first user message) to its turns (from
    `expert_turns`); an episode past the end of its script gets its last turn again (the env
    ends an episode at the first turn without a tool call, so that does not happen with
    `expert_turns`' scripts).
    """

    def __init__(self, renderer: ChatRenderer, scripts: Mapping[str, Sequence[str]]) -> None:
        self.renderer = renderer
        self.scripts = dict(scripts)
        end = renderer.encode(renderer.assistant_end([{"role": "system", "content": ""}]))
        if not end:
            raise ValueError("the chat template has no end-of-turn text to stop on")
        self.stop_ids = end[:1]

    def _script(self, messages: Sequence[Message]) -> Sequence[str]:
        issue = next((str(m.get("content")) for m in messages if m.get("role") == "user"), "")
        if issue not in self.scripts:
            raise KeyError("no expert script for this episode's issue text")
        return self.scripts[issue]

    def _turn(self, prompt: Sequence[int], text: str) -> AssistantTurn:
        ids = tuple(self.renderer.encode(text)) + tuple(self.stop_ids)
        return AssistantTurn(
            action=text,
            prompt_ids=tuple(prompt),
            completion_ids=ids,
            logprobs=(0.0,) * len(ids),
            finish_reason="stop",
        )

    def act(self, conversations: Sequence[Sequence[Message]]) -> list[AssistantTurn]:
        turns = []
        for conv in conversations:
            script = self._script(conv)
            done = sum(1 for m in conv if m.get("role") == "assistant")
            text = script[min(done, len(script) - 1)]
            prompt = self.renderer.encode(self.renderer.render(conv, add_generation_prompt=True))
            turns.append(self._turn(prompt, text))
        return turns

    def start(self, messages: Sequence[Message]) -> EpisodeBuilder:
        return EpisodeBuilder(self.renderer, messages)

    def act_on(self, builders: Sequence[EpisodeBuilder]) -> list[AssistantTurn]:
        turns = []
        for builder in builders:
            script = self._script(builder.rendered_messages)
            done = sum(1 for m in builder.rendered_messages if m.get("role") == "assistant")
            turns.append(self._turn(builder.prompt_ids, script[min(done, len(script) - 1)]))
        return turns
