"""Diagnose the world model on the states a run visited: one-step error per target dimension.

Loads the real buffer D_E from a run's checkpoint, fits a fresh dynamics ensemble with the
run's model settings on the older transitions (delta and direct targets, or as configured), and
reports on the newest ones (the states the current policy visits) the error of the elites' mean
as a fraction of each target's variance (0 = exact, 1 = no better than the mean), the share of
rail-limit states for cartpole, and, for a sparse reward, the true and predicted mean reward on
the rewarded transitions. Not part of the test run.

Usage:
    python bench/diagnose/diagnose_model.py <run dir>
    python bench/diagnose/diagnose_model.py <run dir> --targets delta direct --max-epochs 100
    python bench/diagnose/diagnose_model.py <sparse run dir> --targets delta --split random --nll-beta 0 0.5 1
"""

from __future__ import annotations

import time

import torch
from run_dirs import load_real_data, parser, require_checkpoints

from torchrl_psmbpo.world_model import DynamicsEnsemble, DynamicsTrainer


def fraction_unexplained(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return ((pred - target) ** 2).mean(0) / target.var(0).clamp_min(1e-12)


def main(argv: list[str] | None = None) -> None:
    cli = parser(__doc__, one_run=True)
    cli.add_argument("--targets", nargs="+", default=["delta", "direct"])
    cli.add_argument("--newest", type=float, default=0.2,
                     help="share of the newest transitions held out for the report")
    cli.add_argument("--nll-beta", type=float, nargs="+", default=None,
                     help="beta-NLL betas to compare (default: the run's model.nll_beta)")
    cli.add_argument("--max-epochs", type=int, default=None)
    cli.add_argument("--patience", type=int, default=None)
    cli.add_argument("--split", choices=["newest", "random"], default="newest",
                     help="report on the newest transitions or on a random share")
    args = cli.parse_args(argv)
    require_checkpoints([args.run_dir])
    torch.manual_seed(0)
    cfg, data, step, _ = load_real_data(args.run_dir)
    n = data.shape[0]
    cut = int(n * (1 - args.newest))
    if args.split == "random":
        data = data[torch.randperm(n)]
    train, test = data[:cut], data[cut:]
    obs, act = test["observation"], test["action"]
    nobs, rew = test["next", "observation"], test["next", "reward"]
    which = ("the oldest", "the newest") if args.split == "newest" else ("a random", "the other")
    print(f"{args.run_dir}: {n} real transitions up to agent step {step}; fit on {which[0]} "
          f"{cut}, report on {which[1]} {n - cut}")
    if obs.shape[-1] == 5:  # cartpole: position, cos, sin, cart velocity, pole velocity
        print(f"  share of report states near the rail limits (|x| > 1.7): "
              f"{(obs[:, 0].abs() > 1.7).float().mean():.3f}")
    betas = args.nll_beta if args.nll_beta is not None else [cfg.model.nll_beta]
    for targets, beta in ((t, b) for t in args.targets for b in betas):
        torch.manual_seed(0)
        model = DynamicsEnsemble(
            obs.shape[-1], act.shape[-1], num_members=max(cfg.model.members or 1, 2),
            num_elites=max(min(cfg.model.elites, cfg.model.members or 1), 1),
            hidden=cfg.model.hidden, depth=cfg.model.depth,
            predict_delta=targets == "delta", normalize_targets=cfg.model.normalize_targets,
        )
        trainer = DynamicsTrainer(
            model, lr=cfg.model.lr, weight_decay=cfg.model.weight_decay,
            batch_size=cfg.model.batch_size, holdout_ratio=cfg.model.holdout_ratio,
            patience=args.patience or cfg.model.patience, val_metric=cfg.model.val_metric,
            max_epochs=args.max_epochs if args.max_epochs else cfg.model.max_epochs, seed=0,
            nll_beta=beta,
        )
        t = time.perf_counter()
        metrics = trainer.train(train)
        seconds = time.perf_counter() - t
        with torch.no_grad():  # the elites' mean prediction
            pred_obs, pred_rew = model.predict(obs, act, selection="ensemble_mean",
                                               deterministic=True, members="elites")
        d_obs = fraction_unexplained(pred_obs - obs, nobs - obs)
        d_rew = fraction_unexplained(pred_rew, rew)
        if obs.shape[-1] == 5:
            inner = (obs[:, 0].abs() < 1.6) & (nobs[:, 0].abs() < 1.6)
            d_in = fraction_unexplained((pred_obs - obs)[inner], (nobs - obs)[inner])
            print(f"  {targets:6s} away from the rail limits ({int(inner.sum())} transitions): "
                  f"{[round(v, 4) for v in d_in.tolist()]}")
        print(f"  {targets:6s} nll_beta {beta:g} epochs {metrics['epochs']:3d} ({seconds:5.1f} s): "
              f"unexplained variance of each observation change "
              f"{[round(v, 4) for v in d_obs.tolist()]}, reward {d_rew.item():.4f}")
        hit = rew.reshape(-1) > 0
        if 0 < int(hit.sum()) < hit.numel():  # a sparse reward: is its mean fitted?
            print(f"  {targets:6s} nll_beta {beta:g} on the {int(hit.sum())} rewarded transitions: "
                  f"true mean {rew.reshape(-1)[hit].mean():.3f}, predicted "
                  f"{pred_rew.reshape(-1)[hit].mean():.3f}")


if __name__ == "__main__":
    main()
