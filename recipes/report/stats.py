"""Statistics over seeds: the bootstrap interval of a mean (BCa, percentile where BCa is
degenerate), curves on one step grid, values at marks, steps to a threshold, phase timings."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

RESAMPLES = 2000
CI_SEED = 0
MIN_BCA_SEEDS = 3
"""Fewer seeds than this: the percentile interval (BCa's jackknife needs at least 3 values)."""


def bootstrap_ci(
    samples: np.ndarray, resamples: int = RESAMPLES, seed: int = CI_SEED, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over axis 0 and its bootstrap confidence interval: BCa, percentile where BCa is
    degenerate.

    ``scipy.stats.bootstrap`` of the mean over the ``n`` seeds (``resamples`` resamples drawn by
    ``np.random.default_rng(seed)``, restarted for every call, so an interval is reproducible),
    ``method="BCa"`` (bias-corrected and accelerated: it corrects the percentile interval for
    the bias and skew of the resampled means, large at 3-5 seeds; it reads its endpoints off the
    same resampled means, so like the percentile interval it never reaches beyond the seeds'
    range: at 3 seeds and 95% both are the seeds' minimum and maximum). Where BCa is degenerate the
    percentile interval of the same resamples is given instead: fewer than
    :data:`MIN_BCA_SEEDS` seeds, every seed with the same value (the interval is that value),
    or a BCa endpoint that comes out undefined. One seed: the interval is the value itself.

    Args:
        samples: ``[n]`` or ``[n, T]`` (one row per seed); each column gets its own interval.
        resamples: number of bootstrap resamples.
        seed: seed of the generator (the same seed gives the same interval).
        level: coverage of the interval.

    Returns:
        ``(mean, low, high)``, each of shape ``samples.shape[1:]``.

    Examples:
        >>> m, lo, hi = bootstrap_ci(np.array([1.0, 2.0, 3.0]))
        >>> float(m), bool(lo <= m <= hi)
        (2.0, True)
        >>> bootstrap_ci(np.array([5.0, 5.0, 5.0]))  # degenerate: percentile, a point
        (np.float64(5.0), np.float64(5.0), np.float64(5.0))
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim not in (1, 2) or len(x) == 0:
        raise ValueError(f"samples must be [n] or [n, T] with n >= 1, got shape {x.shape}")
    n = len(x)
    cols = x.reshape(n, -1)
    mean = cols.mean(0)
    lo, hi = mean.copy(), mean.copy()
    if n >= 2:
        lo, hi = _scipy_interval(cols, "percentile", resamples, seed, level)
        varying = np.flatnonzero(np.ptp(cols, axis=0) > 0)
        if n >= MIN_BCA_SEEDS and len(varying):
            # same seed, same resamples: BCa only adjusts which percentiles are read off them
            blo, bhi = _scipy_interval(cols[:, varying], "BCa", resamples, seed, level)
            ok = np.isfinite(blo) & np.isfinite(bhi)
            lo[varying[ok]], hi[varying[ok]] = blo[ok], bhi[ok]
    shape = x.shape[1:]
    return mean.reshape(shape)[()], lo.reshape(shape)[()], hi.reshape(shape)[()]


def ci_method(samples: np.ndarray) -> str:
    """``"BCa"`` or ``"percentile"``: which interval :func:`bootstrap_ci` gives a column ``[n]``
    (``"percentile"`` also where BCa comes out undefined, which this does not detect).

    Examples:
        >>> ci_method([1.0, 2.0, 4.0]), ci_method([1.0, 2.0]), ci_method([3.0, 3.0, 3.0])
        ('BCa', 'percentile', 'percentile')
    """
    x = np.asarray(samples, dtype=np.float64)
    return "BCa" if len(x) >= MIN_BCA_SEEDS and np.ptp(x) > 0 else "percentile"


def _scipy_interval(cols: np.ndarray, method: str, resamples: int, seed: int,
                    level: float) -> tuple[np.ndarray, np.ndarray]:
    """``scipy.stats.bootstrap`` interval of the mean of every column of ``cols`` ``[n, T]``."""
    import warnings

    from scipy import stats

    # The mean rounded to 12 significant digits of the data's scale: a resample that is a
    # permutation of the seeds (2 in 9 at n = 3) then has exactly the observed mean, as BCa's
    # bias correction counts ties; unrounded, float summation order would scatter those ties to
    # either side and move the interval (seeds 4.0, 4.4, 4.8 gave [4.0, 4.67], not [4.0, 4.8]).
    scale = float(np.max(np.abs(cols)))
    quantum = 10.0 ** (math.floor(math.log10(scale)) - 12) if scale > 0 else 1.0

    def mean(x, axis=-1):
        return np.round(np.mean(x, axis=axis) / quantum) * quantum

    with warnings.catch_warnings():
        # an undefined BCa endpoint comes back as nan (with this warning): the caller falls back
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        res = stats.bootstrap((cols,), mean, n_resamples=resamples, axis=0, vectorized=True,
                              confidence_level=level, method=method,
                              rng=np.random.default_rng(seed))
    ci = res.confidence_interval
    return np.atleast_1d(np.asarray(ci.low, dtype=np.float64)), np.atleast_1d(
        np.asarray(ci.high, dtype=np.float64))


def align(curves: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Put seeds' curves on one step grid: ``(grid [T], values [n, T])``.

    The grid is the union of the seeds' steps within the range every seed covers (from the
    latest first step to the earliest last step); a seed's value between two of its own
    evaluations is linearly interpolated (exact where it evaluated).
    """
    start = max(s[0] for s, _ in curves)
    end = min(s[-1] for s, _ in curves)
    grid = np.unique(np.concatenate([s for s, _ in curves]))
    grid = grid[(grid >= start) & (grid <= end)]
    if len(grid) == 0:
        return grid, np.empty((len(curves), 0))
    return grid, np.stack([np.interp(grid, s, v) for s, v in curves])


def value_at(steps: np.ndarray, values: np.ndarray, mark: float) -> float | None:
    """The curve's value at ``mark`` (interpolated between evaluations); None outside its range."""
    if len(steps) == 0 or mark < steps[0] or mark > steps[-1]:
        return None
    return float(np.interp(mark, steps, values))


def steps_to_threshold(steps: np.ndarray, values: np.ndarray, threshold: float) -> float | None:
    """Step of the first evaluation at or above ``threshold``; None if never reached."""
    hit = np.flatnonzero(values >= threshold)
    return float(steps[hit[0]]) if len(hit) else None


def first_reaching(curves: Sequence[tuple[np.ndarray, np.ndarray]],
                   threshold: float) -> tuple[float, int, int]:
    """(mean first step at or above ``threshold`` over the curves that reach it, how many do,
    how many curves)."""
    hits = [h for h in (steps_to_threshold(*c, threshold) for c in curves) if h is not None]
    return float(np.mean(hits)) if hits else math.nan, len(hits), len(curves)


def seconds_per_1k(steps: np.ndarray, cumulative: np.ndarray) -> float | None:
    """Seconds per 1000 agent steps from a cumulative timer logged against agent steps.

    A drop of the timer (a resumed run restarts its timers) starts a new segment whose first
    value counts whole. None when nothing was logged.
    """
    if len(steps) == 0 or steps[-1] <= 0:
        return None
    inc = np.diff(cumulative, prepend=0.0)
    inc = np.where(inc >= 0, inc, cumulative)
    return float(1000 * inc.sum() / steps[-1])


@dataclass
class Cell:
    """Mean, 95% CI and seed count of one table entry (``n == 0``: no seed has a value)."""

    mean: float = math.nan
    low: float = math.nan
    high: float = math.nan
    n: int = 0

    @classmethod
    def of(cls, values: Sequence[float], resamples: int = RESAMPLES, seed: int = CI_SEED) -> "Cell":
        if len(values) == 0:
            return cls()
        m, lo, hi = bootstrap_ci(np.asarray(values, dtype=np.float64), resamples, seed)
        return cls(float(m), float(lo), float(hi), len(values))

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def format(self, digits: int) -> str:
        if self.n == 0:
            return "-"
        if self.n == 1:
            return f"{self.mean:.{digits}f} (n=1)"
        # the interval itself: a BCa interval is not symmetric about the mean
        return (f"{self.mean:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}] "
                f"(n={self.n})")
