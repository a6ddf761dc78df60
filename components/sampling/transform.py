"""Pick the acting policy once per episode, as a TorchRL transform of the real env.

Line 3 of PS-MBPO's Algorithm 1 (Wang, Chen & Murphy, 2024) samples one of the N*M policies at
the start of every real episode, and line 15 updates the optimistic distribution with the
episode's real return. :class:`~torchrl_psmbpo.sampling.posterior.PolicyPosterior` is that
distribution; :class:`PosteriorSamplingTransform` asks it for a pick at every (partial) reset of
an env, writes the flat index ``i = n * M + m`` under ``"policy_index"``
(:data:`POLICY_INDEX_KEY`), keeps it through the episode, sums the episode's rewards and, when
the episode ends (``"done"``: terminated or truncated), reports it as a
:class:`FinishedEpisode` and (``credit_returns=True``) credits it to the posterior, unless the
episode was marked uncredited (:meth:`PosteriorSamplingTransform.mark_uncredited`).
"""

from __future__ import annotations

import collections
from typing import Literal, NamedTuple

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey
from torchrl.data import Categorical, Composite, TensorSpec
from torchrl.envs.transforms import Transform

from torchrl_psmbpo._checks import check_int
from torchrl_psmbpo.keys import POLICY_INDEX_KEY
from torchrl_psmbpo.sampling.posterior import (
    SAMPLING_MODES,
    PolicyPosterior,
    ops_probabilities,
)

__all__ = [
    "PosteriorSamplingTransform",
    "FinishedEpisode",
    "POLICY_INDEX_KEY",
    "SAMPLING_MODES",
    "ops_probabilities",
]


class FinishedEpisode(NamedTuple):
    """One finished real episode: which member played it, its (undiscounted) return, and
    whether it is credited (its actions all came from that member, see
    :meth:`PosteriorSamplingTransform.mark_uncredited`).

    Fields are reachable as attributes (``ep.index``, ``ep.ret``, ``ep.credited``), by
    position, or by name (``ep["index"]``, ``ep["return"]``, ``ep["credited"]``) for loggers
    that take dict-like records.
    """

    index: int
    ret: float
    credited: bool = True

    def __getitem__(self, key):  # type: ignore[override]
        if isinstance(key, str):
            if key == "index":
                return self.index
            if key in ("return", "ret"):
                return self.ret
            if key == "credited":
                return self.credited
            raise KeyError(f"FinishedEpisode has 'index', 'return' and 'credited', got {key!r}.")
        return tuple.__getitem__(self, key)

    def as_dict(self) -> dict[str, float]:
        """``{"index": ..., "return": ..., "credited": ...}``."""
        return {"index": self.index, "return": self.ret, "credited": self.credited}


