"""The posterior over the N*M policies: line 3 (pick) and line 15 (update) of Algorithm 1.

PS-MBPO (Wang, Chen & Murphy, 2024) picks one of the N*M policies at the start of every real
episode and, for OPS, updates the optimistic distribution with the episode's real return::

    3   PS:   i ~ U({0, ..., N*M - 1})
        OPS:  p_k(i) = exp(sum_l R_E(pi_i, l) / tau) / sum_j exp(sum_l R_E(pi_j, l) / tau)
    15  update the optimistic distribution with R_E(pi_i, k)

where ``R_E(pi_i, l)`` is the real return of policy ``i`` in episode ``l`` (0 when it was not
played). :class:`PolicyPosterior` is that distribution as an object of its own: :meth:`pick`
is line 3, :meth:`update` is line 15. It knows nothing about envs; the TorchRL transform
:class:`~torchrl_psmbpo.sampling.transform.PosteriorSamplingTransform` asks it for picks at resets.
"""

from __future__ import annotations

import math
import numbers
from typing import Literal

import torch

from torchrl_psmbpo._checks import check_int, check_real
from torchrl_psmbpo.seeding import episode_seed

__all__ = ["PolicyPosterior", "SAMPLING_MODES", "STATISTICS", "ops_probabilities"]

SAMPLING_MODES = ("ps", "ops", "fixed")
"""``ps``: uniform pick; ``ops``: optimistic pick; ``fixed``: always ``fixed_index``."""

STATISTICS = ("sum", "mean", "importance")
"""What OPS exponentiates: the sum of a member's credited returns (the paper), their mean, or
the sum of importance-weighted, baseline-centred returns (Exp3's estimate of every member's sum;
see :class:`PolicyPosterior`)."""


def check_temperature(temperature: float) -> float:
    """``temperature`` as a float, or a clear error if it is not a finite float > 0."""
    return check_real("temperature (tau)", temperature, low=0, low_open=True)


def ops_probabilities(cumulative_returns: torch.Tensor, temperature: float) -> torch.Tensor:
    """The OPS distribution ``softmax(cumulative_returns / temperature)``, computed stably.

    The returns are shifted by their maximum *before* dividing by ``temperature``, so the largest
    logit is exactly 0 and neither large returns nor a small temperature can overflow.

    Args:
        cumulative_returns: ``[P]`` each member's score (sum, or mean, of its real returns).
        temperature: tau > 0.

    Returns:
        ``[P]`` float64 probabilities summing to one.

    Examples:
        >>> ops_probabilities(torch.tensor([0.0, math.log(3.0)]), 1.0)
        tensor([0.2500, 0.7500], dtype=torch.float64)
    """
    check_temperature(temperature)
    returns = cumulative_returns.detach().to(torch.float64)
    if not torch.isfinite(returns).all():
        raise ValueError(f"cumulative returns must be finite, got {returns.tolist()}.")
    logits = (returns - returns.max()) / temperature
    return torch.softmax(logits, dim=-1)


