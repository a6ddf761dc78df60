"""Cumulative regret versus lambda on tabular MDPs (the paper's Figure 2), with its regret bound.

Runs exact PSRL (conjugate Dirichlet/Beta posterior) and the approximate, factorised posterior
sampling agent for every real-data weight lambda and selection rule (PS, OPS) on RiverSwim and/or
random MDPs drawn from the prior, all seeds side by side, and writes

    <out>/regret.csv    cumulative regret (mean, standard error), KL estimate and bound per episode
    <out>/summary.csv   one row per environment and agent: final numbers
    <out>/regret.png    regret curves, final regret versus lambda, KL term, bound beside regret

The default run (both environments, 300 episodes, 20 seeds, 5 lambdas x {PS, OPS}) takes
two to three and a half minutes on two shared CPU cores. See docs/theory.md for the setup and a
reading of the results.

Examples:
    python recipes/tabular_psrl.py
    python recipes/tabular_psrl.py --env riverswim --episodes 500 --seeds 40 --out outputs/rs
    python recipes/tabular_psrl.py --model-bootstrap none   # overconfident, MBPO-like models
"""

from __future__ import annotations

import argparse
import csv
import inspect
import os
import re
from dataclasses import fields
from pathlib import Path

import numpy as np

from torchrl_psmbpo.theory.tabular.experiment import ENVS, SweepConfig, SweepResult, run_sweep
from torchrl_psmbpo.theory.tabular.posterior import BOOTSTRAPS
from torchrl_psmbpo.theory.tabular.psrl import SELECTIONS


CHOICES = {"selections": SELECTIONS, "model_bootstrap": BOOTSTRAPS, "data_bootstrap": BOOTSTRAPS}


def field_help() -> dict[str, str]:
    """Each field's text in the ``Args:`` of :class:`SweepConfig`'s docstring."""
    args = inspect.cleandoc(SweepConfig.__doc__).split("Args:\n")[1]
    items = re.findall(r"^    ([\w, ]+): (.*(?:\n {8}.*)*)", args, flags=re.M)
    return {name: " ".join(text.split()) for names, text in items for name in names.split(", ")}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """One option per field of :class:`SweepConfig` (``--n-models`` sets ``n_models``), with
    its default and its docstring as help; ``--env`` takes several environments."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--env", nargs="+", choices=ENVS, default=list(ENVS), help="environments to run")
    helps = field_help()
    for f in fields(SweepConfig):
        many = isinstance(f.default, tuple)
        kind = float if f.default is None else type(f.default[0] if many else f.default)
        if f.name != "env":
            p.add_argument("--" + f.name.replace("_", "-"), type=kind, default=f.default,
                           nargs="+" if many else None, choices=CHOICES.get(f.name),
                           help=helps[f.name])
    p.add_argument("--out", type=Path, default=Path("outputs/tabular_psrl"), help="output folder")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p.parse_args(argv)


def config_for(env: str, args: argparse.Namespace) -> SweepConfig:
    """The sweep of ``env`` with the command line's values (RiverSwim always has 2 actions)."""
    values = {f.name: getattr(args, f.name) for f in fields(SweepConfig) if f.name != "env"}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return SweepConfig(**{**values, "env": env,
                          "n_actions": 2 if env == "riverswim" else args.n_actions})


