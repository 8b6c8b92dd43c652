"""Helpers shared by the tests (importable as `helpers`; conftest.py holds the fixtures)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from swerepair.envs.sandbox import bwrap_available

HAVE_BWRAP = bwrap_available()
#: Skips where bubblewrap cannot run, except under CI=true, where the isolation tests must run.
needs_bwrap = pytest.mark.skipif(
    not HAVE_BWRAP and not os.environ.get("CI"), reason="bubblewrap cannot create namespaces here"
)

#: The two ways the bubblewrap sandbox runs commands (`SandboxConfig.session`): one sandbox per
#: episode whose supervisor spawns each command, or a bubblewrap per command. Suites that must
#: hold in both run with `bwrap_mode` (it sets the default through $SWEREPAIR_SANDBOX_SESSION).
BWRAP_MODES = ("session", "per-command")


def set_bwrap_mode(monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    """Make `SandboxConfig()` default to `mode` (one of `BWRAP_MODES`) for this test."""
    monkeypatch.setenv("SWEREPAIR_SANDBOX_SESSION", "1" if mode == "session" else "0")


#: Sandbox kinds every sandbox-level test runs on (local always; bubblewrap where it works).
SANDBOX_KINDS = [
    pytest.param("local", marks=pytest.mark.filterwarnings("ignore::swerepair.envs.sandbox.LocalSandboxWarning")),
    pytest.param("bubblewrap", marks=needs_bwrap),
]


def make_repo(root: Path, files: dict[str, str]) -> str:
    """Create a git repository with one commit holding `files`; return the commit sha."""
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
        "PATH": "/usr/bin:/bin",
        "HOME": str(root),
    }
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True, env=env)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True, env=env)
    subprocess.run(["git", "commit", "-qm", "init"], cwd=root, check=True, env=env)
    return subprocess.check_output(["git", "rev-parse", "HEAD"], cwd=root, text=True, env=env).strip()


TOY_FILES = {
    "calc.py": "def add(a, b):\n    return a - b\n\n\ndef twice(x):\n    return x + x\n\n\nDUP = 1\nDUP = 1\n",
    "tests/test_calc.py": "from calc import add, twice\n\n\ndef test_twice():\n    assert twice(2) == 4\n",
    "README.md": "calc\n",
}
#: The fix as `git diff` writes it (three lines of context), so that it scores exactly 1.
TOY_GOLD = (
    "diff --git a/calc.py b/calc.py\n--- a/calc.py\n+++ b/calc.py\n@@ -1,5 +1,5 @@\n"
    " def add(a, b):\n-    return a - b\n+    return a + b\n \n \n def twice(x):\n"
)
TOY_TEST_PATCH = (
    "diff --git a/tests/test_calc.py b/tests/test_calc.py\n--- a/tests/test_calc.py\n+++ b/tests/test_calc.py\n"
    "@@ -4,2 +4,6 @@ from calc import add, twice\n def test_twice():\n     assert twice(2) == 4\n+\n+\n"
    "+def test_add():\n+    assert add(2, 3) == 5\n"
)


def _serve_tiny_model(port_queue: Any, stop: Any) -> None:
    from swerepair.agents.inference.models import load_model
    from swerepair.agents.inference.server import InferenceServer
    from swerepair.agents.inference.weight_endpoints import attach_weight_endpoints

    model, tokenizer = load_model("tiny-qwen3")
    with attach_weight_endpoints(InferenceServer(model, tokenizer, batch_window_s=0.05)) as server:
        port_queue.put(server.port)
        stop.wait(600)


@contextlib.contextmanager
def server_process(target: Any, *args: Any) -> Iterator[str]:
    """Run ``target(port_queue, stop_event, *args)`` in a spawned process: it serves on a local
    port, puts the port in the queue, and returns once the event is set. Yields the server's
    root URL; stops the process on exit."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    ports, stop = ctx.Queue(), ctx.Event()
    proc = ctx.Process(target=target, args=(ports, stop, *args), daemon=True)
    proc.start()
    try:
        yield f"http://127.0.0.1:{ports.get(timeout=120)}"
    finally:
        stop.set()
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()


