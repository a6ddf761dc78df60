"""Posteriors over tabular MDPs: the exact conjugate one and a perturbed (bootstrapped) ensemble.

* :class:`Counts` holds a learner's real-data sufficient statistics and samples the exact
  posterior ``Dirichlet(alpha + counts)`` for each transition row and ``Beta(a + successes,
  b + failures)`` for each Bernoulli reward mean (conjugate, so exact PSRL is exact).
* :class:`PerturbedCounts` is the tabular analogue of a deep ensemble: each member is a point
  estimate fitted to its own bootstrap resample of the real data (online bootstrap: every
  transition gets a fixed random weight per member when it arrives) and starts from its own
  random "initialisation", an MDP drawn from the prior that counts as ``prior_weight``
  pseudo-transitions and washes out as data accumulates (randomised prior functions,
  Osband et al. 2018). Members persist across episodes, like a deep ensemble that is retrained
  on the growing buffer (this is "ensemble sampling", Lu & Van Roy 2017).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ConjugatePrior", "Counts", "PerturbedCounts", "sample_dirichlet", "BOOTSTRAPS"]

BOOTSTRAPS = ("poisson", "exponential", "none")
"""Per-transition member weights: Poisson(1) (online bootstrap), Exp(1) (Bayesian bootstrap), or 1."""


@dataclass(frozen=True)
class ConjugatePrior:
    """Dirichlet prior on each transition row, Beta prior on each reward mean.

    Args:
        alpha: Dirichlet concentration per next state.
        reward_a, reward_b: Beta prior parameters.
    """

    alpha: float
    reward_a: float = 1.0
    reward_b: float = 1.0

    def __post_init__(self) -> None:
        if not (self.alpha > 0 and self.reward_a > 0 and self.reward_b > 0):
            raise ValueError(f"prior parameters must be positive, got {self}")


def sample_dirichlet(concentration: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Dirichlet draws along the last axis (normalised Gamma draws)."""
    g = rng.standard_gamma(concentration)
    total = g.sum(-1, keepdims=True)
    # All-zero rows only happen by underflow with tiny concentrations; fall back to uniform.
    return np.where(total > 0, g / np.where(total > 0, total, 1.0), 1.0 / g.shape[-1])


def _flat(*pairs: tuple[np.ndarray, int]) -> np.ndarray:
    """Row-major flat index of broadcast integer arrays with the given sizes."""
    out = np.zeros((), dtype=np.int64)
    for idx, size in pairs:
        out = out * size + idx
    return out


