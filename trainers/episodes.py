"""What both trainers (`GRPOTrainer` and the TRL backend) share about playing episodes: the task
set a config selects, the env factory it configures, the seeds of a step's random draws
(`step_seed`), and the reward a trainer assigns to a finished episode (the env's, replaced by an
``episode_reward`` and/or plus a shaping term)."""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable, Sequence
from typing import Any

from swerepair.core import Episode
from swerepair.trainers.config import ConfigError, TrainConfig

__all__ = [
    "SEED_STREAMS",
    "EpisodeReward",
    "docker_sandbox_config",
    "env_factory",
    "expect_docker_resets",
    "resolve_episode_reward",
    "select_tasks",
    "shaped_reward",
    "step_seed",
]

#: A reward computed from the whole episode (its messages, tool statistics, patch) and its task,
#: replacing the env's patch reward: ``(episode, task) -> float``.
EpisodeReward = Callable[[Episode, Any], float]

#: The random draws of a training step that are seeded per step (see `step_seed`).
SEED_STREAMS = ("tasks", "sampling", "env")


#: The entry-point group of episode rewards that a config can name.
EPISODE_REWARD_GROUP = "swerepair.episode_rewards"


def _is_registry_name(name: str) -> bool:
    """An import path ``module:attr`` or an installed entry point's name (not the ``module.name``
    a run records for an unregistered function, which it cannot load back)."""
    from importlib.metadata import entry_points

    return ":" in name or any(e.name == name for e in entry_points(group=EPISODE_REWARD_GROUP))


def resolve_episode_reward(
    config: TrainConfig, episode_reward: EpisodeReward | None
) -> tuple[TrainConfig, EpisodeReward | None, bool]:
    """``(config, episode_reward, named)``: the episode reward a trainer uses, from code or by name.

    - Given none, and `config` names one by entry point (group ``swerepair.episode_rewards``) or
      import path (``module:function``): that function is loaded, so that a config file and
      ``--resume`` carry it.
    - Given a function registered as an entry point: `config` records the entry point's name.
    - Otherwise (`named` False) the trainer records it as before (`bind_episode_reward`), and a
      run that names an unregistered function without it is refused.
    """
    from swerepair.core import PluginError, load_plugin, plugin_name

    name = config.episode_reward
    if episode_reward is None:
        if name and _is_registry_name(name):
            try:
                return config, load_plugin(EPISODE_REWARD_GROUP, name), True
            except PluginError as exc:
                raise ConfigError(f"episode_reward: {exc}") from None
        return config, None, False
    if name and _is_registry_name(name):
        try:
            if load_plugin(EPISODE_REWARD_GROUP, name) is episode_reward:
                return config, episode_reward, True
        except PluginError:
            pass
    registered = plugin_name(episode_reward, EPISODE_REWARD_GROUP)
    if registered is not None and ":" not in registered:  # an entry point's name
        return config.replace(episode_reward=registered), episode_reward, True
    return config, episode_reward, False


def step_seed(seed: int, step: int, stream: str) -> int:
    """The seed of `stream`'s draws in step `step` of a run seeded `seed`.

    A function of the run's seed and the step only, so that a resumed run (or one trained in
    pieces) draws in each step exactly what the uninterrupted run draws. `step` counts from 1:
    the trainer's step (`GRPOTrainer`), or the rollout call (`SweRepairRollout`, one per
    generation batch of TRL).

    - ``"tasks"``: the ``random.Random`` that picks the step's tasks
      (`GRPOTrainer.tasks_for_step`): ``seed * 1_000_003 + step``.
    - ``"sampling"``: the in-process backend's sampling generator, seeded before the step's
      rollouts: ``seed * 1_000_003 + step`` (the same number as ``"tasks"``; it seeds another
      generator).
    - ``"env"``: the envs' resets: `run_episodes` resets the step's i-th episode with this seed
      plus i: ``seed * 1_000_003 + step * 1000``.

    These are the values every run so far was trained with: changing one changes what a resumed
    run replays. Raises ValueError for another `stream`.

    >>> step_seed(7, 3, "tasks"), step_seed(7, 3, "sampling"), step_seed(7, 3, "env")
    (7000024, 7000024, 7003021)
    """
    base = seed * 1_000_003
    if stream in ("tasks", "sampling"):
        return base + step
    if stream == "env":
        return base + step * 1000
    raise ValueError(f"unknown seed stream {stream!r} (one of {', '.join(SEED_STREAMS)})")


