"""Multi-seed report: learning curves with 95% bootstrap bands, tables at fixed env steps.

Reads every run under the given dirs (a Hydra multirun dir, a ``runs/`` tree, or run dirs; a
run dir is any directory holding ``config.yaml`` and ``logs/scalars/``), groups the runs by
task and variant (plus any config keys named with ``--label-by``) and writes, per task, to
``--out`` (default ``<first path>/report``, beside the runs): ``<task>.md`` (tables; also printed), ``<task>_return.png`` (eval return curves,
mean and 95% band over seeds, published anchors as markers), ``<task>_success.png``
(Metaworld), ``<task>_ops.png`` (OPS probabilities of ``ops-mbpo`` runs),
``<task>_members.png`` (every member's eval return, for runs made with
``eval.all_members=true``), ``<task>_terms.png`` (the Marino & Yue terms against the imagined
reward, for runs that logged them: ``rollout.information_weight > 0`` or
``policy.action_prior=true``); and ``index.md``. Every plot is written as PNG and as SVG
(same name, ``.svg``).

Usage:
    python recipes/report.py runs/                           # writes runs/report/
    python recipes/report.py runs/ --out docs/results        # rebuild the committed results
    python recipes/report.py multirun/2026-01-01/12-00-00 --marks 10000 50000 --threshold 800
    python recipes/report.py runs/ --label-by policy.action_prior

Statistics (docs/report.md): the 95% confidence interval of a mean over seeds is a BCa
bootstrap over seeds (``scipy.stats.bootstrap``, 2000 resamples, generator seeded with 0, so a
report is reproducible), the percentile bootstrap where BCa is degenerate (fewer than 3 seeds,
or every seed the same value). rliable (IQM, stratified bootstrap) is not used: ``pip install --dry-run
rliable`` with our pins would add nine packages (pandas, statsmodels, arch, seaborn, patsy,
formulaic, ...) for what is here a per-task mean over a few seeds: its IQM of 3 seeds trims
nothing (it is the plain mean) and its stratification over tasks does not apply. The step axis is env steps = agent steps * ``env.action_repeat`` (simulator frames).

Self-contained on purpose: ``recipes/`` was not an importable package when this was written.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from recipes.provenance import commits

DEFAULT_ANCHORS = Path(__file__).resolve().parent / "anchors"
"""The published anchors shipped with the package (``recipes/anchors/``: TD-MPC2's result files,
MIT, with their licence and a README)."""
DEFAULT_MARKS = (10_000, 25_000, 50_000, 100_000)
RESAMPLES = 2000
CI_SEED = 0
PHASES = ("env", "model", "rollout", "update")
VARIANT_ORDER = ("sac", "mbpo", "ps-mbpo", "ops-mbpo", "ps-mbpo-fixed")
X_LABEL = "env steps (simulator frames = agent steps x action_repeat)"
ANCHOR_NAMES = {"sac": "SAC", "tdmpc2": "TD-MPC2", "dreamerv3": "DreamerV3"}
# The Marino & Yue terms (docs/inference_perspective.md) and the imagined reward they sit beside.
# A task's page gets their table and plot when one of its runs logged a term (not the reward alone).
TERM_METRICS = ("imagined/reward", "imagined/information", "loss/kl_prior")


# ---------------------------------------------------------------- runs and their scalars


@dataclass
class Run:
    """One training run: where it is and the config fields the report groups by.

    Args:
        path: the run dir (holds ``config.yaml`` and ``logs/scalars/``).
        task: ``env.task`` of the config, e.g. ``"dmc:cartpole-swingup"``.
        variant: ``variant`` of the config (sac, mbpo, ps-mbpo, ops-mbpo, ps-mbpo-fixed).
        label: the group name: ``variant`` plus ``key=value`` of each ``--label-by`` key.
        seed: ``seed`` of the config.
        action_repeat: ``env.action_repeat`` (1 when missing); env steps = agent steps * it.
        config: the whole config as a plain dict.
    """

    path: Path
    task: str
    variant: str
    label: str
    seed: int
    action_repeat: int = 1
    config: dict = field(default_factory=dict, repr=False)

    def scalar(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Env steps and values of the scalar ``name`` (empty arrays when not logged)."""
        steps, values = read_scalar(self.path, name)
        return steps * self.action_repeat, values


def find_runs(paths: Sequence[str | os.PathLike]) -> tuple[list[Path], list[Path]]:
    """Run dirs at or below ``paths``, and the dirs with logs but no ``config.yaml``.

    Hidden dirs (``.hydra``, ``.git``) are not searched; symlinked dirs are not followed.

    Raises:
        ValueError: a path does not exist.
    """
    runs: set[Path] = set()
    no_config: set[Path] = set()
    for p in map(Path, paths):
        if not p.exists():
            raise ValueError(f"{p} does not exist (give run dirs or dirs that contain them)")
        for dirpath, dirnames, filenames in os.walk(p):
            d = Path(dirpath)
            if (d / "logs" / "scalars").is_dir():
                (runs if "config.yaml" in filenames else no_config).add(d.resolve())
            dirnames[:] = [n for n in dirnames if not n.startswith(".") and n != "logs"]
    return sorted(runs), sorted(no_config)


LABEL_DIR = "dir"  # --label-by key: the name of the run dir's parent, e.g. mbpo-oracle/seed0


