"""The learning grid of docs/results.md, and the Marino & Yue comparison, on the CPU protocol.

Each (task, arm) is one Hydra multirun of its suite's recipe through the joblib launcher, two
runs at a time (one torch thread each: the ``cpu_*`` presets set ``run.threads=1``), into
``bench/results/<comparison dir>/<task>/<arm>/seed<k>/``. Runs that already finished are
skipped; runs that were interrupted continue from their checkpoint
(``run.resume_if_exists=true``), and those stopped before their first checkpoint start over
(``run.discard_existing=true``). Only ``config.yaml`` and the scalar logs of each run go into
git (see .gitignore).

Comparisons (``--comparison``):

* ``grid`` (default, ``bench/results/runs/``): sac, mbpo, ps-mbpo, ops-mbpo (and the
  no-sampling ablation) on the three tasks of docs/results.md;
* ``inference`` (``bench/results/inference/``): ps-mbpo with Marino & Yue's terms
  (docs/inference_perspective.md): the action prior, the information term (beta = 1, the ELBO's
  unit weight), both, on the dense task; the information term with either sign on the sparse
  task. The arm with neither term is the grid's ``ps-mbpo`` (the same config), so it is not
  run again;
* ``protocol`` (``bench/results/protocol/``): sac, mbpo and ps-mbpo on four more DeepMind
  Control tasks (walker-walk, cheetah-run, finger-spin, reacher-easy), 2 seeds each, beside the
  published SAC: the protocol checked away from cartpole (docs/results.md);
* ``posterior`` (``bench/results/posterior/``): does the posterior matter? The paper's ablation
  over M, the policies per model (ps-mbpo at N = 2 with M = 1, 2, 3; M = 1 is the standard PSRL
  factorisation), ops-mbpo with the protocol's OPS rule, and mbpo, on cartpole-swingup (5
  seeds) and its sparse version (8 seeds), identical seed lists across arms
  (``bench/power.py`` says what these seeds can detect);
* ``visited`` (``bench/results/visited/``): mbpo and ps-mbpo on window-open, seed 0, for the
  paper's state-visitation figure (``bench/diagnose/visited_states.py`` reads the real buffer
  from each run's checkpoint, which stays out of git);
* ``nll_beta0`` (``bench/results/nll_beta0/``): the model-based variants with MBPO's Gaussian
  NLL (``model.nll_beta=0``) instead of the protocol's beta-NLL (docs/results_v1.md section 4):
  the first protocol's runs, kept as the ablation (the grid's ``sac`` has no model and serves
  both).

Then ``python -m torchrl_psmbpo.recipes.report bench/results/runs --out <dir>`` builds the grid's tables and
plots. The runs of the first CPU protocol (action repeat 4 with G = 10 on DeepMind Control,
sampled imagined steps), behind docs/results_v1.md sections 1-5, are kept apart in
``bench/results/protocol_v1/`` (its README says what differs); new runs never mix with them.

Usage:
    python bench/grid.py                                  # the whole grid (days on 2 cores)
    python bench/grid.py --tasks dmc:cartpole-swingup --variants sac ps-mbpo --seeds 0 1
    python bench/grid.py --comparison inference           # the Marino & Yue comparison
    python bench/grid.py --comparison nll_beta0           # the model without beta-NLL
    python bench/grid.py --comparison protocol            # four more DMC tasks
    python bench/grid.py --comparison posterior           # the M ablation and OPS
    python bench/grid.py --comparison visited             # the state-visitation figure's runs
    python bench/grid.py --dry-run                        # print the commands only
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from torchrl_psmbpo.recipes.cli import main as recipe_main
from torchrl_psmbpo.recipes.rundir import CHECKPOINT_NAME

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = RESULTS / "runs"
SUITES = {"dmc": "cpu_dmc", "metaworld": "cpu_metaworld"}  # suite -> its CPU protocol preset


def _variants(*names: str) -> dict[str, list[str]]:
    return {name: [f"variant={name}"] for name in names}


PRIOR = ["policy.action_prior=true"]
INFO = ["rollout.information_weight=1.0"]
COMPARISONS: dict[str, tuple[Path, dict[str, tuple[dict[str, list[str]], range]]]] = {
    # comparison: (its results dir, {task: ({arm: overrides}, seeds)})
    "grid": (ROOT, {
        "dmc:cartpole-swingup": (
            _variants("sac", "mbpo", "ps-mbpo", "ops-mbpo", "ps-mbpo-fixed"), range(5)),
        "dmc:cartpole-swingup_sparse": (_variants("sac", "mbpo", "ps-mbpo", "ops-mbpo"), range(3)),
        "metaworld:window-open-v3": (_variants("sac", "mbpo", "ps-mbpo", "ops-mbpo"), range(3)),
    }),
    "inference": (RESULTS / "inference", {
        "dmc:cartpole-swingup": ({
            "ps-mbpo+prior": ["variant=ps-mbpo", *PRIOR],
            "ps-mbpo+info": ["variant=ps-mbpo", *INFO],
            "ps-mbpo+prior+info": ["variant=ps-mbpo", *PRIOR, *INFO],
        }, range(3)),
        "dmc:cartpole-swingup_sparse": ({
            "ps-mbpo+info": ["variant=ps-mbpo", *INFO],
            "ps-mbpo+info-optimistic": ["variant=ps-mbpo", *INFO,
                                        "rollout.information_sign=optimistic"],
        }, range(3)),
    }),
    "protocol": (RESULTS / "protocol", {
        task: (_variants("sac", "mbpo", "ps-mbpo"), range(2))
        for task in ("dmc:walker-walk", "dmc:cheetah-run", "dmc:finger-spin", "dmc:reacher-easy")
    }),
    "posterior": (RESULTS / "posterior", {
        task: ({"mbpo": ["variant=mbpo"],
                **{f"ps-mbpo-M{m}": ["variant=ps-mbpo", f"posterior.policies_per_model={m}"]
                   for m in (1, 2, 3)},
                "ops-mbpo": ["variant=ops-mbpo"]}, seeds)
        for task, seeds in (("dmc:cartpole-swingup", range(5)),
                            ("dmc:cartpole-swingup_sparse", range(8)))
    }),
    "visited": (RESULTS / "visited", {
        "metaworld:window-open-v3": (_variants("mbpo", "ps-mbpo"), range(1)),
    }),
    "nll_beta0": (RESULTS / "nll_beta0", {
        task: ({v: [f"variant={v}", "model.nll_beta=0"] for v in ("mbpo", "ps-mbpo", "ops-mbpo")},
               range(3))
        for task in ("dmc:cartpole-swingup", "dmc:cartpole-swingup_sparse")
    }),
}


def commands(comparison: str = "grid", tasks: list[str] | None = None,
             arms: list[str] | None = None, seeds: list[int] | None = None,
             jobs: int = 2) -> list[tuple[str, list[str]]]:
    """``[(suite, recipe argv)]``: one multirun per (task, arm) with the seeds not finished yet.

    Raises:
        ValueError: an unknown comparison, task or arm (the message lists the accepted ones).
    """
    if comparison not in COMPARISONS:
        raise ValueError(f"unknown comparison {comparison!r}; accepted: {list(COMPARISONS)}")
    root, table = COMPARISONS[comparison]
    for task in tasks or []:
        if task not in table:
            raise ValueError(f"unknown task {task!r} for --comparison {comparison}; "
                             f"accepted: {list(table)}")
    known = sorted({arm for by_arm, _ in table.values() for arm in by_arm})
    for arm in arms or []:
        if arm not in known:
            raise ValueError(f"unknown variant {arm!r} for --comparison {comparison}; "
                             f"accepted: {known}")
    out = []
    for task in tasks or list(table):
        by_arm, task_seeds = table[task]
        suite = task.split(":", 1)[0]
        for arm, overrides in by_arm.items():
            if arms is not None and arm not in arms:
                continue
            arm_dir = root / task.replace(":", "_") / arm
            todo = [s for s in task_seeds if (seeds is None or s in seeds)
                    and not finished(arm_dir / f"seed{s}")]
            if todo:
                out.append((suite, [
                    "-m", f"preset={SUITES[suite]}", f"task={task}", *overrides,
                    f"seed={','.join(map(str, todo))}", "progress=false",
                    "run.resume_if_exists=true", "run.discard_existing=true",
                    "hydra/launcher=joblib",
                    f"hydra.launcher.n_jobs={jobs}", f"hydra.sweep.dir={arm_dir}",
                    "hydra.sweep.subdir=seed${seed}"]))
    return out


def finished(run_dir: Path) -> bool:
    """A run that reached its config's ``run.total_steps``: by its checkpoint or, in a fresh
    clone where git kept only the scalar logs, by its final evaluation (every run ends with one
    at ``run.total_steps``)."""
    from omegaconf import OmegaConf

    ckpt, cfg = run_dir / CHECKPOINT_NAME, run_dir / "config.yaml"
    if not cfg.is_file():
        return False
    total = OmegaConf.load(cfg).run.total_steps
    if ckpt.is_file():
        return torch.load(ckpt, map_location="cpu", weights_only=False)["progress"]["step"] >= total
    evals = run_dir / "logs" / "scalars" / "eval" / "return.csv"
    lines = evals.read_text().split() if evals.is_file() else []
    return bool(lines) and int(float(lines[-1].split(",")[0])) >= total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comparison", default="grid", help=f"one of {list(COMPARISONS)}")
    parser.add_argument("--tasks", nargs="+", default=None)
    parser.add_argument("--variants", nargs="+", default=None, help="arms (dir names) to run")
    parser.add_argument("--seeds", nargs="+", type=int, default=None)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    try:
        todo = commands(args.comparison, args.tasks, args.variants, args.seeds, args.jobs)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if not todo:
        print("nothing left to run: every selected run has finished")
    for suite, argv_ in todo:
        print(f"python recipes/psmbpo_{suite}.py " + " ".join(argv_), flush=True)
        if not args.dry_run:
            recipe_main(suite, argv_)
    return 0


if __name__ == "__main__":
    sys.exit(main())
