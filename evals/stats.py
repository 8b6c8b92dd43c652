"""The statistics of an evaluation: unbiased pass@k, bootstrap confidence intervals, and the
paired comparison of two runs on the same tasks (McNemar's exact test, the CI of the difference).

Everything here is a pure function of plain numbers, seeded where it samples, so that a report
is reproducible and each function can be checked against a closed form.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["Interval", "bootstrap_ci", "mcnemar_exact", "paired_difference_ci", "pass_at_k"]


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased estimate of pass@k from `n` samples of which `c` are correct:
    ``1 - C(n - c, k) / C(n, k)`` (Chen et al., 2021), the probability that at least one of `k`
    samples drawn without replacement from the `n` is correct.

    >>> round(pass_at_k(10, 3, 1), 4), round(pass_at_k(10, 3, 5), 4), pass_at_k(10, 0, 5), pass_at_k(4, 1, 4)
    (0.3, 0.9167, 0.0, 1.0)
    """
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got c={c}, n={n}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


@dataclass(frozen=True)
class Interval:
    """A point estimate and its confidence interval.

    Attributes:
        value: the statistic on the data.
        low / high: the interval's ends.
        n: how many units it is over (tasks, for the task-level bootstrap).
        level: the confidence level (0.95).
    """

    value: float
    low: float
    high: float
    n: int
    level: float = 0.95

    def text(self, percent: bool = True) -> str:
        """``"40.0% [20.0, 60.0]"``."""
        if percent:
            return f"{100 * self.value:.1f}% [{100 * self.low:.1f}, {100 * self.high:.1f}]"
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    """The `q` quantile with linear interpolation (numpy's default, ``method="linear"``)."""
    if not sorted_values:
        return math.nan
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def bootstrap_ci(
    values: Sequence[float],
    *,
    statistic: Callable[[Sequence[float]], float] | None = None,
    resamples: int = 10_000,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """The percentile bootstrap CI of `statistic` (default: the mean) over `values`, one value
    per unit (a task's resolved rate over its samples, so that samples of one task are resampled
    together). Each resample draws ``len(values)`` units with replacement from a `random.Random`
    seeded with `seed`."""
    stat = statistic or (lambda xs: sum(xs) / len(xs))
    n = len(values)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, level)
    rng = random.Random(seed)
    values = list(values)
    draws = sorted(stat([values[rng.randrange(n)] for _ in range(n)]) for _ in range(resamples))
    alpha = (1 - level) / 2
    return Interval(stat(values), _quantile(draws, alpha), _quantile(draws, 1 - alpha), n, level)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for the discordant pairs of a paired comparison: `b` tasks
    that run A resolved and run B did not, `c` the other way round. Under the null each
    discordant pair is a fair coin: ``p = min(1, 2 * P(X <= min(b, c)))`` with X ~ Bin(b + c, 1/2).

    >>> mcnemar_exact(0, 0), round(mcnemar_exact(1, 9), 6), round(mcnemar_exact(5, 5), 6)
    (1.0, 0.021484, 1.0)
    """
    if b < 0 or c < 0:
        raise ValueError(f"counts must be non-negative, got b={b}, c={c}")
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired_difference_ci(
    a: Sequence[float], b: Sequence[float], *, resamples: int = 10_000, level: float = 0.95, seed: int = 0
) -> Interval:
    """The bootstrap CI of ``mean(b) - mean(a)`` over paired units (the same tasks in both runs):
    tasks are resampled, and each keeps its pair."""
    if len(a) != len(b):
        raise ValueError(f"paired runs need the same units, got {len(a)} and {len(b)}")
    diffs = [y - x for x, y in zip(a, b, strict=True)]
    return bootstrap_ci(diffs, resamples=resamples, level=level, seed=seed)
