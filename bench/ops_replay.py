"""Replay OPS rules on the member returns of finished PS-MBPO runs: how fast does each commit?

A PS-MBPO run picks its acting member uniformly, so its training log holds every member's real
return over the whole run. This script rebuilds each member's return curve from those plays
(linear interpolation between its credited episodes, flat beyond its first and last one) and
replays an OPS rule against the curves: at episode ``k`` the rule's :class:`PolicyPosterior`
picks a member, is credited that member's return at ``k``, and picks again. The replay answers
what an OPS rule does with returns like ours (how many episodes until one member holds 90% of
the probability, and how much return it gives up against always playing the best member at
each episode) without a training run. It cannot show what the members would learn from the
data another rule collects: the curves are the PS run's.

Usage (from the repository root):
    python bench/ops_replay.py                                  # the committed PS runs
    python bench/ops_replay.py --plot docs/img/ops_weights.png  # and the weights figure
    python bench/ops_replay.py --runs bench/results/protocol_v1/runs/dmc_cartpole-swingup/ps-mbpo/seed*

Prints one row per rule: median episodes until p_max > 0.9 (``never`` counts as the run's
length), the share of replays that reached it, and the mean per-episode shortfall against the
best member and against uniform PS (negative: better than PS), over runs and replay seeds.
"""

from __future__ import annotations

import argparse
import glob
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from torchrl_psmbpo.sampling.posterior import PolicyPosterior

DEFAULT_RUNS = "bench/results/protocol_v1/runs/*/ps-mbpo/seed*"
RULES = {  # name: PolicyPosterior keyword arguments (mode="ops")
    "sum, tau 100 (the paper's form; protocol v1)": dict(statistic="sum", temperature=100.0),
    "mean, tau 100": dict(statistic="mean", temperature=100.0),
    **{f"importance, tau {t:g}, mix {g:g}": dict(statistic="importance", temperature=t, mix=g)
       for t in (100.0, 300.0, 1000.0, 3000.0, 5000.0) for g in (0.0, 0.1)},
}
# the recipes' OPS rule per suite: tau = the suite's largest episode return (recipes/config.py,
# recipes/conf/metaworld.yaml)
PROTOCOL_RULES = {"dmc": "importance, tau 1000, mix 0.1", "metaworld": "importance, tau 5000, mix 0.1"}


@dataclass
class MemberCurves:
    """Every member's real return at every credited episode of one PS run."""

    name: str
    returns: np.ndarray  # [episodes, members]
    env_steps: np.ndarray  # [episodes]: simulator steps at the end of each credited episode

    @classmethod
    def from_run(cls, run_dir: Path) -> "MemberCurves":
        scalars = run_dir / "logs" / "scalars" / "train"
        index, ret, credited = (np.loadtxt(scalars / f"{k}.csv", delimiter=",", ndmin=2)
                                for k in ("policy_index", "return", "credited"))
        keep = credited[:, 1] > 0
        steps = index[keep, 0] * _action_repeat(run_dir)
        index, ret = index[keep, 1].astype(int), ret[keep, 1]
        episodes = np.arange(len(ret))
        members = int(index.max()) + 1
        curves = np.empty((len(ret), members))
        for m in range(members):
            played = episodes[index == m]
            if len(played) == 0:
                raise ValueError(f"{run_dir}: member {m} never played; cannot rebuild its curve")
            curves[:, m] = np.interp(episodes, played, ret[index == m])
        return cls(str(run_dir), curves, steps)


def _action_repeat(run_dir: Path) -> int:
    from omegaconf import OmegaConf

    return int(OmegaConf.load(run_dir / "config.yaml").env.action_repeat)


def _logged_weights(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(env steps, [steps, members] probabilities)`` an OPS run logged per episode."""
    files = sorted((run_dir / "logs" / "scalars" / "ops").glob("p[0-9]*.csv"),
                   key=lambda f: int(f.stem[1:]))
    columns = [np.loadtxt(f, delimiter=",", ndmin=2) for f in files]
    return columns[0][:, 0] * _action_repeat(run_dir), np.stack([c[:, 1] for c in columns], 1)


def plot_weights(out: Path, tasks: list[str], seed: int = 0) -> None:
    """Per task: the OPS weights of the earlier protocol's run (literal sum, tau 100), and both
    rules replayed on the PS run's member returns (seed 0 of each)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    literal = "sum, tau 100 (the paper's form; protocol v1)"
    fig, axes = plt.subplots(len(tasks), 3, figsize=(12, 3.2 * len(tasks)), squeeze=False,
                             sharey=True)
    for row, task in zip(axes, tasks):
        steps, weights = _logged_weights(Path(f"bench/results/protocol_v1/runs/{task}/ops-mbpo/seed0"))
        row[0].plot(steps, weights)
        row[0].set_title(f"{task}: OPS-MBPO run, literal sum", fontsize=9)
        curves = MemberCurves.from_run(Path(f"bench/results/protocol_v1/runs/{task}/ps-mbpo/seed0"))
        for ax, name in ((row[1], literal), (row[2], PROTOCOL_RULES[task.split("_")[0]])):
            probs = replay_probs(curves.returns, RULES[name], seed)
            ax.plot(curves.env_steps, probs)
            ax.set_title(f"replay on PS returns: {name.split(' (')[0]}", fontsize=9)
        for ax in row:
            ax.set_xlabel("env steps")
            ax.grid(alpha=0.3)
        row[0].set_ylabel("probability of each member")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    fig.savefig(out.with_suffix(".svg"))
    plt.close(fig)


