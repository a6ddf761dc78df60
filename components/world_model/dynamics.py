"""Probabilistic dynamics ensemble: N Gaussian MLPs with stacked parameters, one batched pass.

Line 2 of Algorithm 1 of PS-MBPO (Wang, Chen & Murphy 2024) trains N dynamics models; lines
9-10 roll every one of them out. This module is the model: N probabilistic MLPs (PETS/MBPO
style, defaults from MBPO: 7 members, 5 elites, 4 hidden layers of 200 SiLU units) predicting
a Gaussian over the next observation (as a delta or directly) and the reward.

The members' weights are stacked along a leading ensemble dimension (``[E, in, out]``) and every
layer is one ``torch.baddbmm`` (:class:`~torchrl_psmbpo.batched_linear.EnsembleLinear`): all members
run in a single batched matrix product, with no Python loop over members (see
docs/world_model.md for why this beats ``torch.vmap`` here).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from tensordict.utils import NestedKey, unravel_key_list
from torch import nn

from torchrl_psmbpo._checks import check_int
from torchrl_psmbpo.batched_linear import EnsembleLinear

__all__ = ["EnsembleLinear", "DynamicsEnsemble", "SELECTIONS", "CONSTANT_TARGET_SCALE",
           "gaussian_log_prob", "information_gain"]

SELECTIONS = ("random", "stacked", "ensemble_mean")
"""Accepted string values of ``selection`` (an ``int`` selects one member)."""

Selection = Literal["random", "stacked", "ensemble_mean"] | int


_LOG_2PI = math.log(2 * math.pi)


CONSTANT_TARGET_SCALE = 1e-6
"""Below this standard deviation a dimension counts as constant in the data (see
:meth:`DynamicsEnsemble.fit_normalizers`)."""


def gaussian_log_prob(value: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Log-density of a diagonal Gaussian, last dimension summed out (broadcasts).

    Examples:
        >>> float(gaussian_log_prob(torch.zeros(2), torch.zeros(2), torch.zeros(2)))  # -log(2 pi)
        -1.8378770351409912
    """
    return -0.5 * (((value - mean) ** 2) * torch.exp(-logvar) + logvar + _LOG_2PI).sum(-1)


