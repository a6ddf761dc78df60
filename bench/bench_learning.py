"""Learning benchmark: sac, mbpo and ps-mbpo side by side on a task where models pay off fast.

Trains each variant with one documented small config on this CPU, prints the evaluation
return against env steps, the env steps each variant needed to reach the threshold, and the
wall-clock per 1K env steps; writes a PNG of the curves. Not part of the test run.

Usage:
    python bench/bench_learning.py                                  # InvertedPendulum-v5, 3 variants
    python bench/bench_learning.py --steps 6000 --seeds 0 1 --variants sac ps-mbpo
    python bench/bench_learning.py --task dmc:cartpole-balance --threshold 900
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "recipes"))

from config import make_config  # noqa: E402
from loop import train  # noqa: E402
from plot import plot, read_scalar  # noqa: E402

# One config for every variant; sources in docs/algorithm.md ("Learning benchmark").
BENCH_CONFIG = {
    "init_random_steps": 1000,
    "epoch_length": 250,
    "model_train_freq": 250,
    "rollout_schedule": "1,15,1,1",
    "num_models": 2,
    "policies_per_model": 2,
    "num_elites": 2,
    "model_hidden": 128,
    "model_depth": 3,
    "model_max_epochs": 0,
    "model_val_metric": "nll",
    "rollouts_per_step": 100,
    "updates_per_step": 10,
    "batch_size": 128,
    "actor_hidden": "128,128",
    "critic_hidden": "128,128",
    "eval_every": 250,
    "eval_episodes": 1,
    "checkpoint_every": 100_000,
    "real_buffer_size": 100_000,
    "model_retain_epochs": 1,
}


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="gym:InvertedPendulum-v5")
    parser.add_argument("--variants", nargs="+", default=["sac", "mbpo", "ps-mbpo"])
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--threshold", type=float, default=1000.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", default="bench_runs/learning")
    parser.add_argument("--set", nargs="*", default=[], help="extra key=value config overrides")
    args = parser.parse_args(argv)
    extra = dict(kv.split("=", 1) for kv in args.set)

    summary: dict[str, dict[str, float]] = {}
    for variant in args.variants:
        for seed in args.seeds:
            run_dir = Path(args.out) / args.task.replace(":", "_") / variant / f"seed{seed}"
            cfg = make_config(
                {
                    **{k: str(v) for k, v in BENCH_CONFIG.items()},
                    **extra,
                    "task": args.task,
                    "variant": variant,
                    "seed": str(seed),
                    "total_steps": str(args.steps),
                    "run_dir": str(run_dir),
                }
            )
            start = time.perf_counter()
            train(cfg)
            seconds = time.perf_counter() - start
            steps, returns = read_scalar(run_dir, "eval/return")
            reached = [int(s) for s, r in zip(steps, returns) if r >= args.threshold]
            key = f"{variant}/seed{seed}"
            summary[key] = {
                "steps_to_threshold": float(reached[0]) if reached else float("nan"),
                "final_eval": float(returns[-1]) if len(returns) else float("nan"),
                "best_eval": float(returns.max()) if len(returns) else float("nan"),
                "seconds_per_1k_steps": 1000 * seconds / args.steps,
            }
            print(f"\n{key}: eval return vs env steps")
            print("  " + "  ".join(f"{int(s)}:{r:.0f}" for s, r in zip(steps, returns)))
    print(f"\n{args.task}, threshold {args.threshold}")
    print(f"{'run':<22}{'steps to threshold':>20}{'best eval':>11}{'final eval':>12}{'s / 1K steps':>14}")
    for key, row in summary.items():
        print(
            f"{key:<22}{row['steps_to_threshold']:>20.0f}{row['best_eval']:>11.1f}"
            f"{row['final_eval']:>12.1f}{row['seconds_per_1k_steps']:>14.1f}"
        )
    png = plot([args.out], "eval/return", str(Path(args.out) / "learning_curves.png"))
    print(f"curves: {png}")
    return summary


if __name__ == "__main__":
    main()
