"""Finite-horizon tabular MDPs with Bernoulli rewards: RiverSwim and Dirichlet random MDPs.

An MDP is a :class:`TabularMDP`: transition probabilities ``[..., S, A, S]``, mean rewards
``[..., S, A]`` in ``[0, 1]`` (a step's reward is a Bernoulli draw with that mean, so
``R_max = 1``), an initial-state distribution ``[..., S]`` and a horizon ``H``. Leading dimensions
are a batch of MDPs (one per seed in the experiments).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["TabularMDP", "riverswim", "random_mdps", "step", "rollout"]


@dataclass(frozen=True)
class TabularMDP:
    """A (batch of) finite-horizon tabular MDP(s).

    Args:
        transitions: ``[..., S, A, S]``, each ``[..., s, a, :]`` a probability vector.
        rewards: ``[..., S, A]`` Bernoulli reward means in ``[0, 1]``.
        initial: ``[..., S]`` initial-state distribution.
        horizon: number of steps per episode, ``H >= 1``.

    Examples:
        >>> mdp = riverswim()
        >>> mdp.n_states, mdp.n_actions, mdp.horizon
        (6, 2, 20)
    """

    transitions: np.ndarray
    rewards: np.ndarray
    initial: np.ndarray
    horizon: int

    def __post_init__(self) -> None:
        p, r, rho = self.transitions, self.rewards, self.initial
        if p.ndim < 3 or p.shape[-1] != p.shape[-3]:
            raise ValueError(f"transitions must have shape [..., S, A, S], got {p.shape}")
        if r.shape != p.shape[:-1]:
            raise ValueError(f"rewards must have shape {p.shape[:-1]} ([..., S, A]), got {r.shape}")
        if rho.shape != p.shape[:-3] + (p.shape[-1],):
            raise ValueError(f"initial must have shape {p.shape[:-3] + (p.shape[-1],)}, got {rho.shape}")
        if np.any(p < 0) or not np.allclose(p.sum(-1), 1.0, atol=1e-6):
            raise ValueError("transitions must be non-negative and sum to 1 over next states")
        if np.any(r < 0) or np.any(r > 1):
            raise ValueError(f"reward means must lie in [0, 1], got range [{r.min()}, {r.max()}]")
        if np.any(rho < 0) or not np.allclose(rho.sum(-1), 1.0, atol=1e-6):
            raise ValueError("initial must be a probability vector over states")
        if not isinstance(self.horizon, (int, np.integer)) or self.horizon < 1:
            raise ValueError(f"horizon must be a positive integer, got {self.horizon!r}")

    @property
    def n_states(self) -> int:
        return self.transitions.shape[-1]

    @property
    def n_actions(self) -> int:
        return self.transitions.shape[-2]

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return self.transitions.shape[:-3]

    def take(self, index: np.ndarray) -> "TabularMDP":
        """The MDPs at ``index`` of a one-dimensional batch (e.g. one copy per learner)."""
        return TabularMDP(self.transitions[index], self.rewards[index], self.initial[index], self.horizon)


def riverswim(n_states: int = 6, horizon: int = 20) -> TabularMDP:
    """RiverSwim (Strehl & Littman 2008; the version of Osband et al. 2013).

    A chain of ``n_states`` states, start at the left end. Action 0 (swim left, with the current)
    always moves one state left; action 1 (swim right, against it) moves right with probability
    0.35, stays with 0.6 and drifts left with 0.05 (at the left end: right 0.6, stay 0.4; at the
    right end: stay 0.6, left 0.4). Swimming left at the left end pays 0.005 on average, swimming
    right at the right end pays 1: a myopic agent settles for the small reward, so exploration
    matters.

    Args:
        n_states: chain length, at least 3.
        horizon: steps per episode.
    """
    if not isinstance(n_states, (int, np.integer)) or n_states < 3:
        raise ValueError(f"n_states must be an integer >= 3, got {n_states!r}")
    s_count = int(n_states)
    p = np.zeros((s_count, 2, s_count))
    for s in range(s_count):
        p[s, 0, max(s - 1, 0)] = 1.0
        if s == 0:
            p[s, 1, 0], p[s, 1, 1] = 0.4, 0.6
        elif s == s_count - 1:
            p[s, 1, s - 1], p[s, 1, s] = 0.4, 0.6
        else:
            p[s, 1, s - 1], p[s, 1, s], p[s, 1, s + 1] = 0.05, 0.6, 0.35
    r = np.zeros((s_count, 2))
    r[0, 0] = 0.005
    r[s_count - 1, 1] = 1.0
    rho = np.zeros(s_count)
    rho[0] = 1.0
    return TabularMDP(p, r, rho, int(horizon))


def random_mdps(
    n: int,
    n_states: int = 6,
    n_actions: int = 2,
    horizon: int = 20,
    *,
    alpha: float = 0.25,
    reward_prior: tuple[float, float] = (1.0, 1.0),
    rng: np.random.Generator,
) -> TabularMDP:
    """``n`` MDPs drawn from the conjugate prior: ``P(.|s,a) ~ Dir(alpha)``, means ``~ Beta``.

    Drawn from the same prior that exact PSRL uses, so averaging over them gives the Bayesian
    regret the paper's theorem bounds. A small ``alpha`` gives sparse transitions (few successor
    states per pair), where some states are hard to reach and exploration matters. The episode
    starts in state 0.

    Args:
        n: number of MDPs (the batch size).
        n_states, n_actions, horizon: sizes.
        alpha: Dirichlet concentration per next state.
        reward_prior: ``(a, b)`` of the Beta prior on each reward mean.
        rng: the generator to draw from.
    """
    if alpha <= 0 or min(reward_prior) <= 0:
        raise ValueError(f"alpha and reward_prior must be positive, got {alpha}, {reward_prior}")
    if n < 1 or n_states < 2 or n_actions < 2:
        raise ValueError(f"need n >= 1, n_states >= 2, n_actions >= 2, got {n}, {n_states}, {n_actions}")
    g = rng.standard_gamma(alpha, size=(n, n_states, n_actions, n_states))
    total = g.sum(-1, keepdims=True)
    p = np.where(total > 0, g / np.where(total > 0, total, 1.0), 1.0 / n_states)
    r = rng.beta(*reward_prior, size=(n, n_states, n_actions))
    rho = np.zeros((n, n_states))
    rho[:, 0] = 1.0
    return TabularMDP(p, r, rho, int(horizon))


def step(
    mdp: TabularMDP, state: np.ndarray, action: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One step of a batch of MDPs (batch shape ``[L]``): ``(next_state, reward)``, each ``[L]``."""
    rows = np.arange(state.shape[0])
    probs = mdp.transitions[rows, state, action]
    cdf = np.cumsum(probs, axis=-1)
    u = rng.random(state.shape[0])
    next_state = np.minimum((u[:, None] >= cdf).sum(-1), mdp.n_states - 1)
    reward = (rng.random(state.shape[0]) < mdp.rewards[rows, state, action]).astype(np.float64)
    return next_state, reward


def rollout(
    mdp: TabularMDP, policy: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One episode per MDP of a batch ``[L]`` under ``policy[L, H, S]``.

    Returns:
        ``(state, action, reward, next_state)``, each ``[L, H]``.
    """
    n_l, horizon = mdp.batch_shape[0], mdp.horizon
    if policy.shape != (n_l, horizon, mdp.n_states):
        raise ValueError(f"policy must have shape {(n_l, horizon, mdp.n_states)}, got {policy.shape}")
    cdf0 = np.cumsum(mdp.initial, axis=-1)
    state = np.minimum((rng.random(n_l)[:, None] >= cdf0).sum(-1), mdp.n_states - 1)
    out = np.zeros((4, n_l, horizon), dtype=np.int64), np.zeros((n_l, horizon))
    (s_buf, a_buf, _, s2_buf), r_buf = out[0], out[1]
    rows = np.arange(n_l)
    for h in range(horizon):
        action = policy[rows, h, state]
        next_state, reward = step(mdp, state, action, rng)
        s_buf[:, h], a_buf[:, h], r_buf[:, h], s2_buf[:, h] = state, action, reward, next_state
        state = next_state
    return s_buf, a_buf, r_buf, s2_buf
