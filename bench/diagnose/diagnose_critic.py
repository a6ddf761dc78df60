"""Critic values against Monte-Carlo returns, per member, from a run's checkpoint (DMC tasks).

For each member (or the posterior's most likely one), runs the member's *stochastic* policy (as
it acts in training) on DeepMind Control with no time limit for three episode lengths, and
compares its critics' value ``min(Q1, Q2)(s_t, a_t)`` at the steps of the first episode length
with the discounted soft return that SAC's critic estimates,
``G_t = r_t + sum_{k>=1} gamma^k (r_{t+k} - alpha log pi(a_{t+k} | s_{t+k}))``.
The critic bootstraps at the time limit (a truncation), so its target is the infinite-horizon
value; with two more episode lengths of rollout after every compared step the neglected tail
is at most ``gamma^(2T) * max|r| / (1 - gamma)`` (printed). Reports per member: the mean of Q
and G over the compared steps, the bias ``mean(Q - G)``, the bias relative to ``mean |G|``, and
the correlation of Q with G. Not part of the test run.

Usage:
    python bench/diagnose/diagnose_critic.py bench/results/protocol_v1/runs/dmc_cartpole-swingup/sac/seed0
    python bench/diagnose/diagnose_critic.py <run dir> [<run dir> ...] --members all --episodes 3
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from run_dirs import chosen_members, parser, print_table, read_config, trained_policies
from tensordict import TensorDict
from torchrl.envs import ExplorationType, set_exploration_type

from torchrl_psmbpo.envs import max_episode_steps, parse_task
from torchrl_psmbpo.recipes.checkpoint import CheckpointError, load_checkpoint


def dm_env(task: str, seed: int):
    """The DMC task without a time limit (observations concatenated in sorted-key order, as
    ``torchrl_psmbpo.envs.make_env`` does)."""
    from dm_control import suite

    domain, name = parse_task(task)[1].split("-", 1)
    return suite.load(domain, name.replace("-", "_"),
                      task_kwargs={"random": seed, "time_limit": float("inf")})


def flat(observation) -> np.ndarray:
    return np.concatenate([np.ravel(observation[k]) for k in sorted(observation)]).astype(np.float32)


@torch.no_grad()
def rollout(policies, n: int, m: int, task: str, seed: int, steps: int, repeat: int):
    """Observations, actions, summed rewards and log pi of ``steps`` stochastic agent steps."""
    actor = policies.member(n, m)
    env = dm_env(task, seed)
    ts = env.reset()
    obs, acts, rews, logps = [], [], [], []
    torch.manual_seed(seed)
    for _ in range(steps):
        o = torch.as_tensor(flat(ts.observation))
        td = TensorDict({"observation": o.unsqueeze(0)}, [1])
        with set_exploration_type(ExplorationType.RANDOM):
            dist = actor.get_dist(td)
            a = dist.rsample().clamp(-1 + 1e-6, 1 - 1e-6)
            logp = dist.log_prob(a)
        r = 0.0
        for _ in range(repeat):
            ts = env.step(a[0].numpy())
            r += ts.reward or 0.0
        obs.append(o)
        acts.append(a[0])
        rews.append(r)
        logps.append(float(logp.reshape(-1)[0]))
    return torch.stack(obs), torch.stack(acts), np.asarray(rews), np.asarray(logps)


def soft_returns(rewards: np.ndarray, logps: np.ndarray, gamma: float, alpha: float) -> np.ndarray:
    """``G_t = r_t + sum_{k>=1} gamma^k (r_{t+k} - alpha log pi_{t+k})`` for every t."""
    out = np.zeros(len(rewards))
    following = 0.0  # the soft return from t+1 on, including t+1's entropy bonus
    for t in range(len(rewards) - 1, -1, -1):
        out[t] = rewards[t] + gamma * following
        following = rewards[t] - alpha * logps[t] + gamma * following
    return out


def diagnose(run_dir: Path, members: str, episodes: int) -> list[dict]:
    cfg = read_config(run_dir)
    if parse_task(cfg.env.task)[0] != "dmc":
        raise ValueError(f"{run_dir}: task {cfg.env.task!r}; this diagnostic takes dmc:<task> runs")
    payload = load_checkpoint(run_dir, cfg)
    chosen = chosen_members(cfg, payload, members)
    probe = dm_env(cfg.env.task, 0)
    obs_dim = len(flat(probe.reset().observation))
    act_dim = probe.action_spec().shape[0]
    policies = trained_policies(cfg, payload, obs_dim, act_dim)
    horizon = -(-max_episode_steps(cfg.env.task) // cfg.env.action_repeat)
    gamma = cfg.policy.gamma
    rows = []
    for i in chosen:
        n, m = policies.member_index(i)
        alpha = float(policies.log_alpha[n, m].detach().exp())
        q1, q2 = policies.member_critics(n, m)
        qs, gs = [], []
        for episode in range(episodes):
            obs, acts, rews, logps = rollout(policies, n, m, cfg.env.task, 1000 + episode,
                                             3 * horizon, cfg.env.action_repeat)
            g = soft_returns(rews, logps, gamma, alpha)[:horizon]
            with torch.no_grad():
                td = TensorDict({"observation": obs[:horizon], "action": acts[:horizon]}, [horizon])
                q = torch.minimum(q1(td.clone())["state_action_value"],
                                  q2(td.clone())["state_action_value"]).reshape(-1).numpy()
            qs.append(q)
            gs.append(g)
        q, g = np.concatenate(qs), np.concatenate(gs)
        rows.append({"run": str(run_dir), "member": i, "alpha": alpha, "Q": q.mean(), "G": g.mean(),
                     "bias": (q - g).mean(), "rel_bias": (q - g).mean() / np.abs(g).mean(),
                     "corr": float(np.corrcoef(q, g)[0, 1])})
    return rows


def neglected_tail(run_dir: Path) -> float:
    """Bound on the part of ``G`` beyond the rollout: ``gamma^(2T) * max|r| / (1 - gamma)``
    (DMC rewards are in [0, 1] per simulator step)."""
    cfg = read_config(run_dir)
    horizon = -(-max_episode_steps(cfg.env.task) // cfg.env.action_repeat)
    gamma = cfg.policy.gamma
    return gamma ** (2 * horizon) * cfg.env.action_repeat / (1 - gamma)


def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__, members="best", episodes=3).parse_args(argv)
    torch.set_num_threads(1)
    code = print_table(
        "| run | member | alpha | mean Q | mean G | bias Q - G | bias / mean abs G | corr(Q, G) |",
        "| {run} | {member} | {alpha:.4f} | {Q:.1f} | {G:.1f} | {bias:+.1f} | {rel_bias:+.3f} | {corr:.3f} |",
        args.run_dirs, lambda run_dir: diagnose(run_dir, args.members, args.episodes),
        errors=(ValueError, CheckpointError, FileNotFoundError),
    )
    if code:
        return code
    print(f"\n(neglected tail of G at most {neglected_tail(args.run_dirs[-1]):.2g} per step)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