class PosteriorSamplingTransform(Transform):
    """Write the acting member's flat index into the real env's tensordicts, once per episode.

    At every reset (honouring partial resets of batched envs through the ``"_reset"`` mask) the
    transform asks its :class:`~torchrl_psmbpo.sampling.posterior.PolicyPosterior` for one member per
    env being reset (line 3 of Algorithm 1) and writes it under ``index_key``; every step copies
    the same index to ``("next", index_key)``, so it is constant through an episode. It sums the
    rewards it sees; when ``"done"`` is set (terminated or truncated) the episode is finished:
    it is recorded as a :class:`FinishedEpisode` (:attr:`last_episode`,
    :meth:`pop_finished_episodes`) and, with ``credit_returns=True``, credited to the posterior
    (``posterior.update(index, return)``, line 15) unless it was marked uncredited, in which
    case ``posterior.skip()`` records it without credit. An episode cut short by a reset
    without ``"done"`` is neither credited nor recorded.

    **Uncredited episodes.** :meth:`mark_uncredited` tells the transform that the running
    episode's actions did not (all) come from the picked member (e.g. random actions before
    learning starts): such an episode counts as no play of that member and adds nothing to its
    return. ``mark_uncredited(next_steps=k)`` also marks every episode that contains one of the
    next ``k`` steps (one step = one call of ``env.step`` on the whole batch), which matches a
    collector's ``init_random_frames=k`` on an unbatched env.

    The index is an int64 tensor of the env's batch shape, with **no trailing singleton
    dimension** (a 0-dim tensor for an unbatched env), declared in the observation spec as a
    :class:`~torchrl.data.Categorical` over ``num_policies`` values, like TorchRL's categorical
    actions. The transform keeps its bookkeeping on the CPU, whatever the env's device; the
    index is written on the tensordict's device. Its state (the posterior's whole state, the
    running episodes' indices, returns and credit marks) is in :meth:`state_dict`, so a resumed
    run makes the same picks.

    Place it after every transform that changes ``"reward"`` or ``"done"`` you want it to see
    (e.g. after a time limit), and before any reward scaling if OPS should see the real return.
    Each transform instance owns its state: in multi-process collectors, the copies living in
    the workers do not share their returns.

    Give either ``posterior`` or ``num_policies`` (the transform then builds its own posterior
    from ``mode``, ``temperature``, ``fixed_index``, ``seed``, ``episode_seeded``,
    ``statistic`` and ``mix``; these are refused together with ``posterior=``).

    Args:
        num_policies: ``N * M``, the number of members to pick from.
        mode: ``"ps"`` (default), ``"ops"`` or ``"fixed"``.

    Keyword Args:
        posterior: a :class:`~torchrl_psmbpo.sampling.posterior.PolicyPosterior` to pick from and
            credit (shared with the caller, e.g. the training loop).
        temperature: OPS's tau > 0 (default 1.0).
        fixed_index: the member ``"fixed"`` plays (default 0).
        seed: the posterior's seed (``None``: drawn from torch's global RNG).
        episode_seeded: the pick of episode ``k`` depends only on ``(seed, k, credits)``
            (default False); see ``PolicyPosterior``.
        statistic: ``"sum"`` (default, the paper), ``"mean"`` or ``"importance"``; see
            ``PolicyPosterior``.
        mix: the uniform share of the OPS distribution, in ``[0, 1)`` (default 0).
        credit_returns: call ``posterior.update`` / ``posterior.skip`` at episode ends (default
            True). With False the transform only reports finished episodes
            (:meth:`pop_finished_episodes`) and the caller credits them; with a TorchRL
            ``Collector`` (which resets inside the same step) the next pick is then made before
            the caller's update, i.e. from the distribution one episode behind.
        index_key: where the index is written. Defaults to :data:`POLICY_INDEX_KEY`.
        reward_key: the reward entry summed into episode returns. Defaults to ``"reward"``.
        done_key: the entry that ends an episode. Defaults to ``"done"``.
        reset_key: the partial-reset mask entry. Defaults to ``"_reset"``.
        history: how many finished episodes :meth:`pop_finished_episodes` keeps (oldest dropped).

    Examples:
        >>> from torchrl_psmbpo.envs.factory import make_env
        >>> env = make_env("gym:Pendulum-v1", seed=0)
        >>> posterior = PolicyPosterior(6, mode="ops", temperature=100.0, seed=0)
        >>> ps = PosteriorSamplingTransform(posterior=posterior)
        >>> env = env.append_transform(ps)
        >>> td = env.rollout(200)  # one Pendulum episode
        >>> bool((td["policy_index"] == td["policy_index"][0]).all())
        True
        >>> posterior.play_counts.sum().item(), ps.last_episode.credited
        (1, True)
        >>> ps.mark_uncredited(next_steps=200)  # e.g. random actions: the next episode
        >>> td = env.rollout(200)
        >>> posterior.play_counts.sum().item(), ps.last_episode.credited, posterior.num_episodes
        (1, False, 2)
    """

    def __init__(
        self,
        num_policies: int | None = None,
        mode: Literal["ps", "ops", "fixed"] | None = None,
        *,
        posterior: PolicyPosterior | None = None,
        temperature: float | None = None,
        fixed_index: int | None = None,
        seed: int | None = None,
        episode_seeded: bool | None = None,
        statistic: Literal["sum", "mean", "importance"] | None = None,
        mix: float | None = None,
        credit_returns: bool = True,
        index_key: NestedKey = POLICY_INDEX_KEY,
        reward_key: NestedKey = "reward",
        done_key: NestedKey = "done",
        reset_key: NestedKey = "_reset",
        history: int = 1024,
    ) -> None:
        settings = {
            "mode": mode,
            "temperature": temperature,
            "fixed_index": fixed_index,
            "seed": seed,
            "episode_seeded": episode_seeded,
            "statistic": statistic,
            "mix": mix,
        }
        if posterior is not None:
            if not isinstance(posterior, PolicyPosterior):
                raise ValueError(
                    f"posterior must be a PolicyPosterior, got {type(posterior).__name__}."
                )
            given = {k: v for k, v in settings.items() if v is not None}
            if num_policies is not None:
                given["num_policies"] = num_policies
            if given:
                raise ValueError(
                    f"PosteriorSamplingTransform got posterior= and also {given}; configure "
                    "the PolicyPosterior instead."
                )
        elif num_policies is None:
            raise ValueError("PosteriorSamplingTransform needs num_policies or posterior=.")
        else:
            defaults = {"mode": "ps", "temperature": 1.0, "fixed_index": 0,
                        "episode_seeded": False, "statistic": "sum", "mix": 0.0}
            kwargs = {k: (defaults.get(k) if v is None else v) for k, v in settings.items()}
            posterior = PolicyPosterior(num_policies, kwargs.pop("mode"), **kwargs)
        history = check_int("history", history)
        super().__init__(in_keys=[], out_keys=[index_key])
        self.posterior = posterior
        self.credit_returns = bool(credit_returns)
        self.index_key = index_key
        self.reward_key = reward_key
        self.done_key = done_key
        self.reset_key = reset_key
        # Per-env state of the running episodes, shaped like the env batch (lazily created).
        self._current_index: torch.Tensor | None = None
        self._episode_return: torch.Tensor | None = None
        self._uncredited: torch.Tensor | None = None
        self._uncredited_steps = 0
        # Finished episodes not yet popped: how a caller with credit_returns=False (or a
        # batched env, where several episodes end at one step) learns about all of them.
        self._finished: collections.deque[FinishedEpisode] = collections.deque(maxlen=history)
        self.last_episode: FinishedEpisode | None = None
        """The last finished episode (member, return, credited), ``None`` before the first."""

    # ------------------------------------------------------------------ the posterior's view
    @property
    def num_policies(self) -> int:
        """``N * M``."""
        return self.posterior.num_policies

    @property
    def mode(self) -> str:
        """The posterior's mode: ``"ps"``, ``"ops"`` or ``"fixed"``."""
        return self.posterior.mode

    @property
    def fixed_index(self) -> int:
        """The posterior's fixed member."""
        return self.posterior.fixed_index

    @property
    def probs(self) -> torch.Tensor:
        """``[num_policies]`` float64: the distribution the next reset samples from."""
        return self.posterior.probs

    @property
    def cumulative_returns(self) -> torch.Tensor:
        """``[num_policies]`` float64: credited real returns per member (the posterior's)."""
        return self.posterior.cumulative_returns

    @property
    def play_counts(self) -> torch.Tensor:
        """``[num_policies]`` int64: credited episodes per member (the posterior's)."""
        return self.posterior.play_counts

    @property
    def current_index(self) -> torch.Tensor | None:
        """The members acting in the running episodes (env batch shape), ``None`` before reset."""
        return None if self._current_index is None else self._current_index.clone()

    @property
    def current_credited(self) -> torch.Tensor | None:
        """Whether each running episode is still credited (env batch shape), ``None`` before
        reset."""
        return None if self._uncredited is None else ~self._uncredited

    def pop_finished_episodes(self) -> list[FinishedEpisode]:
        """Return and forget the episodes finished since the last call (oldest first).

        Not part of :meth:`state_dict`: pop them before checkpointing.
        """
        out = list(self._finished)
        self._finished.clear()
        return out

    def mark_uncredited(
        self, next_steps: int = 0, *, mask: torch.Tensor | None = None
    ) -> None:
        """Do not credit the running episode(s): their actions did not all come from the pick.

        Such an episode adds nothing to the member's return and counts as no play
        (``posterior.skip()`` instead of ``posterior.update``); it is still reported, with
        ``credited=False``. The mark ends at the env's next reset.

        Args:
            next_steps: also mark every episode that contains one of the next ``next_steps``
                calls of ``env.step`` (e.g. the collector's ``init_random_frames`` on an
                unbatched env). Replaces a previous count. With ``next_steps > 0`` this may be
                called before the first reset.

        Keyword Args:
            mask: bool tensor of the env's batch shape: mark only those running episodes
                (default: all).
        """
        next_steps = check_int("next_steps", next_steps, minimum=0)
        self._uncredited_steps = int(next_steps)
        if self._uncredited is None:
            if next_steps == 0:
                raise RuntimeError(
                    "PosteriorSamplingTransform.mark_uncredited: no running episode before the "
                    "first reset; reset the env first, or pass next_steps > 0."
                )
            return
        if mask is None:
            self._uncredited[...] = True
            return
        mask = torch.as_tensor(mask)
        if mask.dtype != torch.bool or mask.shape != self._uncredited.shape:
            raise ValueError(
                f"mask must be a bool tensor of the env's batch shape "
                f"{list(self._uncredited.shape)}, got dtype {mask.dtype} and shape "
                f"{list(mask.shape)}."
            )
        self._uncredited |= mask.to("cpu")

    # ------------------------------------------------------------------ env hooks
    def _batch_shape(self, tensordict: TensorDictBase) -> torch.Size:
        parent = self.parent
        return parent.batch_size if parent is not None else tensordict.batch_size

    def _reset_mask(self, tensordict: TensorDictBase, batch_shape: torch.Size) -> torch.Tensor:
        reset = tensordict.get(self.reset_key, None)
        if reset is None:
            return torch.ones(batch_shape, dtype=torch.bool)
        reset = reset.detach().to("cpu", torch.bool)
        if reset.ndim > len(batch_shape):
            reset = reset.flatten(len(batch_shape), -1).any(-1)
        return reset.expand(batch_shape)

    def _reset(
        self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase
    ) -> TensorDictBase:
        batch_shape = self._batch_shape(tensordict_reset)
        if self._current_index is None or self._current_index.shape != batch_shape:
            self._current_index = torch.zeros(batch_shape, dtype=torch.int64)
            self._episode_return = torch.zeros(batch_shape, dtype=torch.float64)
            self._uncredited = torch.zeros(batch_shape, dtype=torch.bool)
            mask = torch.ones(batch_shape, dtype=torch.bool)
        else:
            mask = self._reset_mask(tensordict, batch_shape)
        count = int(mask.sum())
        if count:
            self._current_index[mask] = self.posterior.pick(count)
            self._episode_return[mask] = 0.0
            self._uncredited[mask] = False
        index = self._current_index.to(tensordict_reset.device or "cpu")
        tensordict_reset.set(self.index_key, index.clone())
        return tensordict_reset

    def _reset_on_native_autoreset(
        self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase
    ) -> TensorDictBase:
        return self._reset(tensordict, tensordict_reset)

    def _step(
        self, tensordict: TensorDictBase, next_tensordict: TensorDictBase
    ) -> TensorDictBase:
        if self._current_index is None:
            raise RuntimeError(
                "PosteriorSamplingTransform: step() before reset(); reset the env first."
            )
        if self._uncredited_steps > 0:
            self._uncredited[...] = True
            self._uncredited_steps -= 1
        shape = self._current_index.shape
        reward = next_tensordict.get(self.reward_key)
        reward = reward.detach().to("cpu", torch.float64).reshape(*shape, -1).sum(-1)
        self._episode_return += reward
        done = next_tensordict.get(self.done_key, None)
        if done is not None:
            done = done.detach().to("cpu", torch.bool).reshape(*shape, -1).any(-1)
            if bool(done.any()):
                self._finish(done)
        index = self._current_index.to(next_tensordict.device or "cpu")
        next_tensordict.set(self.index_key, index.clone())
        return next_tensordict

    def _finish(self, done: torch.Tensor) -> None:
        indices = self._current_index[done]
        returns = self._episode_return[done]
        credited = ~self._uncredited[done]
        if not torch.isfinite(returns).all():
            raise ValueError(
                f"PosteriorSamplingTransform: non-finite episode return(s) {returns.tolist()} "
                f"for member(s) {indices.tolist()}; check the env's rewards."
            )
        if self.credit_returns:
            if bool(credited.any()):
                self.posterior.update(indices[credited], returns[credited])  # line 15
            self.posterior.skip(int((~credited).sum()))
        for i, r, c in zip(indices.tolist(), returns.tolist(), credited.tolist()):
            episode = FinishedEpisode(int(i), float(r), bool(c))
            self._finished.append(episode)
            self.last_episode = episode
        # A done env keeps its index until its reset; zero the return so that a stray extra step
        # before the reset cannot credit the same episode twice.
        self._episode_return[done] = 0.0

    # ------------------------------------------------------------------ specs
    def transform_observation_spec(self, observation_spec: TensorSpec) -> TensorSpec:
        parent = self.parent
        if not isinstance(observation_spec, Composite):
            observation_spec = Composite(observation=observation_spec, shape=parent.batch_size)
        observation_spec[self.index_key] = Categorical(
            self.num_policies,
            shape=parent.batch_size,
            dtype=torch.int64,
            device=parent.device,
        )
        return observation_spec

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Outside an env (e.g. in a replay buffer) the transform leaves data unchanged."""
        return tensordict

    # ------------------------------------------------------------------ state
    def get_extra_state(self) -> dict:
        return {
            "posterior": self.posterior.state_dict(),
            "current_index": self._current_index,
            "episode_return": self._episode_return,
            "uncredited": self._uncredited,
            "uncredited_steps": self._uncredited_steps,
            "last_episode": None if self.last_episode is None else tuple(self.last_episode),
        }

    def set_extra_state(self, state: dict) -> None:
        self.posterior.load_state_dict(state["posterior"])

        def copy(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.clone()

        self._current_index = copy(state["current_index"])
        self._episode_return = copy(state["episode_return"])
        self._uncredited = copy(state["uncredited"])
        self._uncredited_steps = int(state["uncredited_steps"])
        last = state["last_episode"]
        self.last_episode = None if last is None else FinishedEpisode(*last)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.posterior!r}, credit_returns={self.credit_returns}, "
            f"index_key={self.index_key!r})"
        )
