"""Replay the model-based critic's runaway offline: fresh SAC agents on a saved run's data and model.

Loads a run's checkpoint (its real buffer D_E and its trained world model, both frozen) and
trains FRESH policies exactly as the loop's lines 8-12 do (start states from D_E, imagined
rollouts, lambda-mixed batches, G updates per agent step), without stepping the real env. With
the data and the model fixed, whatever the critic does comes from the imagined data alone.
Every ``--every`` steps it prints the critic's Q on real (s, a) of D_E beside the largest value a
discounted return can take there (max real reward / (1 - gamma)), the temperature, the entropy
and the critic loss. ``key=value`` overrides change the config (e.g. ``rollout.deterministic=true``,
``policy.real_ratio=0.5``). Not part of the tests; the small case lives in tests/.

Usage:
    python bench/diagnose/diagnose_runaway.py <run dir> [--steps 1500] [key=value ...]
"""

from __future__ import annotations

import torch
from run_dirs import parser, read_checkpoint, read_config, require_checkpoints, trained_world_model
from tensordict import TensorDict

from torchrl_psmbpo.recipes.build import make_buffers, make_policies, make_posterior, make_real_env
from torchrl_psmbpo.recipes.loop import Progress, imagine, update_policies


def main(argv: list[str] | None = None) -> list[dict[str, float]]:
    cli = parser(__doc__, one_run=True)
    cli.add_argument("--steps", type=int, default=1500, help="agent steps to replay")
    cli.add_argument("--every", type=int, default=250)
    cli.add_argument("--seed", type=int, default=0)
    cli.add_argument("overrides", nargs="*", metavar="key=value")
    args = cli.parse_intermixed_args(argv)
    require_checkpoints([args.run_dir])
    torch.manual_seed(args.seed)
    cfg = read_config(args.run_dir, args.overrides)
    state = read_checkpoint(args.run_dir)
    env = make_real_env(cfg, make_posterior(cfg)).env
    obs_dim, act_dim = env.observation_spec["observation"].shape[-1], env.action_spec.shape[-1]
    world = trained_world_model(cfg, state, obs_dim, act_dim)
    real, sampler = make_buffers(cfg, world)
    real.load_state_dict(state["state"]["real_buffer"])
    policies = make_policies(cfg, obs_dim, act_dim)
    data = real[: len(real)]
    bound = float(data["next", "reward"].max()) / (1 - cfg.policy.gamma)
    run = Progress(step=cfg.run.init_random_steps)
    rows = []
    print(f"{args.run_dir} at step {state['progress']['step']}: {len(real)} real transitions; "
          f"{' '.join(args.overrides) or 'as the run'}; Q bound {bound:.0f}")
    for k in range(1, args.steps + 1):
        imagined = imagine(world, policies, real, cfg, run)
        losses = update_policies(policies, sampler, cfg.policy.updates_per_step, run)
        run.step += 1
        if k % args.every == 0:
            idx = torch.randint(len(real), (1000,))
            critics = policies.member_critics(0, 0)
            with torch.no_grad():
                q = critics[0](TensorDict({"observation": data["observation"][idx],
                                           "action": data["action"][idx]}, [1000]))
            row = {"step": k, "q_real": float(q["state_action_value"].mean()),
                   "alpha": float(losses["alpha"].mean()), "entropy": float(losses["entropy"].mean()),
                   "loss_q": float(losses["loss_qvalue"].mean()), "imagined_r": imagined["imagined/reward"]}
            rows.append(row)
            print("  ".join(f"{k} {v:.3g}" for k, v in row.items()), flush=True)
    return rows


if __name__ == "__main__":
    main()
