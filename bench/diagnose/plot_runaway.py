"""Plot what a run's critic and temperature do, run against run: the model-based runaway.

Draws, against env steps, ``alpha`` (the SAC temperature), ``loss/qvalue`` (the critic's loss,
log scale) and ``eval/return`` of each run dir given as ``LABEL=DIR``, and saves the figure as
PNG and SVG.

Usage:
    python bench/diagnose/plot_runaway.py --out docs/img/walker_runaway \\
        "mbpo, sampled steps=bench/results/runaway/dmc_walker-walk/mbpo-sampled/seed0" ...
"""

from __future__ import annotations

import argparse
from pathlib import Path

from torchrl_psmbpo.recipes.report import load_run
from torchrl_psmbpo.recipes.report.plots import save_figure


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="LABEL=DIR")
    parser.add_argument("--out", required=True, help="output path without extension")
    parser.add_argument("--title", default="")
    args = parser.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for item in args.runs:
        label, _, path = item.rpartition("=")
        if not path:
            parser.error(f"expected LABEL=DIR, got {item!r}")
        run = load_run(path)
        for ax, name in zip(axes, ("alpha", "loss/qvalue", "eval/return")):
            steps, values = run.scalar(name)
            ax.plot(steps, values, label=label, marker="." if len(steps) < 30 else None)
    for ax, (name, log) in zip(axes, (("temperature (alpha)", True), ("critic loss", True),
                                      ("eval return", False))):
        ax.set_xlabel("env steps")
        ax.set_title(name)
        if log:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    if args.title:
        fig.suptitle(args.title)
    png = save_figure(fig, Path(args.out).with_suffix(".png"), dpi=130)
    return [png, png.with_suffix(".svg")]


if __name__ == "__main__":
    main()
