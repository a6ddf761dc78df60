"""Known termination functions of the tasks that terminate, for imagined rollouts.

A learned dynamics model predicts the next observation and the reward but not whether the
episode ends. MBPO (Janner et al. 2019, ``mbpo/static/*.py``) and mbrl-lib
(``mbrl/env/termination_fns.py``) hand the model env the task's own termination rule written
as a function of the observation. These are the same rules, rewritten for the gymnasium v5
MuJoCo tasks (default constructor arguments, positions excluded from the observation) and for
torch tensors of any leading shape.

Every function has the signature ``fn(observation, action, next_observation) -> terminated``
where ``terminated`` is a bool tensor of shape ``next_observation.shape[:-1] + (1,)``.
"""

from __future__ import annotations

from typing import Callable

import torch

TerminationFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

__all__ = [
    "TerminationFn",
    "never_terminates",
    "hopper_terminated",
    "walker2d_terminated",
    "ant_terminated",
    "humanoid_terminated",
    "inverted_pendulum_terminated",
    "inverted_double_pendulum_terminated",
    "GYM_TERMINATION_FNS",
]


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


GYM_TERMINATION_FNS: dict[str, TerminationFn] = {
    "Hopper": hopper_terminated,
    "Walker2d": walker2d_terminated,
    "Ant": ant_terminated,
    "Humanoid": humanoid_terminated,
    "InvertedPendulum": inverted_pendulum_terminated,
    "InvertedDoublePendulum": inverted_double_pendulum_terminated,
}
"""Gym task family (the id without its ``-vN`` suffix) -> termination function."""
