"""Episode-level shaping rewards: scores of the agent's behaviour, added to the patch reward.

A patch reward is 0 for every episode of a model that never produces a patch, so its groups
carry no signal. A shaping reward scores something such a model can do: here, pointing at the
right place. `localization` is the fraction of the gold fix's locations (the files it changes
and the functions or classes its hunks sit in) that the agent's own messages name; it rewards
reading the issue and the code towards the bug before any edit is made.

A shaping reward is ``(episode, task) -> float`` in [0, 1]; the trainer adds
``shaping_weight * shaping(episode, task)`` to the env's reward (`TrainConfig.shaping`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import PurePosixPath
from types import MappingProxyType
from typing import Any

from swerepair.core import Episode
from swerepair.rewards.patch import parse_patch

__all__ = ["SHAPING", "gold_locations", "localization"]

_DEF = re.compile(r"\b(?:def|class)\s+([A-Za-z_][A-Za-z0-9_]*)")


def gold_locations(patch: str) -> set[str]:
    """The names a fix is located by: each changed file's path and stem (``pkg/core.py``,
    ``core``) and the function or class named in each hunk's section header.

    >>> sorted(gold_locations("--- a/pkg/core.py\\n+++ b/pkg/core.py\\n@@ -1,2 +1,2 @@ def area(x):\\n-a\\n+b\\n"))
    ['area', 'core', 'pkg/core.py']
    """
    names: set[str] = set()
    for fp in parse_patch(patch):
        path = fp.path
        if not path:
            continue
        names.add(path)
        stem = PurePosixPath(path).stem
        if stem and stem != "__init__":
            names.add(stem)
        for hunk in fp.hunks:
            names.update(_DEF.findall(hunk.section))
    return names


def localization(episode: Episode, task: Any) -> float:
    """Fraction of the gold fix's locations (`gold_locations`) that the agent's messages name.

    Only what the model wrote counts (assistant messages, tool-call arguments included), not
    the issue text or tool output it was shown. A name counts when it appears as a whole word.

    >>> ep = Episode("t", [{"role": "assistant", "content": "the bug is in area() in core.py"}], [], [], [])
    >>> class T: patch = "--- a/pkg/core.py\\n+++ b/pkg/core.py\\n@@ -1 +1 @@ def area(x):\\n-a\\n+b\\n"
    >>> round(localization(ep, T()), 3)
    0.667
    """
    names = gold_locations(getattr(task, "patch", "") or "")
    if not names:
        return 0.0
    parts: list[str] = []
    for m in episode.messages:
        if m.get("role") != "assistant":
            continue
        parts.append(str(m.get("content") or ""))
        for call in m.get("tool_calls") or []:
            parts.append(str(call.get("function", {}).get("arguments", "")))
    text = "\n".join(parts)
    hits = sum(1 for n in names if re.search(rf"(?<![\w/.]){re.escape(n)}(?![\w/])", text))
    return hits / len(names)


#: Shaping rewards by name (`TrainConfig.shaping`).
SHAPING: Mapping[str, Callable[[Episode, Any], float]] = MappingProxyType({"localization": localization})
