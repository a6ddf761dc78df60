"""One task's numbers: curves, values at the marks, steps to threshold, timings, members and
the Marino & Yue terms of every group (:func:`summarize`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from torchrl_psmbpo.recipes.report.compare import ArmTest, KeyPoint, along_key, compare_arms
from torchrl_psmbpo.recipes.report.runs import Run, load_anchors, member_curves, read_scalar
from torchrl_psmbpo.recipes.report.stats import (
    CI_SEED,
    RESAMPLES,
    Cell,
    align,
    bootstrap_ci,
    first_reaching,
    seconds_per_1k,
    value_at,
)
from torchrl_psmbpo.recipes.rundir import PHASES

DEFAULT_MARKS = (10_000, 25_000, 50_000, 100_000)
# The Marino & Yue terms (docs/inference_perspective.md) and the imagined reward they sit beside.
# A task's page gets their table and plot when one of its runs logged a term (not the reward alone).
TERM_METRICS = ("imagined/reward", "imagined/information", "loss/kl_prior")


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
    # the reference arm and every other arm's tests against it (compare.py), when asked for
    reference: str | None = None
    versus: dict[str, ArmTest] = field(default_factory=dict)
    # key name -> every arm at its value of that --label-by key, when a variant has two or more
    # (compare.along_key): the ablation over M
    along: dict[str, list[KeyPoint]] = field(default_factory=dict)


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
    reference: str | None = None,
    keys: Sequence[str] = (),
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
        reference: an arm (label) to test every other arm against (:func:`compare_arms`,
            with ``threshold`` as what counts as solved); None: no tests.
        keys: names of ``--label-by`` keys (``"M"``) to lay the arms out against
            (:func:`along_key`, same measures as the tests).
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
    if reference is not None:
        s.reference = reference
        s.versus = compare_arms(by_label, reference, threshold, resamples, seed)
    for name in keys:
        points = along_key(by_label, name, threshold, resamples, seed)
        if points:
            s.along[name] = points
    return s

