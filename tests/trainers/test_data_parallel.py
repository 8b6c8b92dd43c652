"""Data-parallel `GRPOTrainer` ranks on CPU (gloo, ``torchrun --nproc_per_node 2``), tiny model.

A two-rank run trains one step of the tiny run (3 tasks x 2 episodes, so the ranks' shares
differ); then, in this process, one process trains the same step on the same global batch (the
episodes both ranks played, replayed) and the parameters, rewards and losses are compared; the
two-rank checkpoint is resumed by one process. Plain data parallelism (a gradient all-reduce),
DeepSpeed ZeRO-2 and ZeRO-3 run. A ZeRO checkpoint of 2 ranks is resumed on 1 and one of 1 rank
on 2 (through DeepSpeed's universal checkpoint), and the next step compared with the run that
went on with its own rank count, on the same episodes.

Why the replay: the in-process backend samples a whole generation batch from one generator, so a
rank that plays half the batch draws other tokens than one process would (see
`swerepair.trainers.distributed`); the update of N ranks must equal one process's *given the same
episodes*, which is what is compared.
"""

from __future__ import annotations

import copy
import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from swerepair.trainers.config import load_config  # noqa: E402
from swerepair.trainers.distributed import rank_seed, shard_task_ids  # noqa: E402
from swerepair.trainers.grpo import GRPOTrainer  # noqa: E402
from swerepair.trainers.metrics import read_metrics  # noqa: E402

from helpers import TINY_RUN, token_reward, torchrun_script  # noqa: E402

#: One rank of the run: trains `steps` steps, saves its parameters, records and played episodes.
CHILD = r"""
import copy
import json
import os
import sys
from pathlib import Path

import torch

from swerepair.trainers.config import load_config
from swerepair.trainers.grpo import GRPOTrainer
from helpers import token_reward

settings, steps, out = json.loads(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
trainer = GRPOTrainer(load_config(overrides=settings), episode_reward=token_reward)
played = {}
collect = trainer._collect


def recording(step, bar=None):
    episodes, generated, seconds = collect(step, bar)
    played[step] = copy.deepcopy(episodes)  # before the trainer sets their rewards
    return episodes, generated, seconds


trainer._collect = recording
records = trainer.train(steps=steps)
params = trainer.policy_model.trainable_parameters()
rank = int(os.environ["RANK"])
if settings["zero_stage"] == 3:  # partitioned: gather each parameter to read it
    import deepspeed

    with deepspeed.zero.GatheredParameters(list(params.values())):
        params = {n: p.detach().clone() for n, p in params.items()}
torch.save(
    {
        "params": {n: p.detach().clone() for n, p in params.items()},
        "played": played,
        "records": records,
        "ranks": [trainer.ranks.rank, trainer.ranks.world_size],
    },
    out / f"rank{rank}.pt",
)
"""

#: 3 tasks x 2 episodes: rank 0 plays two groups, rank 1 one (and pads its update with a
#: zero-weight micro-batch, so both ranks run two backward passes)
SETTINGS: dict[str, Any] = {**TINY_RUN, "max_new_tokens": 8, "dtype": "float32", "tasks_per_step": 3}


def launch(tmp: Path, ranks: int, settings: dict[str, Any], steps: int) -> list[dict[str, Any]]:
    """Run `CHILD` on `ranks` ranks with torchrun (127.0.0.1); each rank's saved results."""
    out = torchrun_script(tmp, "child.py", CHILD, [json.dumps(settings), str(steps)], ranks)
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(ranks)]


def replay(run_dir: Path, settings: dict[str, Any], episodes_by_step: dict[int, list[Any]]) -> GRPOTrainer:
    """One process training the steps of `episodes_by_step` on exactly those episodes."""
    config = load_config(overrides={**settings, "output_dir": str(run_dir)})
    trainer = GRPOTrainer(config, episode_reward=token_reward)

    def collect(step: int, bar: Any = None) -> tuple[list[Any], float, float]:
        return copy.deepcopy(episodes_by_step[step]), 0.0, 1.0

    trainer._collect = collect  # type: ignore[method-assign]
    trainer.train(steps=len(episodes_by_step))
    return trainer


def close_params(got: dict[str, Any], want: dict[str, Any]) -> None:
    """Equal up to float summation order: Adam's first step moves each weight by about lr whatever
    the size of its gradient, so a gradient element near 0 may land either way; allow a few."""
    assert set(got) == set(want)
    diffs = torch.cat([(got[n] - w).abs().flatten() for n, w in want.items()])
    assert int((diffs > 1e-4).sum()) <= 8, f"{int((diffs > 1e-4).sum())} of {diffs.numel()} weights differ"
    assert float(diffs.mean()) < 1e-6


