"""Receiver processes for weight-sync tests, in a module of their own.

A spawned process unpickles its target by module name; a test module's name (``tests.trainers...``)
is importable only when pytest was started from the repository root, while this module sits on
the ``pythonpath`` pytest is configured with, so the tests pass from any directory.
"""

from __future__ import annotations

from typing import Any

from swerepair.agents.inference.weights.group import WeightSyncGroup
from swerepair.agents.inference.weights.receiver import WeightReceiver


def receive_two_updates(port: int, world: int, rank: int, queue: Any) -> None:
    """Join the group as `rank`, receive two updates, and put what arrived on `queue`."""
    group = WeightSyncGroup("127.0.0.1", port, rank, world, timeout_s=60)
    got: dict[str, Any] = {}
    calls = []

    def apply(tensors: list[tuple[str, Any]]) -> None:
        calls.append(len(tensors))
        for name, t in tensors:
            got[name] = t.clone()

    receiver = WeightReceiver(group, apply)
    versions = [receiver.receive_update(), receiver.receive_update()]
    queue.put({"versions": versions, "calls": calls, "got": {k: v for k, v in got.items()}})
    group.close()
