"""Weight sync: bucket planning, and real pushes over a gloo group between two processes."""

from __future__ import annotations

import multiprocessing as mp
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from swerepair.agents.inference.http import free_port  # noqa: E402
from swerepair.agents.inference.weights.group import WeightSyncGroup  # noqa: E402
from swerepair.agents.inference.weights.protocol import plan_buckets  # noqa: E402
from swerepair.agents.inference.weights.receiver import WeightReceiver  # noqa: E402
from swerepair.trainers.weight_sync import WeightSender  # noqa: E402

from weight_peers import receive_two_updates  # noqa: E402


def named(seed: int = 0) -> list[tuple[str, Any]]:
    g = torch.Generator().manual_seed(seed)
    return [
        ("embed.weight", torch.randn(50, 8, generator=g)),
        ("layer.0.norm", torch.randn(8, generator=g).to(torch.bfloat16)),
        ("layer.0.proj", torch.randn(8, 16, generator=g)),
        ("scale", torch.randn((), generator=g)),
        ("layer.1.norm", torch.randn(8, generator=g).to(torch.bfloat16)),
        ("head.weight", torch.randn(50, 8, generator=g)),
    ]


def test_plan_buckets_groups_by_dtype_and_size() -> None:
    tensors = named()
    buckets = plan_buckets(tensors, bucket_bytes=2000)
    assert {b.dtype for b in buckets} == {"float32", "bfloat16"}
    seen = [s.name for b in buckets for s in b.tensors]
    assert sorted(seen) == sorted(n for n, _ in tensors)  # every tensor exactly once
    for b in buckets:
        assert b.nbytes == sum(s.nbytes for s in b.tensors)
        offsets = [s.offset for s in b.tensors]
        assert offsets == sorted(offsets) and offsets[0] == 0
        assert b.nbytes <= 2000 or len(b.tensors) == 1  # only a lone oversized tensor exceeds the limit
    fp32 = [s.name for b in buckets if b.dtype == "float32" for s in b.tensors]
    assert fp32 == ["embed.weight", "layer.0.proj", "scale", "head.weight"]  # order kept within a dtype
    assert len(plan_buckets(tensors, bucket_bytes=0)) == len(tensors)  # per-tensor baseline
    assert len(plan_buckets(tensors, bucket_bytes=1 << 30)) == 2  # one per dtype


@pytest.mark.parametrize("bucket_bytes", [0, 1024, 1 << 20])
def test_push_reaches_every_receiver_exactly(bucket_bytes: int) -> None:
    ctx = mp.get_context("spawn")
    port, world = free_port(), 3
    queue = ctx.Queue()
    procs = [ctx.Process(target=receive_two_updates, args=(port, world, r, queue)) for r in (1, 2)]
    for p in procs:
        p.start()
    group = WeightSyncGroup("127.0.0.1", port, 0, world, timeout_s=60)
    sender = WeightSender(group, bucket_bytes=bucket_bytes)
    first = sender.push(named(0), version=1)
    second = sender.push(named(1), version=2)
    results = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    group.close()
    assert first.buckets == len(plan_buckets(named(0), bucket_bytes))
    assert first.nbytes == sum(t.numel() * t.element_size() for _, t in named(0))
    for result in results:
        assert result["versions"] == [1, 2]
        assert sum(result["calls"]) == 2 * len(named(0))  # every tensor, twice
        assert len(result["calls"]) == first.buckets + second.buckets  # one apply per bucket
        for name, tensor in named(1):  # the second push's values won
            assert result["got"][name].dtype == tensor.dtype and torch.equal(result["got"][name], tensor)


def test_group_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="backend"):
        WeightSyncGroup("127.0.0.1", free_port(), 0, 1, backend="mpi")
    with pytest.raises(ValueError, match="outside"):
        WeightSyncGroup("127.0.0.1", free_port(), 2, 2)


def test_a_failing_apply_still_receives_the_whole_update() -> None:
    import threading

    port = free_port()
    outcome: dict[str, Any] = {}

    def receive() -> None:
        group = WeightSyncGroup("127.0.0.1", port, 1, 2, timeout_s=60)
        seen: list[str] = []

        def apply(tensors: list[tuple[str, Any]]) -> None:
            for name, t in tensors:
                if name == "layer.0.proj" and "raised" not in seen:
                    seen.append("raised")
                    raise ValueError("shape mismatch")
                seen.append(f"{name}={float(t.float().sum()):.0f}")

        receiver = WeightReceiver(group, apply)
        try:
            receiver.receive_update()
        except ValueError as exc:
            outcome["first"] = str(exc)
        outcome["second"] = receiver.receive_update()  # in step: the next update, not leftovers
        outcome["seen"] = seen
        group.close()

    thread = threading.Thread(target=receive)
    thread.start()
    group = WeightSyncGroup("127.0.0.1", port, 0, 2, timeout_s=60)
    sender = WeightSender(group, bucket_bytes=0)  # one bucket per tensor: the error comes mid-update
    sender.push(named(0), version=1)
    sender.push([("a", torch.ones(3))], version=2)
    thread.join(60)
    group.close()
    assert outcome["first"] == "shape mismatch" and outcome["second"] == 2
    # the rest of the first update was received but not applied; then the second update's tensor
    assert outcome["seen"][-2:] == ["raised", "a=3"]
