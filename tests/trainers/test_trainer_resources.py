"""A trainer owns what it opens and leaves nothing process-wide behind.

`GRPOTrainer(config).train()`, as the README writes it, with or without ``close()``: its run's
train.log is attached to the ``swerepair`` logger only while it works, its metrics file is closed
when `train` returns (the prefetch thread too: test_grpo_servers), and the global random
generators (python's, numpy's, torch's) and the launcher's environment variables are as they
were. Two trainers run one after the other in one process therefore leave two clean run
directories and draw the same numbers; a run trained in pieces draws what one call draws. The
per-step seeds have one definition (`step_seed`), whose values are fixed.
"""

from __future__ import annotations

import logging
import os
import random
import re
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
np = pytest.importorskip("numpy")

from swerepair.trainers.config import TrainConfig  # noqa: E402
from swerepair.trainers.episodes import step_seed  # noqa: E402
from swerepair.trainers.grpo import GRPOTrainer  # noqa: E402
from swerepair.trainers.metrics import read_metrics  # noqa: E402

from helpers import tiny_run_config, token_reward  # noqa: E402

#: What DeepSpeed's or torch.distributed's set-up used to leave in the environment.
LAUNCHER_VARS = {"MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK", "DS_ACCELERATOR"}
STEP_LINE = re.compile(r"swerepair\.trainers\.grpo: step \d+: reward")


def make_config(root: Path, name: str, **changes: Any) -> TrainConfig:
    """Two LoRA steps of 2 tasks x 2 episodes, one short turn each; LoRA dropout on, so that the
    update draws from the global torch generator."""
    return tiny_run_config(root, name, **{"max_new_tokens": 8, "lora_dropout": 0.1, "tensorboard": True, **changes})


def global_rng() -> tuple[Any, Any, Any]:
    return random.getstate(), np.random.get_state(), torch.get_rng_state()


def assert_global_rng_is(expected: tuple[Any, Any, Any]) -> None:
    python, numpy_state, torch_state = global_rng()
    assert python == expected[0], "python's global random state changed"
    assert numpy_state[0] == expected[1][0] and np.array_equal(numpy_state[1], expected[1][1])
    assert numpy_state[2:] == expected[1][2:], "numpy's global random state changed"
    assert torch.equal(torch_state, expected[2]), "torch's global random state changed"


