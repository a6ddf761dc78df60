"""Train with the true simulator as the world model (cartpole): is the model the bottleneck?

Runs the recipe's training loop unchanged except that every imagined step is made by DeepMind
Control's cartpole set to the imagined state (qpos = [x, atan2(sin, cos)], qvel = the
velocities; the action repeated ``env.action_repeat`` times), and model fits are skipped. If
MBPO / PS-MBPO learn with this oracle as fast as SAC or faster, the learned model is what holds
them back; if not, the rest of the setup (lambda, G, one-step rollouts, start states) is.
A diagnostic, not a feature: not part of the test run.

Usage:
    python bench/oracle_model.py preset=cpu_dmc variant=mbpo hydra.run.dir=bench_runs/oracle/mbpo
"""

from __future__ import annotations

import sys

import numpy as np
import torch

import recipes.loop
from recipes.cli import main as recipe_main


class CartpoleOracle:
    """``predict(obs, action, ...)`` by the simulator, batched over any leading dims."""

    def __init__(self, task: str, repeat: int) -> None:
        from dm_control import suite

        domain, name = task.split(":", 1)[1].split("-", 1)
        self.env = suite.load(domain, name, task_kwargs={"random": 0})
        self.env.reset()
        self.repeat = repeat

    def __call__(self, obs: torch.Tensor, action: torch.Tensor, **_: object):
        physics, task = self.env.physics, self.env.task
        flat_obs = obs.reshape(-1, obs.shape[-1]).cpu().numpy().astype(np.float64)
        flat_act = action.reshape(-1, action.shape[-1]).cpu().numpy().astype(np.float64)
        next_obs = np.empty_like(flat_obs)
        reward = np.zeros((flat_obs.shape[0], 1))
        for i, (o, a) in enumerate(zip(flat_obs, flat_act)):
            with physics.reset_context():
                physics.data.qpos[:] = [o[0], np.arctan2(o[2], o[1])]
                physics.data.qvel[:] = o[3:5]
            for _ in range(self.repeat):
                task.before_step(a, physics)
                physics.step(self.env._n_sub_steps)
                reward[i, 0] += task.get_reward(physics)
            ob = task.get_observation(physics)
            next_obs[i] = np.concatenate([ob["position"], ob["velocity"]])
        shape = obs.shape[:-1]
        return (torch.as_tensor(next_obs, dtype=obs.dtype).reshape(*shape, -1),
                torch.as_tensor(reward, dtype=obs.dtype).reshape(*shape, 1))


def with_oracle(make_world_model):
    def build(cfg, obs_dim, act_dim):
        world = make_world_model(cfg, obs_dim, act_dim)
        if world is not None:
            world.model.predict = CartpoleOracle(cfg.env.task, cfg.env.action_repeat)
            world.trainer.train = lambda data: {"val_nll": 0.0, "val_mse": 0.0, "epochs": 0}
        return world
    return build


if __name__ == "__main__":
    recipes.loop.make_world_model = with_oracle(recipes.loop.make_world_model)
    recipe_main("dmc", sys.argv[1:])