def tiny_model_server() -> contextlib.AbstractContextManager[str]:
    """The embedded server (with its /weights endpoints) over tiny-qwen3 in another process;
    yields its root URL and stops it on exit."""
    return server_process(_serve_tiny_model)


def patch_from_edits(task, edits, kind: str = "auto") -> str:
    """The `git diff` a workspace of `task` shows after `edits`: ``{path: new text}``, or
    ``{path: callable(old text) -> new text}`` for files that exist. Made with the sandbox's
    own diff, so it is exactly what an agent's episode would produce."""
    from swerepair.envs.sandbox import make_sandbox

    with make_sandbox(kind, task) as sb:
        for path, edit in edits.items():
            text = edit(sb.read_file(path)) if callable(edit) else edit
            sb.write_file(path, text)
        return sb.diff()


def package_of(task) -> str:
    """The import package of a bundled task's project (``swerepair/confkit`` -> ``confkit``)."""
    return task.repo.split("/")[-1]


#: A GRPO run small enough for a test: the tiny random model on CPU, 2 tasks x 2 episodes of
#: one short turn per step, LoRA on every layer, two micro-batches of 2, no TensorBoard.
TINY_RUN: dict[str, Any] = dict(
    model="tiny-qwen3",
    device="cpu",
    group_size=2,
    tasks_per_step=2,
    max_tool_calls=1,
    max_new_tokens=12,
    lr=1e-2,
    progress=False,
    micro_batch_size=2,
    env_workers=2,
    tensorboard=False,
    lora_layers="all",
    max_steps=2,
)


def tiny_run_config(root: Path, name: str = "run", **changes: Any) -> Any:
    """`TINY_RUN` as a `TrainConfig` writing to ``root/name``, with `changes` over it."""
    from swerepair.trainers.config import load_config

    return load_config(overrides={**TINY_RUN, "output_dir": str(root / name), **changes})


def get_json(url: str) -> Any:
    """The JSON body of a GET of `url` (a test server's status endpoint)."""
    import json
    import urllib.request

    with urllib.request.urlopen(url, timeout=60) as response:
        return json.loads(response.read())


def token_reward(ep: Any, task: Any) -> float:
    """A reward with variance within a group: a hash of the ids the model generated, in [0, 1).

    Two episodes score the same only when they generated the same ids, so a group of sampled
    episodes is informative (a coarser reward, such as the ids' sum mod 7, ties one group in seven
    and makes a test that expects an update fail by chance)."""
    ids = [t for t, m in zip(ep.tokens, ep.loss_mask, strict=True) if m]
    digest = hashlib.sha256(",".join(map(str, ids)).encode()).digest()
    return int.from_bytes(digest[:6], "big") / 2**48


def torchrun_script(tmp: Path, name: str, text: str, args: list[str], ranks: int) -> Path:
    """Run the script `text` (written to ``tmp/name``) on `ranks` ranks with torchrun on CPU
    (gloo, 127.0.0.1, one thread each, this directory importable as `helpers`), after building
    the tiny model once here so the ranks do not all build it at the same time; the folder
    ``tmp/out`` the script was given as its last argument, for its results."""
    import sys

    from swerepair.agents.inference.http import free_port
    from swerepair.agents.inference.tiny_qwen3 import tiny_qwen3_path

    tiny_qwen3_path()
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / name).write_text(text, encoding="utf-8")
    out = tmp / "out"
    out.mkdir()
    drop = ("MASTER_ADDR", "MASTER_PORT", "RANK", "LOCAL_RANK", "WORLD_SIZE")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    here = str(Path(__file__).resolve().parent)
    env.update(
        PYTHONPATH=os.pathsep.join([here, env.get("PYTHONPATH", "")]),
        CUDA_VISIBLE_DEVICES="",
        DS_ACCELERATOR="cpu",
        OMP_NUM_THREADS="1",
    )
    torchrun = Path(sys.executable).with_name("torchrun")
    command = [
        *([str(torchrun)] if torchrun.exists() else [sys.executable, "-m", "torch.distributed.run"]),
        *("--nproc_per_node", str(ranks), "--master_addr", "127.0.0.1", "--master_port", str(free_port())),
        *(str(tmp / name), *args, str(out)),
    ]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
    return out
