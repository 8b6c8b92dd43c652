"""`GRPOTrainer`: collect groups of episodes with the current policy, score them, update.

One step:

1. **Rollouts.** ``tasks_per_step`` tasks are drawn (a fixed function of the seed and the step);
   each is played ``group_size`` times, all episodes concurrently (`swerepair.envs.rollout`):
   the policy's turns in one generation batch, the envs' tool calls and rewards on
   ``env_workers`` threads. Generation uses the model being trained, in place: after an update
   the next step samples from the new weights (the policy version advances; there is nothing to
   push in-process).
2. **Advantages.** Episodes that failed for infrastructure reasons (a crashed sandbox, a broken
   verifier, a turn lost with its inference server, a missing repository: see
   `swerepair.envs.rollout`) are dropped from their group and counted (``episodes/dropped``, and
   per reason ``episodes/failed/<exit_reason>``), never scored 0. Each remaining group gets
   ``grpo``, ``dr_grpo`` or ``rloo`` advantages; groups whose rewards are all equal carry no
   signal, are counted, and (``drop_zero_variance``) are left out of the update.
3. **Update.** For ``ppo_epochs`` passes: micro-batches of episodes, fused masked log-probs,
   `grpo_loss` against the sampling logprobs (the reference policy's, adapter disabled, when
   ``beta > 0``), gradients accumulated so that the step's loss is the loss of the whole batch;
   then clipping, AdamW and the schedule.
4. **Records.** One JSONL line of metrics (and TensorBoard scalars), the step's episodes,
   checkpoints every ``save_every`` steps and at the end, a learning curve PNG at the end.

With ``servers`` (one or several), rollouts go to the least-loaded live server (see
`swerepair.agents.inference.server_backend`); a server that stops answering is removed from
dispatch at once and the episodes whose turns it lost fail (``policy_error``). A push after a
server was removed, or a push that fails, is followed by a new weight-sync group of the servers
that still answer ``/health`` and a full push (``servers/reconnects`` counts them,
``servers/live`` counts the servers left); only when none answers does the trainer wait for
them to come back (up to the pusher's timeout), after which generation resumes with the
trainer's weights. If none comes back, or the push fails again, the error stops training.
Under a launcher with several ranks every rank dispatches its own episodes' turns over all the
servers, rank 0 alone pushes (one group for all servers), and the other ranks wait for its push
before their next rollouts (`swerepair.trainers.distributed`).

``--resume`` restores weights, optimizer, schedule, RNG states and the step counter from the
newest complete checkpoint; since the tasks and the sampling seed of a step depend only on the
seed and the step number (`step_seed`), a resumed run continues exactly as the uninterrupted run
would.

A trainer changes nothing process-wide that outlives its work. Its run's ``train.log`` is attached
to the ``swerepair`` logger only while it sets itself up and while `GRPOTrainer.train` runs (opened
again, appending, by each call); its random generators' states (python's, numpy's, torch's:
`RNGStates`) are in the global generators only then, and saved with each checkpoint; the metrics
file and the prefetch thread are opened by `train` and closed when it returns or raises. What
outlives a `train` call is the connection to the servers (the weight-sync group, joined at
set-up): `GRPOTrainer.close` (or ``with GRPOTrainer(...) as trainer:``) leaves it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from swerepair.agents.inference.http import wait_healthy
from swerepair.core import Episode
from swerepair.trainers.advantages import group_advantages
from swerepair.trainers.batch import MicroBatch, micro_batches
from swerepair.trainers.config import ConfigError, TrainConfig, load_config
from swerepair.trainers.distributed import (
    Ranks,
    check_resume_ranks,
    dummy_micro_batch,
    init_from_launcher,
    launched_rank,
    launched_world_size,
    rank_seed,
    shard_task_ids,
)
from swerepair.trainers.episodes import (
    EpisodeReward,
    env_factory,
    expect_docker_resets,
    resolve_episode_reward,
    shaped_reward,
    step_seed,
)
from swerepair.trainers.loss import LossConfig, grpo_loss, masked_token_logprobs
from swerepair.trainers.metrics import (
    MetricsLogger,
    docker_metrics,
    episode_metrics,
    failure_metrics,
    plot_learning_curve,
)
from swerepair.trainers.model import PolicyModel, RNGStates, build_policy_model, resolve_device
from swerepair.trainers.startup import RUN_FILES, bind_episode_reward, check_output_dir, preflight

__all__ = ["EpisodeReward", "GRPOTrainer", "latest_checkpoint"]

log = logging.getLogger(__name__)


CHECKPOINT_DONE = "complete.json"


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run directory, or None."""
    root = Path(run_dir) / "checkpoints"
    done = sorted(p.parent for p in root.glob(f"step-*/{CHECKPOINT_DONE}")) if root.is_dir() else []
    return done[-1] if done else None