def replay_probs(curves: np.ndarray, rule: dict, seed: int) -> np.ndarray:
    """``[episodes, members]``: the distribution each pick of one replay drew from."""
    episodes, members = curves.shape
    posterior = PolicyPosterior(members, mode="ops", seed=seed, **rule)
    out = np.empty((episodes, members))
    for k in range(episodes):
        out[k] = posterior.probs.numpy()
        i = posterior.pick()
        posterior.update(i, float(curves[k, i]))
    return out


def replay(curves: np.ndarray, rule: dict, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(p_max per episode, played return per episode)`` of one rule on one run's curves."""
    episodes, members = curves.shape
    posterior = PolicyPosterior(members, mode="ops", seed=seed, **rule)
    p_max, played = np.empty(episodes), np.empty(episodes)
    for k in range(episodes):
        p_max[k] = float(posterior.probs.max())
        i = posterior.pick()
        played[k] = curves[k, i]
        posterior.update(i, float(curves[k, i]))
    return p_max, played  # the same draws as replay_probs (same seed, same rule)


def summarise(runs: list[MemberCurves], rule: dict, seeds: int) -> dict[str, float]:
    """Median episodes to p_max > 0.9, the share that got there, shortfalls vs best and PS."""
    to_commit, reached, vs_best, vs_ps = [], [], [], []
    for run in runs:
        best, uniform = run.returns.max(axis=1), run.returns.mean(axis=1)
        for seed in range(seeds):
            p_max, played = replay(run.returns, rule, seed)
            over = np.flatnonzero(p_max > 0.9)
            reached.append(len(over) > 0)
            to_commit.append(over[0] if len(over) else len(p_max))
            vs_best.append(float(np.mean(best - played)))
            vs_ps.append(float(np.mean(uniform - played)))
    return {"episodes to p_max>0.9 (median)": float(np.median(to_commit)),
            "reached": float(np.mean(reached)),
            "shortfall vs best member": float(np.mean(vs_best)),
            "shortfall vs PS": float(np.mean(vs_ps))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", default=[DEFAULT_RUNS],
                        help=f"PS-MBPO run dirs or globs (default: {DEFAULT_RUNS})")
    parser.add_argument("--seeds", type=int, default=50, help="replays per run and rule")
    parser.add_argument("--plot", type=Path, default=None,
                        help="also draw the weights figure (PNG, and SVG beside it) here")
    args = parser.parse_args(argv)
    if args.plot is not None:
        plot_weights(args.plot, ["dmc_cartpole-swingup", "metaworld_window-open-v3"])
        print(f"wrote {args.plot} and {args.plot.with_suffix('.svg')}")
    dirs = sorted({Path(p) for pattern in args.runs for p in glob.glob(pattern)})
    if not dirs:
        print(f"error: no run dir matches {args.runs}", file=sys.stderr)
        return 1
    by_task: dict[str, list[MemberCurves]] = {}
    for d in dirs:
        by_task.setdefault(d.parent.parent.name, []).append(MemberCurves.from_run(d))
    for task, runs in by_task.items():
        print(f"\n{task}: {len(runs)} PS runs, {runs[0].returns.shape[0]} credited episodes, "
              f"{runs[0].returns.shape[1]} members, {args.seeds} replays each")
        print(f"| rule | episodes to p_max > 0.9 (median) | reached | shortfall vs best | "
              f"shortfall vs PS |\n|---|---:|---:|---:|---:|")
        for name, rule in RULES.items():
            s = summarise(runs, rule, args.seeds)
            print(f"| {name} | {s['episodes to p_max>0.9 (median)']:.0f} | {s['reached']:.2f} | "
                  f"{s['shortfall vs best member']:.1f} | {s['shortfall vs PS']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