def write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def plot(results: list[SweepResult], path: Path) -> None:
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(results), 4, figsize=(19, 4.3 * len(results)), squeeze=False)
    for row, res in zip(axes, results):
        cfg = res.config
        mean, se = res.cumulative()
        bound = res.bound()
        episodes = np.arange(1, mean.shape[1] + 1)
        lams = sorted({lam for _, lam, sel in res.agents if sel != "exact"})
        colours = {lam: plt.cm.viridis(0.9 * i / max(1, len(lams) - 1)) for i, lam in enumerate(lams)}
        style = {"ps": "-", "ops": "--"}
        title = f"{cfg.env} (S={cfg.n_states}, H={cfg.horizon}, N={cfg.n_models}, M={cfg.n_policies}, {cfg.seeds} seeds)"

        ax = row[0]
        for g, (name, lam, sel) in enumerate(res.agents):
            c = "k" if sel == "exact" else colours[lam]
            ls = ":" if sel == "exact" else style[sel]
            ax.plot(episodes, mean[g], color=c, ls=ls, lw=1.6, label=name)
            ax.fill_between(episodes, mean[g] - se[g], mean[g] + se[g], color=c, alpha=0.12, lw=0)
        ax.set(xlabel="episode", ylabel="cumulative regret", title=title)
        ax.legend(fontsize=7, ncol=2, title="PS solid, OPS dashed", title_fontsize=7)

        ax = row[1]
        for sel in cfg.selections:
            idx = [g for g, (_, _, s) in enumerate(res.agents) if s == sel]
            x = [res.agents[g][1] for g in idx]
            ax.errorbar(x, mean[idx, -1], yerr=se[idx, -1], marker="o", ls=style[sel], capsize=3, label=sel.upper())
        ax.axhline(mean[0, -1], color="k", ls=":", label="exact PSRL")
        ax.axhspan(mean[0, -1] - se[0, -1], mean[0, -1] + se[0, -1], color="k", alpha=0.1, lw=0)
        ax.set(xlabel="lambda (real-data weight)", ylabel=f"cumulative regret after {mean.shape[1]} episodes",
               title="final regret vs lambda (mean ± s.e.)")
        ax.legend(fontsize=8)

        ax = row[2]
        for g, (name, lam, sel) in enumerate(res.agents):
            if sel == "exact":
                continue
            ax.plot(episodes, res.kl[g].mean(0), color=colours[lam], ls=style[sel], lw=1.4, label=name)
        ref = ax.plot(episodes, res.kl_reference.mean(0), color="k", ls=":")
        ax.set_yscale("log")
        ax.set(xlabel="episode", ylabel="KL(q_k || p_k) over step-1 rules (nats, log)",
               title="KL term, estimated (colours as in panel 1)")
        ax.legend(ref, [f"{cfg.n_models * cfg.n_policies} exact posterior draws (estimator floor)"], fontsize=7)

        ax = row[3]
        for g, (name, lam, sel) in enumerate(res.agents):
            if sel == "ops":
                continue
            c = "k" if sel == "exact" else colours[lam]
            ax.plot(episodes, bound[g], color=c, ls="-", lw=1.2)
            ax.plot(episodes, mean[g], color=c, ls=":", lw=1.6)
        ax.plot(episodes, res.optimal_value.mean() * episodes, color="grey", ls="--", label="k V* (trivial bound)")
        ax.set_yscale("log")
        ax.set(xlabel="episode", ylabel="cumulative regret (log scale)",
               title="bound, C=1 (solid) vs regret (dotted), PS")
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_png(fig, path)
    plt.close(fig)


def save_png(fig, path: Path, colours: int = 64) -> None:
    """Save ``fig`` as a palette PNG: line plots need few colours, and the file stays small."""
    from io import BytesIO

    from PIL import Image

    buf = BytesIO()
    fig.savefig(buf, format="png", dpi=72)
    buf.seek(0)
    Image.open(buf).convert("RGB").quantize(colors=colours).save(path, optimize=True)


def main(argv: list[str] | None = None) -> list[SweepResult]:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    results = [run_sweep(config_for(env, args), progress=not args.no_progress) for env in args.env]
    write_csv(args.out / "regret.csv", [r for res in results for r in res.rows()])
    summary = [r for res in results for r in res.summary_rows()]
    write_csv(args.out / "summary.csv", summary)
    plot(results, args.out / "regret.png")
    print(f"{'env':10s} {'agent':16s} {'cum. regret (mean ± s.e.)':>28s} {'last-quarter/ep':>16s} {'KL':>6s}")
    for r in summary:
        print(
            f"{r['env']:10s} {r['agent']:16s} {r['final_cum_regret_mean']:20.1f} ± {r['final_cum_regret_se']:5.1f}"
            f" {r['regret_per_episode_last_quarter']:16.4f} {r['kl_mean']:6.2f}"
        )
    print(f"wrote {args.out / 'regret.csv'}, {args.out / 'summary.csv'}, {args.out / 'regret.png'}")
    return results


if __name__ == "__main__":
    main()
