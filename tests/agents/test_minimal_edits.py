"""`minimal_edits`: the smallest unique searches that rebuild a gold patch, as the expert writes them."""

from __future__ import annotations

from typing import Any

import pytest

from swerepair.agents.policies.scripted import minimal_edits, patch_to_edits
from swerepair.envs.sandbox.workspace import base_file_reader
from swerepair.envs.tasks import load_tasks


def replay(text: str, edits: list[dict[str, str]]) -> str:
    """`edits` applied in order with `apply_patch`'s rule: the search occurs exactly once."""
    for edit in edits:
        assert text.count(edit["search"]) == 1, edit
        text = text.replace(edit["search"], edit["replace"], 1)
    return text


SOURCE = "def f(x):\n    y = x + 1\n    return y\n\n\ndef g(x):\n    y = x + 1\n    return y * 2\n"


def diff(old_lines: list[str], new_lines: list[str], start: int) -> str:
    body = "".join(f"-{a}" for a in old_lines) + "".join(f"+{b}" for b in new_lines)
    return f"--- a/m.py\n+++ b/m.py\n@@ -{start},{len(old_lines)} +{start},{len(new_lines)} @@\n{body}"


def test_a_unique_line_is_searched_alone() -> None:
    patch = diff(["    return y * 2\n"], ["    return y * 3\n"], 8)
    assert minimal_edits(patch, {"m.py": SOURCE}.get) == [
        {"file": "m.py", "search": "    return y * 2\n", "replace": "    return y * 3\n"}
    ]


def test_a_repeated_line_takes_the_fewest_neighbours_that_make_it_unique() -> None:
    # the second `y = x + 1`, in g, with the diff's context lines
    patch = "--- a/m.py\n+++ b/m.py\n@@ -6,3 +6,3 @@\n def g(x):\n-    y = x + 1\n+    y = x - 1\n     return y * 2\n"
    (edit,) = minimal_edits(patch, {"m.py": SOURCE}.get)
    assert edit["search"] == "def g(x):\n    y = x + 1\n"
    assert edit["replace"] == "def g(x):\n    y = x - 1\n"
    assert replay(SOURCE, [edit]) == SOURCE.replace("def g(x):\n    y = x + 1", "def g(x):\n    y = x - 1")
    # one more line of context on request
    (wider,) = minimal_edits(patch, {"m.py": SOURCE}.get, context=1)
    assert wider["search"] in ("\n" + edit["search"], edit["search"] + "    return y * 2\n")


def test_blocks_of_one_hunk_are_edited_bottom_up_and_rebuild_the_file() -> None:
    old = "a = 1\nb = 2\nc = 3\nd = 4\ne = 5\n"
    new = "a = 1\nb = 20\nc = 3\nd = 4\ne = 50\n"
    patch = "--- a/m.py\n+++ b/m.py\n@@ -1,5 +1,5 @@\n a = 1\n-b = 2\n+b = 20\n c = 3\n d = 4\n-e = 5\n+e = 50\n"
    edits = minimal_edits(patch, {"m.py": old}.get)
    assert [e["search"] for e in edits] == ["e = 5\n", "b = 2\n"]
    assert replay(old, edits) == new


def test_an_insertion_searches_for_a_neighbour() -> None:
    old = "import os\n\nx = 1\n"
    patch = "--- a/m.py\n+++ b/m.py\n@@ -1,3 +1,4 @@\n import os\n+import sys\n \n x = 1\n"
    (edit,) = minimal_edits(patch, {"m.py": old}.get)
    assert edit["search"].strip() and edit["search"] in old
    assert replay(old, [edit]) == "import os\nimport sys\n\nx = 1\n"


def test_unknown_or_mismatched_files_fall_back_to_whole_hunks() -> None:
    patch = diff(["    return y * 2\n"], ["    return y * 3\n"], 8)
    assert minimal_edits(patch, {}.get) == patch_to_edits(patch)
    assert minimal_edits(patch, {"m.py": "nothing like it\n"}.get) == patch_to_edits(patch)
    created = "--- /dev/null\n+++ b/new.py\n@@ -0,0 +1 @@\n+x = 1\n"
    assert minimal_edits(created, {}.get) == [{"file": "new.py", "search": "", "replace": "x = 1\n"}]


def check_task(task: Any) -> None:
    read = base_file_reader(task)
    assert read is not None
    full = patch_to_edits(task.patch)
    for context in (0, 1):
        edits = minimal_edits(task.patch, read, context=context)
        for path in {e["file"] for e in full}:
            gold = replay(read(path) or "", [e for e in full if e["file"] == path])
            assert replay(read(path) or "", [e for e in edits if e["file"] == path]) == gold, task.instance_id
    smallest = minimal_edits(task.patch, read)
    assert sum(len(e["search"]) for e in smallest) <= sum(len(e["search"]) for e in full), task.instance_id


def test_every_bundled_fix_is_rebuilt_by_smaller_searches(bundled: list[Any]) -> None:
    for task in bundled:
        check_task(task)


@pytest.mark.parametrize("repo", ["confkit", "durations", "intervals", "unitconv"])
def test_synthesized_fixes_are_rebuilt_by_smaller_searches(repo: str) -> None:
    tasks = [t for t in load_tasks("bundled-synth") if t.instance_id.startswith(f"swerepair__{repo}.")]
    assert tasks
    for task in tasks[::12]:
        check_task(task)