def load_run(path: str | os.PathLike, label_by: Sequence[str] = ()) -> Run:
    """Read ``<path>/config.yaml`` into a :class:`Run`.

    ``label_by`` keys are dotted config keys, or ``"dir"`` for the name of the directory that
    holds the run dir (``<task>/<name>/seed<k>/``: runs that differ in code, not in config).

    ``env.task`` and ``env.action_repeat`` fall back to top-level ``task`` / ``action_repeat``
    (flat configs); ``action_repeat`` defaults to 1.

    Raises:
        ValueError: the config cannot be read or lacks ``variant``, ``seed`` or ``env.task``;
            the message names the file.
    """
    cfg_path = Path(path) / "config.yaml"
    try:
        cfg = _read_yaml(cfg_path)
    except Exception as exc:  # yaml syntax, OSError, ...: all mean "cannot read it"
        detail = " ".join(str(exc).split())  # yaml errors span lines: keep the message one line
        raise ValueError(
            f"cannot read run config {cfg_path}: {type(exc).__name__}: {detail}"
        ) from None
    if not isinstance(cfg, dict):
        raise ValueError(
            f"cannot read run config {cfg_path}: expected a mapping, got {type(cfg).__name__}"
        )

    def get(key: str, *fallbacks: str):
        for k in (key, *fallbacks):
            node = cfg
            for part in k.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            if node is not None:
                return node
        return None

    task = get("env.task", "task")
    found = {"variant": get("variant"), "seed": get("seed"), "env.task": task}
    missing = [k for k, v in found.items() if v is None]
    if missing:
        raise ValueError(f"run config {cfg_path} lacks {', '.join(missing)}")
    repeat = get("env.action_repeat", "action_repeat")
    try:
        seed = int(get("seed"))
        repeat = 1 if repeat is None else int(repeat)
    except (TypeError, ValueError):
        raise ValueError(
            f"run config {cfg_path}: seed and env.action_repeat must be integers"
        ) from None
    if repeat < 1:
        raise ValueError(f"run config {cfg_path}: env.action_repeat must be >= 1, got {repeat}")
    variant = str(get("variant"))
    holder = Path(path).resolve().parent.name
    label = " ".join([variant] + [f"{k}={holder if k == LABEL_DIR else get(k)}" for k in label_by])
    return Run(Path(path), str(task), variant, label, seed, repeat, cfg)


def _read_yaml(path: Path):
    """The YAML file as plain containers: omegaconf (interpolations resolved where they can be),
    else PyYAML."""
    try:
        from omegaconf import OmegaConf
    except ImportError:
        import yaml

        with open(path) as fh:
            return yaml.safe_load(fh)
    cfg = OmegaConf.load(path)
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # e.g. ${hydra:...} outside a Hydra app: keep the raw strings
        return OmegaConf.to_container(cfg, resolve=False)


