"""Learning benchmark: sac, mbpo and ps-mbpo side by side on a task where models pay off fast.

A Hydra multirun of the gym recipe over variants x seeds with one documented small config,
then the multi-seed report (``python -m torchrl_psmbpo.recipes.report``): evaluation return against env steps with a
95% bootstrap band, env steps to the threshold and wall-clock per 1K agent steps by phase.
Not part of the test run.

Usage:
    python bench/bench_learning.py                                   # InvertedPendulum-v5, seed 0
    python bench/bench_learning.py --seeds 0 1 2 --variants sac ps-mbpo
    python bench/bench_learning.py --task dmc:cartpole-balance --threshold 900 --suite dmc
"""

from __future__ import annotations

import argparse
from pathlib import Path

from torchrl_psmbpo.recipes.cli import main as recipe_main
from torchrl_psmbpo.recipes.report import write_report

# One config for every variant; sources in docs/algorithm.md ("Learning benchmark").
BENCH_CONFIG = [
    "init_random_steps=1000", "rollout.epoch_length=250", "model.train_freq=250",
    "rollout.schedule=[1,15,1,1]", "posterior.num_models=2", "posterior.policies_per_model=2",
    "model.hidden=128", "model.depth=3", "model.val_metric=nll", "rollout.per_step=100",
    "updates_per_step=10", "policy.batch_size=128", "actor_hidden=[128,128]",
    "critic_hidden=[128,128]", "eval.every=250", "eval.episodes=1", "checkpoint_every=100000",
    "policy.real_buffer_size=100000", "rollout.retain_epochs=1",
]
"""The variant-specific fields (N, M and the model) are set per variant in :func:`overrides`."""


def overrides(variant: str) -> list[str]:
    args = list(BENCH_CONFIG)
    if variant in ("sac", "mbpo"):
        args = [a for a in args if not a.startswith("posterior.")]
    if variant == "sac":
        args = [a for a in args if not a.startswith(("model.", "rollout."))]
    if variant == "mbpo":
        args += ["model.members=7", "model.elites=2"]
    return args


def main(argv: list[str] | None = None) -> dict[str, str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="gym:InvertedPendulum-v5")
    parser.add_argument("--suite", default="gym", choices=["dmc", "gym", "metaworld"])
    parser.add_argument("--variants", nargs="+", default=["sac", "mbpo", "ps-mbpo"])
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--threshold", type=float, default=1000.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", default="bench_runs/learning")
    parser.add_argument("--set", nargs="*", default=[], help="extra key=value overrides")
    args = parser.parse_args(argv)
    sweep = Path(args.out) / args.task.replace(":", "_")
    for variant in args.variants:  # one multirun per variant: their overrides differ
        recipe_main(args.suite, [
            "-m", *overrides(variant), *args.set, f"task={args.task}", f"variant={variant}",
            f"seed={','.join(map(str, args.seeds))}", f"total_steps={args.steps}",
            f"hydra.sweep.dir={sweep / variant}", "hydra.sweep.subdir=seed${seed}",
        ])
    tables = write_report([sweep], sweep / "report", marks=[1000, 2500, args.steps],
                          threshold=args.threshold)
    print(f"report: {sweep / 'report' / 'index.md'}")
    return tables


if __name__ == "__main__":
    main()
