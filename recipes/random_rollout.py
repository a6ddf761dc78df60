"""Roll out a uniformly random policy on any task of the factory and print what it returns.

A quick check that a task builds, steps and renders on this machine before training on it.

Examples:
    python recipes/random_rollout.py --task dmc:cartpole-swingup --steps 1000
    python recipes/random_rollout.py --task metaworld:reach-v3 --episodes 2
"""

from __future__ import annotations

import argparse

import torch
from tqdm import tqdm

from torchrl_psmbpo.envs.factory import make_env, max_episode_steps


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="dmc:cartpole-swingup")
    parser.add_argument("--episodes", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    env = make_env(args.task, seed=args.seed)
    returns = []
    for _ in tqdm(range(args.episodes), desc=f"random policy on {args.task}"):
        td = env.rollout(max_episode_steps(args.task), break_when_any_done=True)
        returns.append(td["next", "reward"].sum().item())
    result = {
        "episodes": float(len(returns)),
        "mean_return": sum(returns) / len(returns),
        "episode_length": float(td.shape[0]),
    }
    print(
        f"{args.task}: {args.episodes} random episode(s), mean return {result['mean_return']:.2f}, "
        f"last episode length {td.shape[0]}"
    )
    return result


if __name__ == "__main__":
    main()