def read_scalar(run_dir: str | os.PathLike, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Agent steps and values of ``logs/scalars/<name>.csv`` (rows ``step,value``, no header).

    A step logged twice (a resumed run appends) keeps its last value. A malformed last line is
    skipped (a running job may be writing it); a malformed earlier line is an error.

    Raises:
        ValueError: a malformed line other than the last; the message names file and line.
    """
    path = Path(run_dir) / "logs" / "scalars" / f"{name}.csv"
    if not path.is_file():
        return np.empty(0), np.empty(0)
    lines = path.read_text().splitlines()
    by_step: dict[int, float] = {}
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            step, value = line.split(",")
            by_step[int(float(step))] = float(value)
        except ValueError:
            if i == len(lines) - 1:
                break
            raise ValueError(f"{path}:{i + 1}: expected 'step,value', got {line!r}") from None
    steps = np.array(sorted(by_step), dtype=np.int64)
    return steps, np.array([by_step[s] for s in steps], dtype=np.float64)


# ---------------------------------------------------------------- statistics


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


# ---------------------------------------------------------------- per-task summary


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


def _variant_key(label: str) -> tuple:
    base = label.split(" ")[0]
    return (VARIANT_ORDER.index(base) if base in VARIANT_ORDER else len(VARIANT_ORDER), label)


def group_runs(runs: Sequence[Run]) -> dict[str, dict[str, list[Run]]]:
    """``{task: {label: [runs sorted by seed]}}``, labels in the order sac, mbpo, ps-mbpo, ....

    Raises:
        ValueError: two runs share task, label and seed (the message lists config keys that
            differ between them, to pass to ``--label-by``).
    """
    groups: dict[str, dict[str, list[Run]]] = {}
    for run in runs:
        groups.setdefault(run.task, {}).setdefault(run.label, []).append(run)
    for task, by_label in groups.items():
        for label, members in by_label.items():
            members.sort(key=lambda r: r.seed)
            for a, b in zip(members, members[1:]):
                if a.seed == b.seed:
                    diff = _differing_keys(a.config, b.config)
                    hint = (f"keys that differ: {', '.join(diff[:5])} (use --label-by)" if diff
                            else "same config: pass only one of them")
                    raise ValueError(
                        f"two runs of {task} {label} with seed {a.seed}: {a.path} and {b.path}; "
                        + hint
                    )
        groups[task] = dict(sorted(by_label.items(), key=lambda kv: _variant_key(kv[0])))
    return dict(sorted(groups.items()))


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _differing_keys(a: dict, b: dict) -> list[str]:
    fa, fb = _flatten(a), _flatten(b)
    skip = re.compile(r"(^|\.)(run_dir|resume|output_dir|dir|hydra)($|\.)")
    return sorted(k for k in set(fa) | set(fb) if fa.get(k) != fb.get(k) and not skip.search(k))


def load_anchors(anchors: Path | None, task: str, column: str) -> dict[str, dict[int, np.ndarray]]:
    """Published reference results for ``task``: ``{algorithm: {env step: per-seed values}}``.

    Reads ``<anchors>/tdmpc2_results/<algorithm>_<name>.csv`` (or ``<anchors>/<...>.csv``)
    with columns ``step,<column>,seed``; ``<name>`` is ``cartpole-swingup`` for
    ``dmc:cartpole-swingup``, ``cartpole-swingup-sparse`` for ``dmc:cartpole-swingup_sparse``
    (TD-MPC2 writes dm_control's underscores as hyphens) and ``mw-window-open`` for
    ``metaworld:window-open-v3``. Missing dir or file: no anchors.
    """
    if anchors is None:
        return {}
    folder = anchors / "tdmpc2_results" if (anchors / "tdmpc2_results").is_dir() else anchors
    suite, _, name = task.partition(":")
    if suite == "dmc":
        stem = name.replace("_", "-")
    elif suite == "metaworld":
        stem = "mw-" + re.sub(r"-v\d+$", "", name)
    else:
        return {}
    out: dict[str, dict[int, np.ndarray]] = {}
    for path in sorted(folder.glob(f"*_{stem}.csv")) if folder.is_dir() else []:
        algo = path.name[: -len(f"_{stem}.csv")]
        if "_" in algo:  # "<algorithm>_<name>.csv" only
            continue
        with open(path) as fh:
            rows = list(csv.DictReader(fh))
        if not rows or column not in rows[0]:
            continue
        by_step: dict[int, list[float]] = {}
        for row in rows:
            by_step.setdefault(int(float(row["step"])), []).append(float(row[column]))
        out[algo] = {s: np.array(v) for s, v in sorted(by_step.items())}
    return out


@dataclass
class TaskSummary:
    """Everything a task's tables and plots show (see :func:`summarize`)."""

    task: str
    metaworld: bool
    labels: list[str]
    seeds: dict[str, list[int]]
    reached: dict[str, tuple[int, int] | None]  # label -> (min, max) over seeds of last eval step
    curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]]
    at_marks: dict[str, dict[str, dict[int, Cell]]]  # metric -> label -> mark -> cell
    to_threshold: dict[str, tuple[float, int, int]]  # label -> (mean step, reached, seeds)
    timing: dict[str, dict[str, Cell]]  # label -> phase (and "total") -> s per 1K agent steps
    anchors: dict[str, dict[str, dict[int, np.ndarray]]]  # metric -> algorithm -> step -> values
    marks: tuple[int, ...]
    threshold: float
    resamples: int = RESAMPLES
    success_threshold: float = 0.9
    # label -> (mean step, reached, seeds) of eval/success >= success_threshold (Metaworld)
    to_success: dict[str, tuple[float, int, int]] = field(default_factory=dict)
    # label -> ("worst" | "mean" | "best") -> mark -> cell, over the members of each seed
    members: dict[str, dict[str, dict[int, Cell]]] = field(default_factory=dict)
    # label -> term metric (TERM_METRICS) -> mark -> cell: every group that logged one of them,
    # when at least one group of the task logged a term (not only the imagined reward)
    terms: dict[str, dict[str, dict[int, Cell]]] = field(default_factory=dict)
    # label -> term metric -> (grid, mean, low, high, seeds that logged it), same groups
    term_curves: dict[str, dict[str, tuple]] = field(default_factory=dict)


def member_curves(run: Run) -> list[tuple[np.ndarray, np.ndarray]]:
    """``eval/return_member<i>`` of every member ``i`` (runs with ``eval.all_members=true``),
    in member order (a member with no rows yet: empty arrays); empty when the run did not
    log them."""
    found = (run.path / "logs" / "scalars" / "eval").glob("return_member*.csv")
    index = sorted(int(f.stem[len("return_member"):]) for f in found
                   if f.stem[len("return_member"):].isdigit())
    return [run.scalar(f"eval/return_member{i}") for i in index]


MEMBER_STATS = {"worst": np.min, "mean": np.mean, "best": np.max}


