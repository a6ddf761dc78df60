"""Pick the acting policy once per episode: PS (uniform), OPS (optimistic) or a fixed member.

Line 3 of PS-MBPO's Algorithm 1 (Wang, Chen & Murphy, 2024) samples one of the N*M policies at
the start of every real episode, and line 15 updates the optimistic distribution with the
episode's real return::

    PS:   i ~ U({0, ..., N*M - 1})
    OPS:  p_k(i) = exp(sum_l R_E(pi_i, l) / tau) / sum_j exp(sum_l R_E(pi_j, l) / tau)

where ``R_E(pi_i, l)`` is the real return of policy ``i`` in episode ``l`` (0 when it was not
played). :class:`PosteriorSamplingTransform` does both as a TorchRL transform of the real env:
it picks at every (partial) reset, writes the flat index ``i = n * M + m`` under
``"policy_index"``, keeps it through the episode, and credits the episode's return to the
member that played it when the episode ends (``"done"``: terminated or truncated).
"""

from __future__ import annotations

import collections
import math
import numbers
from typing import Literal, NamedTuple

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey
from torchrl.data import Categorical, Composite, TensorSpec
from torchrl.envs.transforms import Transform
from components.envs.episode_seeding import episode_seed

__all__ = ["PosteriorSamplingTransform", "FinishedEpisode", "SAMPLING_MODES", "ops_probabilities"]

SAMPLING_MODES = ("ps", "ops", "fixed")
"""``ps``: uniform pick; ``ops``: optimistic pick; ``fixed``: always ``fixed_index``."""


class FinishedEpisode(NamedTuple):
    """One finished real episode: which member played it and its (undiscounted) return.

    Fields are reachable as attributes (``ep.index``, ``ep.ret``), by position, or by name
    (``ep["index"]``, ``ep["return"]``) for loggers that take dict-like records.
    """

    index: int
    ret: float

    def __getitem__(self, key):  # type: ignore[override]
        if isinstance(key, str):
            if key == "index":
                return self.index
            if key in ("return", "ret"):
                return self.ret
            raise KeyError(f"FinishedEpisode has 'index' and 'return', got {key!r}.")
        return tuple.__getitem__(self, key)

    def as_dict(self) -> dict[str, float]:
        """``{"index": ..., "return": ...}``."""
        return {"index": self.index, "return": self.ret}


def ops_probabilities(cumulative_returns: torch.Tensor, temperature: float) -> torch.Tensor:
    """The OPS distribution ``softmax(cumulative_returns / temperature)``, computed stably.

    The returns are shifted by their maximum *before* dividing by ``temperature``, so the largest
    logit is exactly 0 and neither large returns nor a small temperature can overflow.

    Args:
        cumulative_returns: ``[P]`` sum over episodes of each member's real returns.
        temperature: tau > 0.

    Returns:
        ``[P]`` float64 probabilities summing to one.

    Examples:
        >>> ops_probabilities(torch.tensor([0.0, math.log(3.0)]), 1.0)
        tensor([0.2500, 0.7500], dtype=torch.float64)
    """
    _check_temperature(temperature)
    returns = cumulative_returns.detach().to(torch.float64)
    if not torch.isfinite(returns).all():
        raise ValueError(f"cumulative returns must be finite, got {returns.tolist()}.")
    logits = (returns - returns.max()) / temperature
    return torch.softmax(logits, dim=-1)


def _check_temperature(temperature: float) -> None:
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real):
        raise TypeError(f"temperature (tau) must be a float > 0, got {temperature!r}.")
    if not (temperature > 0 and math.isfinite(temperature)):
        raise ValueError(f"temperature (tau) must be a finite float > 0, got {temperature!r}.")


