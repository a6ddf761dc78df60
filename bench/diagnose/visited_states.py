"""Plot the real states a run visited: the paper's state-visitation figure (PS-MBPO against MBPO).

Reads each run's real replay buffer (D_E) from its ``checkpoint.pt`` and draws, for every run
given as ``LABEL=DIR``, 2-D histograms (log counts) of two projections of the observation. The
default projections are Metaworld's: the hand's (x, y), and the hand's x against the object's
x (window-open: the window handle slides along x). On a common grid per projection it also
prints the share of cells each run visited (its coverage), so the figure's reading is a number
too. Saves PNG and SVG.

Usage:
    python bench/diagnose/visited_states.py --out docs/img/window_open_visited \\
        "ps-mbpo=bench/results/visited/metaworld_window-open-v3/ps-mbpo/seed0" \\
        "mbpo=bench/results/visited/metaworld_window-open-v3/mbpo/seed0"
    # other observation dimensions: --proj 0,1 --proj 2,5 (pairs of indices)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from run_dirs import load_real_data, require_checkpoints

from torchrl_psmbpo.recipes.report.plots import save_figure

METAWORLD_PROJECTIONS = ((0, 1), (0, 4))  # hand (x, y); hand x against the object's x
PROJECTION_NAMES = {(0, 1): ("hand x", "hand y"), (0, 4): ("hand x", "object x")}
BINS = 40


def coverage(points: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, bins: int = BINS) -> float:
    """The share of the ``bins x bins`` cells of the box ``[lo, hi]`` that hold at least one point.

    Example:
        >>> round(coverage(torch.tensor([[0.0, 0.0], [1.0, 1.0]]), torch.zeros(2), torch.ones(2), 2), 2)
        0.5
    """
    cell = ((points - lo) / (hi - lo).clamp_min(1e-12) * bins).long().clamp(0, bins - 1)
    return len(torch.unique(cell[:, 0] * bins + cell[:, 1])) / bins**2


def parse_projection(text: str) -> tuple[int, int]:
    """``"0,4"`` -> ``(0, 4)``, for ``--proj``."""
    try:
        i, j = (int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two indices like 0,4, got {text!r}") from None
    return i, j


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="LABEL=DIR")
    parser.add_argument("--out", required=True, help="output path without extension")
    parser.add_argument("--proj", type=parse_projection, action="append", default=None,
                        help="a pair of observation indices to plot (repeatable; default: "
                             "Metaworld's hand x,y and hand x against object x)")
    args = parser.parse_args(argv)
    runs = []
    for item in args.runs:
        label, _, path = item.rpartition("=")
        if not label or not path:
            parser.error(f"expected LABEL=DIR, got {item!r}")
        runs.append((label, Path(path)))
    require_checkpoints([d for _, d in runs])
    projections = args.proj or list(METAWORLD_PROJECTIONS)
    data = {}
    for label, run_dir in runs:
        _, real, step, _ = load_real_data(run_dir)
        obs = real["observation"]
        width = obs.shape[-1]
        bad = [p for p in projections if max(p) >= width]
        if bad:
            raise SystemExit(f"error: projection {bad[0]} needs observation index {max(bad[0])}, "
                             f"but {run_dir} has {width} dimensions")
        data[label] = (obs, step)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(runs), len(projections), squeeze=False,
                             figsize=(4.2 * len(projections), 3.8 * len(runs)))
    for col, (i, j) in enumerate(projections):
        both = torch.cat([obs[:, [i, j]] for obs, _ in data.values()])
        lo, hi = both.min(0).values, both.max(0).values
        names = PROJECTION_NAMES.get((i, j), (f"obs[{i}]", f"obs[{j}]")) if not args.proj \
            else (f"obs[{i}]", f"obs[{j}]")
        for row, (label, (obs, step)) in enumerate(data.items()):
            points = obs[:, [i, j]]
            share = coverage(points, lo, hi)
            print(f"{label}: {names[0]} x {names[1]}: {len(points)} real transitions "
                  f"(agent step {step}), {share:.1%} of {BINS}x{BINS} cells visited")
            ax = axes[row][col]
            ax.hist2d(points[:, 0].numpy(), points[:, 1].numpy(), bins=BINS,
                      range=[[lo[0].item(), hi[0].item()], [lo[1].item(), hi[1].item()]],
                      cmap="viridis", cmin=1, norm=matplotlib.colors.LogNorm())
            ax.set_title(f"{label}: {share:.0%} of cells", fontsize=10)
            ax.set_xlabel(names[0])
            ax.set_ylabel(names[1])
    png = save_figure(fig, Path(args.out).with_suffix(".png"), dpi=120)
    return [png, png.with_suffix(".svg")]


if __name__ == "__main__":
    main()
