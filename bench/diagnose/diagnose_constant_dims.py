"""Constant-dimension diagnostic: does a run's world model keep still what never moves?

For each run dir, loads the checkpoint's real buffer D_E and world model, finds the observation
dimensions whose one-step change is constant over D_E (standard deviation below 1e-6; on
Metaworld's window-open these are the second object's pose, the padding and the goal), and
reports on the newest real transitions:

- the target normaliser's scale on those dimensions (1e-6 since the fix; 1 before it);
- the model's predicted standard deviation there, in raw units (elites' mean);
- the largest deviation of a *sampled* prediction (what the imagined env feeds the agent when
  ``rollout.deterministic=false``) from the true next state on those dimensions, beside the
  typical size of a real one-step change on the moving dimensions.

A model whose sampled next states carry noise on dimensions that never change feeds the
critics inconsistent targets: the failure of the first Metaworld model-based runs
(docs/results_v1.md, section 4). Not part of the test run.

Usage:
    python bench/diagnose/diagnose_constant_dims.py bench/results/protocol_v1/runs/metaworld_window-open-v3/*/seed0
"""

from __future__ import annotations

from pathlib import Path

import torch
from run_dirs import load_real_data, parser, require_checkpoints, trained_world_model

from torchrl_psmbpo.world_model.dynamics import CONSTANT_TARGET_SCALE  # the normaliser's threshold


def diagnose(run_dir: Path, newest: int) -> dict[str, float]:
    """The numbers of one run's row (see the module docstring)."""
    cfg, data, step, state = load_real_data(run_dir)
    obs, act = data["observation"], data["action"]
    next_obs = data["next", "observation"]
    world = trained_world_model(cfg, state, obs.shape[-1], act.shape[-1])
    change = next_obs - obs
    constant = change.std(0) < CONSTANT_TARGET_SCALE
    new = slice(max(0, len(obs) - newest), len(obs))
    with torch.no_grad():
        sampled, _ = world.model.predict(obs[new], act[new], selection="random",
                                         deterministic=False, members="elites")
        _, logvar = world.model.gaussian(obs[new], act[new], members="elites")
    std = logvar[..., :-1].mul(0.5).exp().mean(0).mean(0)  # raw units, per obs dimension
    deviation = (sampled - next_obs[new]).abs()
    moving = ~constant
    return {
        "step": float(step),
        "constant": float(constant.sum()),
        "dims": float(constant.numel()),
        "scale": float(world.model.target_scale[:-1][constant].max()) if constant.any() else float("nan"),
        "pred_std": float(std[constant].mean()) if constant.any() else float("nan"),
        "max_dev": float(deviation[:, constant].max()) if constant.any() else float("nan"),
        "real_change": float(change[new][:, moving].abs().mean()) if moving.any() else float("nan"),
    }


def main(argv: list[str] | None = None) -> str:
    cli = parser(__doc__, out=True)
    cli.add_argument("--newest", type=int, default=5000,
                     help="number of newest real transitions the model is checked on")
    args = cli.parse_args(argv)
    require_checkpoints(args.run_dirs)
    torch.manual_seed(0)
    lines = [
        "| run | agent step | constant dims | target scale there | predicted std there "
        "(raw) | max sampled deviation there | mean abs real change, moving dims |",
        "|---|---|---|---|---|---|---|",
    ]
    for run_dir in args.run_dirs:
        r = diagnose(run_dir, args.newest)
        lines.append(
            f"| {run_dir} | {r['step']:.0f} | {r['constant']:.0f} of {r['dims']:.0f} | "
            f"{r['scale']:.1e} | {r['pred_std']:.2e} | {r['max_dev']:.2e} | {r['real_change']:.2e} |"
        )
    table = "\n".join(lines)
    print(table)
    if args.out is not None:
        args.out.write_text(table + "\n")
    return table


if __name__ == "__main__":
    main()