def select_tasks(config: TrainConfig) -> list[Any]:
    """The tasks of ``config.tasks``, narrowed to ``config.task_ids`` (in that order) when given.

    Raises `ConfigError` when a selected task's repository source does not exist: a task set
    that points nowhere is refused before training starts. (A repository that disappears later
    fails only the episodes of its task, ``exit_reason="repository_error"``; see
    `swerepair.envs.rollout`.)"""
    from pathlib import Path

    from swerepair.envs.tasks import load_tasks

    tasks = load_tasks(config.tasks, repos=config.repos)
    if config.task_ids:
        by_id = {t.instance_id: t for t in tasks}
        missing = [t for t in config.task_ids if t not in by_id]
        if missing:
            raise ConfigError(f"task_ids: unknown task(s) {', '.join(missing)} in {config.tasks}")
        tasks = [by_id[t] for t in config.task_ids]
    nowhere = [t for t in tasks if t.repo_source is not None and not Path(t.repo_source).exists()]
    if nowhere:
        first = nowhere[0]
        raise ConfigError(
            f"{len(nowhere)} task(s) of {config.tasks} have a repository source that does not exist "
            f"(first: {first.instance_id}: {first.repo_source}); fix repos / repo_source, or leave them out "
            "with task_ids"
        )
    return tasks


def env_factory(config: TrainConfig, tasks: Sequence[Any], renderer: Any, scaffold: Any) -> functools.partial[Any]:
    """A zero-argument factory of SweRepair-v0 envs over `tasks` with `config`'s budgets, sandbox
    and reward (a name the env resolves: `swerepair.rewards.resolve_reward`); the context budget
    is counted with `renderer` (the policy's tokenizer), one call at
    a time, as env steps run on threads."""
    from swerepair.envs.env import SweRepairEnv

    lock = threading.Lock()

    def count_tokens(messages: Sequence[dict[str, Any]]) -> int:
        with lock:
            return len(renderer.encode(renderer.render(messages, add_generation_prompt=False)))

    return functools.partial(
        SweRepairEnv,
        tasks=list(tasks),
        sandbox=config.sandbox,
        scaffold=scaffold,
        reward=config.reward,
        tool_timeout_s=config.tool_timeout_s,
        verifier_timeout_s=config.verifier_timeout_s,
        token_counter=count_tokens,
        max_tool_calls=config.max_tool_calls,
        max_context_tokens=config.max_context_tokens,
        **({"sandbox_config": docker_sandbox_config(config)} if config.sandbox == "docker" else {}),
    )


def docker_sandbox_config(config: TrainConfig) -> Any:
    """The `SandboxConfig` of the Docker sandbox with `config`'s warm pool and image budget."""
    from swerepair.envs.sandbox import SandboxConfig
    from swerepair.envs.sandbox.docker.pool import PoolConfig

    budget = config.docker_image_budget_gb
    pool = PoolConfig(
        pool_size=config.docker_pool_size,
        per_host_limit=config.docker_per_host_limit,
        hosts=tuple(config.docker_hosts),
        image_budget_bytes=None if budget is None else int(budget * 1e9),
    )
    return SandboxConfig(docker_pool=pool)


def expect_docker_resets(config: TrainConfig, tasks: Sequence[Any], task_ids: Sequence[str]) -> None:
    """Tell the Docker sandbox's warm pool and image cache the resets that come next (`task_ids`,
    one per episode, in order), so that containers are started and images pulled ahead; nothing
    for another sandbox."""
    if config.sandbox != "docker":
        return
    from swerepair.envs.sandbox.docker.pool import shared_expect

    by_id = {t.instance_id: t for t in tasks}
    shared_expect(by_id[i] for i in task_ids if i in by_id)


def shaped_reward(
    episode: Episode, task: Any, config: TrainConfig, episode_reward: EpisodeReward | None
) -> tuple[float, dict[str, float]]:
    """The reward a trainer uses for `episode` and the components it adds: `episode_reward`'s
    value (``episode_reward``) replacing the env's reward, plus ``shaping_weight`` times the
    configured shaping reward (``shaping/<name>``). Raises ValueError on a non-finite result."""
    from swerepair.trainers.shaping import SHAPING

    value, components = episode.reward, {}
    if episode_reward is not None:
        value = float(episode_reward(episode, task))
        components["episode_reward"] = value
    if config.shaping != "none":
        shaped = float(SHAPING[config.shaping](episode, task))
        components[f"shaping/{config.shaping}"] = shaped
        value += config.shaping_weight * shaped
    if not math.isfinite(value):
        raise ValueError(f"the episode reward of {episode.instance_id} is {value!r}")
    return value, components
