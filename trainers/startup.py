"""Checks a training run passes before it writes anything: a start that cannot work fails here,
with one message that names the setting and what is wrong, and leaves no run directory behind.

`preflight` checks, in order: an episode reward the config names is given
(`bind_episode_reward`), the policy model can be loaded offline (`check_model`), an
``init_adapter`` and a ``deepspeed_config`` exist, the task set loads (its rows, its repositories,
``task_ids``), the reward is one the env knows, the sandbox can run here, and the output directory
can be created and holds no other run (``overwrite``, ``--resume``). What is checked only by
doing it (the weights loading, a server answering) is checked by the trainer's set-up, which logs
its failure to the run's ``train.log``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from swerepair.trainers.config import ConfigError, TrainConfig

__all__ = ["RUN_FILES", "bind_episode_reward", "check_model", "check_output_dir", "episode_reward_name", "preflight"]

log = logging.getLogger(__name__)

#: What a run writes into its directory.
RUN_FILES = (
    "checkpoints",
    "metrics.jsonl",
    "tensorboard",
    "episodes",
    "learning_curve.png",
    "summary.json",
    "train.log",
    "config.yaml",
)


def check_model(name: str) -> None:
    """Raise `ConfigError` unless `name` is a built-in model, a local directory, or a model in the
    local Hugging Face cache (nothing is downloaded, ever)."""
    from swerepair.agents.inference.models import BUILTIN_MODELS

    if name in BUILTIN_MODELS:
        return
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(f"model: {name} is a directory without a config.json (not a saved model)")
        return
    if name.count("/") == 1 and not name.startswith((".", "/", "~")) and _in_hub_cache(name):
        return
    raise ConfigError(
        f"model: unknown model {name!r}: not a built-in ({', '.join(BUILTIN_MODELS)}), a local model directory, "
        "or a model in the local Hugging Face cache (nothing is downloaded)"
    )


def _in_hub_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - installed with transformers
        return False
    try:
        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # a malformed id
        return False
    return isinstance(found, str)


def episode_reward_name(fn: Any) -> str:
    """How a run's config records a Python episode reward: a name `swerepair.core.load_plugin`
    loads back, so that the config file and ``--resume`` carry it (an entry point's name of the
    group ``swerepair.episode_rewards``, or ``module:qualname`` of a function defined at module
    level in an importable module other than a script's ``__main__``); else ``module.qualname``
    (of the class for a callable object, of the function for a ``functools.partial``), which
    names it but cannot load it: such a run must be given the function again."""
    from swerepair.core import plugin_name

    name = plugin_name(fn, "swerepair.episode_rewards")
    if name is not None and not name.startswith("__main__:"):
        return name
    target = getattr(fn, "func", fn)
    if not hasattr(target, "__qualname__"):
        target = type(target)
    return f"{getattr(target, '__module__', '?')}.{target.__qualname__}"


def bind_episode_reward(config: TrainConfig, episode_reward: Any) -> TrainConfig:
    """`config` with the Python `episode_reward` recorded in its ``episode_reward`` setting (so the
    run's config.yaml says what the run was trained with). A config that names an episode reward
    while none is given is a `ConfigError` that names it: a resumed run never silently trains on
    another reward than it started with."""
    from swerepair.trainers.episodes import resolve_episode_reward

    named_config, _, named = resolve_episode_reward(config, episode_reward)
    if named:  # registered (entry point or module:function): the config carries it by name
        return named_config
    if episode_reward is None:
        if config.episode_reward:
            raise ConfigError(
                f"episode_reward: the run is trained with the Python episode reward {config.episode_reward}, which "
                "a config file cannot carry; register it (entry point group swerepair.episode_rewards) or name it "
                "module:function in the config, or start or resume it from Python with that function "
                "(GRPOTrainer.from_run_dir(DIR, episode_reward=fn)), or set episode_reward none to train on the "
                "env's reward"
            )
        return config
    name = episode_reward_name(episode_reward)
    if config.episode_reward and config.episode_reward != name:
        log.warning("episode_reward: the run was trained with %s and goes on with %s", config.episode_reward, name)
    return config.replace(episode_reward=name)


def _run_files(run_dir: Path) -> list[Path]:
    """The run files in `run_dir`; a lone ``train.log`` (what a failed start leaves) is not a run."""
    found = [run_dir / name for name in RUN_FILES if (run_dir / name).exists()]
    return [] if [p.name for p in found] == ["train.log"] else found


def check_output_dir(config: TrainConfig, *, resume: bool = False) -> list[Path]:
    """Raise `ConfigError` if ``output_dir`` cannot hold this run: it is a file, it cannot be
    created, or it holds another run (without ``overwrite`` or a resume). Returns the run files
    an ``overwrite`` start removes."""
    run_dir = Path(config.output_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"output_dir: {run_dir} is a file, not a directory")
    existing = run_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"output_dir: {run_dir} cannot be created ({existing} is not a writable directory)")
    leftovers = _run_files(run_dir) if run_dir.is_dir() else []
    if leftovers and not resume and not config.overwrite:
        raise ConfigError(
            f"{run_dir} already holds a run; resume it (--resume {run_dir}), pick another "
            "--output-dir, or pass --overwrite to start over there"
        )
    return [] if resume else leftovers


def preflight(config: TrainConfig, *, resume: bool = False, episode_reward: Any = None) -> Sequence[Any]:
    """Check that a run of `config` can start (see the module docstring) without writing anything;
    return its tasks. Raises `ConfigError` (or the task loader's `TaskFormatError` /
    `TaskRepositoryError`, which name the file and line or the repository directory)."""
    from swerepair.core import PluginError, load_plugin
    from swerepair.envs.sandbox import bwrap_available, resolve_kind
    from swerepair.rewards import REWARDS, SANDBOX_REWARDS
    from swerepair.trainers.episodes import select_tasks

    bind_episode_reward(config, episode_reward)
    check_model(config.model)
    if config.init_adapter:
        from swerepair.agents.inference.models import adapter_dir

        try:
            adapter_dir(config.init_adapter)
        except FileNotFoundError as exc:
            raise ConfigError(f"init_adapter: {exc}") from None
    if config.deepspeed_config and not Path(config.deepspeed_config).is_file():
        raise ConfigError(f"deepspeed_config: {config.deepspeed_config} does not exist")
    if config.reward not in REWARDS and config.reward not in SANDBOX_REWARDS:
        try:  # another package's reward (entry point) or module:function
            load_plugin("swerepair.rewards", config.reward)
        except PluginError:
            known = ", ".join(sorted([*REWARDS, *SANDBOX_REWARDS]))
            raise ConfigError(
                f"reward: unknown reward {config.reward!r}; choose one of {known}, an entry point of the group "
                "swerepair.rewards, or module:function"
            ) from None
    try:
        tasks = select_tasks(config)
    except FileNotFoundError as exc:
        raise ConfigError(f"tasks: {exc}") from None
    if not tasks:
        raise ConfigError(f"tasks: {config.tasks} holds no task")
    try:
        kind = resolve_kind(config.sandbox)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"sandbox: {exc}") from None
    if kind == "bubblewrap" and not bwrap_available():
        raise ConfigError("sandbox: bubblewrap cannot run here (apt-get install bubblewrap, or sandbox docker)")
    check_output_dir(config, resume=resume)
    return tasks