def summarize(
    task: str,
    by_label: dict[str, list[Run]],
    marks: Sequence[int] = DEFAULT_MARKS,
    threshold: float = 800.0,
    anchors: Path | None = None,
    resamples: int = RESAMPLES,
    seed: int = CI_SEED,
    success_threshold: float = 0.9,
) -> TaskSummary:
    """Curves, values at ``marks``, steps to ``threshold`` and timings of one task's groups.

    Args:
        task: the task name (``env.task``).
        by_label: ``{label: runs}`` of this task (from :func:`group_runs`).
        marks: env steps at which the tables report the metrics.
        threshold: eval return whose first reaching (per seed) the table reports.
        anchors: the anchors dir (None: no anchors).
        resamples: bootstrap resamples of every interval.
        seed: bootstrap generator seed (each interval restarts from it).
        success_threshold: eval success rate whose first reaching (per seed) the table
            reports for Metaworld tasks.
    """
    metaworld = task.startswith("metaworld:")
    metrics = {"eval/return": "reward"} | ({"eval/success": "success"} if metaworld else {})
    s = TaskSummary(task, metaworld, list(by_label), {}, {}, {}, {}, {}, {}, {}, tuple(marks),
                    threshold, resamples, success_threshold)

    def cell(values: Sequence[float | None]) -> Cell:
        return Cell.of([v for v in values if v is not None], resamples, seed)

    for metric, column in metrics.items():
        s.curves[metric], s.at_marks[metric] = {}, {}
        s.anchors[metric] = load_anchors(anchors, task, column)
        for label, runs in by_label.items():
            logged = [c for c in (r.scalar(metric) for r in runs) if len(c[0])]
            grid, ys = align(logged) if logged else (np.empty(0), None)
            if len(grid):
                s.curves[metric][label] = (grid, *bootstrap_ci(ys, resamples, seed))
            s.at_marks[metric][label] = {m: cell([value_at(*c, m) for c in logged]) for m in marks}
    for label, runs in by_label.items():
        s.seeds[label] = [r.seed for r in runs]
        curves = [c for c in (r.scalar("eval/return") for r in runs) if len(c[0])]
        lasts = [int(steps[-1]) for steps, _ in curves]
        s.reached[label] = (min(lasts), max(lasts)) if lasts else None
        s.to_threshold[label] = first_reaching(curves, threshold)
        if metaworld:
            successes = [c for c in (r.scalar("eval/success") for r in runs) if len(c[0])]
            s.to_success[label] = first_reaching(successes, success_threshold)
        rates = [[seconds_per_1k(*read_scalar(r.path, f"time/{p}_s")) for p in PHASES]
                 for r in runs]
        s.timing[label] = {p: cell([r[i] for r in rates]) for i, p in enumerate(PHASES)}
        totals = [sum(v for v in r if v is not None) if any(v is not None for v in r) else None
                  for r in rates]
        s.timing[label]["total"] = cell(totals)
        per_seed = [c for c in (member_curves(r) for r in runs) if len(c) > 1]
        if per_seed:
            s.members[label] = {name: {} for name in MEMBER_STATS}
            for m in marks:
                # each seed's members at mark m; a seed missing any member there does not count
                at_m = [[value_at(*c, m) for c in curves] for curves in per_seed]
                at_m = [vals for vals in at_m if None not in vals]
                for name, stat in MEMBER_STATS.items():
                    s.members[label][name][m] = cell([float(stat(vals)) for vals in at_m])
    # The terms: every group with an imagined reward, as soon as one group of the task logged a
    # term (so that the arm with neither term shows its imagined reward beside the others').
    logged_terms = {label: {metric: [c for c in (r.scalar(metric) for r in runs) if len(c[0])]
                            for metric in TERM_METRICS} for label, runs in by_label.items()}
    if any(by_metric[m] for by_metric in logged_terms.values() for m in TERM_METRICS[1:]):
        for label, by_metric in logged_terms.items():
            for metric, logged in by_metric.items():
                if not logged:
                    continue
                s.terms.setdefault(label, {})[metric] = {
                    m: cell([value_at(*c, m) for c in logged]) for m in marks}
                grid, ys = align(logged)
                if len(grid):
                    s.term_curves.setdefault(label, {})[metric] = (
                        grid, *bootstrap_ci(ys, resamples, seed), len(logged))
    return s


# ---------------------------------------------------------------- markdown and plots


