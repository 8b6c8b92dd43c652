"""A training run's start: what is checked before anything is written, what a failed start
leaves (its train.log, which a rerun accepts), and an episode reward a config cannot carry."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")

from swerepair import cli
from swerepair.trainers.config import ConfigError, TrainConfig, load_config
from swerepair.trainers.startup import (
    bind_episode_reward,
    check_output_dir,
    episode_reward_name,
    preflight,
)


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model": "nope"}, "model: unknown model 'nope'"),
        ({"model": "someone/not-in-the-cache"}, "nothing is downloaded"),
        ({"tasks": "/nonexistent/tasks.jsonl"}, "tasks: task file /nonexistent/tasks.jsonl does not exist"),
        ({"reward": "nope"}, "reward: unknown reward 'nope'"),
        ({"task_ids": ["nope"]}, "task_ids: unknown task(s) nope"),
        ({"init_adapter": "/nonexistent/adapter"}, "init_adapter: no LoRA adapter"),
    ],
)
def test_preflight_refuses_a_start_that_cannot_work_before_writing(tmp_path: Path, changes: dict, message: str) -> None:
    run = tmp_path / "run"
    with pytest.raises(ConfigError) as info:
        preflight(TrainConfig(output_dir=str(run), **changes))
    assert message in str(info.value)
    assert not run.exists()


def test_an_output_dir_that_is_a_file_or_holds_a_run(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="is a file"):
        check_output_dir(TrainConfig(output_dir=str(tmp_path / "file")))
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("")
    with pytest.raises(ConfigError, match="already holds a run"):
        check_output_dir(TrainConfig(output_dir=str(run)))
    assert check_output_dir(TrainConfig(output_dir=str(run), overwrite=True)) == [run / "metrics.jsonl"]


def test_a_failed_start_leaves_its_log_and_a_rerun_is_accepted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: config.yaml and an empty train.log stayed, and the corrected rerun was refused."""
    run = tmp_path / "run"
    argv = ["train", "--output-dir", str(run), "--max-steps", "1", "--no-progress", "--no-tensorboard"]
    # found only by loading the model: the layers are counted then
    assert cli.main([*argv, "--lora-layers", "99"]) == 2
    err = capsys.readouterr().err  # after transformers' progress bars of the model load
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line == "swerepair train: error: lora_layers: '99' names layers outside 0..1", line
    assert sorted(p.name for p in run.iterdir()) == ["train.log"]
    log = (run / "train.log").read_text()
    assert "the run could not start: lora_layers: '99'" in log and "Traceback" in log
    # the corrected start is accepted there, and appends to the same log
    config = load_config(overrides=["--output-dir", str(run), "--no-progress", "--no-tensorboard"])
    assert check_output_dir(config) == []
    from swerepair.trainers.grpo import GRPOTrainer

    with GRPOTrainer(config) as trainer:
        assert trainer.run_dir == run and (run / "config.yaml").exists()
    assert "the run could not start" in (run / "train.log").read_text()


def my_episode_reward(episode: object, task: object) -> float:
    return 0.5


def test_an_episode_reward_is_carried_by_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A module-level function is recorded as module:name, which --resume loads back."""
    from swerepair.trainers.episodes import resolve_episode_reward

    name = episode_reward_name(my_episode_reward)
    assert name == f"{__name__}:my_episode_reward"
    bound = bind_episode_reward(TrainConfig(), my_episode_reward)
    assert bound.episode_reward == name
    assert bind_episode_reward(bound, None) == bound  # found again by its name
    assert resolve_episode_reward(bound, None)[1] is my_episode_reward
    run = tmp_path / "run"
    run.mkdir()
    bound.replace(output_dir=str(run)).to_yaml(run / "config.yaml")
    assert load_config(config=run / "config.yaml", saved_run=True).episode_reward == name
    assert cli.main(["train", "--resume", str(run)]) == 2  # the reward loads; the run has no checkpoint
    assert "has no complete checkpoint" in one_line(capsys.readouterr().err)


def test_an_episode_reward_without_a_name_is_never_silently_dropped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: --resume trained on the env's reward instead, without a word."""

    def local_reward(episode: object, task: object) -> float:  # no name a config can load
        return 0.5

    name = episode_reward_name(local_reward)
    assert name == f"{__name__}.{local_reward.__qualname__}"
    bound = bind_episode_reward(TrainConfig(), local_reward)
    assert bound.episode_reward == name
    with pytest.raises(ConfigError, match="Python episode reward"):
        bind_episode_reward(bound, None)
    # --resume of such a run: refused, naming the function, instead of training on the env's reward
    run = tmp_path / "run"
    run.mkdir()
    bound.replace(output_dir=str(run)).to_yaml(run / "config.yaml")
    assert cli.main(["train", "--resume", str(run)]) == 2
    line = one_line(capsys.readouterr().err)
    assert f"the Python episode reward {name}" in line and "from_run_dir" in line
    # an explicit "none" trains on the env's reward
    assert bind_episode_reward(bound.replace(episode_reward=None), None).episode_reward is None