class PolicyPosterior:
    """Which of the N*M members acts in the next real episode: PS, OPS or a fixed member.

    State: each member's sum of credited real returns (:attr:`cumulative_returns`), its number
    of credited episodes (:attr:`play_counts`), the number of finished episodes
    (:attr:`num_episodes`, credited or not), the seed and the generator. All of it is in
    :meth:`state_dict`, so a posterior rebuilt with any seed and loaded makes the same picks.

    **Crediting (what counts as a play).** Only :meth:`update` credits: it adds the real return
    of an episode to the member that played it and counts one play. Call it only for episodes
    whose actions all came from the picked member. For an episode that must not count (actions
    random, e.g. during the initial random steps, or from another policy) call :meth:`skip`: it
    credits nothing and counts no play, but advances :attr:`num_episodes` so that, with
    ``episode_seeded=True``, the next episode gets a fresh draw.

    **Statistic.** ``"sum"`` (default) is the paper's ``p_k(i) ∝ exp(sum_l R_E(pi_i, l) / tau)``.
    With non-negative rewards the sum favours the member played first and most: every credited
    episode raises its odds, so OPS keeps picking it (one 500-return episode at ``tau = 100``
    gives it ``e^5 ≈ 148`` times the odds of an unplayed member). ``"mean"`` uses each member's
    mean credited return instead, ``p_k(i) ∝ exp(mean_l R_E(pi_i, l) / tau)``, averaged over the
    episodes it played; an unplayed member has mean 0 (the value every member has before any
    episode, as with the sum). ``"importance"`` keeps the paper's form, ``exp(sum_l R_hat(pi_i,
    l) / tau)``, with ``R_hat`` an estimate of *every* member's return in episode ``l``, not only
    the played one's: ``R_hat(pi_i, l) = (R_l - b_l) * 1[i played] / p_l(i)``, Exp3's importance
    weighting (Auer et al., 2002) around a baseline ``b_l``, an exponential moving average of the
    earlier credited returns (rate ``baseline_rate``; the first credited episode is its own
    baseline). Every member's score then grows, in expectation, by its own mean return minus the
    baseline, whether it was played or not: two members drift apart at the rate their returns
    differ, so OPS discards a member as evidence against it accumulates instead of committing
    to the first one played. Uniform PS and ``"fixed"`` ignore the statistic.

    **Mixing.** With ``mix = gamma > 0``, OPS draws from ``(1 - gamma) softmax(scores / tau) +
    gamma / P``: every member keeps probability at least ``gamma / P`` (Exp3's uniform
    exploration), which also bounds the importance weight ``1 / p`` by ``P / gamma``.

    Args:
        num_policies: ``N * M``, the number of members to pick from (>= 1). The flat index of
            model ``n``, member ``m`` is ``n * M + m``.
        mode: ``"ps"`` (uniform), ``"ops"`` (optimistic) or ``"fixed"`` (always
            ``fixed_index``: the "without the sampling step" ablation).

    Keyword Args:
        temperature: OPS's tau > 0 (checked in every mode, used by ``"ops"``). Scores are
            divided by it, so it lives on the scale of the task's episode returns.
        fixed_index: the member ``"fixed"`` plays, and the one :meth:`most_likely` returns
            before any credited episode, in ``[0, num_policies)``.
        seed: seeds the posterior's own ``torch.Generator``; ``None`` draws a seed from torch's
            global RNG (so ``torch.manual_seed`` still makes runs reproducible).
        episode_seeded: reseed the generator before each pick with
            ``episode_seed(seed, num_episodes)``: the pick of episode ``k`` then depends only on
            ``(seed, k, credited returns)``, and repeating a pick before the episode ends (a
            resumed run resetting its env again) gives the same member.
        statistic: ``"sum"`` (the paper), ``"mean"`` or ``"importance"``; see above.
        mix: gamma in ``[0, 1)``, the uniform share of the OPS distribution (0: none, the
            paper's form).
        baseline_rate: the rate in ``(0, 1]`` of the ``"importance"`` statistic's baseline.

    Examples:
        >>> posterior = PolicyPosterior(4, mode="ops", temperature=100.0, seed=0)
        >>> i = posterior.pick()                      # line 3
        >>> posterior.update(i, 500.0)                # line 15: the episode's real return
        >>> round(float(posterior.probs[i] / posterior.probs[(i + 1) % 4]), 1)  # e^5
        148.4
        >>> posterior.most_likely() == i
        True
        >>> posterior.skip()                          # a random-action episode: not credited
        >>> posterior.play_counts.tolist() == [int(j == i) for j in range(4)]
        True
    """

    def __init__(
        self,
        num_policies: int,
        mode: Literal["ps", "ops", "fixed"] = "ps",
        *,
        temperature: float = 1.0,
        fixed_index: int = 0,
        seed: int | None = None,
        episode_seeded: bool = False,
        statistic: Literal["sum", "mean", "importance"] = "sum",
        mix: float = 0.0,
        baseline_rate: float = 0.25,
    ) -> None:
        num_policies = check_int("num_policies", num_policies)
        if mode not in SAMPLING_MODES:
            raise ValueError(f"mode must be one of {SAMPLING_MODES}, got {mode!r}.")
        if statistic not in STATISTICS:
            raise ValueError(f"statistic must be one of {STATISTICS}, got {statistic!r}.")
        mix = check_real("mix", mix, low=0, high=1, high_open=True)
        baseline_rate = check_real("baseline_rate", baseline_rate, low=0, high=1,
                                   low_open=True)
        fixed_index = check_int("fixed_index", fixed_index, minimum=None)
        if not 0 <= fixed_index < num_policies:
            raise ValueError(
                f"fixed_index must lie in [0, {num_policies}) (num_policies={num_policies}), "
                f"got {fixed_index}."
            )
        if seed is None:
            seed = int(torch.randint(0, 2**62, (), dtype=torch.int64).item())
        self.num_policies = num_policies
        self.mode = mode
        self.temperature = check_temperature(temperature)
        self.fixed_index = fixed_index
        self.statistic = statistic
        self.mix = mix
        self.baseline_rate = baseline_rate
        self.seed = check_int("seed", seed, minimum=None)
        self.episode_seeded = bool(episode_seeded)
        self._generator = torch.Generator(device="cpu")
        self._generator.manual_seed(self.seed)
        self._returns = torch.zeros(num_policies, dtype=torch.float64)
        self._plays = torch.zeros(num_policies, dtype=torch.int64)
        self._estimates = torch.zeros(num_policies, dtype=torch.float64)  # "importance" scores
        self._baseline: float | None = None  # "importance": EMA of credited returns
        self._episodes = 0

    # ------------------------------------------------------------------ read-only state
    @property
    def cumulative_returns(self) -> torch.Tensor:
        """``[P]`` float64: ``sum_l R_E(pi_i, l)`` over credited episodes (a copy)."""
        return self._returns.clone()

    @property
    def play_counts(self) -> torch.Tensor:
        """``[P]`` int64: how many credited episodes each member played (a copy)."""
        return self._plays.clone()

    @property
    def num_episodes(self) -> int:
        """Finished episodes so far, credited (:meth:`update`) or not (:meth:`skip`)."""
        return self._episodes

    @property
    def scores(self) -> torch.Tensor:
        """``[P]`` float64: what OPS exponentiates: the sum or the mean of credited returns, or
        the sum of importance-weighted centred returns (``statistic="importance"``).

        With ``statistic="mean"`` an unplayed member scores 0.
        """
        if self.statistic == "sum":
            return self._returns.clone()
        if self.statistic == "importance":
            return self._estimates.clone()
        return torch.where(self._plays > 0, self._returns / self._plays.clamp(min=1), 0.0)

    @property
    def probs(self) -> torch.Tensor:
        """``[P]`` float64: the distribution the next :meth:`pick` draws from.

        Uniform for ``"ps"``, ``(1 - mix) softmax(scores / tau) + mix / P`` for ``"ops"``,
        one-hot on ``fixed_index`` for ``"fixed"``.
        """
        n = self.num_policies
        if self.mode == "ps":
            return torch.full((n,), 1.0 / n, dtype=torch.float64)
        if self.mode == "fixed":
            out = torch.zeros(n, dtype=torch.float64)
            out[self.fixed_index] = 1.0
            return out
        probs = ops_probabilities(self.scores, self.temperature)
        return probs if self.mix == 0 else (1 - self.mix) * probs + self.mix / n

    # ------------------------------------------------------------------ line 3
    def pick(self, count: int | None = None) -> int | torch.Tensor:
        """Line 3: draw the member(s) that act in the next episode(s).

        Args:
            count: ``None`` for one episode (returns an ``int``), or the number of episodes
                starting now, e.g. the envs of a batch being reset (returns an int64 tensor of
                shape ``[count]``, the draws independent given the posterior).

        With ``episode_seeded=True`` the generator is first reseeded with
        ``episode_seed(seed, num_episodes)``, so calling :meth:`pick` again before the next
        :meth:`update`/:meth:`skip` returns the same member(s).
        """
        size = 1 if count is None else check_int("count", count, minimum=0)
        if self.episode_seeded:
            self._generator.manual_seed(episode_seed(self.seed, self._episodes))
        if self.mode == "fixed":
            out = torch.full((size,), self.fixed_index, dtype=torch.int64)
        elif self.mode == "ps":
            out = torch.randint(
                0, self.num_policies, (size,), generator=self._generator, dtype=torch.int64
            )
        elif size == 0:
            out = torch.zeros(0, dtype=torch.int64)
        else:
            out = torch.multinomial(self.probs, size, replacement=True, generator=self._generator)
        return int(out[0]) if count is None else out

    # ------------------------------------------------------------------ line 15
    def _as_indices(self, index: int | torch.Tensor) -> torch.Tensor:
        if isinstance(index, torch.Tensor):
            if index.dtype.is_floating_point or index.dtype == torch.bool or index.is_complex():
                raise ValueError(f"index must hold integers, got dtype {index.dtype}.")
            out = index.detach().to("cpu", torch.int64).reshape(-1)
        else:
            out = torch.tensor([check_int("index", index, minimum=None)], dtype=torch.int64)
        bad = out[(out < 0) | (out >= self.num_policies)]
        if bad.numel():
            raise ValueError(
                f"index must lie in [0, {self.num_policies}) (num_policies), got {bad.tolist()}."
            )
        return out

    def update(self, index: int | torch.Tensor, episode_return: float | torch.Tensor) -> None:
        """Line 15: credit the real return of a finished episode to the member that played it.

        Adds ``episode_return`` to ``cumulative_returns[index]``, counts one play and one
        finished episode. Only for episodes whose actions all came from member ``index``; use
        :meth:`skip` for the others.

        Args:
            index: the member that played, or a 1-D integer tensor of members (several episodes
                ending at once, e.g. in a batched env; a member may repeat).
            episode_return: the episode's undiscounted real return (finite), or a tensor of
                returns with one entry per index.
        """
        indices = self._as_indices(index)
        if isinstance(episode_return, torch.Tensor):
            returns = episode_return.detach().to("cpu", torch.float64).reshape(-1)
        elif isinstance(episode_return, numbers.Real) and not isinstance(episode_return, bool):
            returns = torch.tensor([float(episode_return)], dtype=torch.float64)
        else:
            raise ValueError(f"episode_return must be a finite float, got {episode_return!r}.")
        if returns.numel() != indices.numel():
            raise ValueError(
                f"episode_return must have one entry per index ({indices.numel()}), got "
                f"{returns.numel()}: {returns.tolist()}."
            )
        if not torch.isfinite(returns).all():
            raise ValueError(
                f"episode_return must be finite, got {returns.tolist()} for member(s) "
                f"{indices.tolist()}; check the env's rewards."
            )
        if self.statistic == "importance":
            for i, r in zip(indices.tolist(), returns.tolist()):
                self._credit_estimate(i, r)
        self._returns.index_add_(0, indices, returns)
        self._plays.index_add_(0, indices, torch.ones_like(indices))
        self._episodes += indices.numel()

    def _credit_estimate(self, index: int, episode_return: float) -> None:
        """Exp3's estimate: ``(R - b) / p(index)`` to the member that played, 0 to the others.

        ``p`` is the distribution at the time of the update, which is the one the member was
        drawn from when episodes do not overlap (one env, as in the recipes).
        """
        baseline = episode_return if self._baseline is None else self._baseline
        self._estimates[index] += (episode_return - baseline) / float(self.probs[index])
        self._baseline = baseline + self.baseline_rate * (episode_return - baseline)

    def skip(self, count: int = 1) -> None:
        """Record ``count`` finished episodes that are not credited (not played by the pick).

        Nothing is credited and no play is counted; only :attr:`num_episodes` advances, so that
        with ``episode_seeded=True`` the next pick is a fresh draw.
        """
        count = check_int("count", count, minimum=0)
        self._episodes += count

    # ------------------------------------------------------------------ evaluation
    def most_likely(self) -> int:
        """The member to evaluate: the posterior's best guess, from credited episodes only.

        * ``"ops"``: the argmax of the OPS probabilities (of :attr:`scores`), over all members;
          with ``statistic="sum"`` and negative returns this can be a member never played
          (it scores 0), which is also the member OPS is most likely to pick next.
        * ``"ps"``: the member with the best mean credited return among the members played.
        * ``"fixed"``: ``fixed_index``.

        Ties go to the lowest index. Before any credited episode every mode returns
        ``fixed_index`` (0 unless set).
        """
        if self.mode == "fixed" or int(self._plays.sum()) == 0:
            return self.fixed_index
        if self.mode == "ops":
            return int(torch.argmax(self.scores))
        played = self._plays > 0
        means = torch.where(played, self._returns / self._plays.clamp(min=1), -math.inf)
        return int(torch.argmax(means))

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """Everything that decides future picks: configuration, seed, generator, credits."""
        return {
            "num_policies": self.num_policies,
            "mode": self.mode,
            "temperature": self.temperature,
            "fixed_index": self.fixed_index,
            "statistic": self.statistic,
            "mix": self.mix,
            "baseline_rate": self.baseline_rate,
            "episode_seeded": self.episode_seeded,
            "seed": self.seed,
            "rng_state": self._generator.get_state(),
            "cumulative_returns": self._returns.clone(),
            "play_counts": self._plays.clone(),
            "estimates": self._estimates.clone(),
            "baseline": self._baseline,
            "num_episodes": self._episodes,
        }

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a :meth:`state_dict`; the saved seed and settings replace this object's.

        A state saved before ``mix`` and the ``"importance"`` statistic existed loads with
        ``mix = 0``, the default baseline rate and no estimates (what it ran with).
        """
        if state_dict["num_policies"] != self.num_policies:
            raise ValueError(
                f"state_dict is for num_policies={state_dict['num_policies']}, this posterior has "
                f"num_policies={self.num_policies}."
            )
        self.mode = state_dict["mode"]
        self.temperature = check_temperature(state_dict["temperature"])
        self.fixed_index = int(state_dict["fixed_index"])
        self.statistic = state_dict["statistic"]
        self.mix = float(state_dict.get("mix", 0.0))
        self.baseline_rate = float(state_dict.get("baseline_rate", 0.25))
        self.episode_seeded = bool(state_dict["episode_seeded"])
        self.seed = int(state_dict["seed"])
        self._generator.set_state(state_dict["rng_state"].cpu())  # map_location may have moved it
        self._returns = state_dict["cumulative_returns"].to("cpu", torch.float64).clone()
        self._plays = state_dict["play_counts"].to("cpu", torch.int64).clone()
        estimates = state_dict.get("estimates")
        self._estimates = (torch.zeros(self.num_policies, dtype=torch.float64) if estimates is None
                           else estimates.to("cpu", torch.float64).clone())
        self._baseline = state_dict.get("baseline")
        self._episodes = int(state_dict["num_episodes"])

    def __repr__(self) -> str:
        extra = ""
        if self.mode == "ops":
            extra = f", temperature={self.temperature}, statistic={self.statistic!r}"
            if self.mix:
                extra += f", mix={self.mix}"
        elif self.mode == "fixed":
            extra = f", fixed_index={self.fixed_index}"
        return (
            f"{type(self).__name__}(num_policies={self.num_policies}, mode={self.mode!r}{extra}, "
            f"episodes={self._episodes})"
        )
