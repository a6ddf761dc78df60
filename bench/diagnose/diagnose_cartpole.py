"""What a cartpole policy does: balance the pole, or spin it through the rewarded zone?

On ``dmc:cartpole-swingup_sparse`` a reward of 1 per simulator step comes only with the pole
upright (cos > 0.995) and the cart centred (|x| < 0.25). Five of the grid's fifteen sparse runs
ended at an eval return of about 30 per 1000 simulator steps; this script tells what such a
policy does. For each member (or the posterior's most likely one) it runs deterministic
episodes (the mean action, as the run's evaluations do) on the env of ``make_env`` and reports,
per episode:

- the return, and the share of agent steps in the rewarded zone and with the pole upright;
- **net turns**: the pole angle's total change over the episode (unwrapped) over 2 pi. A policy
  that swings up and balances turns less than one; a policy that spins the pole through the
  top earns about one reward per turn and turns tens of times;
- the mean |x| of the cart.

Observations are make_env's (sorted keys: ``position`` = cart x, cos and sin of the pole angle,
then ``velocity``), one per agent step. Not part of the test run.

Usage:
    python bench/diagnose/diagnose_cartpole.py bench/results/protocol_v1/runs/dmc_cartpole-swingup_sparse/ops-mbpo/seed1
    python bench/diagnose/diagnose_cartpole.py <run dir> [<run dir> ...] --members all --episodes 3
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch
from run_dirs import chosen_members, parser, print_table, read_config, trained_policies
from torchrl.envs import ExplorationType, set_exploration_type

from torchrl_psmbpo.envs import make_env
from torchrl_psmbpo.recipes.build import EVAL_SEED_OFFSET
from torchrl_psmbpo.recipes.checkpoint import CheckpointError, load_checkpoint
from torchrl_psmbpo.recipes.rundir import CHECKPOINT_NAME

UPRIGHT_COS = 0.995  # dm_control cartpole: the sparse reward's "upright" bound
CENTRED_X = 0.25  # and its "centred" bound


def behaviour(observation: torch.Tensor) -> dict[str, float]:
    """Upright / rewarded-zone shares, net pole turns and mean |x| of one episode's observations.

    Args:
        observation: ``[T, 5]`` make_env observations of dmc cartpole (x, cos, sin, x', theta').

    Examples:
        >>> import math, torch
        >>> theta = torch.linspace(0, 4 * math.pi, 101)  # two full turns, cart at rest
        >>> obs = torch.stack([torch.zeros(101), theta.cos(), theta.sin(),
        ...                    torch.zeros(101), torch.zeros(101)], -1)
        >>> round(behaviour(obs)["net_turns"], 3)
        2.0
    """
    x, cos, sin = observation[:, 0], observation[:, 1], observation[:, 2]
    angle = torch.atan2(sin, cos)
    step = torch.remainder(angle.diff() + math.pi, 2 * math.pi) - math.pi  # in [-pi, pi)
    upright = cos > UPRIGHT_COS
    return {
        "upright": float(upright.float().mean()),
        "rewarded_zone": float((upright & (x.abs() < CENTRED_X)).float().mean()),
        "net_turns": float(step.sum().abs() / (2 * math.pi)),
        "mean_abs_x": float(x.abs().mean()),
    }


def check(run_dir: Path):
    """The run's config, or ValueError naming what is wrong with ``run_dir``."""
    if not (run_dir / "config.yaml").is_file() or not (run_dir / CHECKPOINT_NAME).is_file():
        raise ValueError(f"{run_dir}: not a run dir with config.yaml and {CHECKPOINT_NAME}")
    cfg = read_config(run_dir)
    if not cfg.env.task.startswith("dmc:cartpole"):
        raise ValueError(f"{run_dir}: task {cfg.env.task!r}; this diagnostic takes dmc:cartpole-* runs")
    return cfg


def diagnose(run_dir: Path, members: str, episodes: int) -> list[dict]:
    """One row per member and episode: ``run, member, episode, return`` and :func:`behaviour`."""
    cfg = check(run_dir)
    payload = load_checkpoint(run_dir, cfg)
    env = make_env(cfg.env.task, seed=cfg.seed + EVAL_SEED_OFFSET, action_repeat=cfg.env.action_repeat)
    policies = trained_policies(cfg, payload, env.observation_spec["observation"].shape[-1],
                                env.action_spec.shape[-1])
    rows = []
    for i in chosen_members(cfg, payload, members):
        actor = policies.member(*policies.member_index(i))
        for episode in range(episodes):
            with set_exploration_type(ExplorationType.DETERMINISTIC), torch.no_grad():
                td = env.rollout(10_000, actor)  # the env's time limit ends the episode
            rows.append({"run": str(run_dir), "member": i, "episode": episode,
                         "return": float(td["next", "reward"].sum()),
                         **behaviour(td["observation"])})
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__, members="all", episodes=1).parse_args(argv)
    if args.episodes < 1:
        print(f"error: --episodes {args.episodes}; give at least 1", file=sys.stderr)
        return 2
    try:
        for run_dir in args.run_dirs:  # every run dir before any work
            check(run_dir)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    return print_table(
        "| run | member | episode | return | rewarded zone | upright | net turns | mean abs x |",
        "| {run} | {member} | {episode} | {return:.0f} | {rewarded_zone:.3f} | {upright:.3f} | "
        "{net_turns:.1f} | {mean_abs_x:.2f} |",
        args.run_dirs, lambda run_dir: diagnose(run_dir, args.members, args.episodes),
        errors=(ValueError, CheckpointError),
    )


if __name__ == "__main__":
    sys.exit(main())
