"""Each arm against a reference arm: the tests a comparison is read by, and what they can detect.

Two measures per seed, both from ``eval/return``:

* **the run's mean eval return** (the area under its learning curve, in return units): the
  difference of the arms' means with its 95% bootstrap interval (``scipy.stats.bootstrap``,
  the two arms resampled independently), Welch's two-sided t-test with its own 95% interval
  of the difference, and the smallest difference that test detects with 80% power at the
  arms' seed counts and pooled spread;
* **solved or not** (the eval return reached the task's threshold at some evaluation): the
  counts, Fisher's exact two-sided test (``scipy.stats.fisher_exact``), and the solve rates
  that test detects with 80% power against the reference arm's observed rate (exact: the sum
  over every pair of counts).

Only seeds that ran as far as the furthest seed of the task count, so that no arm's mean
covers a shorter run. ``bench/power.py`` uses the same power functions before a comparison
runs.

:func:`along_key` gives the same two measures per arm, each with its own interval, laid out
against the value of a ``--label-by`` key (the paper's ablation over M, policies per model).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from scipy import stats

from torchrl_psmbpo.recipes.report.runs import Run
from torchrl_psmbpo.recipes.report.stats import CI_SEED, RESAMPLES, bootstrap_ci

ALPHA, POWER = 0.05, 0.80


def fisher_power(n0: int, n1: int, p0: float, p1: float, alpha: float = ALPHA) -> float:
    """Exact power of two-sided Fisher's test with ``n0`` and ``n1`` seeds, solve rates p0, p1.

    Example:
        >>> round(fisher_power(8, 8, 0.25, 1.0), 3)  # 2 of 8 solve against all 8
        0.886
        >>> fisher_power(3, 3, 0.0, 1.0)  # 3 seeds per arm: even 0 of 3 against 3 of 3 has p = 0.1
        0.0
    """
    w0 = stats.binom.pmf(np.arange(n0 + 1), n0, p0)
    w1 = stats.binom.pmf(np.arange(n1 + 1), n1, p1)
    power = 0.0
    for a in range(n0 + 1):
        for b in range(n1 + 1):
            if stats.fisher_exact([[a, n0 - a], [b, n1 - b]]).pvalue < alpha:
                power += w0[a] * w1[b]
    return float(power)


@functools.lru_cache(maxsize=None)
def detectable_rates(n0: int, n1: int, p0: float) -> tuple[float | None, float | None]:
    """The solve rates below and above ``p0`` (on a 0.01 grid) that Fisher's test detects with
    80% power; ``None`` where no rate on that side is detectable. Cached: the arms of one
    comparison share their seed counts and reference rate."""
    grid = np.round(np.arange(0.0, 1.0001, 0.01), 2)
    low = [p for p in grid if p < p0 and fisher_power(n0, n1, p0, p) >= POWER]
    high = [p for p in grid if p > p0 and fisher_power(n0, n1, p0, p) >= POWER]
    return (float(max(low)) if low else None, float(min(high)) if high else None)


def welch_mde(n0: int, n1: int, sd: float) -> float:
    """Smallest difference of means a two-sided Welch test detects with 80% power at
    alpha 0.05: ``(t_{1-alpha/2} + t_{power}) * sd * sqrt(1/n0 + 1/n1)``, ``df = n0 + n1 - 2``.

    Example:
        >>> round(welch_mde(5, 5, 69.0))
        139
    """
    df = n0 + n1 - 2
    return float((stats.t.ppf(1 - ALPHA / 2, df) + stats.t.ppf(POWER, df))
                 * sd * math.sqrt(1 / n0 + 1 / n1))


@dataclass
class ArmTest:
    """One arm against the reference arm (the ``ref_*`` fields)."""

    n: int
    ref_n: int
    mean: float  # the arm's mean over seeds of the run's mean eval return
    ref_mean: float
    diff: float  # mean - ref_mean
    diff_low: float  # 95% bootstrap interval of diff (nan below 2 seeds per arm)
    diff_high: float
    welch_p: float
    welch_low: float  # Welch's own 95% interval of diff (nan below 2 seeds per arm)
    welch_high: float
    mde: float  # smallest |diff| detectable with 80% power
    solved: int
    ref_solved: int
    fisher_p: float
    detect_low: float | None  # solve rates detectable against the reference's rate
    detect_high: float | None


def run_means_and_solved(runs: Sequence[Run], threshold: float,
                         horizon: float) -> tuple[np.ndarray, np.ndarray]:
    """Each run's mean eval return and whether it reached ``threshold``, over the runs whose
    last evaluation is at ``horizon`` env steps or later (evaluations after it are left out)."""
    means, solved = [], []
    for run in runs:
        steps, values = run.scalar("eval/return")
        if len(steps) == 0 or steps[-1] < horizon:
            continue
        values = values[steps <= horizon]
        means.append(float(values.mean()))
        solved.append(bool((values >= threshold).any()))
    return np.asarray(means), np.asarray(solved)


def horizon(by_label: Mapping[str, Sequence[Run]]) -> float:
    """The furthest last evaluation (env steps) of any run of the task (-inf: none logged)."""
    lasts = [r.scalar("eval/return")[0] for runs in by_label.values() for r in runs]
    return max((float(s[-1]) for s in lasts if len(s)), default=-math.inf)


def compare_arms(by_label: Mapping[str, Sequence[Run]], reference: str, threshold: float,
                 resamples: int = RESAMPLES, seed: int = CI_SEED) -> dict[str, ArmTest]:
    """Every arm of one task against ``reference`` (see the module docstring).

    Raises:
        ValueError: ``reference`` is not an arm of the task (the message lists them).
    """
    if reference not in by_label:
        raise ValueError(f"--reference {reference!r} is not a variant of these runs; "
                         f"accepted: {list(by_label)}")
    until = horizon(by_label)
    ref, ref_solved = run_means_and_solved(by_label[reference], threshold, until)
    out = {}
    for label, runs in by_label.items():
        if label == reference:
            continue
        arm, solved = run_means_and_solved(runs, threshold, until)
        if len(arm) == 0 or len(ref) == 0:
            continue
        low = high = p = w_low = w_high = mde = math.nan
        if len(arm) >= 2 and len(ref) >= 2:
            ci = stats.bootstrap((arm, ref), lambda a, b, axis=-1: a.mean(axis) - b.mean(axis),
                                 n_resamples=resamples, method="percentile",
                                 rng=np.random.default_rng(seed), vectorized=True)
            low, high = float(ci.confidence_interval.low), float(ci.confidence_interval.high)
            welch = stats.ttest_ind(arm, ref, equal_var=False)
            p = float(welch.pvalue)
            w_low, w_high = map(float, welch.confidence_interval(0.95))
            sd = math.sqrt((arm.var(ddof=1) * (len(arm) - 1) + ref.var(ddof=1) * (len(ref) - 1))
                           / (len(arm) + len(ref) - 2))
            mde = welch_mde(len(ref), len(arm), sd)
        k, k0 = int(solved.sum()), int(ref_solved.sum())
        fisher = stats.fisher_exact([[k, len(arm) - k], [k0, len(ref) - k0]]).pvalue
        d_low, d_high = detectable_rates(len(ref), len(arm), k0 / len(ref))
        out[label] = ArmTest(len(arm), len(ref), float(arm.mean()), float(ref.mean()),
                             float(arm.mean() - ref.mean()), low, high, p, w_low, w_high, mde,
                             k, k0, float(fisher), d_low, d_high)
    return out


@dataclass
class KeyPoint:
    """One arm at one value of a ``--label-by`` key (:func:`along_key`)."""

    label: str
    variant: str
    value: float  # the key's value, e.g. M
    n: int  # seeds that ran to the task's furthest evaluation
    mean: float  # mean over those seeds of the run's mean eval return
    low: float  # its 95% bootstrap interval (stats.bootstrap_ci: BCa, percentile below 3 seeds)
    high: float
    solved: int  # seeds that reached the threshold
    solved_low: float  # 95% exact (Clopper-Pearson) interval of the solve rate
    solved_high: float


def along_key(by_label: Mapping[str, Sequence[Run]], name: str, threshold: float,
              resamples: int = RESAMPLES, seed: int = CI_SEED) -> list[KeyPoint]:
    """Every arm's run mean and solve rate (as :func:`compare_arms` counts them, each with its
    own 95% interval) at its value of the ``--label-by`` key shown as ``name``.

    Empty unless some variant has runs at two or more numeric values of the key: then every
    arm with a numeric value is listed (an arm at one value is a reference for the others),
    by variant, then value.

    Examples:
        >>> along_key({}, "M", 800.0)
        []
    """
    def number(run: Run) -> float | None:
        value = run.keys.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return float(value)

    arms = {label: number(runs[0]) for label, runs in by_label.items() if runs}
    arms = {label: v for label, v in arms.items() if v is not None}
    values: dict[str, set[float]] = {}
    for label, v in arms.items():
        values.setdefault(by_label[label][0].variant, set()).add(v)
    if not any(len(v) >= 2 for v in values.values()):
        return []
    until = horizon(by_label)
    out = []
    for label, v in arms.items():
        means, solved = run_means_and_solved(by_label[label], threshold, until)
        if len(means) == 0:
            continue
        mean, low, high = bootstrap_ci(means, resamples, seed)
        k = int(solved.sum())
        rate = stats.binomtest(k, len(means)).proportion_ci(confidence_level=0.95,
                                                             method="exact")
        out.append(KeyPoint(label, by_label[label][0].variant, v, len(means), float(mean),
                            float(low), float(high), k, float(rate.low), float(rate.high)))
    return sorted(out, key=lambda p: (p.variant, p.value))
