"""The report: every task's page and plots, and ``index.md`` (:func:`write_report`)."""

from __future__ import annotations

import math
import os
import re
import sys
from pathlib import Path
from typing import Mapping, Sequence

from torchrl_psmbpo.recipes.report.markdown import runs_markdown, task_markdown
from torchrl_psmbpo.recipes.report.plots import (plot_along, plot_members, plot_metric, plot_ops,
                                                 plot_terms)
from torchrl_psmbpo.recipes.report.runs import DEFAULT_ANCHORS, check_same_commit, find_runs, group_runs, load_run
from torchrl_psmbpo.recipes.report.stats import CI_SEED, RESAMPLES
from torchrl_psmbpo.recipes.report.summary import DEFAULT_MARKS, summarize


def _slug(task: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", task)


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
    reference: str | None = None,
) -> dict[str, str]:
    """Write every task's page and plots and ``index.md`` under ``out``; return the pages.

    Each page ends with its runs, one row each, and the code that made them
    (:func:`runs_markdown`, from each run's logs and ``provenance.json``).

    Args:
        paths: run dirs, or dirs that contain them (a Hydra multirun dir, a ``runs/`` tree).
        out: output dir; ``None`` (default): :func:`default_out` of ``paths``, a ``report``
            dir beside the runs (pass ``"docs/results"`` to rebuild the committed results).
        marks: env steps at which the tables report eval return (and success).
        threshold: eval return for the steps-to-threshold table: one number for every task,
            or ``{task: number}`` with an optional ``""`` entry for the other tasks
            (default 800), e.g. ``{"": 800, "dmc:cartpole-swingup_sparse": 300}``.
        label_by: dotted config keys whose values are appended to the variant name
            (``key=value``); ``NAME=key`` appends ``NAME=value``; ``"dir"`` the name of the
            dir holding each run dir.
        same_commit: refuse (``ValueError``) a task whose runs were not all made by one
            commit of clean code (a run without a record, a dirty tree, or two commits).
        anchors: dir of the published anchors; None or a missing dir: no anchors.
        reference: an arm to test every other arm of a task against (the page's "against"
            section: difference of run means with its interval and Welch test, solved counts
            with Fisher's test, and what each could detect); tasks without that arm get
            no such section.
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
    word = r"[A-Za-z0-9_\-]+"
    bad = [k for k in label_by if not re.fullmatch(rf"({word}=)?{word}(\.{word})*", k)]
    if bad:
        raise ValueError("--label-by takes dotted config keys like policy.action_prior, each "
                         "optionally under a short name (M=posterior.policies_per_model), "
                         f"got {bad}")
    run_dirs, no_config = find_runs(paths)
    if no_config:
        print(f"note: skipped {len(no_config)} dir(s) with logs/scalars but no config.yaml, "
              f"e.g. {no_config[0]}", file=sys.stderr)
    if not run_dirs:
        raise ValueError("no run dirs (a dir holding config.yaml and logs/scalars/) under "
                         + ", ".join(map(str, paths)))
    runs = [load_run(d, label_by) for d in run_dirs]
    keys = list(runs[0].keys)  # every run has the --label-by names, as load_run named them
    groups = group_runs(runs)
    if same_commit:
        for task, by_label in groups.items():
            check_same_commit(task, by_label)
    unknown = sorted(k for k in thresholds if k and k not in groups)
    if unknown:
        raise ValueError(f"--threshold names task(s) {unknown} that no run has; the runs' tasks: "
                         f"{sorted(groups)}")
    if reference is not None and not any(reference in by_label for by_label in groups.values()):
        arms = sorted({label for by_label in groups.values() for label in by_label})
        raise ValueError(f"--reference {reference!r} is not a variant of these runs; "
                         f"accepted: {arms}")
    anchors = Path(anchors) if anchors is not None else None
    out = default_out(paths) if out is None else Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pages: dict[str, str] = {}
    index = ["# Results", "", "| task | variants (seeds) | table | plots |", "|---|---|---|---|"]
    for task, by_label in groups.items():
        s = summarize(task, by_label, tuple(int(m) for m in marks),
                      float(thresholds.get(task, thresholds.get("", 800.0))), anchors,
                      resamples, seed, success_threshold,
                      reference if reference in by_label else None, keys)
        slug = _slug(task)
        written = [
            plot_metric(s, "eval/return", out / f"{slug}_return.png"),
            *(plot_along(s, name, out / f"{slug}_by_{_slug(name)}.png") for name in keys),
            plot_metric(s, "eval/success", out / f"{slug}_success.png") if s.metaworld else None,
            plot_ops(task, by_label, out / f"{slug}_ops.png"),
            plot_members(task, by_label, out / f"{slug}_members.png"),
            plot_terms(s, out / f"{slug}_terms.png"),
        ]
        images = [p.name for p in written if p is not None]
        pages[task] = task_markdown(s, images) + runs_markdown(s, by_label)
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