class GRPOTrainer:
    """GRPO on SweRepair-v0 (see the module docstring).

    Args:
        config: the run's settings.
        episode_reward: replaces the env's reward with a function of the whole episode (for
            rewards on behaviour rather than on the patch); the env's reward stays among the
            logged components.
        resume: a run directory to continue from its newest checkpoint (its settings are taken
            from `config`, which `from_run_dir` reads from the run directory).
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        episode_reward: EpisodeReward | None = None,
        resume: str | Path | None = None,
    ) -> None:
        # a registered episode reward is loaded from its name (config files and --resume carry it)
        config, episode_reward, _ = resolve_episode_reward(config, episode_reward)
        self.config = config = bind_episode_reward(config, episode_reward)  # recorded in config.yaml
        self.episode_reward = episode_reward
        self.run_dir = Path(config.output_dir)
        self.step = 0
        self.history: list[dict[str, Any]] = []
        self._resume_from = latest_checkpoint(resume) if resume is not None else None
        if resume is not None and self._resume_from is None:
            raise FileNotFoundError(f"{resume} has no complete checkpoint to resume from")
        self._log_handler: logging.Handler | None = None  # attached while the trainer works
        self._pending: dict[int, Future[Any]] = {}  # asynchronous mode: step -> its rollouts in flight
        self._prefetcher: ThreadPoolExecutor | None = None
        self._stop = config.max_steps
        self.metrics: MetricsLogger | None = None  # open while train() runs
        self.pusher: Any = None  # rank 0's connection to the servers' weight-sync group
        self._server_versions: dict[str, int] = {}  # ranks > 0: the versions rank 0 pushed, by server
        self._closed = False
        #: the trainer's own states of the global random generators (in them only while it works)
        self.rng = RNGStates(config.seed, cuda=resolve_device(config).type == "cuda")
        #: the data-parallel ranks (`swerepair.trainers.distributed`); rank 0 alone writes the run
        self.ranks = Ranks(launched_rank(), launched_world_size())
        if self.ranks.distributed and config.servers and config.async_rollouts:
            raise ConfigError(
                "async_rollouts with servers on more than one training rank is not supported: the ranks "
                "wait for rank 0's weight push before their next rollouts; turn async_rollouts off or launch one rank"
            )
        if self._resume_from is not None:
            check_resume_ranks(self._resume_from, config, self.ranks.world_size)
        # Everything that can be checked without writing is checked first: a start that fails here
        # leaves nothing behind. (Ranks but 0 write nothing: they do not check the output directory.)
        self._preflight_tasks = preflight(
            config, resume=self._resume_from is not None or not self.ranks.is_main, episode_reward=episode_reward
        )
        if self.ranks.is_main:
            self._prepare_run_dir()
        try:
            with self._working():
                try:
                    self._setup()
                except BaseException as exc:
                    self._log_failed_start(exc)
                    raise
        except BaseException:
            self.close()
            if self._resume_from is None and self.ranks.is_main:
                self._remove_failed_start()
            raise

    @classmethod
    def from_run_dir(cls, run_dir: str | Path, overrides: Any = None, **kwargs: Any) -> GRPOTrainer:
        """Resume the run in `run_dir` with its saved settings (plus `overrides`, e.g. a larger
        ``max_steps``)."""
        run_dir = Path(run_dir)
        path = run_dir / "config.yaml"
        if not path.exists():
            raise FileNotFoundError(f"{run_dir} is not a run directory (no config.yaml)")
        config = load_config(config=path, overrides=overrides, saved_run=True)
        config = config.replace(output_dir=str(run_dir))
        return cls(config, resume=run_dir, **kwargs)

    # -- set-up ------------------------------------------------------------------------------------
    def _prepare_run_dir(self) -> None:
        """Refuse to mix two runs in one directory (or clear it, with ``overwrite``); create it.
        A directory holding only a failed start's ``train.log`` holds no run: the new start
        appends to that log."""
        for path in check_output_dir(self.config, resume=self._resume_from is not None):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        self.run_dir.mkdir(parents=True, exist_ok=True)

    def _log_failed_start(self, exc: BaseException) -> None:
        """Write why the set-up failed, with its traceback, to the run's train.log only (the
        console gets the one-line error from whoever called)."""
        if self._log_handler is None:
            return
        info = (type(exc), exc, exc.__traceback__)
        record = log.makeRecord(log.name, logging.ERROR, __file__, 0, "the run could not start: %s", (exc,), info)
        self._log_handler.handle(record)

    def _remove_failed_start(self) -> None:
        """After a failed fresh start: remove what it wrote (config.yaml, ...) but its train.log,
        which says why; a rerun in the same directory is then accepted."""
        for name in RUN_FILES:
            path = self.run_dir / name
            if name != "train.log" and path.exists():
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)

    @contextlib.contextmanager
    def _working(self) -> Iterator[None]:
        """A context in which the trainer works (its set-up, `train`, a checkpoint): the run's
        train.log attached to the package's logger (appending), the trainer's random states in the
        global generators, the environment DeepSpeed reads. All undone on exit; re-entrant."""
        if self._log_handler is not None:  # already working
            yield
            return
        main = self.ranks.is_main
        self._log_handler = _attach_log_file(self.run_dir / "train.log") if main else logging.NullHandler()
        try:
            with contextlib.ExitStack() as stack:
                stack.enter_context(self.rng.active())
                model = getattr(self, "policy_model", None)  # not yet built during the set-up
                if model is not None:
                    stack.enter_context(model.launcher_env())
                yield
        finally:
            handler, self._log_handler = self._log_handler, None
            if handler is not None:
                _detach_log_file(handler)

    def _setup(self) -> None:
        from swerepair.agents.inference.chat import ChatRenderer
        from swerepair.agents.inference.hf_backend import HFBackend
        from swerepair.agents.policies.model import ModelPolicy
        from swerepair.agents.scaffold import resolve_scaffold

        cfg = self.config
        if self.ranks.is_main:
            cfg.to_yaml(self.run_dir / "config.yaml")

        self.tasks = tasks = list(self._preflight_tasks)
        self._tasks_by_id = {t.instance_id: t for t in tasks}

        # N ranks under a launcher: their process group (left again by `close`)
        self._own_group = init_from_launcher(resolve_device(cfg).type)
        self.policy_model: PolicyModel = build_policy_model(cfg)
        self.ranks = Ranks.current(deepspeed=self.policy_model.engine is not None)
        tokenizer = self.policy_model.tokenizer
        scaffold = resolve_scaffold(cfg.scaffold)
        self.renderer = ChatRenderer(tokenizer, scaffold.tool_schemas())
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.pad_id = int(pad)  # any id works: padded positions are outside the attention and loss masks
        self._base_pushed = False  # adapter pushes: whether this connection has the base weights
        if cfg.servers:  # rollouts on the servers; weights pushed to them after each update
            from swerepair.agents.inference.server_backend import ServerBackend

            self.backend: Any = ServerBackend(
                cfg.servers,
                temperature=cfg.temperature,
                top_p=cfg.top_p,
                max_new_tokens=cfg.max_new_tokens,
                api="completions" if cfg.server_engine == "vllm" else "chat",
                version_source=self._server_version,
            )
        else:
            self.backend = HFBackend(
                self.policy_model.causal_lm,
                tokenizer,
                temperature=cfg.temperature,
                top_p=cfg.top_p,
                max_new_tokens=cfg.max_new_tokens,
                seed=cfg.seed,
                cache_bytes=int(cfg.kv_cache_gib * (1 << 30)),
            )
        self.policy = ModelPolicy(self.backend, self.renderer)
        self.make_env = env_factory(cfg, tasks, self.renderer, scaffold)
        self.make_env().close()  # fail now on a bad sandbox or reward, not in the first step
        self.loss_config = LossConfig(
            eps_low=cfg.eps_low,
            eps_high=cfg.eps_high,
            beta=cfg.beta,
            entropy_coef=cfg.entropy_coef,
            aggregation=cfg.aggregation,
            importance=cfg.importance,
            token_sum_norm=cfg.token_sum_norm,
        )
        if self._resume_from is not None:
            self._load_checkpoint(self._resume_from)
        if cfg.servers:
            self._connect_servers()

    def _connect_servers(self) -> None:
        """Join the servers' weight-sync group and push the current weights (version = step);
        with several ranks rank 0 alone does, and the others wait for it (`_share_servers`)."""
        cfg = self.config
        if cfg.zero_stage == 3:
            raise ConfigError("servers with zero_stage 3: pushing sharded weights is not supported; use zero_stage 2")
        if not self.ranks.is_main:  # rank 0 alone pushes: wait for its first push
            self._share_servers()
            return
        try:
            self._connect_pusher()
        except Exception as exc:
            self._share_servers(error=f"{type(exc).__name__}: {exc}")
            raise
        self._share_servers()

    def _connect_pusher(self) -> None:
        from swerepair.trainers.weight_sync import make_pusher

        cfg, pm = self.config, self.policy_model
        backend = cfg.weight_sync_backend
        if backend == "auto":
            backend = "nccl" if pm.device.type == "cuda" else "gloo"
        self.pusher = make_pusher(
            cfg.server_engine,
            cfg.servers,
            backend=backend,
            device=str(pm.device),
            bucket_bytes=cfg.weight_bucket_mb * 2**20,
        )
        self.pusher.connect()
        self._base_pushed = False
        self._push_weights()

    def _server_version(self, url: str) -> int:
        """The version the server at `url` serves now: rank 0's pusher knows; the other ranks
        have what rank 0 shared after its last push."""
        if self.pusher is not None:
            return int(self.pusher.version_of(url))
        return self._server_versions.get(url, 0)

    def _share_servers(self, reconnects: int = 0, error: str | None = None) -> int:
        """With several ranks: rank 0's servers after its push (those left in the group, the
        version each serves, `reconnects`) on every rank, which dispatches to those alone; the
        other ranks wait here until rank 0 has pushed. Rank 0's `error` is raised on all."""
        if not self.ranks.distributed:
            return reconnects
        state = None
        if self.ranks.is_main:
            urls = list(self.pusher.urls) if self.pusher is not None else []
            state = {
                "error": error,
                "reconnects": reconnects,
                "live": urls,
                "versions": {u: int(self.pusher.version_of(u)) for u in urls},
            }
        state = self.ranks.from_main(state)
        if state["error"] is not None:
            raise RuntimeError(f"rank 0 could not push the weights to the servers: {state['error']}")
        if not self.ranks.is_main:
            for url in self.backend.urls:
                if url not in state["live"]:
                    self.backend.mark_dead(url, "rank 0 removed it from the weight-sync group")
            self.backend.revive(state["live"])
            self._server_versions = dict(state["versions"])
        return int(state["reconnects"])

    def _servers_after_update(self) -> int:
        """Every rank: the servers any rank lost are out on all; rank 0 pushes the weights (and
        re-forms the group if needed) while the others wait; reconnections (0 or 1)."""
        if self.ranks.distributed:  # a server one rank lost is gone for every rank
            for (dead,) in self.ranks.gather([dict(self.backend.dead)]):
                for url, why in dead.items():
                    self.backend.mark_dead(url, why)
        if not self.ranks.is_main:
            return self._share_servers()
        try:
            reconnects = self._sync_weights()
        except Exception as exc:
            self._share_servers(error=f"{type(exc).__name__}: {exc}")
            raise
        return self._share_servers(reconnects)

    def _push_weights(self) -> float:
        """Push the policy's weights to the servers as version `step`; seconds taken."""
        from swerepair.trainers.weight_sync import adapter_weights, policy_weights

        started = time.monotonic()
        model = self.policy_model.model
        with torch.no_grad():
            if self.config.weight_push == "adapter":  # the factors; the base weights once per connection
                named = adapter_weights(model)
                if not self._base_pushed:
                    named = policy_weights(model, merge=False) + named
                    self._base_pushed = True
            else:
                named = policy_weights(model)
            stats = self.pusher.push(named, version=self.step)
        log.info(
            "pushed %d buckets, %.1f MB to %d server(s) in %.2fs",
            stats.buckets,
            stats.nbytes / 1e6,
            len(self.pusher.urls),
            stats.seconds,
        )
        return time.monotonic() - started

    def _sync_weights(self) -> int:
        """Push the weights to the servers; if a server was removed from dispatch during the step
        (the backend lost a request to it) or the push fails, form the group again without the
        servers that are gone and push everything (once). Returns the number of reconnections
        (0 or 1).

        A server that is gone stays out for the rest of the run while another one still serves:
        taking it back would mean forming the group again (a pause of every server, a full push)
        each time it returned, and a server that flaps would cost that every step. Only when no
        server is left does the trainer wait for them (up to the pusher's timeout) to answer
        ``/health`` again, and those then get the full weights and requests again."""
        dead = [u for u in self.pusher.urls if u in self.backend.dead]
        if not dead:
            try:
                self._push_weights()
                return 0
            except Exception as exc:
                log.error("step %d: pushing the weights failed (%s); reconnecting to the servers", self.step, exc)
        self.pusher.close()
        live = [u for u in self.pusher.urls if u not in self.backend.dead and _answers(u)]
        if live:
            for url in self.pusher.urls:
                if url not in live:
                    self.backend.mark_dead(url, "it did not answer /health when the weights were pushed")
            self.pusher.urls = live
        else:
            log.error("step %d: no server answers; waiting for %s", self.step, ", ".join(self.pusher.urls))
            _wait_for_servers(self.pusher.urls, self.pusher.timeout_s)
        self.pusher.connect()
        self._base_pushed = False
        self._push_weights()
        self.backend.revive(self.pusher.urls)  # every server of the group now holds the weights
        log.info("step %d: reconnected to %s and pushed version %d", self.step, ", ".join(self.pusher.urls), self.step)
        return 1

    # -- the loop ------------------------------------------------------------------------------------
    def train(self, steps: int | None = None) -> list[dict[str, Any]]:
        """Run steps until ``max_steps`` (or `steps` more, if fewer remain); return the metrics of
        the steps this call ran. A checkpoint is written where the call stops, so a run can be
        trained in pieces (or killed after a checkpoint) and resumed exactly: the schedule is that
        of ``max_steps`` throughout.

        While it runs, the run's train.log receives the package's logs and the trainer's random
        states are in the global generators; when it returns or raises, the log file is detached,
        the metrics files are closed and the prefetch thread is stopped (the next call opens them
        again and appends)."""
        if self._closed:
            raise RuntimeError("the trainer is closed")
        cfg = self.config
        ran: list[dict[str, Any]] = []
        stop = cfg.max_steps if steps is None else min(cfg.max_steps, self.step + steps)
        self._stop = stop
        with self._working():
            try:
                if self.ranks.is_main:
                    self._open_metrics()
                bar = _progress(cfg, initial=self.step) if self.ranks.is_main else None
                try:
                    while self.step < stop:
                        self.step += 1
                        record = self.train_step(bar)
                        ran.append(record)
                        if bar is not None:
                            bar.update(1)
                            bar.set_postfix(reward=f"{record.get('reward/mean', float('nan')):.3f}", refresh=False)
                        last = self.step == stop
                        if last or (cfg.save_every and self.step % cfg.save_every == 0):
                            self.save_checkpoint()
                finally:
                    if bar is not None:
                        bar.close()
                if self.ranks.is_main:
                    self._finish()
                self.ranks.barrier()  # the run directory is complete when any rank returns
            finally:
                self._release()
        return ran

    def _open_metrics(self) -> MetricsLogger:
        """The metrics logger, opened (appending) if it is not: records after the trainer's step
        (left by a run that stopped between a step and its checkpoint) are dropped first."""
        if self.metrics is None:
            continuing = self._resume_from is not None or self.step > 0
            self.metrics = MetricsLogger(
                self.run_dir, tensorboard=self.config.tensorboard, resume_step=self.step if continuing else None
            )
        return self.metrics

    def _release(self) -> None:
        """Release what `train` opened: the prefetch thread (a prefetch beyond the call's last step
        is cancelled, or waited for if it runs), the metrics files."""
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()
        if self._prefetcher is not None:
            self._prefetcher.shutdown(wait=True, cancel_futures=True)
            self._prefetcher = None
        if self.metrics is not None:
            self.metrics.close()
            self.metrics = None

    def close(self) -> None:
        """Release everything the trainer holds: the servers' weight-sync group, the Docker
        sandbox's warm containers, the process group it initialised under a launcher, and what
        `train` opened if a `train_step` called outside it left it open (the run's log file is
        attached only while the trainer works). Idempotent; a closed trainer does not train again."""
        self._closed = True
        self._release()
        if self.pusher is not None:
            pusher, self.pusher = self.pusher, None
            pusher.close()
        if self.config.sandbox == "docker":  # the warm containers started for steps never played
            from swerepair.envs.sandbox.docker.pool import close_shared_pools

            close_shared_pools()
        if getattr(self, "_own_group", False):  # the launcher's group this trainer initialised
            import torch.distributed as dist

            self._own_group = False
            dist.destroy_process_group()

    def __enter__(self) -> GRPOTrainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def tasks_for_step(self, step: int) -> list[str]:
        """The task ids of `step`: a function of the seed and the step only (exact resume)."""
        rng = random.Random(step_seed(self.config.seed, step, "tasks"))
        ids = [t.instance_id for t in self.tasks]
        k = self.config.tasks_per_step
        chosen: list[str] = []
        while len(chosen) < k:  # cycles through the set when asked for more tasks than it has
            chosen += rng.sample(ids, min(k - len(chosen), len(ids)))
        return chosen

    def _collect(self, step: int, bar: Any = None) -> tuple[list[Episode], float, float]:
        """Play `step`'s episodes; return them, generated tokens and generation seconds."""
        cfg, ranks = self.config, self.ranks
        everyone = [t for t in self.tasks_for_step(step) for _ in range(cfg.group_size)]
        # this rank's whole groups; each episode keeps the env seed it has in one process
        task_ids = shard_task_ids(everyone, ranks.rank, ranks.world_size)
        offset = everyone.index(task_ids[0]) if task_ids else 0
        if cfg.sandbox == "docker":  # the warm pool starts containers, and pulls images, ahead
            upcoming = [t for t in self.tasks_for_step(step + 1) for _ in range(cfg.group_size)]
            expect_docker_resets(cfg, self.tasks, task_ids + shard_task_ids(upcoming, ranks.rank, ranks.world_size))
        if hasattr(self.backend, "generator"):
            self.backend.generator.manual_seed(rank_seed(step_seed(cfg.seed, step, "sampling"), ranks.rank))

        def on_rollout(running: int, finished: int) -> None:
            if bar is not None:
                bar.set_description(f"step {step} rollouts {finished}/{len(task_ids)}")

        tokens_before, seconds_before = self.backend.stats["generated_tokens"], self.backend.stats["seconds"]
        episodes = _run(self.make_env, self.policy, task_ids, step, cfg, on_rollout, offset) if task_ids else []
        reset = getattr(self.backend, "reset_cache", None)
        if callable(reset):  # the update makes the stored KV states stale: free them for it
            reset()
        generated = self.backend.stats["generated_tokens"] - tokens_before
        return episodes, generated, self.backend.stats["seconds"] - seconds_before

    def train_step(self, bar: Any = None) -> dict[str, Any]:
        """One step: rollouts, advantages, update, metrics (see the module docstring).

        In asynchronous mode the step's episodes were (being) generated while the previous step
        trained; this step starts generating the next step's before it trains. (`train` calls it;
        called directly, it leaves the metrics file open until `train` or `close`.)"""
        with self._working():
            return self._train_step(bar)

    def _train_step(self, bar: Any) -> dict[str, Any]:
        cfg, step = self.config, self.step
        self.policy_model.train_mode(False)
        started = time.monotonic()
        pending = self._pending.pop(step, None)
        if pending is not None:
            episodes, generated, gen_s = pending.result()
        else:
            episodes, generated, gen_s = self._collect(step, bar)
        rollout_s = time.monotonic() - started  # in asynchronous mode: the wait for the prefetch
        if cfg.async_rollouts and step < self._stop:
            if self._prefetcher is None:
                self._prefetcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="swerepair-rollouts")
            self._pending[step + 1] = self._prefetcher.submit(self._collect, step + 1)
        stale = [ep for ep in episodes if _lag(ep, step) > cfg.max_staleness]
        if stale:  # too old to train on: dropped like failures, and counted
            episodes = [ep for ep in episodes if _lag(ep, step) <= cfg.max_staleness]
        if self.episode_reward is not None or cfg.shaping != "none":
            for ep in episodes:
                if not ep.failed:
                    self._apply_episode_reward(ep)
        # N ranks: every rank's episodes on every rank (advantages and metrics of the global batch)
        episodes, owned, stale_count = self._gather_episodes(episodes, len(stale))
        if self.ranks.distributed:  # the step waits for the slowest rank; tokens add up
            generated, gen_s, rollout_s = self.ranks.all_sum([generated])[:1] + self.ranks.all_max([gen_s, rollout_s])

        kept, adv, dropped = group_advantages(episodes, cfg.advantage)
        record: dict[str, Any] = episode_metrics(kept, dropped, adv)
        record.update(failure_metrics(episodes))
        record["episodes/stale_dropped"] = float(stale_count)
        if self.ranks.distributed:
            record["dist/world_size"] = float(self.ranks.world_size)
        if cfg.sandbox == "docker":
            record.update(docker_metrics())
        chosen = [
            (ep, a)
            for ep, a in zip(kept, adv.advantages, strict=True)
            if not (cfg.drop_zero_variance and adv.per_group[ep.instance_id].zero_variance)
        ]
        if bar is not None:
            bar.set_description(f"step {step} update ({len(chosen)} episodes)")
        started = time.monotonic()
        mine = [(ep, a) for ep, a in chosen if id(ep) in owned]  # this rank trains on the groups it played
        record.update(self._update([ep for ep, _ in mine], [a for _, a in mine]))
        training_s = time.monotonic() - started

        started = time.monotonic()
        if self.config.servers:
            record["servers/reconnects"] = float(self._servers_after_update())
            record["servers/live"] = float(len(self.backend.live))
        self.backend.policy_version = step  # in-process: the next rollouts read the new weights
        sync_s = time.monotonic() - started
        lags = [_lag(ep, step) for ep in kept if ep.info.get("policy_versions")]
        if lags:  # how many updates behind the weights that generated each episode were
            record["policy/version_lag_mean"] = float(np.mean(lags))
            record["policy/version_lag_max"] = float(max(lags))
        record.update(
            {
                "policy_version": float(self.backend.policy_version),
                "time/rollout_s": rollout_s,
                "time/generation_s": gen_s,
                "time/environment_s": max(0.0, rollout_s - gen_s),
                "time/training_s": training_s,
                "time/weight_sync_s": sync_s,
                "throughput/generated_tokens": float(generated),
                "throughput/generation_tokens_per_s": generated / gen_s if gen_s > 0 else 0.0,
            }
        )
        if self.ranks.is_main:
            self._open_metrics().log(step, record)
        self.history.append({"step": step, **record})
        if cfg.save_episodes and self.ranks.is_main:
            self._save_episodes(step, episodes, kept, adv.advantages)
        log.info(
            "step %d: reward %.3f ± %.3f, %d kept / %d dropped, %d informative groups, loss %s, %.1fs",
            step,
            record.get("reward/mean", float("nan")),
            record.get("reward/std", float("nan")),
            len(kept),
            dropped,
            adv.informative_groups,
            record.get("train/loss"),
            rollout_s + training_s,
        )
        return record

    def _gather_episodes(self, episodes: list[Episode], stale: int) -> tuple[list[Episode], set[int], int]:
        """``(all episodes, ids of this rank's among them, stale drops of all ranks)``: the step's
        episodes of every rank, in rank order (shards are contiguous: with no task drawn twice in
        the step, the order of one process)."""
        if not self.ranks.distributed:
            return episodes, {id(ep) for ep in episodes}, stale
        shares = self.ranks.gather([episodes, stale])
        everything = [ep for share, _ in shares for ep in share]
        return everything, {id(ep) for ep in shares[self.ranks.rank][0]}, sum(n for _, n in shares)

    def _apply_episode_reward(self, ep: Episode) -> None:
        """Replace the env's reward by `episode_reward` and/or add the shaping term."""
        value, added = shaped_reward(ep, self._tasks_by_id[ep.instance_id], self.config, self.episode_reward)
        ep.info["env_reward"] = ep.reward
        ep.info["reward_components"] = {**ep.info.get("reward_components", {}), **added}
        ep.reward = value

    # -- the update ----------------------------------------------------------------------------------
    def _update(self, episodes: Sequence[Episode], advantages: Sequence[float]) -> dict[str, float]:
        """`ppo_epochs` optimizer steps on `episodes`; the step's training metrics."""
        cfg, pm, ranks = self.config, self.policy_model, self.ranks
        pad = self.pad_id
        batches = micro_batches(episodes, advantages, cfg.micro_batch_size, pad) if episodes else []
        # N ranks: the weights divide by the global counts, so the ranks' gradients sum to the
        # one-process gradient; every rank runs as many micro-batches (zero-weight padding)
        total_tokens, total_seqs = ranks.all_sum([sum(b.num_tokens for b in batches), sum(b.size for b in batches)])
        if not total_seqs:
            log.info("step %d: no informative episodes; no update", self.step)
            return {"train/updated": 0.0, "train/episodes": 0.0, "train/lr": pm.lr}
        real = len(batches)
        batches += [dummy_micro_batch(pad)] * (int(ranks.all_max([real])[0]) - real)
        sums: dict[str, float] = {}
        lr = pm.lr
        norms = []
        pm.train_mode(True)
        try:
            for _ in range(cfg.ppo_epochs):
                lr = pm.lr
                for k, batch in enumerate(batches):
                    weight = (
                        batch.num_tokens / total_tokens if cfg.aggregation == "token_mean" else batch.size / total_seqs
                    )
                    if k >= real:  # padding: takes part in the collectives, adds nothing
                        weight = 0.0
                    loss, stats = self._micro_batch_loss(batch.to(pm.device))
                    pm.backward(loss * (weight * ranks.loss_scale), last=k == len(batches) - 1)
                    # stats: token-weighted means (padding: none)
                    share = batch.num_tokens / total_tokens / cfg.ppo_epochs if k < real else 0.0
                    sums["loss"] = sums.get("loss", 0.0) + float(loss.detach()) * weight / cfg.ppo_epochs
                    for key, value in stats.items():
                        sums[key] = sums.get(key, 0.0) + value * share
                if pm.engine is None:  # plain data parallelism: sum the ranks' gradients
                    ranks.sum_gradients(list(pm.trainable_parameters().values()))
                norms.append(pm.step())
        finally:
            pm.train_mode(False)
        if ranks.distributed:  # each rank's sums are its share of the global (weighted) means
            sums = dict(zip(sums, ranks.all_sum(list(sums.values())), strict=True))
        out = {f"train/{k}": v for k, v in sums.items()}
        out.update(
            {
                "train/updated": 1.0,
                "train/episodes": float(total_seqs),
                "train/tokens": float(total_tokens),
                "train/grad_norm": float(np.mean(norms)),
                "train/lr": lr,
            }
        )
        return out

    def _logprobs(self, batch: MicroBatch, *, with_entropy: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Fused log-probs (and entropies) of the batch's generated tokens under the current model."""
        pm = self.policy_model
        hidden = pm.hidden_states(batch.input_ids, batch.attention_mask)
        with pm.lm_head_weight() as weight:
            return masked_token_logprobs(
                hidden,
                weight,
                batch.targets,
                batch.loss_mask,
                chunk_size=self.config.logprob_chunk_size,
                temperature=self.config.temperature,
                with_entropy=with_entropy,
            )

    def _micro_batch_loss(self, batch: MicroBatch) -> tuple[torch.Tensor, dict[str, float]]:
        cfg, pm = self.config, self.policy_model
        ref_logp = None
        if cfg.beta > 0:
            with torch.no_grad(), pm.reference_policy():
                ref_logp, _ = self._logprobs(batch)
        logp, entropy = self._logprobs(batch, with_entropy=True)
        assert entropy is not None
        return grpo_loss(
            logp,
            batch.old_logp,
            batch.advantages,
            batch.seq_index,
            batch.size,
            self.loss_config,
            ref_logp=ref_logp,
            entropy=entropy if cfg.entropy_coef > 0 else entropy.detach(),
        )

    # -- records -------------------------------------------------------------------------------------
    def _save_episodes(
        self, step: int, episodes: Sequence[Episode], kept: Sequence[Episode], advantages: Sequence[float]
    ) -> None:
        folder = self.run_dir / "episodes"
        folder.mkdir(exist_ok=True)
        adv = {id(ep): a for ep, a in zip(kept, advantages, strict=True)}
        with open(folder / f"step-{step:06d}.jsonl", "w", encoding="utf-8") as fh:
            for ep in episodes:
                row = ep.to_json() | {"step": step, "advantage": adv.get(id(ep))}
                fh.write(json.dumps(row, default=str) + "\n")

    def save_checkpoint(self) -> Path:
        """Write a complete checkpoint of the current step; keep the newest `keep_checkpoints`."""
        with self._working():
            return self._save_checkpoint()

    def _save_checkpoint(self) -> Path:
        root = self.run_dir / "checkpoints"
        final = root / f"step-{self.step:06d}"
        tmp = root / f".tmp-step-{self.step:06d}"
        ranks, engine = self.ranks, self.policy_model.engine is not None
        if ranks.is_main:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        ranks.barrier()
        if ranks.is_main or engine:  # a DeepSpeed checkpoint is collective: each rank writes its shard
            self.policy_model.save(tmp)
        ranks.barrier()
        if not ranks.is_main:
            ranks.barrier()  # rank 0 completes the checkpoint
            return final
        generator = getattr(self.backend, "generator", None)
        rng = {**self.rng.state_dict(), "sampler": generator.get_state() if generator is not None else None}
        torch.save(rng, tmp / "rng.pt")
        state = {
            "step": self.step,
            "policy_version": self.backend.policy_version,
            "history": self.history,
            "world_size": ranks.world_size,
            "zero_stage": self.config.zero_stage,
        }
        (tmp / "trainer_state.json").write_text(json.dumps(state, default=float), encoding="utf-8")
        (tmp / CHECKPOINT_DONE).write_text(json.dumps({"step": self.step, "time": time.time()}), encoding="utf-8")
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        if self.config.keep_checkpoints:
            done = sorted(p.parent for p in root.glob(f"step-*/{CHECKPOINT_DONE}"))
            for old in done[: -self.config.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)
        log.info("checkpoint %s", final)
        ranks.barrier()
        return final

    def _load_checkpoint(self, directory: Path) -> None:
        state = json.loads((directory / "trainer_state.json").read_text(encoding="utf-8"))
        self.policy_model.load(directory)
        rng = torch.load(directory / "rng.pt", weights_only=False)
        self.rng.load_state_dict(rng)
        generator = getattr(self.backend, "generator", None)
        if generator is not None and rng.get("sampler") is not None:
            generator.set_state(rng["sampler"])
        self.step = int(state["step"])
        self.history = list(state.get("history", []))
        self.backend.policy_version = int(state["policy_version"])
        log.info("resumed from %s (step %d)", directory, self.step)

    def _finish(self) -> None:
        metrics_path = self.run_dir / "metrics.jsonl"
        try:
            plot_learning_curve(metrics_path, self.run_dir / "learning_curve.png", title=self.config.model)
        except ValueError as exc:
            log.warning("no learning curve: %s", exc)
        summary = {
            "steps": self.step,
            "final": self.history[-1] if self.history else None,
            "checkpoint": str(latest_checkpoint(self.run_dir)),
        }
        (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=float), encoding="utf-8")