# -- sharding (no processes) --------------------------------------------------------------------------
def test_shards_hold_whole_groups_once() -> None:
    steps = [["a", "a", "b", "b", "c", "c"], ["a", "b", "a", "b"], ["x", "x"]]
    for ids in steps:
        for world in (1, 2, 3, 4):
            shards = [shard_task_ids(ids, r, world) for r in range(world)]
            assert Counter(t for s in shards for t in s) == Counter(ids)  # every episode played once
            owners = {t: [r for r, s in enumerate(shards) if t in s] for t in ids}
            assert all(len(o) == 1 for o in owners.values())  # a task's group on one rank
    assert shard_task_ids(["a", "a", "b", "b"], 0, 1) == ["a", "a", "b", "b"]
    assert rank_seed(5, 0) == 5 and len({rank_seed(5, r) for r in range(8)}) == 8


# -- two ranks against one process -------------------------------------------------------------------
@pytest.fixture(scope="module", params=[0, 2, 3], ids=["plain", "zero2", "zero3"])
def two_ranks(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One step (of two) on two ranks; the same step in one process on the same episodes."""
    if request.param:
        pytest.importorskip("deepspeed", reason="DeepSpeed is not installed (pip install 'swerepair[train]')")
    root = tmp_path_factory.mktemp(f"dp{request.param}")
    settings = {**SETTINGS, "output_dir": str(root / "run"), "zero_stage": request.param}
    results = launch(root, 2, settings, steps=1)
    everything = [ep for r in results for ep in r["played"][1]]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SWEREPAIR_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        single = replay(root / "single", {**SETTINGS, "zero_stage": 0}, {1: everything})
    single_params = {n: p.detach().clone() for n, p in single.policy_model.trainable_parameters().items()}
    return {
        "stage": request.param,
        "root": root,
        "run": root / "run",
        "settings": settings,
        "ranks": results,
        "single": single,
        "single_params": single_params,
    }


@pytest.mark.slow
def test_each_group_is_played_once_across_ranks(two_ranks: dict[str, Any]) -> None:
    r0, r1 = two_ranks["ranks"]
    assert r0["ranks"] == [0, 2] and r1["ranks"] == [1, 2]
    ids0 = [ep.instance_id for ep in r0["played"][1]]
    ids1 = [ep.instance_id for ep in r1["played"][1]]
    assert ids0 and ids1 and not set(ids0) & set(ids1)
    assert (len(set(ids0)), len(set(ids1))) == (2, 1)
    tasks = two_ranks["single"].tasks_for_step(1)
    group = SETTINGS["group_size"]
    assert Counter(ids0 + ids1) == Counter({t: group * tasks.count(t) for t in tasks})


@pytest.mark.slow
def test_two_ranks_update_as_one_process(two_ranks: dict[str, Any]) -> None:
    r0, r1 = two_ranks["ranks"]
    for name, p in r0["params"].items():  # the ranks hold one model
        assert torch.equal(p, r1["params"][name]), name
    close_params(r0["params"], two_ranks["single_params"])


@pytest.mark.slow
def test_metrics_equal_the_single_process_run(two_ranks: dict[str, Any]) -> None:
    single = two_ranks["single"].history[-1]
    for r in two_ranks["ranks"]:
        got = r["records"][0]
        assert got["dist/world_size"] == 2.0 and got["train/updated"] == single["train/updated"] == 1.0
        for key in ("reward/mean", "reward/std", "reward/min", "reward/max", "train/episodes", "train/tokens"):
            assert got[key] == pytest.approx(single[key], rel=1e-12, abs=1e-12), key
        assert got["train/loss"] == pytest.approx(single["train/loss"], abs=1e-6)
        assert got["train/grad_norm"] == pytest.approx(single["train/grad_norm"], rel=1e-4)
        assert got["train/clip_fraction"] == pytest.approx(single["train/clip_fraction"], abs=1e-9)
    logged = read_metrics(two_ranks["run"] / "metrics.jsonl")
    assert [r["step"] for r in logged] == [1]  # written once, by rank 0
    assert logged[0]["reward/mean"] == pytest.approx(single["reward/mean"])


@pytest.mark.slow
def test_one_run_directory(two_ranks: dict[str, Any]) -> None:
    run = two_ranks["run"]
    assert sorted(p.name for p in run.iterdir()) == sorted(
        ["checkpoints", "config.yaml", "episodes", "learning_curve.png", "metrics.jsonl", "summary.json", "train.log"]
    )
    rows = (run / "episodes" / "step-000001.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(rows) == SETTINGS["group_size"] * SETTINGS["tasks_per_step"]  # both ranks' episodes, once
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-000001"]
    state = json.loads((run / "checkpoints" / "step-000001" / "trainer_state.json").read_text(encoding="utf-8"))
    assert state["world_size"] == 2 and state["step"] == 1
    assert not list(run.parent.glob("run-*")) and not list((run / "checkpoints").glob(".tmp-*"))


@pytest.mark.slow
def test_resume_two_ranks_onto_one(two_ranks: dict[str, Any], tmp_path: Path) -> None:
    if two_ranks["stage"]:
        pytest.skip("ZeRO: test_zero_resume_on_another_rank_count (in processes of their own)")
    resumed = GRPOTrainer.from_run_dir(two_ranks["run"], episode_reward=token_reward)
    assert resumed.step == 1 and resumed.ranks.world_size == 1
    for name, p in resumed.policy_model.trainable_parameters().items():
        assert torch.equal(p.detach(), two_ranks["ranks"][0]["params"][name]), name
    records = resumed.train()
    assert [r["train/updated"] for r in records] == [1.0]
    assert resumed.step == 2
    assert [r["step"] for r in read_metrics(two_ranks["run"] / "metrics.jsonl")] == [1, 2]


# -- a ZeRO checkpoint resumed on another number of ranks ----------------------------------------------
#: One rank of a ZeRO run, in two modes. ``fresh``: train step 1, snapshot, train step 2, snapshot
#: (each ``train`` call checkpoints where it stops, so the step-1 checkpoint is the one a run of one
#: step leaves). ``resume``: resume the run directory, snapshot, train step 2 on this rank's share of
#: the given episodes, snapshot. A snapshot holds the full trainable parameters (the model's and the
#: optimizer's fp32 copies), Adam's moments and step, the LR and the schedule's and engine's steps.
UC_CHILD = r"""
import copy
import json
import os
import sys
from pathlib import Path

import deepspeed
import torch
from deepspeed.utils import safe_get_full_fp32_param, safe_get_full_optimizer_state

from swerepair.trainers.config import load_config
from swerepair.trainers.distributed import shard_task_ids
from swerepair.trainers.grpo import GRPOTrainer
from helpers import token_reward

mode, settings, out = sys.argv[1], json.loads(sys.argv[2]), Path(sys.argv[3])
rank = int(os.environ["RANK"])


def snapshot(trainer):
    pm = trainer.policy_model
    params = pm.trainable_parameters()
    with deepspeed.zero.GatheredParameters(list(params.values()), enabled=settings["zero_stage"] == 3):
        model = {n: p.detach().clone().float() for n, p in params.items()}
    inner = pm.optimizer.optimizer  # the torch AdamW inside DeepSpeed's ZeRO optimizer
    return {
        "model": model,
        "fp32": {n: safe_get_full_fp32_param(p).clone() for n, p in params.items()},
        "exp_avg": {n: safe_get_full_optimizer_state(p, "exp_avg").clone() for n, p in params.items()},
        "exp_avg_sq": {n: safe_get_full_optimizer_state(p, "exp_avg_sq").clone() for n, p in params.items()},
        "adam_steps": sorted({float(s["step"]) for s in inner.state.values() if "step" in s}),
        "lr": pm.lr,
        "schedule_step": pm.scheduler.last_epoch,
        "engine_steps": pm.engine.global_steps,
        "step": trainer.step,
        "world_size": trainer.ranks.world_size,
    }


snaps = []
if mode == "fresh":
    trainer = GRPOTrainer(load_config(overrides=settings), episode_reward=token_reward)
    played = {}
    collect = trainer._collect

    def recording(step, bar=None):
        episodes, generated, seconds = collect(step, bar)
        played[step] = copy.deepcopy(episodes)
        return episodes, generated, seconds

    trainer._collect = recording
    for _ in range(2):
        trainer.train(steps=1)
        snaps.append(snapshot(trainer))
else:
    trainer = GRPOTrainer.from_run_dir(settings["output_dir"], episode_reward=token_reward)
    snaps.append(snapshot(trainer))
    everything = torch.load(settings["episodes"], weights_only=False)  # step 2's episodes, one process's order
    ids = [ep.instance_id for ep in everything]
    mine = set(shard_task_ids(ids, trainer.ranks.rank, trainer.ranks.world_size))
    played = {2: [ep for ep in everything if ep.instance_id in mine]}

    def replaying(step, bar=None):
        return copy.deepcopy(played[step]), 0.0, 1.0

    trainer._collect = replaying
    trainer.train()
    snaps.append(snapshot(trainer))
torch.save({"snaps": snaps, "played": played, "history": trainer.history}, out / f"rank{rank}.pt")
"""


def launch_uc(tmp: Path, ranks: int, mode: str, settings: dict[str, Any]) -> list[dict[str, Any]]:
    """Run `UC_CHILD` in `mode` on `ranks` ranks with torchrun; each rank's results."""
    out = torchrun_script(tmp, "uc_child.py", UC_CHILD, [mode, json.dumps(settings)], ranks)
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(ranks)]


