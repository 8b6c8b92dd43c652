"""Training metrics: per-step rollout statistics, a JSONL (+ TensorBoard) logger and a learning-curve plot.

`episode_metrics` summarises one training step's rollouts as a flat ``{name: float}`` dict whose
names are namespaced with ``/`` (``reward/mean``, ``tools/error_rate``, ...). `MetricsLogger`
appends one JSON object per step to ``run_dir/metrics.jsonl`` (and mirrors every value to
TensorBoard when it is installed); `read_metrics` reads that file back and `plot_learning_curve`
draws it. Importing this module needs nothing heavy: torch/tensorboard and matplotlib are
imported only by the logger and the plot.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from swerepair.core import Episode
    from swerepair.trainers.advantages import AdvantageResult

__all__ = [
    "FAILURE_REASONS",
    "TIME_PARTS",
    "MetricsLogger",
    "docker_metrics",
    "episode_metrics",
    "failure_metrics",
    "learning_curve_figure",
    "plot_learning_curve",
    "read_metrics",
]

log = logging.getLogger(__name__)

#: Rewards at least this close to 1.0 count as resolved when no ``resolved`` component exists.
RESOLVED_TOLERANCE = 1e-9


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


def _resolved(episode: Episode) -> bool:
    components = episode.info.get("reward_components") or {}
    if "resolved" in components:
        return bool(components["resolved"])
    # the env's own reward when the trainer reshaped it (shaping terms are not a fix)
    reward = episode.info.get("env_reward", episode.reward)
    return float(reward) >= 1.0 - RESOLVED_TOLERANCE


def episode_metrics(episodes: Sequence[Episode], dropped: int, advantages: AdvantageResult | None) -> dict[str, float]:
    """Metrics of one training step's rollouts.

    Args:
        episodes: the kept (non-failed) episodes of the step.
        dropped: how many failed episodes were dropped before these were kept.
        advantages: the step's `AdvantageResult`, or None to leave out the ``groups/*`` keys.

    Returns (every value a float):
        ``episodes/kept``, ``episodes/dropped``: the counts; ``episodes/failed_fraction``:
            dropped / (kept + dropped), 0.0 when both are 0.
        ``groups/count``, ``groups/zero_variance``, ``groups/informative``: the GRPO groups, those
            whose rewards are all equal (no gradient), and the rest (only when `advantages` is given).
        ``reward/mean``, ``reward/std`` (population std), ``reward/max``, ``reward/min``.
        ``resolve_rate``: the fraction of episodes resolved. An episode whose
            ``info["reward_components"]`` has a ``resolved`` key is resolved when that value is
            truthy; one without it is resolved when the env's reward (``info["env_reward"]`` when
            the trainer added shaping or replaced the reward, else ``reward``) is >= 1.0 - 1e-9.
        ``reward_components/<name>``: the mean of each component over the episodes that have it.
        ``episode/tokens_mean``: mean sequence length; ``episode/generated_tokens_mean``: mean
            number of generated (loss-masked) tokens; ``episode/turns_mean``,
            ``episode/context_tokens_mean``, ``episode/elapsed_s_mean``: means of
            ``tool_stats["turns"]``, ``info["context_tokens"]`` and ``info["elapsed_s"]`` over the
            episodes that carry them (left out when none does).
        ``tools/calls_per_episode``: tool calls (all tools) per episode;
            ``tools/<tool>_calls_per_episode``: calls of each tool seen, per episode;
            ``tools/malformed_per_episode``, ``tools/timeouts_per_episode``: malformed actions and
            timed-out calls per episode; ``tools/error_rate``: errors / max(calls, 1), pooled over
            the episodes. All over the episodes that carry ``tool_stats`` (left out when none does).
        ``exit/<reason>``: the fraction of kept episodes per ``info["exit_reason"]`` (``unknown``
            when missing). Dropped episodes are only counted in ``episodes/*``.

    With no kept episodes only the ``episodes/*`` (and ``groups/*``) keys are returned: every
    mean, rate and fraction over episodes is left out rather than reported as a misleading 0.
    """
    kept = len(episodes)
    total = kept + dropped
    metrics: dict[str, float] = {
        "episodes/kept": float(kept),
        "episodes/dropped": float(dropped),
        "episodes/failed_fraction": dropped / total if total else 0.0,
    }
    if advantages is not None:
        metrics["groups/count"] = float(advantages.groups)
        metrics["groups/zero_variance"] = float(advantages.zero_variance_groups)
        metrics["groups/informative"] = float(advantages.informative_groups)
    if not episodes:
        return metrics

    rewards = [float(e.reward) for e in episodes]
    mean = _mean(rewards)
    metrics["reward/mean"] = mean
    metrics["reward/std"] = math.sqrt(_mean([(r - mean) ** 2 for r in rewards]))
    metrics["reward/max"] = max(rewards)
    metrics["reward/min"] = min(rewards)
    metrics["resolve_rate"] = sum(_resolved(e) for e in episodes) / kept

    components: dict[str, list[float]] = {}
    for e in episodes:
        for name, value in (e.info.get("reward_components") or {}).items():
            components.setdefault(name, []).append(float(value))
    for name in sorted(components):
        metrics[f"reward_components/{name}"] = _mean(components[name])

    metrics["episode/tokens_mean"] = _mean([len(e.tokens) for e in episodes])
    metrics["episode/generated_tokens_mean"] = _mean([sum(e.loss_mask) for e in episodes])
    stats = [e.info["tool_stats"] for e in episodes if e.info.get("tool_stats")]
    optional = {
        "episode/turns_mean": [s["turns"] for s in stats if s.get("turns") is not None],
        "episode/context_tokens_mean": [e.info["context_tokens"] for e in episodes if "context_tokens" in e.info],
        "episode/elapsed_s_mean": [e.info["elapsed_s"] for e in episodes if "elapsed_s" in e.info],
    }
    for key, values in optional.items():
        if values:
            metrics[key] = _mean([float(v) for v in values])

    if stats:
        per_tool: Counter[str] = Counter()
        for s in stats:
            per_tool.update(s.get("calls") or {})
        calls = sum(per_tool.values())
        metrics["tools/calls_per_episode"] = calls / len(stats)
        for tool in sorted(per_tool):
            metrics[f"tools/{tool}_calls_per_episode"] = per_tool[tool] / len(stats)
        metrics["tools/error_rate"] = sum(s.get("errors", 0) for s in stats) / max(calls, 1)
        metrics["tools/malformed_per_episode"] = sum(s.get("malformed", 0) for s in stats) / len(stats)
        metrics["tools/timeouts_per_episode"] = sum(s.get("timeouts", 0) for s in stats) / len(stats)

    reasons = Counter(str(e.info.get("exit_reason") or "unknown") for e in episodes)
    for reason in sorted(reasons):
        metrics[f"exit/{reason}"] = reasons[reason] / kept
    return metrics


#: Why episodes fail (``info["exit_reason"]`` of a failed episode): the env's sandbox and reward
#: failures, a turn the policy's server lost, a task repository that is missing.
FAILURE_REASONS: tuple[str, ...] = ("sandbox_error", "reward_error", "policy_error", "repository_error")


def failure_metrics(episodes: Sequence[Episode]) -> dict[str, float]:
    """``episodes/failed/<reason>``: how many of `episodes` failed (``info["failed"]``) with each
    ``info["exit_reason"]`` (``unknown`` when missing). Every reason of `FAILURE_REASONS` is
    present (0.0 when none failed so), so that each is a continuous series; any other reason is
    added when it occurs. Their sum is the number of failed episodes (``episodes/dropped`` when
    given the episodes `episode_metrics` kept and dropped).
    """
    counts: Counter[str] = Counter(
        str(e.info.get("exit_reason") or "unknown") for e in episodes if e.info.get("failed")
    )
    out = {f"episodes/failed/{reason}": 0.0 for reason in FAILURE_REASONS}
    for reason, n in sorted(counts.items()):
        out[f"episodes/failed/{reason}"] = float(n)
    return out


def docker_metrics() -> dict[str, float]:
    """The Docker sandbox's warm pool and image cache counters in this process, since it started
    (`swerepair.envs.sandbox.docker.pool.shared_stats`): ``docker/pool_hits``,
    ``docker/pool_misses``, ``docker/reset_wait_s``, ``docker/pulls``, ``docker/evictions``,
    ``docker/cache_bytes``, ...; empty before the first Docker sandbox."""
    from swerepair.envs.sandbox.docker.pool import shared_stats

    return shared_stats()


def _json_value(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


class MetricsLogger:
    """Appends one record per step to ``run_dir/metrics.jsonl`` and, optionally, to TensorBoard.

    Each line is ``{"step": step, "time": <unix time>, **metrics}``, flushed at once (``tail -f``
    works); non-finite values are written as ``null``. With ``tensorboard=True`` every metric is
    also a TensorBoard scalar (tag = metric name) under ``run_dir/tensorboard``; when torch's
    TensorBoard writer cannot be imported a warning is logged and only the JSONL is written.
    With ``resume_step`` the run resumes after that step: records of later steps are dropped from
    the JSONL (`truncate_after`) and hidden from TensorBoard (``purge_step``).
    """

    def __init__(self, run_dir: str | Path, *, tensorboard: bool = True, resume_step: int | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.run_dir / "metrics.jsonl"
        self._file: Any = None
        if resume_step is not None:
            self.truncate_after(resume_step)
        self._file = self.path.open("a", encoding="utf-8")
        self._writer: Any = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:
                log.warning("TensorBoard logging disabled (%s); writing %s only", exc, self.path)
            else:
                purge = None if resume_step is None else resume_step + 1
                self._writer = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=purge)

    @property
    def tensorboard(self) -> bool:
        """Whether scalars are also written to TensorBoard."""
        return self._writer is not None

    def truncate_after(self, step: int) -> int:
        """Drop the JSONL records whose step is greater than `step`; return how many were dropped.

        A malformed last line (a write torn by a crash) is dropped too; a malformed line before the
        last raises ValueError.
        """
        if not self.path.exists():
            return 0
        if self._file is not None:
            self._file.close()
        lines = self.path.read_text(encoding="utf-8").splitlines()
        parsed = _parse(self.path, lines, torn_tail_ok=True)
        keep = [line for line, record in parsed if record.get("step", 0) <= step]
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(f"{line}\n" for line in keep), encoding="utf-8")
        os.replace(tmp, self.path)
        if self._file is not None:
            self._file = self.path.open("a", encoding="utf-8")
        return sum(1 for line in lines if line.strip()) - len(keep)

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        """Write the metrics of `step` (one JSONL line, and TensorBoard scalars)."""
        if self._file is None:
            raise RuntimeError("the metrics logger is closed")
        reserved = {"step", "time"} & set(metrics)
        if reserved:
            raise ValueError(f"metric names {sorted(reserved)} are reserved")
        record = {"step": int(step), "time": time.time(), **{k: _json_value(v) for k, v in metrics.items()}}
        self._file.write(json.dumps(record, allow_nan=False) + "\n")
        self._file.flush()
        if self._writer is not None:
            for name, value in metrics.items():
                self._writer.add_scalar(name, float(value), global_step=int(step))
            self._writer.flush()

    def close(self) -> None:
        """Flush and close the JSONL file and the TensorBoard writer (idempotent)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _parse(path: Path | str, lines: Sequence[str], *, torn_tail_ok: bool = False) -> list[tuple[str, dict[str, Any]]]:
    """(line, record) for each non-blank line; ValueError names the file and line of a bad one."""
    numbered = [(number, line) for number, line in enumerate(lines, 1) if line.strip()]
    parsed: list[tuple[str, dict[str, Any]]] = []
    for number, line in numbered:
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            if torn_tail_ok and number == numbered[-1][0]:
                log.warning("%s:%d: dropping a torn last line", path, number)
                break
            raise ValueError(f"{path}:{number}: malformed metrics record: {exc}") from exc
        if not isinstance(record, dict):
            raise ValueError(f"{path}:{number}: a metrics record must be a JSON object")
        parsed.append((line, record))
    return parsed


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl, in file order; blank lines are skipped.

    Raises ValueError naming the file and line number for a line that is not a JSON object.
    """
    return [record for _, record in _parse(path, Path(path).read_text(encoding="utf-8").splitlines())]


def _series(records: Sequence[Mapping[str, Any]], key: str) -> tuple[list[float], list[float]]:
    points = [(float(r["step"]), float(r[key])) for r in records if r.get(key) is not None and "step" in r]
    return [p[0] for p in points], [p[1] for p in points]


def _lines(ax: Any, records: Sequence[Mapping[str, Any]], keys: Sequence[str], styles: str = "o-") -> list[Any]:
    handles = []
    for key in keys:
        steps, values = _series(records, key)
        if steps:
            handles += ax.plot(steps, values, styles, label=key, markersize=3)
    return handles


def _no_data(ax: Any) -> None:
    ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xticks([])
    ax.set_yticks([])


def _twin_panel(ax: Any, records: Sequence[Mapping[str, Any]], title: str, left: Sequence[str], right: str) -> None:
    """Lines of the `left` metrics, and of `right` on a twin axis; "no data" when all are absent."""
    ax.set_title(title)
    handles = _lines(ax, records, left)
    if _series(records, right)[0]:
        handles += _lines(ax.twinx(), records, [right], "s--")
    if handles:
        ax.legend(handles=handles, loc="best", fontsize="small")
    else:
        _no_data(ax)


#: The parts of a step's time, stacked in the learning curve's time panel, in this order.
TIME_PARTS = ("time/generation_s", "time/environment_s", "time/training_s", "time/weight_sync_s")


def _with_environment_time(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records of runs that logged ``time/rollout_s`` but not ``time/environment_s`` get the
    environment's share (tool calls, sandboxes, rewards) as rollout minus generation time."""
    out = []
    for r in records:
        rollout, gen = r.get("time/rollout_s"), r.get("time/generation_s")
        if r.get("time/environment_s") is None and rollout is not None and gen is not None:
            r = {**r, "time/environment_s": max(0.0, float(rollout) - float(gen))}
        out.append(r)
    return out


def plot_learning_curve(metrics_path: str | Path, png_path: str | Path, *, title: str | None = None) -> Path:
    """Draw a metrics.jsonl as a 2x2 PNG and return its path (`learning_curve_figure`)."""
    fig = learning_curve_figure(metrics_path, title=title)
    out = Path(png_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out


def learning_curve_figure(metrics_path: str | Path, *, title: str | None = None) -> Any:
    """The learning curve of a metrics.jsonl, as a matplotlib ``Figure`` of 2x2 panels.

    Panels: (1) reward mean with a ±std band, and resolve rate; (2) ``train/kl``,
    ``train/clip_fraction`` and ``train/entropy`` (right axis); (3) ``train/grad_norm`` and
    ``train/lr`` (right axis); (4) the time per step as stacked bars of `TIME_PARTS`:
    generation, the environment (tool calls, sandboxes and rewards: ``time/environment_s``, or
    rollout minus generation time for runs that did not log it), training and weight sync. A
    panel whose metrics are all absent says "no data". Uses the Agg canvas directly, never
    pyplot. Raises ValueError on an empty file.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    records = _with_environment_time(read_metrics(metrics_path))
    if not records:
        raise ValueError(f"{metrics_path}: no metrics records to plot")
    fig = Figure(figsize=(12, 8), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    fig.suptitle(title if title is not None else str(metrics_path))
    (ax_reward, ax_loss), (ax_grad, ax_time) = fig.subplots(2, 2)

    ax_reward.set_title("reward")
    steps, means = _series(records, "reward/mean")
    handles = _lines(ax_reward, records, ["reward/mean", "resolve_rate"])
    stds = dict(zip(*_series(records, "reward/std"), strict=True))
    if steps and stds:
        band = [(s, m, stds[s]) for s, m in zip(steps, means, strict=True) if s in stds]
        xs, lo, hi = [b[0] for b in band], [b[1] - b[2] for b in band], [b[1] + b[2] for b in band]
        ax_reward.fill_between(xs, lo, hi, alpha=0.25, color=handles[0].get_color(), label="reward ±std")
        if len(xs) == 1:
            ax_reward.errorbar(xs, [band[0][1]], yerr=[band[0][2]], color=handles[0].get_color(), capsize=4)
    if handles:
        ax_reward.legend(loc="best", fontsize="small")
    else:
        _no_data(ax_reward)

    _twin_panel(ax_loss, records, "loss statistics", ["train/kl", "train/clip_fraction"], "train/entropy")
    _twin_panel(ax_grad, records, "gradient norm and learning rate", ["train/grad_norm"], "train/lr")

    ax_time.set_title("time per step (s)")
    parts = [k for k in TIME_PARTS if _series(records, k)[0]]
    if parts:
        steps = sorted({float(r["step"]) for r in records if "step" in r and any(r.get(k) is not None for k in parts)})
        gaps = [b - a for a, b in pairwise(steps)]
        width = 0.8 * min(gaps) if gaps else 0.8
        bottom = dict.fromkeys(steps, 0.0)
        for key in parts:
            values = dict(zip(*_series(records, key), strict=True))
            heights = [values.get(s, 0.0) for s in steps]
            ax_time.bar(steps, heights, width, bottom=[bottom[s] for s in steps], label=key)
            for s, h in zip(steps, heights, strict=True):
                bottom[s] += h
        ax_time.legend(loc="best", fontsize="small")
    else:
        _no_data(ax_time)

    for ax in (ax_reward, ax_loss, ax_grad, ax_time):
        ax.set_xlabel("step")
    return fig
