"""The learning grid of docs/results.md: every (task, variant, seed) on the CPU protocol.

Each task is one Hydra multirun of its suite's recipe through the joblib launcher, two runs at
a time (one torch thread each: the ``cpu_*`` presets set ``run.threads=1``), into
``bench/results/runs/<task>/<variant>/seed<k>/``. Runs that already finished are skipped; runs
that were interrupted continue from their checkpoint (``run.resume_if_exists=true``). Only
``config.yaml`` and the scalar logs of each run go into git (see .gitignore). Then
``python recipes/report.py bench/results/runs --out docs/results`` rebuilds every table and
plot.

Usage:
    python bench/grid.py                                  # the whole grid (days on 2 cores)
    python bench/grid.py --tasks dmc:cartpole-swingup --variants sac ps-mbpo --seeds 0 1
    python bench/grid.py --dry-run                        # print the commands only
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from recipes.cli import main as recipe_main

ROOT = Path(__file__).resolve().parent / "results" / "runs"
GRID = {
    # task: (suite, preset, variants, seeds)
    "dmc:cartpole-swingup": ("dmc", "cpu_dmc",
                             ["sac", "mbpo", "ps-mbpo", "ops-mbpo", "ps-mbpo-fixed"], range(5)),
    "dmc:cartpole-swingup_sparse": ("dmc", "cpu_dmc", ["sac", "mbpo", "ps-mbpo", "ops-mbpo"],
                                    range(3)),
    "metaworld:window-open-v3": ("metaworld", "cpu_metaworld",
                                 ["sac", "mbpo", "ps-mbpo", "ops-mbpo"], range(3)),
}


def finished(run_dir: Path) -> bool:
    """A run that reached its config's ``run.total_steps``: by its checkpoint or, in a fresh
    clone where git kept only the scalar logs, by its final evaluation (every run ends with one
    at ``run.total_steps``)."""
    from omegaconf import OmegaConf

    ckpt, cfg = run_dir / "checkpoint.pt", run_dir / "config.yaml"
    if not cfg.is_file():
        return False
    total = OmegaConf.load(cfg).run.total_steps
    if ckpt.is_file():
        return torch.load(ckpt, map_location="cpu", weights_only=False)["progress"]["step"] >= total
    evals = run_dir / "logs" / "scalars" / "eval" / "return.csv"
    lines = evals.read_text().split() if evals.is_file() else []
    return bool(lines) and int(float(lines[-1].split(",")[0])) >= total


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(GRID))
    parser.add_argument("--variants", nargs="+", default=None)
    parser.add_argument("--seeds", nargs="+", type=int, default=None)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    for task in args.tasks:
        if task not in GRID:
            raise SystemExit(f"error: unknown grid task {task!r}; accepted: {list(GRID)}")
        suite, preset, variants, seeds = GRID[task]
        variants = [v for v in variants if args.variants is None or v in args.variants]
        seeds = [s for s in seeds if args.seeds is None or s in args.seeds]
        for variant in variants:
            todo = [s for s in seeds
                    if not finished(ROOT / task.replace(":", "_") / variant / f"seed{s}")]
            if not todo:
                continue
            argv_ = ["-m", f"preset={preset}", f"task={task}", f"variant={variant}",
                     f"seed={','.join(map(str, todo))}", "progress=false",
                     "run.resume_if_exists=true", "hydra/launcher=joblib",
                     f"hydra.launcher.n_jobs={args.jobs}",
                     f"hydra.sweep.dir={ROOT / task.replace(':', '_') / variant}",
                     "hydra.sweep.subdir=seed${seed}"]
            print(f"python recipes/psmbpo_{suite}.py " + " ".join(argv_), flush=True)
            if not args.dry_run:
                recipe_main(suite, argv_)


if __name__ == "__main__":
    sys.exit(main())