def assert_same_state(got: dict[str, Any], want: dict[str, Any]) -> None:
    """Two snapshots of the same training state (up to float summation order)."""
    for key in ("model", "fp32"):
        close_params(got[key], want[key])
    for key in ("exp_avg", "exp_avg_sq"):
        assert set(got[key]) == set(want[key])
        for name, w in want[key].items():
            assert torch.allclose(got[key][name], w, rtol=1e-3, atol=1e-7), (key, name)
    assert got["adam_steps"] == want["adam_steps"] and len(got["adam_steps"]) == 1
    assert got["lr"] == want["lr"]
    assert got["schedule_step"] == want["schedule_step"] and got["engine_steps"] == want["engine_steps"]


@pytest.mark.slow
@pytest.mark.parametrize("saved,resumed", [(2, 1), (1, 2)], ids=["2to1", "1to2"])
@pytest.mark.parametrize("stage", [2, 3], ids=["zero2", "zero3"])
def test_zero_resume_on_another_rank_count(stage: int, saved: int, resumed: int, tmp_path: Path) -> None:
    """A ZeRO run of two steps on `saved` ranks; its step-1 checkpoint resumed on `resumed` ranks
    (through DeepSpeed's universal checkpoint) trains step 2 on the same episodes: the restored
    state equals the run's after step 1, and the state after step 2 equals the run's."""
    pytest.importorskip("deepspeed", reason="DeepSpeed is not installed (pip install 'swerepair[train]')")
    run = tmp_path / "run"
    settings = {**SETTINGS, "output_dir": str(run), "zero_stage": stage}
    fresh = launch_uc(tmp_path / "fresh", saved, "fresh", settings)
    for r in fresh[1:]:  # the ranks hold one state
        for key in ("model", "fp32", "exp_avg"):
            assert all(torch.equal(t, fresh[0]["snaps"][1][key][n]) for n, t in r["snaps"][1][key].items())
    after1, after2 = fresh[0]["snaps"]
    assert (after1["adam_steps"], after2["adam_steps"]) == ([1.0], [2.0]) and after1["lr"] != after2["lr"]
    # moments worth restoring: every lora_B's (lora_A's gradient is 0 at step 1, as B starts at 0)
    assert sum(float(m.abs().sum()) > 0 for m in after1["exp_avg"].values()) >= len(after1["exp_avg"]) // 2

    # the run as one step left it: its step-1 checkpoint, its records of step 1
    copy_ = tmp_path / "resume"
    shutil.copytree(run, copy_)
    shutil.rmtree(copy_ / "checkpoints" / "step-000002")
    step2 = [ep for r in fresh for ep in r["played"][2]]  # rank order: one process's order (no repeats)
    torch.save(step2, tmp_path / "step2.pt")
    resumed_ranks = launch_uc(
        tmp_path / "resumed",
        resumed,
        "resume",
        {**settings, "output_dir": str(copy_), "episodes": str(tmp_path / "step2.pt")},
    )
    assert (copy_ / "checkpoints" / "step-000001" / "deepspeed" / "universal").is_dir()  # converted once
    for r in resumed_ranks:
        loaded, final = r["snaps"]
        assert loaded["world_size"] == resumed and loaded["step"] == 1
        assert_same_state(loaded, after1)
        assert final["step"] == 2
        assert_same_state(final, after2)
        assert [h["step"] for h in r["history"]] == [1, 2]
        assert r["history"][1]["train/loss"] == pytest.approx(fresh[0]["history"][1]["train/loss"], abs=1e-6)
    assert [r["step"] for r in read_metrics(copy_ / "metrics.jsonl")] == [1, 2]
