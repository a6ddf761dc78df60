"""Acting with a stacked SAC actor ensemble: one chosen member per env, or all members at once.

Both modules read the ensemble's stacked actor parameters (shared, not copied), so they
always act with the current weights. Sampling follows
:func:`torchrl.envs.utils.set_exploration_type`: ``RANDOM`` (or none set) draws
``tanh(loc + scale * eps)`` exactly as a TorchRL ``TanhNormal`` does; ``DETERMINISTIC``
(and ``MODE``/``MEAN``, which have no closed form for a tanh-Normal) give ``tanh(loc)``,
TorchRL's ``TanhNormal.deterministic_sample``.
"""

from __future__ import annotations

import torch
from torch import nn
from torchrl.envs.utils import ExplorationType, exploration_type

from torchrl_psmbpo.policy._networks import squash

Tensor = torch.Tensor


def sample_action(loc: Tensor, scale: Tensor) -> Tensor:
    """A TanhNormal action under the current exploration type (noise drawn here, not in vmap)."""
    mode = exploration_type()
    if mode is None or mode == ExplorationType.RANDOM:
        noise = torch.randn(loc.shape, dtype=loc.dtype, device=loc.device)
        return squash(loc + noise * scale)
    return squash(loc)


class _StackedActor(nn.Module):
    """What both acting modules hold: the backend (live stacked weights), shape, sizes, device."""

    def __init__(
        self, backend, ensemble_shape: torch.Size, observation_dim: int, device: torch.device
    ) -> None:
        super().__init__()
        self.backend = backend
        self.ensemble_shape = torch.Size(ensemble_shape)
        self.observation_dim = observation_dim
        self.device = torch.device(device)


class IndexedMemberActor(_StackedActor):
    """``(observation, policy_index) -> action``: each env acts with member ``policy_index``.

    ``policy_index`` is the flat member index ``i = n * M + m`` in ``[0, N·M)``, one per env,
    shaped like the observation's batch (optionally with a trailing 1). For at most ``N·M``
    envs the chosen members' weights are gathered and applied per env; for more envs every
    member is applied to every env and the chosen outputs are kept (cheaper than gathering
    weights per env then).

    Args:
        backend: the ensemble's :class:`~torchrl_psmbpo.policy._update.BmmBackend` or
            ``VmapBackend`` (it reads the ensemble's live stacked actor parameters).
        ensemble_shape: ``[N, M]``.
        observation_dim: size of the observation vector.
        device: where the parameters live (inputs are moved there; so is the action).
    """

    def forward(self, observation: Tensor, policy_index: Tensor) -> Tensor:
        num = self.ensemble_shape.numel()
        batch_shape = observation.shape[:-1]
        index = torch.as_tensor(policy_index)
        if index.dtype.is_floating_point or index.dtype == torch.bool or index.is_complex():
            raise TypeError(f"policy_index must be an integer tensor, got dtype {index.dtype}")
        if index.shape == (*batch_shape, 1):
            index = index.squeeze(-1)
        if index.shape != batch_shape:
            raise ValueError(
                f"policy_index must have the observation's batch shape {list(batch_shape)} "
                f"(optionally with a trailing 1), got shape {list(index.shape)}"
            )
        if observation.shape[-1] != self.observation_dim:
            raise ValueError(
                f"observation must end with size {self.observation_dim}, "
                f"got shape {list(observation.shape)}"
            )
        index = index.reshape(-1).to(self.device)
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= num):
            bad = index[(index < 0) | (index >= num)].unique().tolist()
            raise ValueError(
                f"policy_index must be in [0, {num}) (N·M = {list(self.ensemble_shape)} members), "
                f"got {bad}"
            )
        obs = observation.reshape(-1, 1, self.observation_dim).to(self.device)
        envs = obs.shape[0]
        if envs <= num:
            loc, scale = self.backend.actor_at(index, obs)
            loc, scale = loc.squeeze(1), scale.squeeze(1)
        else:
            loc, scale = self.backend.actor_all(obs.squeeze(1).expand(num, envs, -1))
            rows = torch.arange(envs, device=index.device)
            loc, scale = loc[index, rows], scale[index, rows]
        action = sample_action(loc, scale)
        return action.reshape(*batch_shape, action.shape[-1])


class AllMembersActor(_StackedActor):
    """``observation [N, M, *B, O] -> action [N, M, *B, A]``: member (n, m) acts on slice [n, m].

    Args:
        backend: the ensemble's backend (reads the live stacked actor parameters).
        ensemble_shape: ``[N, M]``.
        observation_dim: size of the observation vector.
        device: where the parameters live (inputs are moved there; so is the action).
    """

    def forward(self, observation: Tensor) -> Tensor:
        if observation.shape[:2] != self.ensemble_shape or observation.shape[-1] != self.observation_dim:
            raise ValueError(
                f"observation must have shape [N, M, ..., {self.observation_dim}] with "
                f"[N, M] = {list(self.ensemble_shape)}, got {list(observation.shape)}"
            )
        num = self.ensemble_shape.numel()
        obs = observation.reshape(num, -1, self.observation_dim).to(self.device)
        loc, scale = self.backend.actor_all(obs)
        action = sample_action(loc, scale)
        return action.reshape(*observation.shape[:-1], action.shape[-1])


class PriorView:
    """The action prior seen through the acting interface (``actor_all`` / ``actor_at``).

    Lets :class:`AllMembersActor` and :class:`IndexedMemberActor` act with the ensemble's
    action prior p_a(a|s) instead of its policies (``PolicyEnsemble.prior_policy``).
    """

    def __init__(self, backend) -> None:
        self.backend = backend

    def actor_all(self, observation: Tensor) -> tuple[Tensor, Tensor]:
        return self.backend.prior_all(observation)

    def actor_at(self, index: Tensor, observation: Tensor) -> tuple[Tensor, Tensor]:
        return self.backend.prior_at(index, observation)