class Counts:
    """Real transitions and rewards of ``n_learners`` independent learners.

    Args:
        n_learners, n_states, n_actions: sizes.

    Examples:
        >>> c = Counts(1, 3, 2)
        >>> c.add(np.array([0]), np.array([1]), np.array([1.0]), np.array([2]))
        >>> int(c.transitions[0, 0, 1, 2]), float(c.reward_sum[0, 0, 1])
        (1, 1.0)
    """

    def __init__(self, n_learners: int, n_states: int, n_actions: int) -> None:
        self.shape = (n_learners, n_states, n_actions)
        self.transitions = np.zeros(self.shape + (n_states,), dtype=np.int64)
        self.reward_sum = np.zeros(self.shape)

    @property
    def visits(self) -> np.ndarray:
        return self.transitions.sum(-1)

    def add(self, state: np.ndarray, action: np.ndarray, reward: np.ndarray, next_state: np.ndarray) -> None:
        """Add one transition per learner (arrays ``[L]``) or several (``[L, T]``)."""
        n_l, n_s, n_a = self.shape
        learner = np.arange(n_l).reshape((n_l,) + (1,) * (np.ndim(state) - 1))
        idx = _flat((learner, n_l), (state, n_s), (action, n_a), (next_state, n_s)).ravel()
        self.transitions += np.bincount(idx, minlength=self.transitions.size).reshape(self.transitions.shape)
        ridx = _flat((learner, n_l), (state, n_s), (action, n_a)).ravel()
        rw = np.broadcast_to(reward, np.shape(state)).ravel()
        self.reward_sum += np.bincount(ridx, weights=rw, minlength=self.reward_sum.size).reshape(self.shape)

    def sample_posterior(
        self,
        prior: ConjugatePrior,
        rng: np.random.Generator,
        n_samples: int | None = None,
        rows: slice | np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact posterior draws ``([L, (n,) S, A, S], [L, (n,) S, A])``, for the learners ``rows``."""
        rows = slice(None) if rows is None else rows
        conc, succ = self.transitions[rows] + prior.alpha, self.reward_sum[rows]
        fail = self.transitions[rows].sum(-1) - succ
        if n_samples is not None:
            conc, succ, fail = (x[:, None] for x in (conc, succ, fail))
            conc = np.broadcast_to(conc, conc.shape[:1] + (n_samples,) + conc.shape[2:])
            succ = np.broadcast_to(succ, succ.shape[:1] + (n_samples,) + succ.shape[2:])
            fail = np.broadcast_to(fail, succ.shape)
        p = sample_dirichlet(conc, rng)
        r = rng.beta(prior.reward_a + succ, prior.reward_b + fail)
        return p, r


class PerturbedCounts:
    """``n_members`` perturbed point estimates of the MDP per learner (an ensemble).

    Member ``k`` of learner ``l`` estimates ``P(.|s,a) = (kappa u + sum_i w_i e_{s'_i}) /
    (kappa + sum_i w_i)`` and ``r(s,a) = (kappa_r v + sum_i w_i r_i) / (kappa_r + sum_i w_i)``
    over the real transitions ``i`` at ``(s, a)``, with ``u ~ Dir(alpha)``, ``v ~ Beta(a, b)`` drawn
    once per member and pair, ``kappa = prior_weight`` (default ``alpha * S``, the prior's total
    concentration), ``kappa_r = a + b`` and bootstrap weights ``w_i`` drawn per member when
    transition ``i`` arrives. With ``bootstrap="exponential"`` and fresh weights this would be an
    exact posterior draw up to ``kappa`` being fixed instead of Gamma-distributed; persistent
    members and a finite ensemble are what make it approximate.

    Args:
        n_learners, n_members, n_states, n_actions: sizes.
        prior: the conjugate prior the random initialisations are drawn from.
        bootstrap: one of :data:`BOOTSTRAPS`.
        prior_weight: pseudo-count weight ``kappa`` of the random initialisation.
        rng: generator for the initialisations and the weights.
    """

    def __init__(
        self,
        n_learners: int,
        n_members: int,
        n_states: int,
        n_actions: int,
        prior: ConjugatePrior,
        *,
        bootstrap: str = "poisson",
        prior_weight: float | None = None,
        rng: np.random.Generator,
    ) -> None:
        if bootstrap not in BOOTSTRAPS:
            raise ValueError(f"bootstrap must be one of {BOOTSTRAPS}, got {bootstrap!r}")
        if n_members < 1:
            raise ValueError(f"n_members must be >= 1, got {n_members}")
        self.bootstrap = bootstrap
        self.kappa = prior.alpha * n_states if prior_weight is None else float(prior_weight)
        if self.kappa <= 0:
            raise ValueError(f"prior_weight must be positive, got {prior_weight}")
        self.kappa_r = prior.reward_a + prior.reward_b
        self.shape = (n_learners, n_members, n_states, n_actions)
        full = self.shape + (n_states,)
        self.init_transitions = sample_dirichlet(np.full(full, prior.alpha), rng)
        self.init_rewards = rng.beta(prior.reward_a, prior.reward_b, size=self.shape)
        self.transitions = np.zeros(full)
        self.reward_sum = np.zeros(self.shape)
        self.weight = np.zeros(self.shape)

    def _weights(self, size: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        if self.bootstrap == "poisson":
            return rng.poisson(1.0, size=size).astype(np.float64)
        if self.bootstrap == "exponential":
            return rng.standard_exponential(size=size)
        return np.ones(size)

    def add(
        self,
        state: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        next_state: np.ndarray,
        rng: np.random.Generator,
    ) -> None:
        """Add transitions ``[L, T]`` with a fresh bootstrap weight per member, ``[L, T, K]``."""
        n_l, n_k, n_s, n_a = self.shape
        state, action, next_state = (np.asarray(x).reshape(n_l, -1) for x in (state, action, next_state))
        reward = np.asarray(reward, dtype=np.float64).reshape(n_l, -1)
        w = self._weights(state.shape + (n_k,), rng)
        learner = np.arange(n_l)[:, None, None]
        member = np.arange(n_k)[None, None, :]
        s, a, s2, r = (x[..., None] for x in (state, action, next_state, reward))
        pair = _flat((learner, n_l), (member, n_k), (s, n_s), (a, n_a))
        idx = (pair * n_s + s2).ravel()
        self.transitions += np.bincount(idx, weights=w.ravel(), minlength=self.transitions.size).reshape(
            self.transitions.shape
        )
        pair = np.broadcast_to(pair, w.shape).ravel()
        self.weight += np.bincount(pair, weights=w.ravel(), minlength=self.weight.size).reshape(self.shape)
        self.reward_sum += np.bincount(pair, weights=(w * r).ravel(), minlength=self.weight.size).reshape(
            self.shape
        )

    def estimate(self) -> tuple[np.ndarray, np.ndarray]:
        """Members' point estimates ``([L, K, S, A, S], [L, K, S, A])``."""
        p = (self.kappa * self.init_transitions + self.transitions) / (self.kappa + self.weight)[..., None]
        r = (self.kappa_r * self.init_rewards + self.reward_sum) / (self.kappa_r + self.weight)
        return p, r