def _run(
    make_env: Callable[[], Any],
    policy: Any,
    task_ids: list[str],
    step: int,
    cfg: TrainConfig,
    on_step: Any,
    offset: int = 0,
) -> list[Episode]:
    from swerepair.envs.rollout import run_episodes

    seed = step_seed(cfg.seed, step, "env") + offset  # offset: this rank's first episode in the step
    return run_episodes(make_env, policy, task_ids, seed=seed, on_step=on_step, workers=cfg.env_workers)


def _wait_for_servers(urls: Sequence[str], timeout_s: float) -> None:
    """Block until every server answers ``GET /health``; TimeoutError after `timeout_s` in all."""
    deadline = time.monotonic() + timeout_s
    for url in urls:
        wait_healthy(url, max(0.0, deadline - time.monotonic()))


def _answers(url: str) -> bool:
    """Whether the server at `url` answers ``GET /health`` now (one try, 5 s at most)."""
    try:
        wait_healthy(url, 0.0)
        return True
    except (TimeoutError, RuntimeError):
        return False


def _lag(episode: Episode, step: int) -> int:
    """Updates between the oldest weights that generated `episode` and those of `step`'s rollouts
    (version step - 1); 0 for episodes without version tags."""
    versions = episode.info.get("policy_versions") or []
    return step - 1 - min(versions) if versions else 0