def open_files_under(root: Path) -> list[str]:
    """The files under `root` this process holds open (by /proc/self/fd)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed meanwhile (the listing's own descriptor)
            continue
        if target.startswith(str(root) + os.sep):
            found.append(target)
    return found


def package_log_state() -> tuple[list[logging.Handler], int]:
    package = logging.getLogger("swerepair")
    return list(package.handlers), package.level


def losses(records: list[dict[str, Any]]) -> list[float]:
    return [r["train/loss"] for r in records]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd")
def test_two_trainers_in_one_process_leave_two_clean_runs(tmp_path: Path) -> None:
    first_dir, second_dir = tmp_path / "run-first", tmp_path / "run-second"
    logs, env, rng = package_log_state(), dict(os.environ), global_rng()

    records_first = GRPOTrainer(make_config(tmp_path, "run-first"), episode_reward=token_reward).train()  # no close
    assert package_log_state() == logs  # the handler is detached and the logger's level restored
    assert open_files_under(first_dir) == []  # train.log, metrics.jsonl, TensorBoard: all closed
    assert_global_rng_is(rng)

    torch.rand(3), random.random(), np.random.rand()  # draws between the runs do not reach the second
    rng = global_rng()
    with GRPOTrainer(make_config(tmp_path, "run-second"), episode_reward=token_reward) as second:
        assert package_log_state() == logs  # built, not training: nothing attached
        records_second = second.train()
        assert package_log_state() == logs
    second.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        second.train()

    assert package_log_state() == logs
    assert open_files_under(tmp_path) == []
    assert_global_rng_is(rng)
    changed = {k for k, v in os.environ.items() if env.get(k) != v} | (set(env) - set(os.environ))
    assert not changed & LAUNCHER_VARS  # (imports may add their own: deepspeed's PYTORCH_NVML_BASED_CUDA_CHECK)
    assert losses(records_first) == losses(records_second)  # each trainer draws from its own seeded states

    for mine, other in ((first_dir, second_dir), (second_dir, first_dir)):
        log_text = (mine / "train.log").read_text(encoding="utf-8")
        assert str(other) not in log_text, f"{mine.name}/train.log holds lines of {other.name}"
        assert f"checkpoint {mine / 'checkpoints' / 'step-000002'}" in log_text
        assert len(STEP_LINE.findall(log_text)) == 2  # its own two steps, nobody else's
        text = (mine / "metrics.jsonl").read_text(encoding="utf-8")
        assert text.endswith("\n")
        assert [r["step"] for r in read_metrics(mine / "metrics.jsonl")] == [1, 2]


def test_training_in_pieces_draws_what_one_call_draws(tmp_path: Path) -> None:
    logs = package_log_state()
    whole = GRPOTrainer(make_config(tmp_path, "whole", tensorboard=False), episode_reward=token_reward)
    records = whole.train()
    params = {n: p.detach().clone() for n, p in whole.policy_model.trainable_parameters().items()}

    pieces = GRPOTrainer(make_config(tmp_path, "pieces", tensorboard=False), episode_reward=token_reward)
    first = pieces.train(steps=1)
    assert package_log_state() == logs and pieces.metrics is None
    torch.rand(3), random.random(), np.random.rand()  # between the calls: not the trainer's draws
    rng = global_rng()
    rest = pieces.train()
    assert_global_rng_is(rng)
    assert [r["step"] for r in read_metrics(tmp_path / "pieces" / "metrics.jsonl")] == [1, 2]  # appended
    assert losses(first + rest) == losses(records)
    after = pieces.policy_model.trainable_parameters()
    assert all(torch.equal(after[n].detach(), p) for n, p in params.items())
    log_text = (tmp_path / "pieces" / "train.log").read_text(encoding="utf-8")
    assert len(STEP_LINE.findall(log_text)) == 2  # the second call appended to the log
    assert package_log_state() == logs


#: (seed, step) -> the seeds of the task choice, the sampler and the env resets, as every run so
#: far drew them: a change would make resumed runs replay other steps than they trained.
STEP_SEEDS = {
    (0, 1): (1, 1, 1000),
    (0, 5): (5, 5, 5000),
    (1, 2): (1000005, 1000005, 1002003),
    (12345, 7): (12345037042, 12345037042, 12345044035),
}


def test_step_seeds_keep_their_values() -> None:
    for (seed, step), expected in STEP_SEEDS.items():
        assert tuple(step_seed(seed, step, s) for s in ("tasks", "sampling", "env")) == expected
    with pytest.raises(ValueError, match="stream"):
        step_seed(0, 1, "dropout")


def test_the_trl_backend_trains_on_its_own_random_states(tmp_path: Path) -> None:
    """TRL seeds the global generators when it sets itself up, and trains from what it left there:
    `build_trl_trainer` keeps those states as the trainer's own, in the global generators only
    while it builds and trains."""
    pytest.importorskip("trl")
    from swerepair.trainers.trl_backend import build_trl_trainer

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    logs, env, rng = package_log_state(), dict(os.environ), global_rng()
    overrides = dict(task_ids=["swerepair__intervals-5", "swerepair__durations-1"], max_steps=1, tensorboard=False)
    trainer = build_trl_trainer(make_config(tmp_path, "trl", **overrides), episode_reward=token_reward)
    assert_global_rng_is(rng)
    own = trainer.swerepair_rng.state_dict()
    trainer.train()
    assert trainer.state.global_step == 1
    assert_global_rng_is(rng)
    assert not torch.equal(trainer.swerepair_rng.state_dict()["torch"], own["torch"])  # training drew from its own
    assert package_log_state() == logs
    changed = {k for k, v in os.environ.items() if env.get(k) != v} | (set(env) - set(os.environ))
    assert not changed & LAUNCHER_VARS
