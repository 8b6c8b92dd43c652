"""Data-parallel training ranks: what `GRPOTrainer` does differently when a launcher (``torchrun``,
``deepspeed``, ``accelerate launch``) starts N copies of it.

One step, on N ranks, is the step one process would take with the whole batch:

- **Tasks.** Every rank draws the same ``tasks_per_step`` tasks (`step_seed`: a function of the
  seed and the step); `shard_task_ids` gives each rank a contiguous share of the *distinct* task
  ids, so a task's whole group (and every repeat of that task in the step) is played on one rank
  and its advantages are those of one process. Each episode keeps the env seed it has in one
  process (the rank's first episode is offset by its position in the step). The sampling
  generator of rank r > 0 is seeded apart from rank 0's (`rank_seed`), so two ranks do not draw
  the same random numbers for different groups.
- **Episodes.** After the rollouts every rank gathers every rank's episodes (`Ranks.gather`, over
  a gloo group, also under NCCL), in rank order (one process's order when no task is drawn twice
  in the step): rewards, advantages, drops and every episode metric are then computed from the
  global batch, the same on all ranks.
- **Loss.** Each rank trains on its own groups. A micro-batch's weight divides by the global
  count of generated tokens (``token_mean``) or of episodes (the per-sequence aggregations) —
  `Ranks.all_sum` — so the gradients of the N ranks *sum* to the single-process gradient. Plain
  data parallelism sums them with one all-reduce before clipping (`Ranks.sum_gradients`);
  DeepSpeed averages them, so the loss is multiplied by N there (`Ranks.loss_scale`). A rank with
  fewer micro-batches runs zero-weight ones (`dummy_micro_batch`) so that every rank calls
  backward equally often (ZeRO reduces gradients inside backward).
- **Records.** Rank 0 alone writes the run directory (config, log, metrics, episodes, summary,
  checkpoints); under DeepSpeed every rank writes its own shard of the engine checkpoint into the
  same ``deepspeed/`` folder (the engine's checkpoint is collective).
- **Resume.** A checkpoint without DeepSpeed holds the full optimizer state: it resumes on any
  number of ranks. A DeepSpeed ZeRO checkpoint is partitioned by its number of ranks: on that
  number it loads as it is; on another one rank 0 converts it once to DeepSpeed's universal
  checkpoint and every rank loads its new partition from that (`swerepair.trainers.checkpoint`).

- **Servers.** With ``servers``, every rank sends its own episodes' turns to the least-loaded live
  server (the count is per process: a rank sees only its own requests in flight). Rank 0 alone
  joins the weight-sync group of all servers and pushes after each update; the other ranks wait
  for the push (`Ranks.from_main`) before their next rollouts and take from rank 0 the servers
  left and the version each serves, so turns carry the same versions on every rank. A server one
  rank lost is removed on all of them (the ranks' dead servers are gathered before the push).

What is not covered: ``async_rollouts`` with servers on more than one rank (refused at start),
and exact equality of the *sampled tokens* with a one-process run: the in-process backend samples a whole generation
batch from one generator, so a rank that plays half the batch draws other tokens than one process
playing all of it (as any other change of batch composition would). Given the same episodes, N
ranks give the one-process update (`tests/trainers/test_data_parallel.py`).
"""

from __future__ import annotations

import datetime
import json
import os
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from swerepair.trainers.batch import MicroBatch

__all__ = [
    "Ranks",
    "check_resume_ranks",
    "dummy_micro_batch",
    "init_from_launcher",
    "launched_rank",
    "launched_world_size",
    "rank_seed",
    "shard_task_ids",
]

#: What a launcher (torchrun, the deepspeed launcher, accelerate) sets for every process.
LAUNCHER_KEYS = ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE")


def launched_world_size() -> int:
    """The number of ranks a launcher started (``WORLD_SIZE`` with its rendezvous set), else 1."""
    if not all(key in os.environ for key in LAUNCHER_KEYS):
        return 1
    return max(1, int(os.environ["WORLD_SIZE"]))


def launched_rank() -> int:
    """This process's rank under a launcher (``RANK``), else 0."""
    return int(os.environ.get("RANK", "0")) if launched_world_size() > 1 else 0


def shard_task_ids(task_ids: Sequence[str], rank: int, world_size: int) -> list[str]:
    """The task ids of `task_ids` (a step's draws, repeats allowed) that `rank` plays: a contiguous
    share of the distinct ids (the first ranks take one more when they do not divide evenly),
    every occurrence of an id on the same rank, in the order of `task_ids`.

    >>> [shard_task_ids(["a", "b", "c", "a"], r, 2) for r in range(2)]
    [['a', 'b', 'a'], ['c']]
    >>> shard_task_ids(["a", "b"], 2, 3)
    []
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in a world of {world_size}")
    distinct = list(dict.fromkeys(task_ids))
    per, extra = divmod(len(distinct), world_size)
    start = rank * per + min(rank, extra)
    mine = set(distinct[start : start + per + (1 if rank < extra else 0)])
    return [t for t in task_ids if t in mine]


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank `rank`'s sampling generator for a step whose one-process seed is `seed`:
    `seed` itself on rank 0 (a one-rank run draws what it always drew), another stream per rank.

    >>> rank_seed(7000024, 0), rank_seed(7000024, 1) != rank_seed(7000024, 2)
    (7000024, True)
    """
    return seed if rank == 0 else (seed * 1_000_033 + rank * 7_919) % 2**63