class PosteriorSamplingTransform(Transform):
    """Write the acting member's flat index into the real env's tensordicts, once per episode.

    At every reset (honouring partial resets of batched envs through the ``"_reset"`` mask) the
    transform picks an index in ``[0, num_policies)`` for each env being reset and writes it under
    ``index_key``; every step copies the same index to ``("next", index_key)``, so it is constant
    through an episode. It sums the rewards it sees and, when ``"done"`` is set (terminated or
    truncated), adds the episode's return to ``cumulative_returns[index]`` (line 15 of
    Algorithm 1), which is what OPS samples from at the next reset. An episode cut short by a
    reset without ``"done"`` is not credited.

    The index is an int64 tensor of the env's batch shape, with **no trailing singleton
    dimension** (a 0-dim tensor for an unbatched env), declared in the observation spec as a
    :class:`~torchrl.data.Categorical` over ``num_policies`` values, like TorchRL's categorical
    actions. The flat index of model ``n``, member ``m`` of an ``[N, M]`` ensemble is
    ``n * M + m``.

    The transform keeps its bookkeeping on the CPU, whatever the env's device; the index is
    written on the tensordict's device. Its whole state (cumulative returns, episode counts, the
    torch.Generator it samples with, and the current episodes' indices and running returns) is
    in :meth:`state_dict`, so a resumed run makes the same picks.

    Place it after every transform that changes ``"reward"`` or ``"done"`` you want it to see
    (e.g. after a time limit), and before any reward scaling if OPS should see the real return.
    Each transform instance owns its state: in multi-process collectors, the copies living in
    the workers do not share their returns.

    Args:
        num_policies: ``N * M``, the number of members to pick from (>= 1).
        mode: ``"ps"`` (uniform), ``"ops"`` (optimistic) or ``"fixed"`` (always
            ``fixed_index``, the "without the sampling step" ablation).

    Keyword Args:
        temperature: OPS's tau > 0 (checked in every mode; used only by ``"ops"``). Returns are
            divided by it, so it lives on the scale of the task's episode returns.
        fixed_index: the member that acts in ``"fixed"`` mode, in ``[0, num_policies)``.
        seed: seeds the transform's own ``torch.Generator``; ``None`` draws a seed from
            torch's global RNG (so ``torch.manual_seed`` still makes runs reproducible).
        index_key: where the index is written. Defaults to ``"policy_index"``.
        reward_key: the reward entry summed into episode returns. Defaults to ``"reward"``.
        done_key: the entry that ends an episode. Defaults to ``"done"``.
        reset_key: the partial-reset mask entry. Defaults to ``"_reset"``.
        history: how many finished episodes :meth:`pop_finished_episodes` keeps (oldest dropped).
        episode_seeded: reseed the generator before each pick with ``(seed, number of finished
            episodes)``, so the pick of an episode depends only on the seed and the returns so
            far. A run resumed from a checkpoint taken right after an episode ended (when a
            collector has already reset the env and picked) then makes the same pick again when
            its new env is reset. Repeated resets without a finished episode in between repeat
            the same pick in this mode.

    Examples:
        >>> from torchrl.envs import TransformedEnv
        >>> from components.envs.factory import make_env
        >>> env = make_env("gym:Pendulum-v1", seed=0)
        >>> ps = PosteriorSamplingTransform(6, mode="ops", temperature=100.0, seed=0)
        >>> env = env.append_transform(ps)
        >>> td = env.rollout(200)  # one Pendulum episode
        >>> bool((td["policy_index"] == td["policy_index"][0]).all())
        True
        >>> ps.episodes_played.sum().item(), ps.probs.shape
        (1, torch.Size([6]))
    """

    def __init__(
        self,
        num_policies: int,
        mode: Literal["ps", "ops", "fixed"] = "ps",
        *,
        temperature: float = 1.0,
        fixed_index: int = 0,
        seed: int | None = None,
        index_key: NestedKey = "policy_index",
        reward_key: NestedKey = "reward",
        done_key: NestedKey = "done",
        reset_key: NestedKey = "_reset",
        history: int = 1024,
        episode_seeded: bool = False,
    ) -> None:
        if isinstance(num_policies, bool) or not isinstance(num_policies, numbers.Integral):
            raise TypeError(f"num_policies must be an int >= 1, got {num_policies!r}.")
        num_policies = int(num_policies)
        if num_policies < 1:
            raise ValueError(f"num_policies must be >= 1, got {num_policies}.")
        if mode not in SAMPLING_MODES:
            raise ValueError(f"mode must be one of {SAMPLING_MODES}, got {mode!r}.")
        _check_temperature(temperature)
        if isinstance(fixed_index, bool) or not isinstance(fixed_index, numbers.Integral):
            raise TypeError(f"fixed_index must be an int, got {fixed_index!r}.")
        fixed_index = int(fixed_index)
        if not 0 <= fixed_index < num_policies:
            raise ValueError(
                f"fixed_index must lie in [0, {num_policies}) (num_policies={num_policies}), "
                f"got {fixed_index}."
            )
        if isinstance(history, bool) or not isinstance(history, int) or history < 1:
            raise ValueError(f"history must be an int >= 1, got {history!r}.")
        super().__init__(in_keys=[], out_keys=[index_key])
        self.num_policies = num_policies
        self.mode = mode
        self.temperature = float(temperature)
        self.fixed_index = fixed_index
        self.index_key = index_key
        self.reward_key = reward_key
        self.done_key = done_key
        self.reset_key = reset_key
        if seed is None:
            seed = int(torch.randint(0, 2**62, (), dtype=torch.int64).item())
        self.seed = int(seed)
        self.episode_seeded = bool(episode_seeded)
        self._generator = torch.Generator(device="cpu")
        self._generator.manual_seed(self.seed)
        self.register_buffer("cumulative_returns", torch.zeros(num_policies, dtype=torch.float64))
        self.register_buffer("episodes_played", torch.zeros(num_policies, dtype=torch.int64))
        # Per-env state of the running episodes, shaped like the env batch (lazily created).
        self._current_index: torch.Tensor | None = None
        self._episode_return: torch.Tensor | None = None
        self._finished: collections.deque[FinishedEpisode] = collections.deque(maxlen=history)
        self.last_episode: FinishedEpisode | None = None
        """The last finished episode (member index, return), ``None`` before the first."""

    # ------------------------------------------------------------------ distribution
    @property
    def probs(self) -> torch.Tensor:
        """``[num_policies]`` float64: the distribution the next reset samples from.

        Uniform for ``"ps"``, ``softmax(cumulative_returns / tau)`` for ``"ops"``, one-hot on
        ``fixed_index`` for ``"fixed"``.
        """
        n = self.num_policies
        if self.mode == "ps":
            return torch.full((n,), 1.0 / n, dtype=torch.float64)
        if self.mode == "fixed":
            out = torch.zeros(n, dtype=torch.float64)
            out[self.fixed_index] = 1.0
            return out
        return ops_probabilities(self.cumulative_returns.cpu(), self.temperature)

    @property
    def current_index(self) -> torch.Tensor | None:
        """The members acting in the running episodes (env batch shape), ``None`` before reset."""
        return None if self._current_index is None else self._current_index.clone()

    def pop_finished_episodes(self) -> list[FinishedEpisode]:
        """Return and forget the episodes finished since the last call (oldest first)."""
        out = list(self._finished)
        self._finished.clear()
        return out

    def _pick(self, count: int) -> torch.Tensor:
        if self.episode_seeded:
            self._generator.manual_seed(episode_seed(self.seed, int(self.episodes_played.sum())))
        if self.mode == "fixed":
            return torch.full((count,), self.fixed_index, dtype=torch.int64)
        if self.mode == "ps":
            return torch.randint(
                0, self.num_policies, (count,), generator=self._generator, dtype=torch.int64
            )
        return torch.multinomial(self.probs, count, replacement=True, generator=self._generator)

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
            mask = torch.ones(batch_shape, dtype=torch.bool)
        else:
            mask = self._reset_mask(tensordict, batch_shape)
        count = int(mask.sum())
        if count:
            self._current_index[mask] = self._pick(count)
            self._episode_return[mask] = 0.0
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
        if not torch.isfinite(returns).all():
            raise ValueError(
                f"PosteriorSamplingTransform: non-finite episode return(s) {returns.tolist()} "
                f"for member(s) {indices.tolist()}; check the env's rewards."
            )
        self.cumulative_returns.index_add_(0, indices.to(self.cumulative_returns.device),
                                           returns.to(self.cumulative_returns))
        self.episodes_played.index_add_(0, indices.to(self.episodes_played.device),
                                        torch.ones_like(indices).to(self.episodes_played.device))
        for i, r in zip(indices.tolist(), returns.tolist()):
            episode = FinishedEpisode(int(i), float(r))
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
            "rng_state": self._generator.get_state(),
            "current_index": self._current_index,
            "episode_return": self._episode_return,
            "last_episode": None if self.last_episode is None else tuple(self.last_episode),
            "mode": self.mode,
            "num_policies": self.num_policies,
        }

    def set_extra_state(self, state: dict) -> None:
        if state["num_policies"] != self.num_policies:
            raise ValueError(
                f"state_dict is for num_policies={state['num_policies']}, this transform has "
                f"num_policies={self.num_policies}."
            )
        self._generator.set_state(state["rng_state"])
        current, ret = state["current_index"], state["episode_return"]
        self._current_index = None if current is None else current.clone()
        self._episode_return = None if ret is None else ret.clone()
        last = state["last_episode"]
        self.last_episode = None if last is None else FinishedEpisode(*last)

    def __repr__(self) -> str:
        extra = f", temperature={self.temperature}" if self.mode == "ops" else ""
        if self.mode == "fixed":
            extra = f", fixed_index={self.fixed_index}"
        return (
            f"{type(self).__name__}(num_policies={self.num_policies}, mode={self.mode!r}"
            f"{extra}, index_key={self.index_key!r})"
        )
