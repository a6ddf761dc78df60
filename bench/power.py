"""What the posterior comparison's seeds can detect, computed before the runs.

Two tests, as docs/results.md reports them:

* **Sparse task (solved or not).** A seed either finds the swing-up or it does not, so the arms
  are compared by how many seeds solve the task (eval return >= 500 at any evaluation up to 100K
  env steps) with Fisher's exact test (two-sided, alpha = 0.05). For ``n`` seeds per arm and a
  reference arm's solve rate ``p0``, the script finds the smallest and largest solve rate of the
  other arm that the test detects with 80% power (exact: it sums over every pair of counts).
* **Dense task (how fast).** The arms are compared by each seed's mean evaluation return over
  the whole run (the area under its learning curve, in return units): a two-sided Welch t-test's
  minimum detectable difference at 80% power, ``(t_{1-alpha/2} + t_{power}) * sd * sqrt(2/n)``
  with ``df = 2n - 2``, from the between-seed standard deviation of the committed runs of the
  earlier protocol (the new protocol has no cartpole runs yet: the number is a plan, the
  published one uses the new runs' own spread).

The power functions are the report's (``torchrl_psmbpo.recipes.report.compare``), which
applies the same tests to the finished runs (``--reference``).

Usage (from the repository root):
    python bench/power.py                   # n = 5 and 8 seeds
    python bench/power.py --seeds 8 12 16
"""

from __future__ import annotations

import argparse
import glob
import sys
from pathlib import Path

import numpy as np

from torchrl_psmbpo.recipes.report.compare import detectable_rates, welch_mde

SPREAD_RUNS = "bench/results/protocol_v1/runs/dmc_cartpole-swingup/*/seed*"


def pooled_sd(pattern: str) -> tuple[float, int]:
    """Pooled between-seed sd of each run's mean eval return, over the arms matched."""
    by_arm: dict[str, list[float]] = {}
    for d in sorted(glob.glob(pattern)):
        evals = np.loadtxt(Path(d) / "logs" / "scalars" / "eval" / "return.csv", delimiter=",",
                           ndmin=2)
        by_arm.setdefault(Path(d).parent.name, []).append(float(evals[:, 1].mean()))
    groups = [np.asarray(v) for v in by_arm.values() if len(v) >= 2]
    if not groups:
        raise ValueError(f"no arm with two or more runs matches {pattern}")
    ss = sum(float(((g - g.mean()) ** 2).sum()) for g in groups)
    df = sum(len(g) - 1 for g in groups)
    return float(np.sqrt(ss / df)), sum(len(g) for g in groups)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[5, 8])
    parser.add_argument("--solve-rates", nargs="+", type=float, default=[0.25, 0.5, 0.67])
    args = parser.parse_args(argv)
    print("Sparse task: Fisher's exact test on solved seeds (two-sided, alpha 0.05, power 0.8)")
    print("| seeds per arm | reference solve rate | detectable below | detectable above |")
    print("|---:|---:|---:|---:|")
    for n in args.seeds:
        for p0 in args.solve_rates:
            low, high = detectable_rates(n, n, p0)
            fmt = lambda p: "none" if p is None else f"{p:.2f}"  # noqa: E731
            print(f"| {n} | {p0:.2f} | {fmt(low)} | {fmt(high)} |")
    try:
        sd, runs = pooled_sd(SPREAD_RUNS)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"\nDense task: Welch t-test on each seed's whole-run mean eval return; pooled "
          f"between-seed sd {sd:.1f} from {runs} runs of the earlier protocol")
    print("| seeds per arm | minimum detectable difference (return units) |\n|---:|---:|")
    for n in args.seeds:
        print(f"| {n} | {welch_mde(n, n, sd):.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