def _slug(task: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", task)


def _row(*cells: object) -> str:
    return "| " + " | ".join(map(str, cells)) + " |"


def _rows_at_marks(head: str, nested: dict[str, dict[str, dict[int, Cell]]],
                   marks: Sequence[int], digits: int) -> list[str]:
    """A table with one row ``"<label>: <name>"`` per ``nested[label][name]`` (mark -> cell)."""
    lines = [_row(head, *(f"{m:,}" for m in marks)), _row(*["---"] * (len(marks) + 1))]
    for label, by_name in nested.items():
        for name, cells in by_name.items():
            lines.append(_row(f"{label}: {name}", *(cells[m].format(digits) for m in marks)))
    return lines


def task_markdown(s: TaskSummary, images: Sequence[str] = ()) -> str:
    """The markdown page of one task: runs, values at the marks, steps to threshold, timing."""
    lines = [f"# {s.task}", ""]
    lines += [f"![{Path(i).stem}]({i})" for i in images] + ([""] if images else [])
    lines += [
        "Values: mean over seeds [95% bootstrap CI of the mean over seeds] "
        f"(scipy.stats.bootstrap, {s.resamples} resamples): BCa, or the percentile interval "
        "where BCa is degenerate (n < 3, or every seed the same value: then a point); "
        "n = seeds with a value. Steps are env steps "
        "(agent steps x action_repeat); a seed's value at a mark is interpolated linearly "
        "between its evaluations around it, and a seed that stopped before the mark does not "
        "count. Curves are drawn only over the steps every seed of the variant reached (up to "
        "the smallest 'last eval' below); a curve with one evaluation is a marker. Every "
        "plot is also saved as SVG beside its PNG (same name, .svg).",
        "",
        _row("variant", "seeds", "last eval (env steps, min-max over seeds)"),
        _row("---", "---", "---"),
    ]
    for label in s.labels:
        seeds, reached = s.seeds[label], s.reached[label]
        span = "-" if reached is None else f"{reached[0]}-{reached[1]}"
        lines.append(_row(label, f"{len(seeds)} ({', '.join(map(str, seeds))})", span))
    for metric, digits in (("eval/return", 1), ("eval/success", 2)):
        if metric not in s.at_marks:
            continue
        lines += ["", f"## {metric} at env steps", ""]
        lines.append(_row("variant", *(f"{m:,}" for m in s.marks)))
        lines.append(_row(*["---"] * (len(s.marks) + 1)))
        for label in s.labels:
            cells = s.at_marks[metric][label]
            lines.append(_row(label, *(cells[m].format(digits) for m in s.marks)))
        anchor_rows = 0
        for algo, by_step in s.anchors[metric].items():
            if not any(m in by_step for m in s.marks):
                continue
            cells = [Cell.of(by_step[m], s.resamples) if m in by_step else Cell() for m in s.marks]
            name = f"anchor: {ANCHOR_NAMES.get(algo, algo)} (TD-MPC2 results)"
            lines.append(_row(name, *(c.format(digits) for c in cells)))
            anchor_rows += 1
        if anchor_rows:
            lines += ["", "Anchor rows: published results shipped with the TD-MPC2 repository "
                      "(their own settings, networks and action repeat), shown only at the marks "
                      "they logged."]
    if s.members:
        lines += ["", "## every member's eval return at env steps", "",
                  "Runs made with `eval.all_members=true`: each seed's worst, mean and best "
                  "member (deterministic episodes of every member at every evaluation), then "
                  "mean [CI] of those over seeds. The `eval/return` table above evaluates one "
                  "member per round, the posterior's most likely.", ""]
        lines += _rows_at_marks("variant: member", s.members, s.marks, 1)
    if s.terms:
        lines += ["", "## Marino & Yue terms at env steps", "",
                  "Shown because a run of this task logged a term (docs/inference_perspective.md). "
                  "`imagined/information`: the unweighted term log p_n - log mixture, mean over one "
                  "step's imagined transitions (at most log of the number of members; its "
                  "expectation is >= 0); `imagined/reward`: the reward the policies learn from, "
                  "which already includes +/- beta x that term (every model-based group, so the "
                  "arm with neither term is there to compare); `loss/kl_prior`: the sampled "
                  "KL(pi || p_a) of the action prior, mean over members. A seed's value at a mark "
                  "is interpolated between its logged values; mean [CI] over seeds.", ""]
        lines += _rows_at_marks("variant: term", s.terms, s.marks, 3)
    lines += ["", f"## env steps to eval return >= {s.threshold:g}", "",
              _row("variant", "mean env steps (seeds that reached it)", "reached"),
              _row("---", "---", "---")]
    for label in s.labels:
        mean, got, n = s.to_threshold[label]
        lines.append(_row(label, "-" if got == 0 else f"{mean:.0f}", f"{got}/{n}"))
    if s.to_success:
        lines += ["", f"## env steps to eval success >= {s.success_threshold:g}", "",
                  _row("variant", "mean env steps (seeds that reached it)", "reached"),
                  _row("---", "---", "---")]
        for label in s.labels:
            mean, got, n = s.to_success.get(label, (math.nan, 0, 0))
            lines.append(_row(label, "-" if got == 0 else f"{mean:.0f}", f"{got}/{n}"))
    lines += ["", "## wall-clock seconds per 1K agent steps, by phase", "",
              _row("variant", *PHASES, "total"), _row(*["---"] * (len(PHASES) + 2))]
    for label in s.labels:
        lines.append(_row(label, *(s.timing[label][p].format(2) for p in (*PHASES, "total"))))
    return "\n".join(lines) + "\n"


def _seeds(n: int) -> str:
    return f"{n} seed{'s' if n > 1 else ''}"


def _save(fig, out: Path) -> Path:
    """Lay out, write ``out`` (PNG) and the same figure as SVG beside it, close ``fig``; return
    ``out``. The SVG carries no date and fixed element ids, so the same data gives the same
    file."""
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    with _pyplot().rc_context({"svg.hashsalt": "report"}):
        fig.savefig(out.with_suffix(".svg"), metadata={"Date": None})
    _pyplot().close(fig)
    return out


def _line(ax, x, y, **kwargs):
    """``ax.plot`` that draws a lone point as a marker (a one-point line draws nothing)."""
    if len(x) == 1:
        kwargs.setdefault("marker", "o")
    return ax.plot(x, y, **kwargs)


def _band(ax, x, low, high, color) -> None:
    """The confidence band: filled between ``low`` and ``high``; an error bar at a lone point."""
    if len(x) == 1:
        ax.vlines(x, low, high, color=color, alpha=0.5, linewidth=3)
    else:
        ax.fill_between(x, low, high, color=color, alpha=0.2, linewidth=0)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_metric(s: TaskSummary, metric: str, out: Path) -> Path | None:
    """Mean curve and 95% band per variant, anchors as markers; None if nothing to draw."""
    if not s.curves.get(metric):
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = plt.get_cmap("tab10")
    xmax = 0.0
    for i, label in enumerate(s.labels):
        if label not in s.curves[metric]:
            continue
        grid, mean, lo, hi = s.curves[metric][label]
        n = len(s.seeds[label])
        _line(ax, grid, mean, color=colors(i % 10), label=f"{label} ({_seeds(n)})")
        if n > 1:
            _band(ax, grid, lo, hi, colors(i % 10))
        xmax = max(xmax, float(grid[-1]))
    for algo, marker in zip(s.anchors.get(metric, {}), "sX^Dv"):
        by_step = s.anchors[metric][algo]
        shown = [st for st in by_step if st <= xmax]
        if not any(st > 0 for st in shown):  # a short run still shows the nearest reference
            shown += [st for st in by_step if st > xmax][:1]
        ax.plot(shown, [by_step[st].mean() for st in shown], marker, color="0.3",
                linestyle="none",
                label=f"anchor: {ANCHOR_NAMES.get(algo, algo)} (published, other settings)")
    ax.set_xlabel(X_LABEL)
    ax.set_ylabel(metric.replace("/", " "))
    ax.set_title(f"{s.task}: mean and 95% bootstrap CI over seeds")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, out)


