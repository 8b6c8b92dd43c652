"""The package's layering, checked from the source: who may import whom (docs/architecture.md).

Every ``import`` and ``from ... import`` of every module counts, wherever it stands: at the top,
inside a function, under ``if TYPE_CHECKING``. A module belongs to the most specific *part* whose
prefix its name has; `ALLOWED` says which parts each part may import. Third-party libraries that
only the model stack needs (`MODEL_LIBRARIES`) are forbidden where `NO_MODEL` says.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Source folders of the package and the import name each installs under.
FOLDERS = {
    "envs": "swerepair.envs",
    "agents": "swerepair.agents",
    "trainers": "swerepair.trainers",
    "rewards": "swerepair.rewards",
    "evals": "swerepair.evals",
}
#: Modules at the repository root, installed as ``swerepair.<name>``.
ROOT_MODULES = ("__init__", "__main__", "core", "cli")

#: Every part below the trainers (which may import all of them).
_BELOW_TRAINERS = (
    "swerepair.core",
    "swerepair.envs",
    "swerepair.envs.rollout",
    "swerepair.agents",
    "swerepair.agents.scaffold",
    "swerepair.agents.inference",
    "swerepair.agents.policies",
    "swerepair.rewards",
)

#: The parts, most specific prefix first wins; each lists the parts it may import (itself always).
ALLOWED: dict[str, set[str]] = {
    "swerepair.core": set(),
    "swerepair": set(),  # the package root: registration only
    "swerepair.rewards": {"swerepair.core"},
    "swerepair.agents.scaffold": {"swerepair.core"},
    "swerepair.agents.inference": {"swerepair.core", "swerepair.agents.scaffold"},
    "swerepair.agents.policies": {
        "swerepair.core",
        "swerepair.agents.scaffold",
        "swerepair.agents.inference",
        "swerepair.rewards",  # scripted turns read gold patches with rewards.patch
    },
    "swerepair.agents": {"swerepair.agents.scaffold"},  # agents/__init__.py re-exports the scaffold
    # the env itself, its sandboxes and tasks know the scaffold and the rewards, not the model stack
    "swerepair.envs": {"swerepair", "swerepair.core", "swerepair.agents.scaffold", "swerepair.rewards"},
    # vectorised rollouts drive a policy over envs and build token-exact episodes
    "swerepair.envs.rollout": {
        "swerepair.core",
        "swerepair.envs",
        "swerepair.agents.scaffold",
        "swerepair.agents.inference",
        "swerepair.agents.policies",
        "swerepair.rewards",
    },
    "swerepair.trainers": set(_BELOW_TRAINERS),
    # evaluation runs policies over envs and reads episodes; it needs nothing of training
    "swerepair.evals": set(_BELOW_TRAINERS),
    "swerepair.cli": {*_BELOW_TRAINERS, "swerepair", "swerepair.trainers", "swerepair.evals"},
    "swerepair.__main__": {"swerepair.cli"},
}

#: Libraries of the model stack and of training.
MODEL_LIBRARIES = ("torch", "transformers", "peft", "trl", "vllm", "deepspeed", "accelerate", "tokenizers")
#: Parts that must not import a model library: rewards grade patches, the env runs tools
#: (`swerepair.envs.rollout`, a part of its own, drives policies).
NO_MODEL = ("swerepair.core", "swerepair.rewards", "swerepair.agents.scaffold", "swerepair.envs")


def module_files(root: Path) -> dict[str, Path]:
    """Every module of the package under `root`, by its import name."""
    out: dict[str, Path] = {}
    for name in ROOT_MODULES:
        path = root / f"{name}.py"
        if path.exists():
            out["swerepair" if name == "__init__" else f"swerepair.{name}"] = path
    for folder, package in FOLDERS.items():
        for path in sorted((root / folder).rglob("*.py")):
            rel = path.relative_to(root / folder).with_suffix("").parts
            if "projects" in rel[:2] and folder == "envs":  # the bundled tasks' own repositories
                continue
            parts = [package, *rel]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def imports_of(name: str, path: Path) -> list[tuple[int, str]]:
    """``(line, imported module)`` for every import in the module, at any depth, relative ones
    resolved (``from swerepair.x import y`` counts as ``swerepair.x.y`` when that is a module, which
    the caller decides; here both forms are returned as the ``from`` target)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
    return found


