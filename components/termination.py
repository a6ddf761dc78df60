"""Known termination functions of the tasks that terminate, for imagined rollouts.

A learned dynamics model predicts the next observation and the reward but not whether the
episode ends. MBPO (Janner et al. 2019, ``mbpo/static/*.py``) and mbrl-lib
(``mbrl/env/termination_fns.py``) hand the model env the task's own termination rule written
as a function of the observation. These are the same rules, rewritten for the gymnasium v5
MuJoCo tasks (default constructor arguments, positions excluded from the observation) and for
torch tensors of any leading shape.

Every function has the signature ``fn(observation, action, next_observation) -> terminated``
where ``terminated`` is a bool tensor of shape ``next_observation.shape[:-1] + (1,)``.

Some tasks also pay a known reward on the terminating step, which a model trained mostly on
non-terminal transitions does not predict (InvertedPendulum-v5 pays 0 there; a model predicted
0.68). A :class:`TerminationRule` is a termination function that carries that reward as its
``terminal_reward``; :class:`~torchrl_psmbpo.world_model.imagined_env.ImaginedRolloutEnv` writes it
over the model's reward on terminating transitions. Checked against gymnasium 1.4's sources
and the real envs (``tests/test_envs.py``):

* InvertedPendulum-v5: ``reward = int(not terminated)``, so 0 at termination (set);
* InvertedDoublePendulum-v5: ``reward = 10 * int(not terminated) - distance_penalty -
  velocity_penalty``; at termination the penalties alone, a function of the next observation
  (:func:`inverted_double_pendulum_terminal_reward`, exact while the joint speeds are inside
  the observation's clip at 10 rad/s) (set);
* Hopper, Walker2d, Ant, Humanoid (v5): the healthy reward (1, 1, 1, 5) is not paid at the
  terminating step (``info["reward_survive"] == 0``), but the rest of the reward (forward
  velocity from the x position, which the observation excludes, minus control and contact
  costs) is not a function of the observation, so no rule is set and the model's reward is
  kept. ``TerminationRule(hopper_terminated, lambda o, a, no, r: r - 1.0)`` would remove the
  healthy bonus from the model's prediction, if one wants it.
"""

from __future__ import annotations

from typing import Callable, Union

import torch

TerminationFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
TerminalReward = Union[float, Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]]
"""A constant, or ``f(observation, action, next_observation, model_reward) -> reward [..., 1]``."""

__all__ = [
    "TerminationFn",
    "TerminalReward",
    "TerminationRule",
    "inverted_double_pendulum_terminal_reward",
    "never_terminates",
    "hopper_terminated",
    "walker2d_terminated",
    "ant_terminated",
    "humanoid_terminated",
    "inverted_pendulum_terminated",
    "inverted_double_pendulum_terminated",
    "GYM_TERMINATION_FNS",
]


class TerminationRule:
    """A termination function carrying the task's known reward on terminating transitions.

    Called like the function it wraps; ``ImaginedRolloutEnv`` reads :attr:`terminal_reward`
    and writes :meth:`reward_at_termination` over the model's reward of the transitions that
    terminate. To keep the model's reward, pass the bare function (``rule.fn``) instead.

    Args:
        fn: ``(observation, action, next_observation) -> bool [..., 1]``.
        terminal_reward: a constant, or ``f(observation, action, next_observation,
            model_reward) -> [..., 1]``; ``None``: no known terminal reward.

    Examples:
        >>> rule = TerminationRule(inverted_pendulum_terminated, terminal_reward=0.0)
        >>> next_obs = torch.tensor([[0.0, 0.1, 0.0, 0.0], [0.0, 0.5, 0.0, 0.0]])
        >>> rule(next_obs, torch.zeros(2, 1), next_obs).squeeze(-1)
        tensor([False,  True])
        >>> rule.reward_at_termination(next_obs, torch.zeros(2, 1), next_obs, torch.ones(2, 1)).squeeze(-1)
        tensor([0., 0.])
    """

    def __init__(self, fn: TerminationFn, terminal_reward: TerminalReward | None = None) -> None:
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        if terminal_reward is not None and not callable(terminal_reward):
            if isinstance(terminal_reward, bool) or not isinstance(terminal_reward, (int, float)):
                raise TypeError(
                    f"terminal_reward must be a number, a callable or None, got {terminal_reward!r}"
                )
            terminal_reward = float(terminal_reward)
        self.fn = fn
        self.terminal_reward = terminal_reward

    def __call__(
        self, observation: torch.Tensor, action: torch.Tensor, next_observation: torch.Tensor
    ) -> torch.Tensor:
        return self.fn(observation, action, next_observation)

    def reward_at_termination(
        self,
        observation: torch.Tensor,
        action: torch.Tensor,
        next_observation: torch.Tensor,
        reward: torch.Tensor,
    ) -> torch.Tensor:
        """The reward of these transitions if they terminate (``reward`` if none is known)."""
        if self.terminal_reward is None:
            return reward
        if callable(self.terminal_reward):
            out = self.terminal_reward(observation, action, next_observation, reward)
            return out.to(reward.dtype).expand_as(reward)
        return torch.full_like(reward, self.terminal_reward)

    def __repr__(self) -> str:
        name = getattr(self.fn, "__name__", repr(self.fn))
        reward = self.terminal_reward
        reward_text = getattr(reward, "__name__", repr(reward))
        return f"TerminationRule({name}, terminal_reward={reward_text})"


def _flag(cond: torch.Tensor) -> torch.Tensor:
    return cond.unsqueeze(-1)


