"""Sparse-reward diagnostic: did a run find the reward, and does its world model predict it?

For each run dir, loads the checkpoint's real buffer D_E and world model and reports

- **exploration**: per window of env steps, the share of real transitions with a reward
  (reward > 0; on ``dmc:cartpole-swingup_sparse`` an agent step earns up to
  ``env.action_repeat``, one per simulator step with the pole upright and the cart centred);
- **the model's reward on them** (model-based runs): the elites' mean predicted reward and
  predicted standard deviation on the newest rewarded and unrewarded real transitions, against
  the true mean. A model that predicts ~0 with a large standard deviation where the reward was
  earned has explained the reward as noise: the imagined data (a share 1 - lambda of every
  batch) then carries no expected reward there.

Not part of the test run.

Usage:
    python bench/diagnose/diagnose_sparse.py bench/results/protocol_v1/runs/dmc_cartpole-swingup_sparse/*/seed0
    python bench/diagnose/diagnose_sparse.py <run dir> ... --window 10000 --out diag.md
"""

from __future__ import annotations

from pathlib import Path

import torch
from run_dirs import load_real_data, parser, require_checkpoints, trained_world_model


def load(run_dir: Path):
    """The run's config, real transitions (oldest first), world model (None for sac), step."""
    cfg, data, step, state = load_real_data(run_dir)
    world = None
    if "model" in state["state"] and cfg.model_based:
        world = trained_world_model(cfg, state, data["observation"].shape[-1],
                                    data["action"].shape[-1])
    return cfg, data, world, step


def main(argv: list[str] | None = None) -> str:
    cli = parser(__doc__, out=True)
    cli.add_argument("--window", type=int, default=20_000, help="env steps per window")
    cli.add_argument("--newest", type=float, default=0.2,
                     help="share of the newest transitions the model is checked on")
    args = cli.parse_args(argv)
    require_checkpoints(args.run_dirs)
    torch.manual_seed(0)
    explore, model_rows, header = [], [], None
    for run_dir in args.run_dirs:
        cfg, data, world, step = load(run_dir)
        repeat = cfg.env.action_repeat
        reward = data["next", "reward"].reshape(-1)
        per_window = max(1, args.window // repeat)
        n = reward.numel()
        shares = [float((reward[i:i + per_window] > 0).float().mean())
                  for i in range(0, n, per_window)]
        if header is None:
            header = [f"{i * args.window // 1000}-{(i + 1) * args.window // 1000}K"
                      for i in range(len(shares))]
        name = f"{run_dir} (nll_beta {cfg.model.nll_beta:g})" if world is not None else str(run_dir)
        explore.append((name, shares, int((reward > 0).sum()), n))
        if world is not None:
            new = slice(int(n * (1 - args.newest)), n)
            obs, act, rew = data["observation"][new], data["action"][new], reward[new]
            with torch.no_grad():
                _, pred = world.model.predict(obs, act, selection="ensemble_mean",
                                              deterministic=True, members="elites")
                _, logvar = world.model.gaussian(obs, act, members="elites")
            pred = pred.reshape(-1)
            std = logvar[..., -1].mul(0.5).exp().mean(0).reshape(-1)  # elites' mean reward std
            hit = rew > 0
            row = [name, int(hit.sum())]
            for mask in (hit, ~hit):
                row += ([f"{float(rew[mask].mean()):.3f}", f"{float(pred[mask].mean()):.3f}",
                         f"{float(std[mask].mean()):.3f}"] if mask.any() else ["-"] * 3)
            model_rows.append(row)
        print(f"{run_dir}: step {step}, {n} real transitions", flush=True)
    lines = ["Share of real transitions with a reward, per window of env steps:", "",
             "| run | " + " | ".join(f"{h}" for h in header)
             + " | rewarded / all transitions |",
             "|---" * (len(header) + 2) + "|"]
    for name, shares, hits, n in explore:
        cells = [f"{s:.3f}" for s in shares] + ["-"] * (len(header) - len(shares))
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {hits} / {n} |")
    if model_rows:
        lines += ["", f"World model's reward on the newest {args.newest:.0%} of D_E "
                  "(elites' mean prediction):", "",
                  "| run | rewarded transitions | true mean | predicted mean | predicted std "
                  "| unrewarded: true mean | predicted mean | predicted std |",
                  "|---|---|---|---|---|---|---|---|"]
        lines += ["| " + " | ".join(map(str, r)) + " |" for r in model_rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return text


if __name__ == "__main__":
    main()
