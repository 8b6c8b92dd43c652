"""What one evaluated episode came to: resolved or not, why not, and how the agent behaved.

An `Outcome` is read from an episode record (``Episode.to_json()``, the JSONL that
``swerepair solve`` and ``swerepair eval`` write), so a report can be recomputed from the
episodes alone.

Failure categories, the first that applies:

- ``infrastructure``: the episode failed for a reason outside the agent (a sandbox that could not
  start, a verifier that crashed, a policy/server error): ``info["failed"]``;
- ``resolved``: not a failure: the task's tests pass (``reward_components["resolved"]``, else
  ``tests_pass``);
- ``no patch``: the agent changed nothing;
- ``patch does not apply``: the diff does not apply to the base commit (``patch_applies`` 0);
- ``budget exhausted``: the episode ended on a budget (tool calls, context, wall time);
- ``tests fail``: a patch that applies, in an episode the agent ended, and the tests do not pass.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BUDGET_EXITS", "CATEGORIES", "Outcome", "outcome_of"]

CATEGORIES = ("resolved", "no patch", "patch does not apply", "tests fail", "budget exhausted", "infrastructure")
BUDGET_EXITS = frozenset({"tool_call_budget", "context_budget", "time_budget"})
#: Shell programs whose file arguments count as files viewed.
_VIEWERS = frozenset({"cat", "sed", "head", "tail", "nl", "less", "more", "grep", "rg", "awk", "wc"})
_FILE = re.compile(r"^[\w./-]+\.\w+$|/")


@dataclass(frozen=True)
class Outcome:
    """One episode, for the report.

    Attributes:
        instance_id: the task.
        resolved: its tests pass with the agent's patch (False for infrastructure failures).
        category: one of `CATEGORIES`.
        infrastructure: the episode failed outside the agent's control.
        has_tests: the reward ran the task's tests (``resolved`` comes from them).
        reward: the episode's reward.
        components: the reward components (``info["reward_components"]``).
        patch: the agent's diff.
        turns: assistant turns.
        tool_calls: well-formed tool calls (parsed and dispatched to a tool).
        malformed: tool calls that could not be parsed (an error message went back instead).
        tool_errors: calls that returned an error.
        commands: shell commands run.
        files_viewed: distinct files named by viewing commands (cat, sed, grep, ...).
        wall_s: the episode's wall time.
        exit_reason: why it ended.
    """

    instance_id: str
    resolved: bool
    category: str
    infrastructure: bool
    has_tests: bool
    reward: float
    components: Mapping[str, float] = field(default_factory=dict)
    patch: str = ""
    turns: int = 0
    tool_calls: int = 0
    malformed: int = 0
    tool_errors: int = 0
    commands: int = 0
    files_viewed: int = 0
    wall_s: float = 0.0
    exit_reason: str = ""

    @property
    def valid_call_rate(self) -> float:
        """Well-formed tool calls per assistant turn (0 for an episode without turns). A turn
        without a call (the final "done") counts in the denominator."""
        return self.tool_calls / self.turns if self.turns else 0.0

    @property
    def valid_patch(self) -> bool:
        """A non-empty patch that applies to the base commit."""
        return bool(self.patch.strip()) and self.components.get("patch_applies", 1.0) >= 1.0


def _calls(messages: list[Mapping[str, Any]]) -> list[tuple[str, Mapping[str, Any]]]:
    import json

    calls = []
    for message in messages:
        if message.get("role") != "assistant":
            continue
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            arguments = function.get("arguments") or {}
            if isinstance(arguments, str):
                try:
                    arguments = json.loads(arguments)
                except ValueError:
                    arguments = {}
            calls.append((str(function.get("name") or ""), arguments if isinstance(arguments, Mapping) else {}))
    return calls


def _viewed(command: str) -> set[str]:
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    files: set[str] = set()
    viewing = False
    for word in words:
        if word in ("|", "&&", "||", ";"):
            viewing = False
            continue
        if word in _VIEWERS:
            viewing = True
            continue
        if viewing and not word.startswith("-") and _FILE.search(word):
            files.add(word.lstrip("./") or word)
    return files


def outcome_of(record: Mapping[str, Any]) -> Outcome:
    """The `Outcome` of one episode record (``Episode.to_json()``)."""
    info: Mapping[str, Any] = record.get("info") or {}
    components: dict[str, float] = {
        k: float(v) for k, v in (info.get("reward_components") or {}).items() if isinstance(v, (int, float))
    }
    infrastructure = bool(info.get("failed"))
    has_tests = "resolved" in components or "tests_pass" in components
    resolved = not infrastructure and (components.get("resolved", components.get("tests_pass", 0.0)) >= 1.0)
    patch = str(info.get("patch") or "")
    exit_reason = str(info.get("exit_reason") or "")
    if infrastructure:
        category = "infrastructure"
    elif resolved:
        category = "resolved"
    elif not patch.strip():
        category = "no patch"
    elif components.get("patch_applies", components.get("is_valid_patch", 1.0)) < 1.0:
        category = "patch does not apply"
    elif exit_reason in BUDGET_EXITS:
        category = "budget exhausted"
    else:
        category = "tests fail"
    stats: Mapping[str, Any] = info.get("tool_stats") or {}
    calls = _calls(list(record.get("messages") or ()))
    commands = [str(args.get("cmd") or "") for name, args in calls if name == "shell"]
    viewed: set[str] = set()
    for command in commands:
        viewed |= _viewed(command)
    turns = int(stats.get("turns") or sum(1 for m in record.get("messages") or () if m.get("role") == "assistant"))
    return Outcome(
        instance_id=str(record.get("instance_id")),
        resolved=resolved,
        category=category,
        infrastructure=infrastructure,
        has_tests=has_tests,
        reward=float(record.get("reward") or 0.0),
        components=components,
        patch=patch,
        turns=turns,
        tool_calls=int(sum((stats.get("calls") or {}).values()) if stats.get("calls") else len(calls)),
        malformed=int(stats.get("malformed") or 0),
        tool_errors=int(stats.get("errors") or 0),
        commands=len(commands),
        files_viewed=len(viewed),
        wall_s=float(info.get("elapsed_s") or 0.0),
        exit_reason=exit_reason,
    )