def information_gain(log_probs: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """Marino & Yue's information term of sampled outcomes, from every member's log-density.

    ``info = log p_n(y) - log((1/E) sum_k p_k(y))`` where ``n = source`` is the member that
    produced the outcome ``y`` and ``p_k`` are the ``E`` members' predictive densities
    (computed with ``logsumexp``, stable for any log-densities). Its expectation over
    ``y ~ p_n`` is ``KL(p_n || mixture) >= 0``; it is 0 when all members agree and at most
    ``log E``.

    Args:
        log_probs: ``[E, *S]``, member ``k``'s log-density of outcome ``i`` at ``[k, i]``.
        source: long ``[*S]``, the producing member of each outcome (an index into ``E``).

    Returns:
        ``[*S]``.

    Examples:
        >>> lp = torch.tensor([[0.0, -1.0], [0.0, -3.0]])  # 2 members, 2 outcomes
        >>> information_gain(lp, torch.tensor([0, 0]))
        tensor([0.0000, 0.5662])
    """
    chosen = log_probs.gather(0, source.unsqueeze(0)).squeeze(0)
    return chosen - (torch.logsumexp(log_probs, 0) - math.log(log_probs.shape[0]))


def check_last_dim(what: str, value: torch.Tensor, name: str, size: int) -> None:
    """Raises a ``ValueError`` unless ``value``'s last dimension is ``size``.

    The model, its trainer and the imagined env check their inputs with it, so that the three
    word the error alike.

    Args:
        what: how the message names ``value`` (``"observation"``, ``"training data 'action'"``).
        value: the tensor to check.
        name: the model's attribute that ``size`` is (``"observation_dim"`` or ``"action_dim"``).
        size: the expected last dimension.

    Examples:
        >>> check_last_dim("action", torch.zeros(4, 2), "action_dim", 1)
        Traceback (most recent call last):
        ...
        ValueError: action has last dimension 2; the model expects action_dim=1 (shape (4, 2))
    """
    if value.shape[-1] != size:
        raise ValueError(
            f"{what} has last dimension {value.shape[-1]}; the model expects {name}={size} "
            f"(shape {tuple(value.shape)})"
        )


class DynamicsEnsemble(TensorDictModuleBase):
    """An ensemble of probabilistic Gaussian MLPs predicting next observation and reward.

    Each member maps ``[observation, action]`` (normalised with statistics fitted on the training
    data) to the mean and log-variance of a Gaussian over the *target*
    ``[next_observation - observation, reward]`` (``predict_delta=True``) or
    ``[next_observation, reward]`` (``predict_delta=False``), itself normalised per dimension when
    ``normalize_targets=True``. The log-variance is squashed between learned soft bounds
    (PETS, Chua et al. 2018) so that it stays finite however far the input is from the data.

    Args:
        observation_dim (int): size of the observation vector.
        action_dim (int): size of the action vector.
        num_members (int, optional): number of members ``E``. Defaults to 7 (MBPO).
        num_elites (int, optional): how many members are marked elite after training (lowest
            validation loss). Defaults to 5 (MBPO).

    Keyword Args:
        hidden (int, optional): width of the hidden layers. Defaults to 200 (MBPO).
        depth (int, optional): number of hidden layers. Defaults to 4 (MBPO).
        activation (type[nn.Module], optional): activation class. Defaults to ``nn.SiLU``
            (MBPO's "swish").
        predict_delta (bool, optional): predict ``next_obs - obs`` (MBPO, PETS) instead of
            ``next_obs``. Defaults to ``True``.
        normalize_targets (bool, optional): standardise every target dimension (each state
            dimension and the reward) with its training mean and std, so that the likelihood
            weighs them equally. Defaults to ``True``.
        in_keys (sequence of NestedKey, optional): observation and action keys. Defaults to
            ``("observation", "action")``.
        out_keys (sequence of NestedKey, optional): next observation and reward keys. Defaults
            to ``(("next", "observation"), ("next", "reward"))``.
        selection (str or int, optional): which member predicts, used by :meth:`forward` and
            :meth:`predict` unless overridden per call. One of

            - ``"random"``: every sample uses a uniformly random member (MBPO's "TS1");
            - ``"stacked"``: the input has a leading dimension of size ``E'`` (the number of
              members used) and member ``k`` predicts slice ``k`` (PS-MBPO);
            - ``"ensemble_mean"``: the moment-matched Gaussian of the members' mixture;
            - an ``int``: that member for every sample.

            Defaults to ``"random"``.
        deterministic (bool, optional): return the Gaussian mean instead of a sample.
            Defaults to ``False``.
        elites_only (bool, optional): restrict ``"random"``, ``"stacked"`` and
            ``"ensemble_mean"`` to the elite members. Defaults to ``False``.
        min_logvar (float, optional): initial value of the learned lower log-variance bound
            (normalised target space). Defaults to -10 (PETS/MBPO).
        max_logvar (float, optional): initial value of the learned upper bound. Defaults to 0.5.
        clip (float, optional): normalised inputs and predicted normalised targets are clamped
            to ``[-clip, clip]`` (in units of training standard deviations), so that finite inputs
            never produce inf/NaN. Defaults to 1000.
        device (torch.device, optional): where parameters and buffers live. Defaults to CPU.

    Everything needed to predict (weights, log-variance bounds, normalisers, elites) is in
    :meth:`state_dict`.

    Examples:
        >>> from tensordict import TensorDict
        >>> model = DynamicsEnsemble(3, 1, num_members=7, num_elites=5)
        >>> td = TensorDict({"observation": torch.randn(32, 3), "action": torch.rand(32, 1)}, [32])
        >>> model(td)["next", "observation"].shape
        torch.Size([32, 3])
        >>> stacked = td.expand(7, 32)  # member k sees slice k
        >>> model(stacked, selection="stacked")["next", "reward"].shape
        torch.Size([7, 32, 1])
    """

    def __init__(
        self,
        observation_dim: int,
        action_dim: int,
        num_members: int = 7,
        num_elites: int = 5,
        *,
        hidden: int = 200,
        depth: int = 4,
        activation: type[nn.Module] = nn.SiLU,
        predict_delta: bool = True,
        normalize_targets: bool = True,
        in_keys: Sequence[NestedKey] = ("observation", "action"),
        out_keys: Sequence[NestedKey] = (("next", "observation"), ("next", "reward")),
        selection: Selection = "random",
        deterministic: bool = False,
        elites_only: bool = False,
        min_logvar: float = -10.0,
        max_logvar: float = 0.5,
        clip: float = 1000.0,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.observation_dim = check_int("observation_dim", observation_dim)
        self.action_dim = check_int("action_dim", action_dim)
        self.num_members = check_int("num_members", num_members)
        check_int("num_elites", num_elites)
        if num_elites > num_members:
            raise ValueError(
                f"num_elites={num_elites} is larger than num_members={num_members}; "
                f"accepted: 1 <= num_elites <= num_members"
            )
        self.num_elites = num_elites
        self.hidden = check_int("hidden", hidden)
        self.depth = check_int("depth", depth)
        if not (min_logvar < max_logvar):
            raise ValueError(f"min_logvar={min_logvar} must be smaller than max_logvar={max_logvar}")
        if not clip > 0:
            raise ValueError(f"clip must be positive, got {clip!r}")
        in_keys = unravel_key_list(list(in_keys))
        out_keys = unravel_key_list(list(out_keys))
        if len(in_keys) != 2:
            raise ValueError(f"in_keys must name (observation, action), got {in_keys!r}")
        if len(out_keys) != 2:
            raise ValueError(f"out_keys must name (next observation, reward), got {out_keys!r}")
        self.in_keys = in_keys
        self.out_keys = out_keys
        self.predict_delta = bool(predict_delta)
        self.normalize_targets = bool(normalize_targets)
        self.clip = float(clip)
        self.selection = self._check_selection(selection)
        self.deterministic = bool(deterministic)
        self.elites_only = bool(elites_only)

        device = torch.device("cpu") if device is None else torch.device(device)
        self.input_dim = observation_dim + action_dim
        self.target_dim = observation_dim + 1
        sizes = [self.input_dim] + [hidden] * depth + [2 * self.target_dim]
        self.layers = nn.ModuleList(
            EnsembleLinear(num_members, i, o, device=device) for i, o in zip(sizes[:-1], sizes[1:])
        )
        self.activation = activation()
        bound_shape = (num_members, 1, self.target_dim)
        self.min_logvar = nn.Parameter(torch.full(bound_shape, float(min_logvar), device=device))
        self.max_logvar = nn.Parameter(torch.full(bound_shape, float(max_logvar), device=device))
        self.register_buffer("input_loc", torch.zeros(self.input_dim, device=device))
        self.register_buffer("input_scale", torch.ones(self.input_dim, device=device))
        self.register_buffer("target_loc", torch.zeros(self.target_dim, device=device))
        self.register_buffer("target_scale", torch.ones(self.target_dim, device=device))
        self.register_buffer("elite_indices", torch.arange(num_elites, device=device))

    # ------------------------------------------------------------------ properties
    @property
    def device(self) -> torch.device:
        return self.max_logvar.device

    @property
    def elites(self) -> list[int]:
        """Indices of the elite members (the first ``num_elites`` until trained)."""
        return self.elite_indices.tolist()

    def set_elites(self, indices: Sequence[int] | torch.Tensor) -> None:
        """Marks ``indices`` (``num_elites`` distinct member indices) as the elites."""
        idx = torch.as_tensor(indices, dtype=torch.long).flatten()
        if idx.numel() != self.num_elites or idx.unique().numel() != idx.numel():
            raise ValueError(
                f"elites must be {self.num_elites} distinct member indices, got {idx.tolist()}"
            )
        if (idx < 0).any() or (idx >= self.num_members).any():
            raise ValueError(
                f"elite indices {idx.tolist()} out of range; accepted: 0..{self.num_members - 1}"
            )
        self.elite_indices.copy_(idx.to(self.elite_indices.device))

    def _check_selection(self, selection: Selection) -> Selection:
        if isinstance(selection, bool):
            raise ValueError(f"selection={selection!r} is not accepted")
        if isinstance(selection, int):
            if not 0 <= selection < self.num_members:
                raise ValueError(
                    f"selection={selection} is not a member index; accepted: 0..{self.num_members - 1} "
                    f"or one of {SELECTIONS}"
                )
            return selection
        if selection not in SELECTIONS:
            raise ValueError(f"selection={selection!r} is not accepted; accepted: {SELECTIONS} or a member index")
        return selection

    def check_members(self, members: Sequence[int] | torch.Tensor | str) -> torch.Tensor | str:
        """``members`` checked against this model: ``"elites"`` as it is, indices as a tensor.

        Args:
            members: member indices (any sequence or tensor of ints) or ``"elites"``.

        Returns:
            ``"elites"``, or the indices as a flat long tensor on the model's device.

        Raises:
            ValueError: for another string, no index, or an index outside ``0..num_members - 1``.

        Examples:
            >>> DynamicsEnsemble(3, 1, num_members=4, num_elites=2).check_members(range(2))
            tensor([0, 1])
        """
        if isinstance(members, str):
            if members != "elites":
                raise ValueError(f"members={members!r} is not accepted; accepted: 'elites', None or indices")
            return members
        if not isinstance(members, torch.Tensor):
            members = list(members)
        idx = torch.as_tensor(members, dtype=torch.long, device=self.device).flatten()
        if idx.numel() == 0:
            raise ValueError("members is empty; give at least one member index")
        if (idx < 0).any() or (idx >= self.num_members).any():
            raise ValueError(
                f"members {idx.tolist()} out of range for a model with num_members={self.num_members}; "
                f"accepted: 0..{self.num_members - 1}"
            )
        return idx

    def _resolve_members(self, members: Sequence[int] | torch.Tensor | str | None) -> torch.Tensor | None:
        """Member indices to use: ``None`` means all members (fast path, no weight gather)."""
        if members is None:
            members = "elites" if self.elites_only else None
        if members is None:
            return None
        idx = self.check_members(members)
        if isinstance(idx, str):
            return self.elite_indices
        if idx.numel() == self.num_members and torch.equal(idx, torch.arange(self.num_members, device=idx.device)):
            return None  # all members in order: use the stacked weights without gathering them
        return idx

    # ------------------------------------------------------------------ normalisation
    def make_inputs(self, observation: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Raw network input ``[observation, action]``, after checking the sizes."""
        check_last_dim("observation", observation, "observation_dim", self.observation_dim)
        check_last_dim("action", action, "action_dim", self.action_dim)
        if observation.shape[:-1] != action.shape[:-1]:
            raise ValueError(
                f"observation batch shape {tuple(observation.shape[:-1])} and action batch shape "
                f"{tuple(action.shape[:-1])} differ"
            )
        dtype = self.input_loc.dtype
        return torch.cat([observation.to(dtype), action.to(dtype)], -1)

    def make_targets(
        self, observation: torch.Tensor, next_observation: torch.Tensor, reward: torch.Tensor
    ) -> torch.Tensor:
        """Raw regression target ``[next_obs - obs (or next_obs), reward]``, shape ``[..., D + 1]``."""
        if next_observation.shape != observation.shape:
            raise ValueError(
                f"next observation shape {tuple(next_observation.shape)} differs from observation shape "
                f"{tuple(observation.shape)}"
            )
        if reward.shape == observation.shape[:-1]:
            reward = reward.unsqueeze(-1)
        if reward.shape != observation.shape[:-1] + (1,):
            raise ValueError(
                f"reward has shape {tuple(reward.shape)}; expected {tuple(observation.shape[:-1]) + (1,)} "
                f"(one reward per transition)"
            )
        state = next_observation - observation if self.predict_delta else next_observation
        return torch.cat([state, reward.to(state.dtype)], -1).to(self.target_loc.dtype)

    def targets_to_transition(
        self, observation: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Inverse of :meth:`make_targets`: ``(next_observation, reward)`` from a raw target."""
        state, reward = target[..., : self.observation_dim], target[..., self.observation_dim :]
        next_obs = observation.to(state.dtype) + state if self.predict_delta else state
        return next_obs, reward

    @torch.no_grad()
    def fit_normalizers(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        """Fits the input (always) and target (if ``normalize_targets``) standardisation.

        Args:
            inputs (Tensor): raw inputs ``[n, observation_dim + action_dim]`` (see :meth:`make_inputs`).
            targets (Tensor): raw targets ``[n, observation_dim + 1]`` (see :meth:`make_targets`).

        An input dimension with a standard deviation below 1e-6 (constant in the data) keeps
        scale 1, so that an input the data never varied is not blown up. A *target* dimension
        that is constant in the data gets scale 1e-6 instead: the network still learns it in
        normalised units, but its predictions (mean and sampled noise) are scaled back by 1e-6,
        so the model predicts the constant. With scale 1 the sampled noise of such a dimension
        would be the network's normalised standard deviation in raw units: on Metaworld, whose
        observations hold 34 dimensions that never change within an episode (padding, the
        object's orientation, the goal), that was noise of std 0.4 on every imagined next
        state (docs/results_v1.md, section 4).
        """
        self.input_loc.copy_(inputs.mean(0))
        self.input_scale.copy_(self._safe_std(inputs, floor=1.0))
        if self.normalize_targets:
            self.target_loc.copy_(targets.mean(0))
            self.target_scale.copy_(self._safe_std(targets, floor=CONSTANT_TARGET_SCALE))

    @staticmethod
    def _safe_std(x: torch.Tensor, floor: float) -> torch.Tensor:
        """Per-dimension std of ``x`` (1 for a single row); ``floor`` where it is below 1e-6."""
        std = x.std(0, unbiased=False) if x.shape[0] > 1 else torch.ones_like(x[0])
        return torch.where(std < CONSTANT_TARGET_SCALE, torch.full_like(std, floor), std)

    def transform_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        """Standardised, clamped network input."""
        return ((inputs - self.input_loc) / self.input_scale).clamp(-self.clip, self.clip)

    def transform_targets(self, targets: torch.Tensor) -> torch.Tensor:
        """Raw target -> normalised target (identity when ``normalize_targets=False``)."""
        return (targets - self.target_loc) / self.target_scale

    def inverse_transform_targets(self, targets: torch.Tensor) -> torch.Tensor:
        """Normalised target -> raw target."""
        return targets * self.target_scale + self.target_loc

    # ------------------------------------------------------------------ the network
    def network(
        self, x: torch.Tensor, members: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and bounded log-variance of the normalised target, from normalised inputs.

        Args:
            x (Tensor): ``[E', n, in]`` (member ``k`` sees ``x[k]``) or ``[n, in]`` (every
                member sees the same input).
            members (Tensor, optional): the ``E'`` member indices; all members when ``None``.

        Returns:
            ``(mean, logvar)``, each ``[E', n, observation_dim + 1]``.
        """
        num = self.num_members if members is None else members.numel()
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(num, *x.shape)
        elif x.dim() != 3 or x.shape[0] != num:
            raise ValueError(f"network input must be [n, in] or [{num}, n, in], got {tuple(x.shape)}")
        h = x
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            h = layer(h, members)
            if i < last:
                h = self.activation(h)
        mean, raw_logvar = h.split(self.target_dim, dim=-1)
        max_lv = self.max_logvar if members is None else self.max_logvar[members]
        min_lv = self.min_logvar if members is None else self.min_logvar[members]
        logvar = max_lv - nn.functional.softplus(max_lv - raw_logvar)
        logvar = min_lv + nn.functional.softplus(logvar - min_lv)
        # Hard guard on top of the soft bounds: exp(+-40) stays finite in float32.
        return mean, logvar.clamp(-40.0, 40.0)

    def logvar_bound_penalty(self) -> torch.Tensor:
        """Per-member ``sum(max_logvar) - sum(min_logvar)`` (PETS), shape ``[E]``."""
        return (self.max_logvar - self.min_logvar).flatten(1).sum(-1)

    def member_network(self, index: int) -> nn.Sequential:
        """Member ``index`` as a plain ``nn.Sequential`` of ``nn.Linear`` (copied parameters).

        It maps normalised inputs to the raw network output ``[mean, unbounded log-variance]``
        in normalised target space. Useful to export one member or to check the batched pass.
        """
        if not 0 <= index < self.num_members:
            raise ValueError(f"member index {index} out of range; accepted: 0..{self.num_members - 1}")
        mods: list[nn.Module] = []
        for i, layer in enumerate(self.layers):
            mods.append(layer.member(index))
            if i < len(self.layers) - 1:
                mods.append(type(self.activation)())
        return nn.Sequential(*mods)

    # ------------------------------------------------------------------ prediction
    def gaussian(
        self,
        observation: torch.Tensor,
        action: torch.Tensor,
        *,
        members: Sequence[int] | torch.Tensor | str | None = None,
        stacked: bool = False,
        normalized: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-member Gaussian over the target.

        Args:
            observation (Tensor): ``[*S, D]``, or ``[E', *S, D]`` when ``stacked``.
            action (Tensor): ``[*S, A]``, or ``[E', *S, A]`` when ``stacked``.

        Keyword Args:
            members: member indices, ``"elites"``, or ``None`` (all, or the elites when
                ``elites_only``).
            stacked (bool): member ``k`` sees slice ``k`` of the inputs.
            normalized (bool): return mean and log-variance in normalised target space.

        Returns:
            ``(mean, logvar)`` of shape ``[E', *S, D + 1]``.
        """
        idx = self._resolve_members(members)
        num = self.num_members if idx is None else idx.numel()
        x = self.transform_inputs(self.make_inputs(observation, action))
        if stacked:
            if x.dim() < 2 or x.shape[0] != num:
                raise ValueError(
                    f"stacked input needs a leading dimension of size {num} (one slice per member used), "
                    f"got observation of shape {tuple(observation.shape)}"
                )
            batch = x.shape[1:-1]
            mean, logvar = self.network(x.reshape(num, -1, self.input_dim), idx)
        else:
            batch = x.shape[:-1]
            mean, logvar = self.network(x.reshape(-1, self.input_dim), idx)
        mean = mean.clamp(-self.clip, self.clip)
        mean = mean.reshape(num, *batch, self.target_dim)
        logvar = logvar.reshape(num, *batch, self.target_dim)
        if normalized:
            return mean, logvar
        return self.inverse_transform_targets(mean), logvar + 2 * self.target_scale.log()

    def _network_assigned(self, x: torch.Tensor, assignment: torch.Tensor, idx: torch.Tensor | None):
        """Runs each row ``x[i]`` through member ``assignment[i]`` only (grouped, padded batch).

        ``assignment`` indexes into ``idx`` (or into all members when ``idx`` is ``None``).
        Rows are sorted by member, padded to the largest group and run in one batched pass, so the
        cost is about ``n`` rows instead of ``E' * n``.
        """
        num = self.num_members if idx is None else idx.numel()
        n = x.shape[0]
        order = torch.argsort(assignment, stable=True)
        sorted_assign = assignment[order]
        counts = torch.bincount(assignment, minlength=num)
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.arange(n, device=x.device) - starts[sorted_assign]
        width = int(counts.max())
        padded = x.new_zeros(num, width, x.shape[-1])
        padded[sorted_assign, rank] = x[order]
        mean_p, logvar_p = self.network(padded, idx)
        mean = torch.empty(n, self.target_dim, dtype=mean_p.dtype, device=x.device)
        logvar = torch.empty_like(mean)
        mean[order] = mean_p[sorted_assign, rank]
        logvar[order] = logvar_p[sorted_assign, rank]
        return mean, logvar

    def predict(
        self,
        observation: torch.Tensor,
        action: torch.Tensor,
        *,
        selection: Selection | None = None,
        deterministic: bool | None = None,
        members: Sequence[int] | torch.Tensor | str | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicts ``(next_observation, reward)`` with the chosen member selection.

        Args:
            observation (Tensor): ``[*S, D]`` (``[E', *S, D]`` for ``"stacked"``).
            action (Tensor): ``[*S, A]`` (``[E', *S, A]`` for ``"stacked"``).

        Keyword Args:
            selection: overrides :attr:`selection` (see the class docstring).
            deterministic (bool): overrides :attr:`deterministic`.
            members: the members that ``"random"``, ``"stacked"`` and ``"ensemble_mean"`` use
                (indices or ``"elites"``); defaults to all members, or the elites when
                :attr:`elites_only`.

        Returns:
            next observation ``[..., D]`` and reward ``[..., 1]`` with the input's batch shape.
            Sampling noise is drawn with ``torch.randn`` outside any vmap.
        """
        selection = self.selection if selection is None else self._check_selection(selection)
        deterministic = self.deterministic if deterministic is None else deterministic
        if isinstance(selection, int):
            mean, logvar = self.gaussian(observation, action, members=[selection], normalized=True)
            mean, logvar = mean[0], logvar[0]
        elif selection == "stacked":
            mean, logvar = self.gaussian(observation, action, members=members, stacked=True, normalized=True)
        elif selection == "ensemble_mean":
            means, logvars = self.gaussian(observation, action, members=members, normalized=True)
            mean = means.mean(0)
            var = logvars.exp().mean(0) + means.var(0, unbiased=False)
            logvar = var.clamp_min(1e-30).log()
        else:  # random member per sample (TS1)
            idx = self._resolve_members(members)
            num = self.num_members if idx is None else idx.numel()
            x = self.transform_inputs(self.make_inputs(observation, action))
            batch = x.shape[:-1]
            flat = x.reshape(-1, self.input_dim)
            assignment = torch.randint(num, (flat.shape[0],), device=flat.device)
            mean, logvar = self._network_assigned(flat, assignment, idx)
            mean = mean.clamp(-self.clip, self.clip).reshape(*batch, self.target_dim)
            logvar = logvar.reshape(*batch, self.target_dim)
        if not deterministic:
            mean = mean + torch.randn_like(mean) * (0.5 * logvar).exp()
        target = self.inverse_transform_targets(mean.clamp(-self.clip, self.clip))
        return self.targets_to_transition(observation, target)

    def predict_with_information(
        self,
        observation: torch.Tensor,
        action: torch.Tensor,
        *,
        selection: Literal["stacked", "random"] = "stacked",
        deterministic: bool | None = None,
        members: Sequence[int] | torch.Tensor | str | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`predict`, plus the information term of each sampled outcome.

        For an outcome ``y = (next_observation, reward)`` sampled from member ``n``,
        ``info = log p_n(y | s, a) - log((1/E') sum_k p_k(y | s, a))`` over the ``E'`` members
        in use (:func:`information_gain`): Marino & Yue's marginal log-likelihood term with the
        member index as the internal state. The densities are those of the normalised targets;
        the normalisation is the same affine map for every member, so its Jacobian cancels and
        ``info`` is also the value in raw units. Every member is evaluated on every input
        (``E'`` times the rows of :meth:`predict`), in one batched pass.

        Args:
            observation (Tensor): ``[*S, D]`` (``[E', *S, D]`` for ``"stacked"``).
            action (Tensor): ``[*S, A]`` (``[E', *S, A]`` for ``"stacked"``).

        Keyword Args:
            selection: ``"stacked"`` (slice ``k`` sampled by member ``k``) or ``"random"`` (a
                uniformly random member per outcome): the selections where each outcome has
                one producing member. Draws the same random numbers, in the same order, as
                :meth:`predict`.
            deterministic (bool): the producing member's mean instead of a sample.
            members: the members in use (and in the mixture), as in :meth:`predict`.

        Returns:
            next observation ``[..., D]``, reward ``[..., 1]`` and information ``[..., 1]``.

        Examples:
            >>> model = DynamicsEnsemble(3, 1, num_members=4, num_elites=2, hidden=16, depth=2)
            >>> obs, act = torch.randn(4, 10, 3), torch.rand(4, 10, 1)
            >>> next_obs, reward, info = model.predict_with_information(obs, act)
            >>> info.shape
            torch.Size([4, 10, 1])
        """
        if selection not in ("stacked", "random"):
            raise ValueError(
                f"selection={selection!r} is not accepted by predict_with_information: the information "
                f"term needs the member that produced each outcome; accepted: 'stacked', 'random'"
            )
        deterministic = self.deterministic if deterministic is None else deterministic
        idx = self._resolve_members(members)
        num = self.num_members if idx is None else idx.numel()
        x = self.transform_inputs(self.make_inputs(observation, action))
        batch = x.shape[:-1]
        flat = x.reshape(-1, self.input_dim)
        rows = flat.shape[0]
        if selection == "stacked":
            if x.dim() < 2 or x.shape[0] != num:
                raise ValueError(
                    f"stacked input needs a leading dimension of size {num} (one slice per member used), "
                    f"got observation of shape {tuple(observation.shape)}"
                )
            source = torch.arange(num, device=flat.device).repeat_interleave(rows // num)
        else:
            source = torch.randint(num, (rows,), device=flat.device)
        means, logvars = self.network(flat, idx)  # every member on every row: [E', rows, D + 1]
        means = means.clamp(-self.clip, self.clip)
        row = torch.arange(rows, device=flat.device)
        mean, logvar = means[source, row], logvars[source, row]
        if not deterministic:
            mean = mean + torch.randn_like(mean) * (0.5 * logvar).exp()
        sample = mean.clamp(-self.clip, self.clip)
        info = information_gain(gaussian_log_prob(sample, means, logvars), source)
        target = self.inverse_transform_targets(sample).reshape(*batch, self.target_dim)
        next_obs, reward = self.targets_to_transition(observation, target)
        return next_obs, reward, info.reshape(*batch, 1)

    def forward(
        self,
        tensordict: TensorDictBase,
        *,
        selection: Selection | None = None,
        deterministic: bool | None = None,
        members: Sequence[int] | torch.Tensor | str | None = None,
    ) -> TensorDictBase:
        """Reads ``in_keys``, writes the predicted next observation and reward to ``out_keys``.

        Keyword arguments override the module's defaults for this call (see :meth:`predict`).
        With ``selection="stacked"`` the tensordict's leading dimension indexes the members.
        """
        obs = tensordict.get(self.in_keys[0])
        action = tensordict.get(self.in_keys[1])
        next_obs, reward = self.predict(
            obs, action, selection=selection, deterministic=deterministic, members=members
        )
        tensordict.set(self.out_keys[0], next_obs)
        tensordict.set(self.out_keys[1], reward)
        return tensordict