def part_of(module: str) -> str | None:
    """The most specific part whose prefix `module` has."""
    best = None
    for part in ALLOWED:
        if (module == part or module.startswith(part + ".")) and (best is None or len(part) > len(best)):
            best = part
    return best


def check(root: Path) -> tuple[list[str], dict[str, set[str]]]:
    """The forbidden imports under `root` (one line each), and the part-to-part import graph."""
    modules = module_files(root)
    problems: list[str] = []
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in sorted(modules.items()):
        source = part_of(name)
        if source is None:
            problems.append(f"{path.relative_to(root)}: {name} belongs to no part of the layering")
            continue
        for line, target in imports_of(name, path):
            where = f"{path.relative_to(root)}:{line}"
            top = target.split(".")[0]
            if top in MODEL_LIBRARIES and source in NO_MODEL:
                problems.append(f"{where}: {name} imports {target} (no model library in {source})")
            if top != "swerepair" or (target not in modules and target.rsplit(".", 1)[0] in modules):
                continue  # a third-party module, or a name imported from a module (counted as the module)
            dest = part_of(target)
            if dest is None or dest == source:
                continue
            graph[source].add(dest)
            if dest not in ALLOWED[source]:
                problems.append(f"{where}: {name} imports {target} ({source} may not import {dest})")
    return problems, graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The cycles of `graph` (one path per strongly connected component with more than one node)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for node in list(graph):
        if node not in index:
            visit(node)
    return out


def test_no_forbidden_import() -> None:
    problems, _ = check(ROOT)
    assert not problems, "forbidden imports:\n" + "\n".join(problems)


def test_no_cycle_between_parts() -> None:
    _, graph = check(ROOT)
    assert not cycles(graph), cycles(graph)


def test_inference_never_imports_trainers() -> None:
    _, graph = check(ROOT)
    for part in ("swerepair.agents.inference", "swerepair.agents.policies", "swerepair.agents.scaffold"):
        assert "swerepair.trainers" not in graph.get(part, set())


def test_every_module_is_found() -> None:
    modules = module_files(ROOT)
    for expected in (
        "swerepair.cli",
        "swerepair.core",
        "swerepair.envs.env",
        "swerepair.envs.sandbox.bubblewrap",
        "swerepair.agents.inference.weights.receiver",
        "swerepair.trainers.weight_sync.pushers",
        "swerepair.rewards.verifier.runner",
    ):
        assert expected in modules


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for folder in FOLDERS:
        (tmp_path / folder).mkdir(exist_ok=True)
    return tmp_path


def test_a_function_level_import_of_trainers_from_inference_is_caught(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "agents/inference/server.py": "def start():\n    from swerepair.trainers.weight_sync import make_pusher\n",
            "trainers/weight_sync.py": "from swerepair.agents.inference.server import start\n",
        },
    )
    problems, graph = check(root)
    assert any("agents/inference/server.py:2" in p and "may not import swerepair.trainers" in p for p in problems)
    assert cycles(graph) == [["swerepair.agents.inference", "swerepair.trainers"]]


def test_relative_and_type_checking_imports_are_caught(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "rewards/__init__.py": "",
            "rewards/score.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..envs import env\n",
            "envs/__init__.py": "",
            "envs/env.py": "import torch\n",
        },
    )
    problems, _ = check(root)
    assert any("rewards/score.py:3" in p and "swerepair.rewards may not import swerepair.envs" in p for p in problems)
    assert any("envs/env.py:1" in p and "imports torch" in p for p in problems)


def test_allowed_imports_pass(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "trainers/grpo.py": "from swerepair.agents.policies.episode import EpisodeBuilder\nimport torch\n",
            "agents/policies/episode.py": "from swerepair.agents.inference.chat import ChatRenderer\n",
            "agents/inference/chat.py": "import torch\nfrom swerepair.core import Episode\n",
            "core.py": "import os\n",
        },
    )
    assert check(root)[0] == []


if __name__ == "__main__":  # print the part-to-part import map
    found, parts = check(ROOT)
    for source in sorted(parts):
        print(f"{source} -> {', '.join(sorted(parts[source]))}")
    print("\n".join(found) or "no forbidden import")
    sys.exit(1 if found else 0)