def plot_ops(task: str, by_label: dict[str, list[Run]], out: Path) -> Path | None:
    """For each ops-mbpo group: mean over seeds of max_i p_i, and each p_i of its lowest seed."""
    groups = {label: runs for label, runs in by_label.items() if runs[0].variant == "ops-mbpo"}
    data = {}
    for label, runs in groups.items():
        per_run = []
        for r in runs:
            found = (r.path / "logs" / "scalars" / "ops").glob("p*.csv")
            index = sorted(int(f.stem[1:]) for f in found if f.stem[1:].isdigit())
            per_run.append([r.scalar(f"ops/p{i}") for i in index])
        maxes = []
        for r, probs in zip(runs, per_run):
            if probs and all(len(p[0]) for p in probs):
                grid, ys = align(probs)
                if len(grid):
                    maxes.append((grid, ys.max(0)))
            elif len(r.scalar("ops/max_prob")[0]):
                maxes.append(r.scalar("ops/max_prob"))
        if maxes:
            data[label] = (maxes, runs[0].seed, per_run[0])
    if not data:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(len(data), 2, figsize=(11, 3.6 * len(data)), squeeze=False)
    for (label, (maxes, seed0, probs0)), (ax_max, ax_p) in zip(data.items(), axes):
        grid, ys = align(maxes)
        if len(grid):
            _line(ax_max, grid, ys.mean(0), label=f"mean over {_seeds(len(maxes))}")
        k = len(probs0)
        if k:
            ax_max.axhline(1 / k, color="0.5", linestyle="--", linewidth=1, label=f"uniform 1/{k}")
        ax_max.set_title(f"{label}: max_i p_i")
        for i, (st, v) in enumerate(probs0):
            _line(ax_p, st, v, label=f"p{i}", linewidth=1)
        ax_p.set_title(f"{label}: p_i, seed {seed0}")
        for ax in (ax_max, ax_p):
            ax.set_xlabel(X_LABEL, fontsize=8)
            ax.set_ylim(0, 1.02)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, ncol=2)
    fig.suptitle(f"{task}: OPS probabilities over time")
    return _save(fig, out)