def dummy_micro_batch(pad_id: int) -> MicroBatch:
    """A one-episode micro-batch of two pad tokens, one of them "generated", with advantage 0: the
    forward and backward passes a rank without (enough) episodes runs, at weight 0, so that every
    rank takes part in the same collectives."""
    ids = torch.full((1, 2), pad_id, dtype=torch.long)
    return MicroBatch(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        targets=ids.clone(),
        loss_mask=torch.tensor([[1, 0]], dtype=torch.long),
        old_logp=torch.zeros(1),
        advantages=torch.zeros(1),
        seq_index=torch.zeros(1, dtype=torch.long),
    )


@dataclass
class Ranks:
    """This process's place among the data-parallel ranks, and the collectives the trainer uses.

    With ``world_size == 1`` (one process, or a launcher with one rank) every method is the
    identity and nothing is communicated.

    Attributes:
        rank, world_size: this rank and the number of ranks.
        deepspeed: gradients are reduced by a DeepSpeed engine (which averages them).
    """

    rank: int = 0
    world_size: int = 1
    deepspeed: bool = False
    _objects: Any = field(default=None, repr=False)  # the gloo group of object collectives

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes the run directory."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @classmethod
    def current(cls, *, deepspeed: bool = False) -> Ranks:
        """The ranks of the initialised default process group (one rank if there is none)."""
        import torch.distributed as dist

        if not dist.is_available() or not dist.is_initialized() or dist.get_world_size() == 1:
            return cls()
        objects = dist.new_group(backend="gloo") if dist.get_backend() != "gloo" else None
        return cls(dist.get_rank(), dist.get_world_size(), deepspeed, objects)

    # -- collectives ---------------------------------------------------------------------------------
    def gather(self, items: list[Any]) -> list[list[Any]]:
        """Every rank's `items` (picklable), indexed by rank, on every rank."""
        if not self.distributed:
            return [items]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, pickle.dumps(items), group=self._objects)
        return [pickle.loads(blob) for blob in out]

    def from_main(self, obj: Any) -> Any:
        """Rank 0's `obj` (picklable) on every rank; the others wait for it (a barrier)."""
        if not self.distributed:
            return obj
        import torch.distributed as dist

        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0, group=self._objects)
        return box[0]

    def all_sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sums of `values` over the ranks (float64)."""
        return self._reduce(values, "sum")

    def all_max(self, values: Sequence[float]) -> list[float]:
        """Element-wise maxima of `values` over the ranks (float64)."""
        return self._reduce(values, "max")

    def _reduce(self, values: Sequence[float], op: str) -> list[float]:
        if not self.distributed:
            return [float(v) for v in values]
        import torch.distributed as dist

        t = torch.tensor([float(v) for v in values], dtype=torch.float64)  # on the CPU: the gloo group
        dist.all_reduce(t, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX, group=self._objects)
        return t.tolist()

    def sum_gradients(self, params: Sequence[torch.Tensor]) -> None:
        """Sum the gradients of `params` over the ranks (plain data parallelism), in one flat
        all-reduce per dtype and device; a missing gradient counts as zeros."""
        if not self.distributed:
            return
        import torch.distributed as dist

        by_kind: dict[tuple[torch.dtype, torch.device], list[torch.Tensor]] = {}
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            by_kind.setdefault((p.grad.dtype, p.grad.device), []).append(p)
        for group in by_kind.values():
            flat = torch.cat([p.grad.reshape(-1) for p in group])
            dist.all_reduce(flat)
            offset = 0
            for p in group:
                n = p.grad.numel()
                p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
                offset += n

    @property
    def loss_scale(self) -> float:
        """The factor on each rank's loss that makes the engine's reduction a sum: N under
        DeepSpeed (which averages gradients over the ranks), else 1."""
        return float(self.world_size) if self.deepspeed and self.distributed else 1.0

    def barrier(self) -> None:
        """Wait for every rank (nothing with one)."""
        if self.distributed:
            import torch.distributed as dist

            dist.barrier(group=self._objects)


def check_resume_ranks(checkpoint: Path, config: Any, world_size: int) -> None:
    """Raise `ConfigError` when `checkpoint` cannot resume on `world_size` ranks. A checkpoint
    without DeepSpeed holds the whole optimizer state and resumes on any number. A DeepSpeed ZeRO
    checkpoint is partitioned by the number of ranks that wrote it: on that number it loads as it
    is; on another one it is converted to DeepSpeed's universal checkpoint first
    (`swerepair.trainers.checkpoint`), which needs DeepSpeed's ``ds_to_universal``."""
    from swerepair.trainers.config import ConfigError

    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text(encoding="utf-8"))
    saved = int(state.get("world_size", 1))  # checkpoints from before data parallelism: one rank
    if not config.zero_stage or saved == world_size:
        return
    try:
        from deepspeed.checkpoint import ds_to_universal  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            f"{checkpoint} is a DeepSpeed checkpoint of {saved} rank(s); resuming it on {world_size} needs "
            f"DeepSpeed's universal-checkpoint conversion (deepspeed.checkpoint.ds_to_universal): {exc}"
        ) from exc


def init_from_launcher(device_type: str) -> bool:
    """Under a launcher with more than one rank and no process group yet: initialise the default
    group from the launcher's variables (gloo on CPU, NCCL on GPUs, 127.0.0.1-style rendezvous as
    the launcher set it) and, on GPUs, make ``LOCAL_RANK``'s device the current one. Returns
    whether it initialised a group (the caller then owns it)."""
    import torch.distributed as dist

    if launched_world_size() <= 1:
        return False
    if device_type == "cuda" and "LOCAL_RANK" in os.environ:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    if dist.is_initialized():
        return False
    dist.init_process_group(
        backend="nccl" if device_type == "cuda" else "gloo",
        timeout=datetime.timedelta(minutes=30),
    )
    return True
