"""Turn runs' CSV logs into learning-curve PNGs (mean and spread over seeds).

Runs are grouped by their parent directory: ``runs/<task>/<variant>/seed<k>`` gives one curve
per ``<task>/<variant>`` with the seeds' mean and min-max band.

Usage:
    python recipes/plot.py runs/dmc_cartpole-swingup --out curves.png
    python recipes/plot.py runs/*/ps-mbpo runs/*/sac --metric train/return
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import numpy as np


def find_runs(paths: list[str]) -> list[Path]:
    """Every run dir (holding ``logs/scalars``) at or below ``paths``."""
    runs = set()
    for p in map(Path, paths):
        if (p / "logs" / "scalars").is_dir():
            runs.add(p)
        runs.update(d.parent.parent for d in p.rglob("logs/scalars") if d.is_dir())
    return sorted(runs)


def read_scalar(run: Path, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Steps and values of one scalar; the last value wins for a step logged twice (resume)."""
    path = run / "logs" / "scalars" / f"{metric}.csv"
    if not path.is_file():
        return np.empty(0), np.empty(0)
    by_step: dict[int, float] = {}
    with open(path) as fh:
        for row in csv.reader(fh):
            if len(row) == 2:
                by_step[int(float(row[0]))] = float(row[1])
    steps = np.array(sorted(by_step))
    return steps, np.array([by_step[s] for s in steps])


def plot(paths: list[str], metric: str = "eval/return", out: str = "learning_curves.png") -> Path:
    """Draw ``metric`` against env steps for every group of runs under ``paths``.

    Args:
        paths: run dirs or dirs that contain run dirs.
        metric: a scalar name of the CSV logs (``eval/return``, ``train/return``, ...).
        out: the PNG to write.

    Returns:
        The PNG's path.

    Raises:
        ValueError: no run under ``paths`` logged ``metric``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[str, list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
    for run in find_runs(paths):
        steps, values = read_scalar(run, metric)
        if len(steps):
            groups[f"{run.parent.parent.name}/{run.parent.name}"].append((steps, values))
    if not groups:
        raise ValueError(f"No run under {paths} logged {metric!r}.")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, curves in sorted(groups.items()):
        grid = np.unique(np.concatenate([s for s, _ in curves]))
        grid = grid[grid <= min(s[-1] for s, _ in curves)]
        ys = np.stack([np.interp(grid, s, v) for s, v in curves])
        ax.plot(grid, ys.mean(0), label=f"{label} ({len(curves)} seed{'s' if len(curves) > 1 else ''})")
        if len(curves) > 1:
            ax.fill_between(grid, ys.min(0), ys.max(0), alpha=0.2)
    ax.set_xlabel("env steps")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return out_path


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="run dirs or dirs containing runs")
    parser.add_argument("--metric", default="eval/return")
    parser.add_argument("--out", default="learning_curves.png")
    args = parser.parse_args(argv)
    path = plot(args.paths, args.metric, args.out)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