def plot_members(task: str, by_label: dict[str, list[Run]], out: Path) -> Path | None:
    """Every member's eval return over time, one panel per (group, seed) that logged them,
    with the posterior's evaluated member (``eval/return``) dashed; None if no run did."""
    panels = [(label, r, member_curves(r)) for label, runs in by_label.items() for r in runs]
    panels = [p for p in panels if len(p[2]) > 1]
    if not panels:
        return None
    plt = _pyplot()
    cols = min(len(panels), 3)
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.4 * rows), squeeze=False)
    for ax, (label, run, curves) in zip(axes.flat, panels):
        for i, (st, v) in enumerate(curves):
            _line(ax, st, v, linewidth=1, label=f"member {i}")
        st, v = run.scalar("eval/return")
        _line(ax, st, v, color="k", linestyle="--", linewidth=1,
              label="eval/return (evaluated member)")
        ax.set_title(f"{label}, seed {run.seed}", fontsize=9)
        ax.set_xlabel(X_LABEL, fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(f"{task}: every member's deterministic eval return")
    return _save(fig, out)


def plot_terms(s: TaskSummary, out: Path) -> Path | None:
    """One panel per logged metric of TERM_METRICS, mean and 95% band over the seeds that
    logged it, for every group of ``s.terms``; None if no group logged a term."""
    metrics = [m for m in TERM_METRICS if any(m in c for c in s.term_curves.values())]
    if not metrics:
        return None
    plt = _pyplot()
    colors = plt.get_cmap("tab10")
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.8 * len(metrics), 3.8), squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        for label, curves in s.term_curves.items():
            if metric not in curves:
                continue
            i = s.labels.index(label)
            grid, mean, lo, hi, n = curves[metric]
            _line(ax, grid, mean, color=colors(i % 10), linewidth=1,
                  label=f"{label} ({_seeds(n)})")
            if n > 1:
                _band(ax, grid, lo, hi, colors(i % 10))
        ax.axhline(0, color="0.5", linewidth=0.8)
        ax.set_title(metric, fontsize=9)
        ax.set_xlabel(X_LABEL, fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{s.task}: the Marino & Yue terms beside the imagined reward (mean, 95% CI)")
    return _save(fig, out)


def run_code(run: Run) -> str:
    """The code that made a run: its commit(s) from ``provenance.json`` (``+dirty`` for a tree
    with uncommitted changes, several joined by ``then`` for a run resumed by other code), or
    ``"not recorded"``."""
    found = commits(run.path)
    return " then ".join(c or "not a git checkout" for c in found) if found else "not recorded"


def code_markdown(by_label: Mapping[str, Sequence[Run]]) -> str:
    """The "Code" section of a task page: which commit made each run, and whether they agree."""
    rows = [(label, run.seed, run_code(run)) for label, runs in by_label.items() for run in runs]
    distinct = sorted({code for _, _, code in rows})
    lines = ["", "## Code", ""]
    if len(distinct) == 1 and distinct[0] != "not recorded" and "+dirty" not in distinct[0] \
            and " then " not in distinct[0]:
        lines.append(f"Every run on this page was made by commit {distinct[0]} (its "
                     "`provenance.json`).")
    else:
        lines.append(f"**The runs on this page come from {len(distinct)} code versions** "
                     "(commit per run below, from each run's `provenance.json`; `not recorded`: "
                     "a run made before runs recorded their code). Compare them knowing that.")
    lines += ["", _row("variant", "seed", "commit"), _row("---", "---", "---")]
    lines += [_row(label, seed, code) for label, seed, code in rows]
    return "\n".join(lines) + "\n"


def check_same_commit(task: str, by_label: Mapping[str, Sequence[Run]]) -> None:
    """Raise ``ValueError`` naming the runs unless every run of ``task`` was made by one commit of
    clean code."""
    codes: dict[str, list[str]] = {}
    for runs in by_label.values():
        for run in runs:
            codes.setdefault(run_code(run), []).append(str(run.path))
    bad = {c: p for c, p in codes.items() if c == "not recorded" or "+dirty" in c or " then " in c}
    if len(codes) > 1 or bad:
        shown = "; ".join(f"{c}: {len(p)} run(s), e.g. {p[0]}" for c, p in sorted(codes.items()))
        raise ValueError(f"--same-commit: the runs of {task} do not come from one commit of clean "
                         f"code ({shown})")


def write_report(
    paths: Sequence[str | os.PathLike],
    out: str | os.PathLike | None = None,
    marks: Sequence[int] = DEFAULT_MARKS,
    threshold: float | Mapping[str, float] = 800.0,
    label_by: Sequence[str] = (),
    anchors: str | os.PathLike | None = DEFAULT_ANCHORS,
    resamples: int = RESAMPLES,
    seed: int = CI_SEED,
    success_threshold: float = 0.9,
    same_commit: bool = False,
) -> dict[str, str]:
    """Write every task's page and plots and ``index.md`` under ``out``; return the pages.

    Each page ends with the code that made its runs (:func:`code_markdown`, from each run's
    ``provenance.json``).

    Args:
        paths: run dirs, or dirs that contain them (a Hydra multirun dir, a ``runs/`` tree).
        out: output dir; ``None`` (default): :func:`default_out` of ``paths``, a ``report``
            dir beside the runs (pass ``"docs/results"`` to rebuild the committed results).
        marks: env steps at which the tables report eval return (and success).
        threshold: eval return for the steps-to-threshold table: one number for every task,
            or ``{task: number}`` with an optional ``""`` entry for the other tasks
            (default 800), e.g. ``{"": 800, "dmc:cartpole-swingup_sparse": 300}``.
        label_by: dotted config keys whose values are appended to the variant name.
        same_commit: refuse (``ValueError``) a task whose runs were not all made by one
            commit of clean code (a run without a record, a dirty tree, or two commits).
        anchors: dir of the published anchors; None or a missing dir: no anchors.
        resamples: bootstrap resamples.
        seed: bootstrap generator seed.
        success_threshold: eval success rate in [0, 1] for the steps-to-success table of
            Metaworld tasks (default 0.9, the target set for the learning results).

    Returns:
        ``{task: markdown of its page}``.

    Raises:
        ValueError: no runs under ``paths``, a path does not exist, a config cannot be read,
            or two runs collide on (task, label, seed), or ``success_threshold`` is not in
            [0, 1].
    """
    if not marks or any(int(m) <= 0 for m in marks):
        raise ValueError(f"marks must be positive env steps, got {list(marks)}")
    thresholds = dict(threshold) if isinstance(threshold, Mapping) else {"": threshold}
    bad_t = {k: v for k, v in thresholds.items() if not math.isfinite(float(v))}
    if bad_t:
        raise ValueError(f"threshold must be a finite number, got {bad_t}")
    if not 0.0 <= float(success_threshold) <= 1.0:
        raise ValueError(f"--success-threshold is a success rate in [0, 1], got {success_threshold:g}")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    bad = [k for k in label_by if not re.fullmatch(r"[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*", k)]
    if bad:
        raise ValueError(f"--label-by takes dotted config keys like policy.action_prior, got {bad}")
    run_dirs, no_config = find_runs(paths)
    if no_config:
        print(f"note: skipped {len(no_config)} dir(s) with logs/scalars but no config.yaml, "
              f"e.g. {no_config[0]}", file=sys.stderr)
    if not run_dirs:
        raise ValueError("no run dirs (a dir holding config.yaml and logs/scalars/) under "
                         + ", ".join(map(str, paths)))
    groups = group_runs([load_run(d, label_by) for d in run_dirs])
    if same_commit:
        for task, by_label in groups.items():
            check_same_commit(task, by_label)
    unknown = sorted(k for k in thresholds if k and k not in groups)
    if unknown:
        raise ValueError(f"--threshold names task(s) {unknown} that no run has; the runs' tasks: "
                         f"{sorted(groups)}")
    anchors = Path(anchors) if anchors is not None else None
    out = default_out(paths) if out is None else Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pages: dict[str, str] = {}
    index = ["# Results", "", "| task | variants (seeds) | table | plots |", "|---|---|---|---|"]
    for task, by_label in groups.items():
        s = summarize(task, by_label, tuple(int(m) for m in marks),
                      float(thresholds.get(task, thresholds.get("", 800.0))), anchors,
                      resamples, seed, success_threshold)
        slug = _slug(task)
        written = [
            plot_metric(s, "eval/return", out / f"{slug}_return.png"),
            plot_metric(s, "eval/success", out / f"{slug}_success.png") if s.metaworld else None,
            plot_ops(task, by_label, out / f"{slug}_ops.png"),
            plot_members(task, by_label, out / f"{slug}_members.png"),
            plot_terms(s, out / f"{slug}_terms.png"),
        ]
        images = [p.name for p in written if p is not None]
        pages[task] = task_markdown(s, images) + code_markdown(by_label)
        (out / f"{slug}.md").write_text(pages[task])
        variants = ", ".join(f"{label} ({len(s.seeds[label])})" for label in s.labels)
        index.append(f"| {task} | {variants} | [{slug}.md]({slug}.md) | "
                     + " ".join(f"[{Path(i).stem}]({i}) ([svg]({Path(i).stem}.svg))"
                                for i in images) + " |")
    (out / "index.md").write_text("\n".join(index) + "\n")
    return pages


def default_out(paths: Sequence[str | os.PathLike]) -> Path:
    """Where a report goes without ``--out``: ``<first path>/report``, beside the runs (never
    into the repository's committed ``docs/results``).

    Examples:
        >>> default_out(["multirun/2026-01-01/12-00-00", "runs"]).as_posix()
        'multirun/2026-01-01/12-00-00/report'
    """
    if not paths:
        raise ValueError("no paths given (give run dirs or dirs that contain them)")
    return Path(paths[0]) / "report"


# ---------------------------------------------------------------- CLI


def parse_thresholds(items: Sequence[str]) -> dict[str, float]:
    """``["800", "dmc:cartpole-swingup_sparse=300"]`` -> ``{"": 800.0, "dmc:...": 300.0}``.

    Examples:
        >>> parse_thresholds(["800", "dmc:cartpole-swingup_sparse=300"])
        {'': 800.0, 'dmc:cartpole-swingup_sparse': 300.0}
    """
    out: dict[str, float] = {}
    for item in items:
        task, _, value = item.rpartition("=")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number) or (not task and "=" in item):
            raise ValueError(f"--threshold takes a number or TASK=NUMBER, got {item!r}")
        out[task] = number
    return out


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage block
        self.exit(2, f"error: {message} (see --help)\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: print every task's tables and write the report; 0 on success, 1 on error."""
    parser = _Parser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="run dirs or dirs containing them")
    parser.add_argument("--out", default=None,
                        help="output dir (default: <first path>/report, beside the runs; "
                             "--out docs/results rebuilds the committed results)")
    parser.add_argument("--marks", type=int, nargs="+", default=list(DEFAULT_MARKS),
                        help="env steps at which the tables report (default 10K 25K 50K 100K)")
    parser.add_argument("--threshold", nargs="+", default=["800"], metavar="[TASK=]RETURN",
                        help="eval return of the steps-to-threshold table: one number for every "
                             "task and/or TASK=NUMBER per task, e.g. --threshold 800 "
                             "dmc:cartpole-swingup_sparse=300 (default 800)")
    parser.add_argument("--success-threshold", type=float, default=0.9, metavar="RATE",
                        help="eval success rate of the steps-to-success table of Metaworld "
                             "tasks, in [0, 1] (default 0.9)")
    parser.add_argument("--label-by", default="",
                        help="comma-separated dotted config keys appended to the variant name "
                             "('dir': the name of the dir holding each run dir)")
    parser.add_argument("--same-commit", action="store_true",
                        help="refuse a task whose runs were not all made by one commit of clean "
                             "code (each run's provenance.json)")
    parser.add_argument("--anchors", default=None,
                        help=f"published anchors dir (default {DEFAULT_ANCHORS})")
    args = parser.parse_args(argv)
    anchors = Path(args.anchors) if args.anchors else DEFAULT_ANCHORS
    if args.anchors and not anchors.is_dir():
        print(f"note: anchors dir {anchors} not found; no anchors drawn", file=sys.stderr)
    label_by = [k.strip() for k in args.label_by.split(",") if k.strip()]
    try:
        thresholds = parse_thresholds(args.threshold)
        pages = write_report(args.paths, args.out, args.marks, thresholds, label_by, anchors,
                             success_threshold=args.success_threshold,
                             same_commit=args.same_commit)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for page in pages.values():
        print(page)
    out = Path(args.out) if args.out else default_out(args.paths)
    print(f"wrote {out / 'index.md'} and {len(pages)} task page(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
