"""Rollouts: drive several SweRepair-v0 episodes with one policy, batching its turns.

Every step, the turns of all still-running episodes are generated in one batch (one
``backend.generate`` call for a `ModelPolicy`), then the envs step: concurrently, on up to
`workers` threads, as a step is mostly waiting on sandboxed subprocesses (tool calls, and on an
episode's last step the reward, which may run a test suite). Token bookkeeping stays on the
calling thread. With a `ModelPolicy`
the episodes are token-exact (`swerepair.agents.policies.episode`); with any other `Policy`
(scripted, a hosted API) they hold the messages only and ``info["token_exact"]`` is False.

Faults end episodes, not the rollout: every episode asked for comes back, failed ones with
``info["failed"] = True`` (trainers drop them) and their reason in ``info["exit_reason"]``:

- ``sandbox_error`` / ``reward_error``: failed by the env (see `swerepair.envs.env`);
- ``policy_error``: the policy raised `GenerationError` (its inference server refused or dropped
  the request: stopped, restarted, crashed) for the episode's next turn: the episode is ended
  with `SweRepairEnv.abort`; episodes whose turn did come back go on;
- ``repository_error``: `reset` raised `TaskRepositoryError` (the task's repository or commit is
  missing, e.g. deleted since the run started): the episode never started (no messages, no
  tokens).

Any other exception (a bug) still propagates.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from swerepair.agents.inference.backend import GenerationError
from swerepair.agents.policies.base import Policy
from swerepair.agents.policies.episode import EpisodeBuilder
from swerepair.core import Episode
from swerepair.envs.env import SweRepairEnv
from swerepair.envs.sandbox import TaskRepositoryError

__all__ = ["run_episodes"]

log = logging.getLogger(__name__)


def run_episodes(
    make_env: Callable[[], SweRepairEnv],
    policy: Policy,
    task_ids: Sequence[str],
    *,
    seed: int | None = None,
    on_step: Callable[[int, int], None] | None = None,
    workers: int = 1,
) -> list[Episode]:
    """Run one episode per entry of `task_ids` (repeat an id for a group) concurrently.

    `make_env` builds one env per episode; `on_step(running, finished)` is called after every
    batched step (for progress bars); `workers` threads step the envs (and reset them).
    Returns the episodes in the order of `task_ids`.
    """
    if workers < 1:
        raise ValueError("workers must be at least 1")
    envs = [make_env() for _ in task_ids]
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="swerepair-env") if workers > 1 else None

    def parallel(fn: Callable[..., Any], *iterables: Sequence[Any]) -> list[Any]:
        return list(pool.map(fn, *iterables)) if pool is not None else list(map(fn, *iterables))

    # token-exact policies (ModelPolicy, ExpertPolicy) grow each episode's sequence themselves
    exact = callable(getattr(policy, "start", None)) and callable(getattr(policy, "act_on", None))
    obs: list[list[dict[str, Any]]] = []
    builders: list[EpisodeBuilder | None] = []
    results: list[Episode | None] = [None] * len(task_ids)
    started = time.monotonic()

    def reset(i: int, env: SweRepairEnv, task_id: str) -> Any:
        try:
            return env.reset(seed=None if seed is None else seed + i, options={"task_id": task_id})
        except TaskRepositoryError as exc:
            return exc

    try:
        active = []
        for i, outcome in enumerate(parallel(reset, range(len(envs)), envs, task_ids)):
            if isinstance(outcome, TaskRepositoryError):
                log.error("%s: the episode fails", outcome)
                results[i] = _never_started(task_ids[i], outcome, exact)
                obs.append([])
                builders.append(None)
                continue
            o, _ = outcome
            obs.append(o)
            builders.append(policy.start(o) if exact else None)  # type: ignore[attr-defined]
            active.append(i)
        while active:
            # token-exact policies generate from each episode's own sequence
            batch = [builders[i] for i in active] if exact else [obs[i] for i in active]
            try:
                generated = policy.act_on(batch) if exact else policy.act(batch)  # type: ignore[attr-defined, arg-type]
            except GenerationError as exc:  # per episode where the policy says which turns were lost
                partial = exc.results is not None and len(exc.results) == len(active)
                generated = list(exc.results) if partial else [exc] * len(active)  # type: ignore[arg-type]
            lost = [(i, g) for i, g in zip(active, generated, strict=True) if isinstance(g, BaseException)]
            for i, error in lost:  # the policy could not answer: the episode fails, the others go on
                o, reward, _, _, info = envs[i].abort(f"policy: {type(error).__name__}: {error}")
                results[i] = _finish(builders[i], o, float(reward), info, task_ids[i], exact)
            if lost:
                kept = [(i, g) for i, g in zip(active, generated, strict=True) if not isinstance(g, BaseException)]
                active, turns = [i for i, _ in kept], [g for _, g in kept]
            else:
                turns = generated
            for i, turn in zip(active, turns, strict=True):
                builder = builders[i]
                if builder is not None:
                    builder.add_turn(turn, turn.action if isinstance(turn.action, str) else "")
            steps = parallel(lambda i, turn: envs[i].step(turn.action), active, turns)
            still = []
            for i, (o, reward, terminated, truncated, info) in zip(active, steps, strict=True):
                builder = builders[i]
                before = len(obs[i])
                obs[i] = o
                if terminated or truncated:
                    results[i] = _finish(builder, o, float(reward), info, task_ids[i], exact)
                    continue
                if builder is not None:
                    builder.add_observation(o[before + 1 :])  # the env's answer after the turn
                still.append(i)
            active = still
            if on_step is not None:
                on_step(len(active), len(task_ids) - len(active))
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
        for env in envs:
            env.close()
    log.info("%d episodes in %.1fs", len(task_ids), time.monotonic() - started)
    return [r for r in results if r is not None]


def _never_started(task_id: str, error: BaseException, exact: bool) -> Episode:
    """A failed episode for a task whose env could not even reset (its repository is missing)."""
    info = {
        "task_id": task_id,
        "patch": "",
        "reward_components": {},
        "exit_reason": "repository_error",
        "failed": True,
        "failure": f"repository: {error}",
        "token_exact": exact,
    }
    return Episode(task_id, [], [], [], [], 0.0, info)


def _finish(
    builder: EpisodeBuilder | None,
    messages: list[dict[str, Any]],
    reward: float,
    info: dict[str, Any],
    task_id: str,
    exact: bool,
) -> Episode:
    info = dict(info)
    info["token_exact"] = exact
    if builder is not None:
        return builder.finish(messages, reward, info, task_id)
    return Episode(task_id, [dict(m) for m in messages], [], [], [], reward, info)
