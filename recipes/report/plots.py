"""Plots: eval curves with their 95% bands and the anchors, the arms against a ``--label-by``
key (the ablation over M), OPS probabilities, every member's return, the Marino & Yue terms;
each saved as PNG and as SVG."""

from __future__ import annotations

from pathlib import Path

from torchrl_psmbpo.recipes.report.runs import ANCHOR_NAMES, Run, member_curves
from torchrl_psmbpo.recipes.report.stats import align
from torchrl_psmbpo.recipes.report.summary import TERM_METRICS, TaskSummary

X_LABEL = "env steps (simulator frames = agent steps x action_repeat)"


def _seeds(n: int) -> str:
    return f"{n} seed{'s' if n > 1 else ''}"


def save_figure(fig, out: Path, dpi: int = 110) -> Path:
    """Lay out, write ``out`` (PNG) and the same figure as SVG beside it, close ``fig``; return
    ``out``. The SVG carries no date and fixed element ids, so the same data gives the same
    file."""
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
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
    return save_figure(fig, out)


def plot_along(s: TaskSummary, name: str, out: Path) -> Path | None:
    """Run mean and solve rate against the ``--label-by`` key ``name``, 95% intervals as error
    bars: a line per variant with two or more values, a dashed level with its band for a
    variant at one value (the reference); None if ``s`` has no such layout."""
    points = s.along.get(name)
    if not points:
        return None
    plt = _pyplot()
    colors = plt.get_cmap("tab10")
    fig, (ax_mean, ax_rate) = plt.subplots(1, 2, figsize=(10, 4))
    variants = list(dict.fromkeys(p.variant for p in points))
    values = sorted({p.value for p in points})
    for i, variant in enumerate(variants):
        ps = [p for p in points if p.variant == variant]
        color = colors(i % 10)
        panels = ((ax_mean, [p.mean for p in ps], [p.low for p in ps], [p.high for p in ps]),
                  (ax_rate, [p.solved / p.n for p in ps], [p.solved_low for p in ps],
                   [p.solved_high for p in ps]))
        seeds = "/".join(str(p.n) for p in ps)
        for ax, y, lo, hi in panels:
            if len(ps) == 1:  # a reference level across the plot
                ax.axhline(y[0], color=color, linestyle="--", linewidth=1,
                           label=f"{ps[0].label} ({_seeds(ps[0].n)})")
                ax.axhspan(lo[0], hi[0], color=color, alpha=0.12, linewidth=0)
            else:
                x = [p.value for p in ps]
                err = [[m - a for m, a in zip(y, lo)], [b - m for m, b in zip(y, hi)]]
                ax.errorbar(x, y, yerr=err, color=color, marker="o", capsize=4,
                            label=f"{variant} (seeds {seeds})")
    ax_mean.set_ylabel("run mean eval return")
    ax_mean.set_title("mean over seeds of the run's mean eval return, 95% CI", fontsize=9)
    ax_rate.set_ylabel(f"share of seeds reaching {s.threshold:g}")
    ax_rate.set_title("solve rate, 95% exact interval", fontsize=9)
    ax_rate.set_ylim(-0.02, 1.02)
    for ax in (ax_mean, ax_rate):
        ax.set_xlabel(name)
        ax.set_xticks(values)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{s.task}: the arms by {name}")
    return save_figure(fig, out)


def median_committed(final_max: list[float]) -> int:
    """Index of the run whose last ``max_i p_i`` is the (lower) median: the seed the OPS plot
    draws member by member, neither the most committed nor one that never moved; ties go to the
    first.

    Examples:
        >>> median_committed([0.25, 0.84, 0.45, 0.80])
        2
    """
    order = sorted(range(len(final_max)), key=lambda i: (final_max[i], i))
    return order[(len(order) - 1) // 2]


def plot_ops(task: str, by_label: dict[str, list[Run]], out: Path) -> Path | None:
    """For each ops-mbpo group: mean over seeds of max_i p_i, and each p_i of the seed whose
    last max_i p_i is the median (:func:`median_committed`)."""
    groups = {label: runs for label, runs in by_label.items() if runs[0].variant == "ops-mbpo"}
    data = {}
    for label, runs in groups.items():
        maxes, shown = [], []  # shown: (run, its p_i, its last max_i p_i), every p_i logged
        for r in runs:
            found = (r.path / "logs" / "scalars" / "ops").glob("p*.csv")
            index = sorted(int(f.stem[1:]) for f in found if f.stem[1:].isdigit())
            probs = [r.scalar(f"ops/p{i}") for i in index]
            if probs and all(len(p[0]) for p in probs):
                grid, ys = align(probs)
                if len(grid):
                    top = ys.max(0)
                    maxes.append((grid, top))
                    shown.append((r, probs, float(top[-1])))
            elif len(r.scalar("ops/max_prob")[0]):
                maxes.append(r.scalar("ops/max_prob"))
        if maxes:
            run, probs, _ = (shown[median_committed([last for _, _, last in shown])] if shown
                             else (runs[0], [], 0.0))
            data[label] = (maxes, run.seed, probs)
    if not data:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(len(data), 2, figsize=(11, 3.6 * len(data)), squeeze=False)
    for (label, (maxes, seed, probs)), (ax_max, ax_p) in zip(data.items(), axes):
        grid, ys = align(maxes)
        if len(grid):
            _line(ax_max, grid, ys.mean(0), label=f"mean over {_seeds(len(maxes))}")
        k = len(probs)
        if k:
            ax_max.axhline(1 / k, color="0.5", linestyle="--", linewidth=1, label=f"uniform 1/{k}")
        ax_max.set_title(f"{label}: max_i p_i")
        for i, (st, v) in enumerate(probs):
            _line(ax_p, st, v, label=f"p{i}", linewidth=1)
        ax_p.set_title(f"{label}: p_i, seed {seed} (median last max_i p_i)")
        for ax in (ax_max, ax_p):
            ax.set_xlabel(X_LABEL, fontsize=8)
            ax.set_ylim(0, 1.02)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, ncol=2)
    fig.suptitle(f"{task}: OPS probabilities over time")
    return save_figure(fig, out)


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
    return save_figure(fig, out)


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
    return save_figure(fig, out)
