"""Imagined-rollout environment over a dynamics ensemble (Algorithm 1, lines 9-10).

A TorchRL env with batch size ``[N, M, B]``: ``N`` models, ``M`` policies per model, ``B`` start
states. In PS-MBPO mode slice ``[n]`` is stepped by ensemble member ``members[n]``; in MBPO mode
every transition uses a uniformly random member. Rewards come from the model, termination from
the task's known termination function, and a trajectory stays done once terminated. Two optional
reward terms: the task's known reward on terminating transitions (carried by a
:class:`~torchrl_psmbpo.termination.TerminationRule`) and Marino & Yue's information
term (``information_weight``; see ``docs/inference_perspective.md``).

torchrl's ``WorldModelEnv`` copies specs with ``base_env.action_spec.expand(batch)``, which fails
for a batch-less base env with action dim > 1 (checked with torchrl 0.14.1); the specs here are
written out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, Union

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.utils import NestedKey, unravel_key
from torchrl.data import Bounded, Categorical, Composite, ReplayBuffer, Unbounded
from torchrl.data.replay_buffers.storages import Storage
from torchrl.envs.model_based import ModelBasedEnvBase

from torchrl_psmbpo.termination import TerminationFn, TerminationRule
from torchrl_psmbpo.world_model._storage import storage_rows
from torchrl_psmbpo.world_model.dynamics import DynamicsEnsemble, check_last_dim

__all__ = ["ImaginedRolloutEnv", "MEMBER_MODES", "INFORMATION_SIGNS"]

MEMBER_MODES = ("per_model", "random")
INFORMATION_SIGNS = {"pessimistic": -1.0, "optimistic": 1.0}
"""``information_sign`` -> the sign ``s`` of ``s * information_weight * info`` in the reward."""

StartStates = Union[ReplayBuffer, Storage, torch.Tensor, TensorDictBase, Callable[[int], Any]]
"""What ``start_states=`` accepts (see :class:`ImaginedRolloutEnv`)."""


class ImaginedRolloutEnv(ModelBasedEnvBase):
    """Rolls a :class:`~torchrl_psmbpo.world_model.dynamics.DynamicsEnsemble` out as a batched TorchRL env.

    Args:
        model (DynamicsEnsemble): the trained ensemble (moved to ``device``).
        termination_fn (callable): ``(obs, action, next_obs) -> bool`` tensor of shape
            ``leading_dims + (1,)``, e.g. ``torchrl_psmbpo.envs.factory.termination_fn(task)``.
        batch_size (sequence of ints): ``(N, M, B)``, or ``(B,)`` for one model slice and one
            policy (``N = M = 1``: an env of batch ``[B]``, stepped as ``(1, 1, B)``, whose data
            is ``[B, R]`` and whose policy sees ``[B, D]`` observations, as any TorchRL env).

    Keyword Args:
        member_mode (str, optional): ``"per_model"`` (PS-MBPO, default): slice ``[n]`` is
            predicted by member ``members[n]``; ``"random"`` (MBPO): every transition by a
            uniformly random member among ``members``.
        members (sequence of int or "elites", optional): the members used. ``"per_model"``
            defaults to ``range(N)`` and needs exactly ``N`` members; ``"random"`` defaults to
            ``"elites"``. ``"elites"`` reads the model's current elites at every step, so it
            follows retraining.
        deterministic (bool, optional): step with the predicted Gaussian mean instead of a
            sample. Defaults to ``False`` (MBPO samples).
        differentiable (bool, optional): keep the autograd graph through the model's
            predictions. Defaults to ``False``: the model runs under ``torch.no_grad()``, since
            imagined data only feeds replay buffers. Kept, though no recipe uses it, for
            value-gradient methods (SVG, MAAC, Dreamer-style actors) that back-propagate
            returns through the model into the policy.
        start_states (optional): where ``reset()`` draws ``B`` start states when it is given
            none (Algorithm 1, line 8: ``s ~ D_E``): a TorchRL ``ReplayBuffer`` or ``Storage``
            of transitions (rows drawn uniformly from its storage, the sampler and transforms
            bypassed), a TensorDict ``[K]`` with the observation entry or a tensor ``[K, D]`` of
            observations (rows drawn uniformly), or a callable ``f(B)`` returning either of the
            latter two with batch ``[B]`` or ``[N, M, B]``. Draws use torch's global RNG.
            Defaults to ``None``: ``reset()`` then needs start states (or reuses the last
            ones). Can be set later: ``env.start_states = real_buffer``.
        information_weight (float, optional): ``beta >= 0``; when positive, each transition's
            information term ``info = log p_n(x', r | s, a) - log((1/E') sum_k p_k(x', r | s, a))``
            (``n`` the member that produced the outcome, ``k`` over the members in use; see
            :meth:`~torchrl_psmbpo.world_model.dynamics.DynamicsEnsemble.predict_with_information`)
            is added to the reward as ``s * beta * info`` and written to ``("next",
            "information")`` (0 at reset and on frozen steps). It is 0 where the members agree
            and grows (up to ``log E'``) where the sampled outcome is likely under its member
            but not under the others. Every member is evaluated on every transition, so a step
            costs ``E'`` model passes instead of one. Defaults to 0 (off, no extra key).
        information_sign (str, optional): ``"pessimistic"`` (default, ``s = -1``): penalise
            outcomes the members disagree on, so rollouts favour outcomes the model is
            confident about; ``"optimistic"`` (``s = +1``): reward them, an exploration bonus.
            The sign of the paper's ELBO term is ``+1``; ``docs/inference_perspective.md``
            says why, with the member index as the internal state, that is the optimistic one.
        action_low (float, optional): lower action bound of the action spec. Defaults to -1.
        action_high (float, optional): upper action bound. Defaults to 1.
        device (torch.device, optional): defaults to the model's device.

    Keys: the env's observation and action entries are the model's own ``in_keys``
    (``"observation"`` and ``"action"`` by default; a model built with
    ``in_keys=("state", "act")`` gives an env that reads and writes ``"state"`` and ``"act"``),
    and its reward entry is the model's reward ``out_key`` without ``"next"`` (``"reward"`` by
    default). Below, "observation" means the model's observation key.

    Reset takes start states: a TensorDict with the observation of batch ``[B]`` (broadcast to
    every model and policy) or ``[N, M, B]`` (anything broadcastable works). Only the observation is
    read. ``reset()`` without one draws from ``start_states`` when the env has a source, else
    restarts from the last start states given, else raises a ``ValueError``. So
    ``torchrl.envs.utils.check_env_specs(env)`` passes on a fresh env built with a source.

    ``env.rollout(R, policy, tensordict=start)`` returns ``[N, M, B, R]`` data with
    ``"observation"``, ``"action"``, ``("next", "observation")``, ``("next", "reward")`` and
    ``("next", "terminated" | "done" | "truncated")``: :meth:`rollout` defaults to
    ``break_when_any_done=False`` (TorchRL's default would stop the whole batch at the first
    termination of any of its ``N * M * B`` trajectories) and to ``auto_reset=False`` when a
    tensordict is given. A terminated trajectory stays done: later steps keep its last
    observation, give reward 0 and stay terminated;
    :func:`torchrl_psmbpo.replay.buffers.valid_after_termination` (what ``ModelReplay.extend_rollout``
    applies) masks those steps out. Automatic partial resets are disabled: :meth:`maybe_reset`
    only resets (broadcasts) tensordicts that carry no done state.

    Terminal reward: when ``termination_fn`` carries a known reward on terminating steps (a
    :class:`~torchrl_psmbpo.termination.TerminationRule` with ``terminal_reward``, as
    ``torchrl_psmbpo.envs.termination_fn`` gives for InvertedPendulum and InvertedDoublePendulum),
    the transitions that terminate get that reward instead of the model's (plus the information
    term, when on). Pass the bare function (``rule.fn``) to keep the model's reward.

    Before mixing imagined with real transitions (one buffer, or ``torch.cat``), keep only the
    common entries: ``env.rollout(R, policy, transitions_only=True)`` returns just
    :attr:`transition_keys` (observation, action, and ``("next", ...)`` observation, reward,
    terminated, done: ``torchrl_psmbpo.TRANSITION_KEYS`` with this env's keys). A full rollout also
    carries what the policy wrote (a stock actor's ``"loc"``, ``"scale"``) and the root
    ``"done"``/``"terminated"``/``"truncated"`` flags, which real data from a collector may not
    have, or have with other shapes; select the real data's entries the same way
    (``real.select(*env.transition_keys)``).

    Examples:
        >>> from tensordict import TensorDict
        >>> from torchrl_psmbpo.world_model.dynamics import DynamicsEnsemble
        >>> model = DynamicsEnsemble(3, 2, num_members=5, num_elites=3, hidden=32, depth=2)
        >>> never = lambda o, a, no: torch.zeros(no.shape[:-1] + (1,), dtype=torch.bool)
        >>> env = ImaginedRolloutEnv(model, never, (5, 4, 10))
        >>> start = TensorDict({"observation": torch.randn(10, 3)}, [10])
        >>> data = env.rollout(3, tensordict=start)
        >>> data.shape
        torch.Size([5, 4, 10, 3])
        >>> from torchrl.envs.utils import check_env_specs
        >>> env = ImaginedRolloutEnv(model, never, (5, 4, 10), start_states=torch.randn(100, 3))
        >>> check_env_specs(env)  # reset() draws 10 start states from the 100 given
        >>> env.reset()["observation"].shape
        torch.Size([5, 4, 10, 3])
        >>> env = ImaginedRolloutEnv(model, never, (10,), member_mode="random")  # N = M = 1
        >>> env.rollout(3, tensordict=start, transitions_only=True).batch_size
        torch.Size([10, 3])
    """

    def __init__(
        self,
        model: DynamicsEnsemble,
        termination_fn: TerminationFn,
        batch_size: Sequence[int],
        *,
        member_mode: Literal["per_model", "random"] = "per_model",
        members: Sequence[int] | str | None = None,
        deterministic: bool = False,
        differentiable: bool = False,
        start_states: StartStates | None = None,
        information_weight: float = 0.0,
        information_sign: Literal["pessimistic", "optimistic"] = "pessimistic",
        action_low: float = -1.0,
        action_high: float = 1.0,
        device: torch.device | str | None = None,
    ) -> None:
        if not isinstance(model, DynamicsEnsemble):
            raise TypeError(f"model must be a DynamicsEnsemble, got {type(model).__name__}")
        if not callable(termination_fn):
            raise TypeError(f"termination_fn must be callable, got {type(termination_fn).__name__}")
        batch_size = torch.Size(batch_size)
        if len(batch_size) not in (1, 3) or any(int(s) < 1 for s in batch_size):
            raise ValueError(
                f"batch_size must be (N, M, B), or (B,) for N = M = 1, with positive sizes; got "
                f"{tuple(batch_size)}"
            )
        # the ensemble's view of the batch: (N, M, B); a (B,) env is stepped as (1, 1, B)
        model_shape = batch_size if len(batch_size) == 3 else torch.Size((1, 1, batch_size[0]))
        if member_mode not in MEMBER_MODES:
            raise ValueError(f"member_mode={member_mode!r} is not accepted; accepted: {MEMBER_MODES}")
        if not action_low < action_high:
            raise ValueError(f"action_low={action_low} must be below action_high={action_high}")
        if (
            isinstance(information_weight, bool)
            or not isinstance(information_weight, (int, float))
            or not 0.0 <= float(information_weight) < float("inf")
        ):
            raise ValueError(f"information_weight must be a finite number >= 0, got {information_weight!r}")
        if information_sign not in INFORMATION_SIGNS:
            raise ValueError(
                f"information_sign={information_sign!r} is not accepted; accepted: {tuple(INFORMATION_SIGNS)}"
            )
        num_models = model_shape[0]
        if members is None:
            members = range(num_models) if member_mode == "per_model" else "elites"
        member_idx = model.check_members(members)
        if isinstance(member_idx, str):  # "elites": read at every step
            member_idx = None
        count = model.num_elites if member_idx is None else member_idx.numel()
        if member_mode == "per_model" and count != num_models:
            raise ValueError(
                f"member_mode='per_model' steps slice n with members[n], so it needs N members: "
                f"N={num_models} but {count} members are used (members={members!r}, "
                f"num_members={model.num_members}, num_elites={model.num_elites})"
            )
        if device is None:
            device = model.device
        super().__init__(model, device=device, batch_size=batch_size)
        self._model_shape = model_shape
        self._obs_key, self._action_key = (unravel_key(k) for k in model.in_keys)
        reward_out = unravel_key(model.out_keys[1])
        if isinstance(reward_out, tuple) and reward_out[0] == "next":
            self._reward_key = reward_out[1] if len(reward_out) == 2 else reward_out[1:]
        else:
            self._reward_key = "reward"
        self.termination_fn = termination_fn
        self.information_weight = float(information_weight)
        self.information_sign = information_sign
        self.member_mode = member_mode
        self.deterministic = bool(deterministic)
        self.differentiable = bool(differentiable)
        self._members_arg = members if isinstance(members, str) else None
        self._member_idx = None if member_idx is None else member_idx.to(self.device)
        self._last_start: torch.Tensor | None = None
        self.start_states = start_states
        obs_dim, act_dim = model.observation_dim, model.action_dim
        bs = tuple(batch_size)
        observation_spec = Composite(shape=batch_size, device=self.device)
        observation_spec[self._obs_key] = Unbounded(bs + (obs_dim,), dtype=torch.float32, device=self.device)
        if self.information_weight > 0:
            observation_spec["information"] = Unbounded(bs + (1,), dtype=torch.float32, device=self.device)
        self.observation_spec = observation_spec
        action_spec = Composite(shape=batch_size, device=self.device)
        action_spec[self._action_key] = Bounded(
            low=action_low, high=action_high, shape=bs + (act_dim,), dtype=torch.float32, device=self.device
        )
        self.full_action_spec = action_spec
        reward_spec = Composite(shape=batch_size, device=self.device)
        reward_spec[self._reward_key] = Unbounded(bs + (1,), dtype=torch.float32, device=self.device)
        self.full_reward_spec = reward_spec
        self.done_spec = Composite(
            done=Categorical(2, bs + (1,), dtype=torch.bool, device=self.device),
            terminated=Categorical(2, bs + (1,), dtype=torch.bool, device=self.device),
            truncated=Categorical(2, bs + (1,), dtype=torch.bool, device=self.device),
            shape=batch_size,
            device=self.device,
        )

    @property
    def transition_keys(self) -> tuple[NestedKey, ...]:
        """The entries of a transition, with this env's keys: observation, action, and
        ``("next", ...)`` observation, reward, terminated and done (what a SAC update reads;
        ``torchrl_psmbpo.TRANSITION_KEYS`` for the default keys)."""
        return (
            self._obs_key,
            self._action_key,
            unravel_key(("next", self._obs_key)),
            unravel_key(("next", self._reward_key)),
            ("next", "terminated"),
            ("next", "done"),
        )

    @property
    def members(self) -> list[int]:
        """The member indices in use now (the current elites when built with ``"elites"``)."""
        return self._current_members().tolist()

    def _current_members(self) -> torch.Tensor:
        if self._member_idx is None:
            return self.world_model.elite_indices
        return self._member_idx

    # ------------------------------------------------------------------ reset
    def _batch_text(self) -> str:
        if len(self.batch_size) == 1:
            return f"[B] = {list(self.batch_size)}"
        return f"[B] = {list(self.batch_size[-1:])} or [N, M, B] = {list(self.batch_size)}"

    def _broadcast_start(self, tensordict: TensorDictBase) -> TensorDictBase:
        obs = tensordict.get(self._obs_key, None)
        if obs is None:
            raise KeyError(
                f"start states need the model's observation entry {self._obs_key!r} with batch "
                f"{self._batch_text()}; got keys {list(tensordict.keys(True, True))}"
            )
        dim = self.world_model.observation_dim
        check_last_dim("start observation", obs, "observation_dim", dim)
        target = tuple(self.batch_size) + (dim,)
        try:
            obs = torch.broadcast_to(obs, target)
        except RuntimeError:
            raise ValueError(
                f"start observation of shape {tuple(obs.shape)} does not broadcast to the env's "
                f"batch {list(self.batch_size)}; give batch {self._batch_text()}"
            ) from None
        obs = obs.to(device=self.device, dtype=torch.float32).clone()
        return TensorDict({self._obs_key: obs}, batch_size=self.batch_size, device=self.device)

    @property
    def start_states(self) -> StartStates | None:
        """The source ``reset()`` draws start states from when given none (see the class docstring)."""
        return self._start_states

    @start_states.setter
    def start_states(self, source: StartStates | None) -> None:
        if source is None or isinstance(source, (ReplayBuffer, Storage)):
            pass
        elif isinstance(source, (torch.Tensor, TensorDictBase)):
            dim = self.world_model.observation_dim
            obs = source if isinstance(source, torch.Tensor) else source.get(self._obs_key, None)
            if obs is None or obs.ndim != 2 or obs.shape[-1] != dim or obs.shape[0] == 0:
                what = (
                    f"a tensor of shape {tuple(source.shape)}"
                    if isinstance(source, torch.Tensor)
                    else f"a TensorDict with keys {list(source.keys(True, True))} and batch {list(source.batch_size)}"
                )
                raise ValueError(
                    f"start_states is {what}; accepted: a tensor [K, {dim}] of observations or a "
                    f"TensorDict [K] with {self._obs_key!r} [K, {dim}] (K >= 1)"
                )
        elif not callable(source):
            raise ValueError(
                f"start_states of type {type(source).__name__} is not accepted; accepted: None, a "
                f"ReplayBuffer, a Storage, a tensor [K, D], a TensorDict [K] with {self._obs_key!r}, "
                "or a callable f(B)"
            )
        self._start_states = source

    def _draw_start(self) -> TensorDictBase:
        """``B`` start states from :attr:`start_states` (uniform rows, torch's global RNG)."""
        source = self._start_states
        b = self.batch_size[-1]
        if isinstance(source, (ReplayBuffer, Storage)):
            empty = "start_states holds no transitions yet (len 0): extend it before reset()"
            items = storage_rows(source, b, empty)
        elif isinstance(source, (torch.Tensor, TensorDictBase)):
            items = source[torch.randint(source.shape[0], (b,), device=source.device)]
        else:
            items = source(b)
        if isinstance(items, torch.Tensor):
            items = TensorDict({self._obs_key: items}, batch_size=items.shape[:-1])
        if not isinstance(items, TensorDictBase):
            raise ValueError(
                f"start_states(B) returned a {type(items).__name__}; accepted: a TensorDict with "
                f"{self._obs_key!r} or a tensor of observations, batch {self._batch_text()}"
            )
        return items

    def reset(self, tensordict: TensorDictBase | None = None, **kwargs) -> TensorDictBase:
        """Resets every trajectory to the given start states (see the class docstring)."""
        if tensordict is None or self._obs_key not in tensordict.keys(True):
            if self._start_states is not None:
                start = self._broadcast_start(self._draw_start())
                self._last_start = start[self._obs_key]
            elif self._last_start is None:
                got = "" if tensordict is None else f" (got keys {list(tensordict.keys(True, True))})"
                raise ValueError(
                    f"ImaginedRolloutEnv.reset needs start states: pass a TensorDict with "
                    f"{self._obs_key!r} of batch {self._batch_text()}{got}, or build the env with "
                    "start_states= (a replay buffer, storage, tensor or callable to draw them from)"
                )
            else:
                start = TensorDict(
                    {self._obs_key: self._last_start.clone()}, batch_size=self.batch_size, device=self.device
                )
        else:
            start = self._broadcast_start(tensordict)
            self._last_start = start[self._obs_key]
        return super().reset(start, **kwargs)

    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs) -> TensorDictBase:
        out = self.full_done_spec.zero()
        out.set(self._obs_key, tensordict.get(self._obs_key))
        if self.information_weight > 0:
            out.set("information", self.observation_spec["information"].zero())
        return out

    def maybe_reset(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Resets (broadcasts) start states without a done state; never resets done trajectories."""
        if tensordict.batch_size != self.batch_size or "done" not in tensordict.keys():
            return self.reset(tensordict)
        return tensordict

    def rollout(
        self,
        max_steps: int,
        policy: Callable[[TensorDictBase], TensorDictBase] | None = None,
        callback: Callable[..., Any] | None = None,
        *,
        auto_reset: bool | None = None,
        break_when_any_done: bool | None = False,
        tensordict: TensorDictBase | None = None,
        transitions_only: bool = False,
        **kwargs: Any,
    ) -> TensorDictBase:
        """:meth:`torchrl.envs.EnvBase.rollout` with defaults for batched imagined rollouts.

        Args:
            max_steps: the rollout length ``R``; the result has batch ``[N, M, B, R]`` (``[B,
                R]`` for an env of batch ``(B,)``).
            policy: any module reading the observation ``[N, M, B, D]`` (``[B, D]``) and
                writing the action; random actions when ``None``.
            callback: as in TorchRL.

        Keyword Args:
            auto_reset: ``None`` (default): reset only when no ``tensordict`` is given
                (a given one is taken as the start states, batch ``[B]`` or ``[N, M, B]``).
            break_when_any_done: ``False`` (default here, and for ``None``): every trajectory
                runs ``max_steps``, terminated ones stay frozen. ``True`` stops the whole
                batch at the first termination anywhere in it (TorchRL's default).
            tensordict: start states or a reset tensordict.
            transitions_only: return only :attr:`transition_keys` (what mixes with real data
                and what a SAC update reads), without the policy's outputs and the root done
                flags. Defaults to ``False`` (everything TorchRL's rollout returns). Steps after
                a termination are still there (frozen): mask them with
                :func:`torchrl_psmbpo.replay.buffers.valid_after_termination`.
            **kwargs: passed on to TorchRL's ``rollout``.
        """
        if auto_reset is None:
            auto_reset = tensordict is None
        data = super().rollout(
            max_steps,
            policy,
            callback,
            auto_reset=auto_reset,
            break_when_any_done=bool(break_when_any_done),
            tensordict=tensordict,
            **kwargs,
        )
        return data.select(*self.transition_keys) if transitions_only else data

    # ------------------------------------------------------------------ step
    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        obs = tensordict.get(self._obs_key)
        action = tensordict.get(self._action_key)
        model: DynamicsEnsemble = self.world_model
        members = self._current_members()
        selection = "stacked" if self.member_mode == "per_model" else "random"
        information = None
        # the model sees (N, M, B); a (B,) env is stepped as (1, 1, B)
        shape = tuple(self._model_shape)
        model_obs = obs.reshape(shape + obs.shape[-1:])
        model_action = action.reshape(shape + action.shape[-1:])
        with torch.set_grad_enabled(self.differentiable and torch.is_grad_enabled()):
            if self.information_weight > 0:
                next_obs, reward, information = model.predict_with_information(
                    model_obs, model_action, selection=selection, members=members,
                    deterministic=self.deterministic,
                )
                information = information.reshape(self.batch_size + (1,))
            else:
                next_obs, reward = model.predict(
                    model_obs, model_action, selection=selection, members=members,
                    deterministic=self.deterministic,
                )
        next_obs = next_obs.reshape(obs.shape)
        reward = reward.reshape(self.batch_size + (1,))
        terminated = self.termination_fn(obs, action, next_obs)
        expected = tuple(self.batch_size) + (1,)
        if tuple(terminated.shape) != expected:
            raise ValueError(
                f"termination_fn returned shape {tuple(terminated.shape)}; expected {expected} "
                "(leading dims + (1,))"
            )
        terminated = terminated.to(torch.bool)
        rule = self.termination_fn
        if isinstance(rule, TerminationRule) and rule.terminal_reward is not None and terminated.any():
            known = rule.reward_at_termination(obs, action, next_obs, reward)
            reward = torch.where(terminated, known, reward)
        if information is not None:
            reward = reward + INFORMATION_SIGNS[self.information_sign] * self.information_weight * information
        prev_done = tensordict.get("done", None)
        if prev_done is not None and prev_done.any():
            next_obs = torch.where(prev_done, obs, next_obs)
            reward = torch.where(prev_done, torch.zeros_like(reward), reward)
            if information is not None:
                information = torch.where(prev_done, torch.zeros_like(information), information)
            terminated = terminated | prev_done
        out = TensorDict(
            {
                self._obs_key: next_obs,
                self._reward_key: reward,
                "terminated": terminated,
                "done": terminated.clone(),
                "truncated": torch.zeros_like(terminated),
            },
            batch_size=self.batch_size,
            device=self.device,
        )
        if information is not None:
            out.set("information", information)
        return out

    def _set_seed(self, seed: int | None) -> None:
        # Randomness comes from torch's global RNG (member choice, Gaussian noise): seeding it is
        # the caller's business, as for any torch module.
        return None
