"""Deterministic evaluation of policy-ensemble members on a separate, seeded env."""

from __future__ import annotations

import torch
from torchrl.envs import ExplorationType, set_exploration_type

from components.envs import make_env, max_episode_steps
from components.envs import EpisodeSeeder
from components.policy import PolicyEnsemble


class Evaluator:
    """Runs deterministic episodes of chosen members.

    The env is seeded per evaluation round, so the same member evaluated at the same round
    sees the same episodes whether or not the run was resumed in between.

    Args:
        task: the task name.
        seed: the evaluation seed (the run's seed plus an offset).
        episodes: episodes per evaluation.
        device: the env's device.
    """

    def __init__(
        self, task: str, seed: int, episodes: int = 1, device: str = "cpu", action_repeat: int = 1
    ) -> None:
        self.task = task
        self.seed = seed
        self.episodes = episodes
        self.env = make_env(task, seed=seed, device=device, action_repeat=action_repeat)
        self.seeder = EpisodeSeeder(seed)
        self.env.append_transform(self.seeder)
        self.max_steps = -(-max_episode_steps(task) // action_repeat)

    @torch.no_grad()
    def evaluate(self, policies: PolicyEnsemble, member: int, round_index: int) -> dict[str, float]:
        """Mean return (and Metaworld success rate) of flat member ``member``'s mean action."""
        n, m = divmod(int(member), policies.ensemble_shape[1])
        actor = policies.member(n, m)
        returns, successes = [], []
        # episode k of round r always gets the same initial state
        self.seeder.finished_episodes.fill_(round_index * self.episodes)
        with set_exploration_type(ExplorationType.DETERMINISTIC):
            for _ in range(self.episodes):
                td = self.env.rollout(self.max_steps, actor, break_when_any_done=True)
                returns.append(td["next", "reward"].sum().item())
                if ("next", "success") in td.keys(True):
                    successes.append(float(td["next", "success"].any()))
        out = {"return": sum(returns) / len(returns)}
        if successes:
            out["success"] = sum(successes) / len(successes)
        return out