#: The run log files attached now (by trainers at work), and the package logger's level before the
#: first of them lowered it to INFO (restored when the last one is detached).
_attached: list[logging.Handler] = []
_level_before: list[int] = []
_attach_lock = threading.Lock()


def _attach_log_file(path: Path) -> logging.Handler:
    """Send the package's INFO logs to `path`, appending (``tail -f`` it while a run goes)."""
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    package = logging.getLogger("swerepair")
    with _attach_lock:
        if not _attached:
            _level_before[:] = [package.level]
        _attached.append(handler)
        package.addHandler(handler)
        if package.level == logging.NOTSET or package.level > logging.INFO:
            package.setLevel(logging.INFO)
    return handler


def _detach_log_file(handler: logging.Handler) -> None:
    """Undo `_attach_log_file` (the logger's level too, after the last one) and close the file."""
    package = logging.getLogger("swerepair")
    with _attach_lock:
        package.removeHandler(handler)
        if handler in _attached:
            _attached.remove(handler)
        if not _attached and _level_before:
            if package.level == logging.INFO:  # unless someone else set it meanwhile
                package.setLevel(_level_before[0])
            _level_before.clear()
    handler.close()


def _progress(config: TrainConfig, initial: int) -> Any:
    if not config.progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=config.max_steps, initial=initial, unit="step", dynamic_ncols=True)
