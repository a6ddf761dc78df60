"""Compare a run's imagined transitions with the simulator set to the same states (cartpole).

Loads a run's checkpoint (its world model, policies and real buffer), draws start states from
D_E as the loop does, acts with the policy of member 0, predicts the next state and reward with
the model (a sampled prediction as the imagined env makes by default, and the mean), and steps
DeepMind Control's cartpole from exactly those states (qpos = [x, atan2(sin, cos)], qvel = the
velocities; the action repeated ``env.action_repeat`` times). Reports, per target, the error
of each as a fraction of the target's variance over the sampled states, and the ratio of the
model's predicted standard deviation to its actual error (1 = calibrated). Not part of the tests.

Usage:
    python bench/diagnose_imagined.py results_runs/cal/cartpole-swingup/mbpo-nll/seed0
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from recipes.build import make_buffers, make_policies, make_world_model
from recipes.cli import to_config


def simulate(states: np.ndarray, actions: np.ndarray, task: str, repeat: int):
    """True next observations and summed rewards of cartpole from the given observations."""
    from dm_control import suite

    domain, name = task.split(":", 1)[1].split("-", 1)
    env = suite.load(domain, name.replace("-", "_"), task_kwargs={"random": 0})
    env.reset()
    physics = env.physics
    next_obs, rewards = [], []
    for obs, act in zip(states, actions):
        with physics.reset_context():
            physics.data.qpos[:] = [obs[0], np.arctan2(obs[2], obs[1])]
            physics.data.qvel[:] = obs[3:5]
        total = 0.0
        for _ in range(repeat):  # what env.step does, without its time limit
            env.task.before_step(act, physics)
            physics.step(env._n_sub_steps)
            env.task.after_step(physics)
            total += env.task.get_reward(physics)
        observation = env.task.get_observation(physics)
        next_obs.append(np.concatenate([observation["position"], observation["velocity"]]))
        rewards.append(total)
    return np.asarray(next_obs, dtype=np.float32), np.asarray(rewards, dtype=np.float32)


def main(argv: list[str] | None = None) -> dict[str, list[float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--states", type=int, default=2000)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    cfg = to_config(OmegaConf.load(args.run_dir / "config.yaml"))
    if not cfg.env.task.startswith("dmc:cartpole"):
        raise SystemExit("error: this diagnostic sets cartpole's simulator state; got "
                         f"{cfg.env.task}")
    state = torch.load(args.run_dir / "checkpoint.pt", weights_only=False)
    world = make_world_model(cfg, 5, 1)
    policies = make_policies(cfg, 5, 1)
    real, _ = make_buffers(cfg, world)
    world.model.load_state_dict(state["state"]["model"])
    policies.load_state_dict(state["state"]["policies"])
    real.load_state_dict(state["state"]["real_buffer"])
    start = real.sample(args.states)["observation"]
    actor = policies.member(0, 0)
    with torch.no_grad():
        from tensordict import TensorDict

        action = actor(TensorDict({"observation": start}, [args.states]))["action"]
        sampled = world.model.predict(start, action, selection="random", deterministic=False)
        mean = world.model.predict(start, action, selection="random", deterministic=True)
    true_obs, true_rew = simulate(start.numpy(), action.numpy(), cfg.env.task,
                                  cfg.env.action_repeat)
    true = np.concatenate([true_obs - start.numpy(), true_rew[:, None]], 1)
    var = true.var(0)
    names = ["x", "cos", "sin", "x_dot", "theta_dot", "reward"]
    out = {}
    for label, (obs, rew) in (("sampled", sampled), ("mean", mean)):
        pred = np.concatenate([obs.numpy() - start.numpy(), rew.numpy()], 1)
        frac = ((pred - true) ** 2).mean(0) / var
        out[label] = frac.tolist()
        print(f"{label:8s} unexplained variance: "
              + ", ".join(f"{n} {v:.3f}" for n, v in zip(names, frac)))
    near = np.abs(start[:, 0].numpy()) > 1.6
    print(f"start states near the rail limits: {near.mean():.3f}; "
          f"step {state['progress']['step']} of {args.run_dir}")
    return out


if __name__ == "__main__":
    main()