def never_terminates(
    observation: torch.Tensor, action: torch.Tensor, next_observation: torch.Tensor
) -> torch.Tensor:
    """All-False: DMC and Metaworld episodes only end by the time limit (truncation)."""
    return torch.zeros(
        next_observation.shape[:-1] + (1,), dtype=torch.bool, device=next_observation.device
    )


def hopper_terminated(
    observation: torch.Tensor, action: torch.Tensor, next_observation: torch.Tensor
) -> torch.Tensor:
    """Hopper-v5: unhealthy when height <= 0.7, |angle| >= 0.2 or any |state| >= 100.

    Observation layout: ``[z, angle, qpos[3:], clip(qvel, -10, 10)]``.
    """
    z, angle = next_observation[..., 0], next_observation[..., 1]
    state = next_observation[..., 1:]
    healthy = (
        (state.abs() < 100).all(-1) & (z > 0.7) & (angle > -0.2) & (angle < 0.2)
    )
    return _flag(~healthy)


def walker2d_terminated(
    observation: torch.Tensor, action: torch.Tensor, next_observation: torch.Tensor
) -> torch.Tensor:
    """Walker2d-v5: unhealthy when height is outside (0.8, 2.0) or angle outside (-1, 1)."""
    z, angle = next_observation[..., 0], next_observation[..., 1]
    healthy = (z > 0.8) & (z < 2.0) & (angle > -1.0) & (angle < 1.0)
    return _flag(~healthy)


def ant_terminated(
    observation: torch.Tensor, action: torch.Tensor, next_observation: torch.Tensor
) -> torch.Tensor:
    """Ant-v5: unhealthy when the torso height leaves [0.2, 1.0] or the state is not finite."""
    z = next_observation[..., 0]
    healthy = torch.isfinite(next_observation).all(-1) & (z >= 0.2) & (z <= 1.0)
    return _flag(~healthy)


def humanoid_terminated(
    observation: torch.Tensor, action: torch.Tensor, next_observation: torch.Tensor
) -> torch.Tensor:
    """Humanoid-v5: unhealthy when the torso height leaves (1.0, 2.0)."""
    z = next_observation[..., 0]
    healthy = (z > 1.0) & (z < 2.0)
    return _flag(~healthy)


def inverted_pendulum_terminated(
    observation: torch.Tensor, action: torch.Tensor, next_observation: torch.Tensor
) -> torch.Tensor:
    """InvertedPendulum-v5: the pole angle ``obs[1]`` leaves [-0.2, 0.2] or the state is not finite."""
    ok = torch.isfinite(next_observation).all(-1) & (next_observation[..., 1].abs() <= 0.2)
    return _flag(~ok)


def inverted_double_pendulum_terminated(
    observation: torch.Tensor, action: torch.Tensor, next_observation: torch.Tensor
) -> torch.Tensor:
    """InvertedDoublePendulum-v5: the tip height ``y`` falls to 1 or below.

    ``y = 0.6 cos(t1) + 0.6 cos(t1 + t2)`` (two 0.6 m links), recovered from the observation
    ``[x, sin t1, sin t2, cos t1, cos t2, ...]``.
    """
    sin1, sin2 = next_observation[..., 1], next_observation[..., 2]
    cos1, cos2 = next_observation[..., 3], next_observation[..., 4]
    y = 0.6 * cos1 + 0.6 * (cos1 * cos2 - sin1 * sin2)
    return _flag(y <= 1.0)


def inverted_double_pendulum_terminal_reward(
    observation: torch.Tensor,
    action: torch.Tensor,
    next_observation: torch.Tensor,
    reward: torch.Tensor | None = None,
) -> torch.Tensor:
    """InvertedDoublePendulum-v5's reward at termination: ``-distance_penalty - velocity_penalty``.

    No alive bonus is paid at termination; the penalties are ``0.01 x^2 + (y - 2)^2`` of the
    tip position ``(x, y)`` and ``1e-3 w1^2 + 5e-3 w2^2`` of the two hinge speeds, all read from
    the next observation ``[x_cart, sin t1, sin t2, cos t1, cos t2, v_cart, w1, w2, f]``
    (the speeds are clipped to +-10 there, so the value is exact below that speed).
    """
    o = next_observation
    sin1, sin2, cos1, cos2 = o[..., 1], o[..., 2], o[..., 3], o[..., 4]
    x = o[..., 0] + 0.6 * sin1 + 0.6 * (sin1 * cos2 + cos1 * sin2)
    y = 0.6 * cos1 + 0.6 * (cos1 * cos2 - sin1 * sin2)
    distance = 0.01 * x**2 + (y - 2.0) ** 2
    velocity = 1e-3 * o[..., 6] ** 2 + 5e-3 * o[..., 7] ** 2
    return _flag(-(distance + velocity))


GYM_TERMINATION_FNS: dict[str, TerminationFn] = {
    "Hopper": hopper_terminated,
    "Walker2d": walker2d_terminated,
    "Ant": ant_terminated,
    "Humanoid": humanoid_terminated,
    "InvertedPendulum": TerminationRule(inverted_pendulum_terminated, terminal_reward=0.0),
    "InvertedDoublePendulum": TerminationRule(
        inverted_double_pendulum_terminated, terminal_reward=inverted_double_pendulum_terminal_reward
    ),
}
"""Gym task family (the id without its ``-vN`` suffix) -> termination function (a
:class:`TerminationRule` where the terminal reward is known)."""
