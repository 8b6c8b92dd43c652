"""DeepSpeed ZeRO checkpoints resumed on another number of ranks, through DeepSpeed's universal
checkpoint.

A ZeRO-2/3 engine checkpoint (``<checkpoint>/deepspeed/state``) holds one file of optimizer state
per data-parallel rank: each rank's partition of the flat fp32 master weights and of Adam's
moments. The same number of ranks loads it as it is (`DeepSpeedEngine.load_checkpoint`).
Another number cannot: DeepSpeed refuses to repartition it. DeepSpeed's own answer is its
*universal checkpoint*: `deepspeed.checkpoint.ds_to_universal` rewrites the partitions as one
folder per parameter (its fp32 value, ``exp_avg``, ``exp_avg_sq``, the step), independent of the
rank count, and an engine whose config says ``checkpoint: {load_universal: true}`` cuts each
rank's partition out of it (stage 1/2: ``load_hp_checkpoint_state_from_checkpoint_dir``; stage 3:
``load_hp_checkpoint_state_from_checkpoint_dir_stage3``). The LR schedule and the engine's step
counters live in the rank-independent ``mp_rank_00_model_states.pt``, which the conversion copies.

`load_zero_checkpoint` does that when the counts differ: rank 0 converts once, into
``<checkpoint>/deepspeed/universal`` (written in a temporary folder, then renamed: a conversion
that dies leaves no half-written one, and a later resume reuses a finished one), every rank waits
for it and loads it. With the same count nothing changes.

What is not covered: a ``deepspeed_config`` with tensor or pipeline parallelism, NVMe offload of
the optimizer, or MoE layers (the conversion supports some of them; none is trained or tested
here), and DeepSpeed's own ``load_universal`` set by the user (it is then used for every resume).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import shutil
from pathlib import Path
from typing import Any

__all__ = ["UNIVERSAL_TAG", "load_zero_checkpoint", "saved_zero_ranks", "to_universal"]

log = logging.getLogger(__name__)

#: The tag (sub-folder of ``deepspeed/``) of the universal copy of a checkpoint's engine state.
UNIVERSAL_TAG = "universal"

#: What marks a finished conversion inside the universal folder.
_DONE = "converted.txt"


def saved_zero_ranks(folder: Path, tag: str) -> int:
    """The number of data-parallel ranks that wrote the ZeRO checkpoint `folder`/`tag`: one
    optimizer-state file each (``*_optim_states.pt``)."""
    files = list((Path(folder) / tag).glob("*_optim_states.pt"))
    if not files:
        raise FileNotFoundError(f"{Path(folder) / tag} holds no ZeRO optimizer state (*_optim_states.pt)")
    return len(files)


def to_universal(folder: Path, tag: str) -> Path:
    """Convert the ZeRO checkpoint `folder`/`tag` to DeepSpeed's universal format, once, into
    `folder`/`UNIVERSAL_TAG` (kept for later resumes); return that folder. One process only; in
    this process (no worker pool), its console output sent to the log at debug level."""
    from deepspeed.checkpoint import ds_to_universal

    folder = Path(folder)
    out = folder / UNIVERSAL_TAG
    if (out / _DONE).exists():
        return out
    tmp = folder / f".tmp-{UNIVERSAL_TAG}"
    shutil.rmtree(tmp, ignore_errors=True)
    args = argparse.Namespace(
        input_folder=str(folder / tag),
        output_folder=str(tmp),
        num_extract_workers=1,  # in this process: no process pool for a few small files
        num_merge_workers=1,
        keep_temp_folder=False,
        strict=True,
        inject_missing_state=True,  # no tensor or pipeline parallelism: the version is all it needs
    )
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        ds_to_universal.main(args)
    log.debug("ds_to_universal:\n%s", printed.getvalue())
    (tmp / _DONE).write_text(f"converted from {tag} ({saved_zero_ranks(folder, tag)} ranks)\n", encoding="utf-8")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    (folder / "latest_universal").write_text(UNIVERSAL_TAG, encoding="utf-8")  # the conversion named the tmp one
    return out


def load_zero_checkpoint(engine: Any, folder: Path, tag: str) -> None:
    """Load the engine checkpoint `folder`/`tag` into `engine` (a fresh one, every rank calls
    this): as it is when the same number of data-parallel ranks wrote it, else through its
    universal copy (`to_universal`, made by rank 0 while the others wait). The trainable weights,
    the fp32 master weights, Adam's moments and step, the LR schedule and the engine's step
    counters are restored either way."""
    import torch.distributed as dist

    folder = Path(folder)
    world = dist.get_world_size() if dist.is_initialized() else 1
    saved = saved_zero_ranks(folder, tag)
    if saved == world:
        engine.load_checkpoint(str(folder), tag=tag)
        return
    log.info(
        "the ZeRO checkpoint %s was written by %d rank(s), not %d: loading its universal copy", folder, saved, world
    )
    failure: list[str | None] = [None]
    if not dist.is_initialized() or dist.get_rank() == 0:
        try:
            to_universal(folder, tag)
        except Exception as exc:  # the other ranks wait for this answer: give them one, then fail
            log.exception("converting %s to a universal checkpoint failed", folder / tag)
            failure = [f"{type(exc).__name__}: {exc}"]
    if world > 1:
        dist.broadcast_object_list(failure, src=0)
    if failure[0] is not None:
        raise RuntimeError(f"could not convert {folder / tag} to a universal checkpoint: {failure[0]}")
    config = engine._config  # DeepSpeed reads the flag from its config whenever it loads
    before = config.load_universal_checkpoint
    config.load_universal_checkpoint = True
    try:
        engine.load_checkpoint(str(folder), tag=UNIVERSAL_TAG)
    finally:
        config.load_universal_checkpoint = before
