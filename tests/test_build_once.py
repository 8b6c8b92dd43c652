"""`core.build_once` under concurrency: processes that build the same cached directory at once
(training ranks starting together on an empty cache) all get the one complete directory, and
what a killed builder left behind does not break the next build."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from swerepair.core import build_once

SPAWN = mp.get_context("spawn")


def _load_tiny(cache: str, start: Any, out: Any) -> None:
    os.environ["SWEREPAIR_CACHE"] = cache
    from swerepair.agents.inference.models import load_model

    start.wait()
    try:
        model, tokenizer = load_model("tiny-qwen3")
        out.put(("ok", model.config.model_type, len(tokenizer)))
    except Exception as exc:  # reported to the test, which fails with it
        out.put(("error", repr(exc), 0))


def _files(directory: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(directory.iterdir())}


def _slow_build(tmp: Path, index: int) -> None:
    time.sleep(0.3 * index)  # builders finish one after the other
    (tmp / "part").write_text(str(index))
    time.sleep(0.2)
    (tmp / "done").write_text(str(index))


def _build_unlocked(final: str, index: int, start: Any, out: Any) -> None:
    """`build_once` on a file system whose locks do not exclude (flock a no-op, as across
    hosts): the directory this process got must stay the one on disk."""
    import fcntl

    fcntl.flock = lambda *args: None  # type: ignore[assignment]
    start.wait()
    path = build_once(Path(final), lambda tmp: _slow_build(tmp, index), complete=lambda p: (p / "done").exists())
    first = (path.stat().st_ino, _files(path))
    time.sleep(0.3 * (4 - index))  # until every builder is done
    out.put((index, first, (path.stat().st_ino, _files(path))))


def _build_forever(final: str) -> None:
    def stuck(tmp: Path) -> None:
        (tmp / "config.json").write_text("{")  # half written, as when the builder is killed
        time.sleep(600)

    build_once(Path(final), stuck, complete=lambda p: (p / "config.json").exists())


def _run_all(target: Any, args: list[tuple[Any, ...]], timeout: float) -> list[Any]:
    start, out = SPAWN.Event(), SPAWN.Queue()
    procs = [SPAWN.Process(target=target, args=(*a, start, out)) for a in args]
    for proc in procs:
        proc.start()
    start.set()
    try:
        return [out.get(timeout=timeout) for _ in procs]
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()


def test_ranks_starting_together_load_the_tiny_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three processes materialise tiny-qwen3 into one empty cache at once (after a killed build
    left a temporary directory and an incomplete model directory there): all load it, one
    directory results, nothing temporary is left."""
    from swerepair.agents.inference import tiny_qwen3

    cache = tmp_path / "cache"
    with monkeypatch.context() as m:  # where the model will go, without building it
        m.setattr(tiny_qwen3, "build_once", lambda final, *args, **kwargs: final)
        final = tiny_qwen3.tiny_qwen3_path(cache)
    final.parent.mkdir(parents=True)
    (final.parent / f".{final.name}.tmp-killed").mkdir()
    (final.parent / f".{final.name}.tmp-killed" / "config.json").write_text("{}")
    final.mkdir()
    (final / "tokenizer.json").write_text("{")  # no config.json: not complete

    results = _run_all(_load_tiny, [(str(cache),)] * 3, timeout=600)

    assert [r[:2] for r in results] == [("ok", "qwen3")] * 3, results
    assert len({r[2] for r in results}) == 1
    assert sorted(p.name for p in final.parent.iterdir()) == sorted([final.name, f".{final.name}.lock"])
    assert (final / "config.json").is_file()


def test_a_complete_directory_is_never_replaced(tmp_path: Path) -> None:
    """With locks that do not exclude, four builders build at once; each gets the first
    complete directory, which stays in place (same inode, same files) while the later builders
    finish and discard their copies."""
    final = tmp_path / "models" / "thing"
    results = _run_all(_build_unlocked, [(str(final), i) for i in range(4)], timeout=60)

    firsts = {index: first for index, first, _ in results}
    lasts = {index: last for index, _, last in results}
    assert firsts == lasts, "a directory a process had been given was replaced under it"
    assert len(set(map(repr, firsts.values()))) == 1
    assert _files(final) == {"done": "0", "part": "0"}
    assert sorted(p.name for p in final.parent.iterdir()) == [".thing.lock", "thing"]


def test_a_killed_builder_does_not_break_the_next_build(tmp_path: Path) -> None:
    """A builder killed mid-build (SIGKILL) leaves a half-written temporary directory and
    releases its lock; the next build succeeds and removes the leftover."""
    final = tmp_path / "models" / "thing"
    proc = SPAWN.Process(target=_build_forever, args=(str(final),))
    proc.start()
    deadline = time.monotonic() + 60
    while not list(final.parent.glob(".thing*/config.json")):  # whatever the temporary directory's name
        assert time.monotonic() < deadline and proc.is_alive(), "the builder never started"
        time.sleep(0.05)
    assert proc.pid is not None
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(timeout=30)

    def build(tmp: Path) -> None:
        (tmp / "config.json").write_text('{"model_type": "x"}')

    path = build_once(final, build, complete=lambda p: (p / "config.json").exists())

    assert path == final and (final / "config.json").read_text() == '{"model_type": "x"}'
    assert sorted(p.name for p in final.parent.iterdir()) == [".thing.lock", "thing"]
