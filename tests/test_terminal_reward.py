"""Known rewards on terminating transitions: the TerminationRule of each Gym task checked against
the real env, and ImaginedRolloutEnv applying it exactly on the transitions that terminate."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
import torch
from tensordict import TensorDict

from helpers import play, scripted_actions
from torchrl_psmbpo.envs.factory import make_env, termination_fn
from torchrl_psmbpo.world_model.dynamics import DynamicsEnsemble
from torchrl_psmbpo.world_model.imagined_env import ImaginedRolloutEnv
from torchrl_psmbpo.termination import TerminationRule

D, A = 3, 2


@pytest.mark.parametrize(
    "task,atol", [("gym:InvertedPendulum-v5", 0.0), ("gym:InvertedDoublePendulum-v5", 1e-4)]
)
def test_known_terminal_reward_matches_the_real_env(task, atol):
    rule = termination_fn(task)
    assert isinstance(rule, TerminationRule) and rule.terminal_reward is not None
    env = make_env(task, seed=2)
    data = play(env, scripted_actions(env, 400, seed=2))
    terminated = data["next", "terminated"].squeeze(-1)
    assert terminated.sum() >= 5
    real = data["next", "reward"][terminated]
    known = rule.reward_at_termination(
        data["observation"][terminated], data["action"][terminated],
        data["next", "observation"][terminated], torch.full_like(real, 123.0),
    )
    torch.testing.assert_close(known, real, rtol=0.0, atol=atol + 1e-6)
    # and the rule is not trivially right: the reward of the other steps differs
    assert (data["next", "reward"][~terminated] - real.mean()).abs().min() > 0.5


@pytest.mark.parametrize(
    "name,healthy,steps",
    [("Hopper-v5", 1.0, 400), ("Walker2d-v5", 1.0, 400), ("Humanoid-v5", 5.0, 300), ("Ant-v5", 1.0, 3000)],
)
def test_locomotion_tasks_pay_no_healthy_reward_at_termination(name, healthy, steps):
    """Why no terminal rule is set for them: only the healthy bonus is dropped at termination
    (gymnasium 1.4, v5), the rest of the reward is not a function of the observation."""
    env = gymnasium.make(name)
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    survive = {True: [], False: []}
    for _ in range(steps):
        _, _, terminated, truncated, info = env.step(rng.uniform(-1, 1, env.action_space.shape))
        survive[terminated].append(info["reward_survive"])
        if terminated or truncated:
            env.reset()
    assert survive[True], f"no termination of {name} within {steps} random steps"
    assert set(survive[True]) == {0.0}
    assert set(survive[False]) == {healthy}
    rule = termination_fn(f"gym:{name}")
    assert getattr(rule, "terminal_reward", None) is None


def test_imagined_env_overwrites_the_reward_exactly_on_terminating_transitions():
    torch.manual_seed(0)
    model = DynamicsEnsemble(D, A, num_members=4, num_elites=3, hidden=32, depth=2)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))

    def falls(obs, action, next_obs):
        return next_obs[..., :1] > 0.4

    start = TensorDict({"observation": torch.randn(16, D)}, [16])
    actions = torch.rand(6, 4, 2, 16, A) * 2 - 1
    outs = {}
    for name, fn in (
        ("bare", falls),
        ("constant", TerminationRule(falls, terminal_reward=-7.0)),
        ("callable", TerminationRule(falls, terminal_reward=lambda o, a, no, r: r - 1.0)),
    ):
        env = ImaginedRolloutEnv(model, fn, (4, 2, 16))
        steps = iter(actions)
        torch.manual_seed(5)
        outs[name] = env.rollout(6, lambda td: td.set("action", next(steps)), tensordict=start)
    bare = outs["bare"]
    frozen = bare["done"].squeeze(-1)  # done before the step
    ends = bare["next", "terminated"].squeeze(-1) & ~frozen  # the terminating transitions
    others = ~ends & ~frozen
    assert ends.sum() >= 10 and others.sum() >= 10 and frozen.any()
    for name in ("constant", "callable"):
        torch.testing.assert_close(outs[name]["next", "observation"], bare["next", "observation"])
        torch.testing.assert_close(outs[name]["next", "terminated"], bare["next", "terminated"])
    reward = {name: data["next", "reward"].squeeze(-1) for name, data in outs.items()}
    assert (reward["constant"][ends] == -7.0).all()
    torch.testing.assert_close(reward["callable"][ends], reward["bare"][ends] - 1.0)
    for name in ("constant", "callable"):
        assert torch.equal(reward[name][others], reward["bare"][others])
        assert (reward[name][frozen] == 0).all()


def test_former_import_path_gives_the_same_rules():
    import torchrl_psmbpo.termination as shared
    import torchrl_psmbpo.world_model.termination as former

    assert former.__all__ == shared.__all__
    assert all(getattr(former, name) is getattr(shared, name) for name in shared.__all__)
