"""The quantities of the paper's regret bound that can be computed in the tabular experiment.

The theorem bounds the Bayesian regret of posterior sampling with approximate posteriors
``q_k`` by

    sqrt(C K (H R_max)^2 H(pi*)) + 2 H R_max sum_k sqrt(E[KL(q_k(pi) || p_k(pi))]).

Policies are deterministic maps ``(h, s) -> a``, ``A^(H S)`` of them, so no sample of the exact
posterior over whole policies is large enough to estimate ``p_k(pi)``. We coarsen a policy to a
*label*, its first-step decision rule ``(pi_1(s))_s`` (``A^S`` labels), estimate ``p_k`` over labels
from exact posterior draws (Krichevsky-Trofimov smoothing, so that labels no draw produced keep a
small mass) and compute the KL of labels. By the data-processing inequality the label KL and the
label entropy are *lower* bounds of the policy KL and ``H(pi*)``; ``C`` is unknown and set to 1.
The bound plotted from them is an evaluation of the theorem's expression under these stated
approximations, not a certified upper bound.
"""

from __future__ import annotations

import numpy as np

__all__ = ["policy_labels", "n_labels", "kl_to_sampled_posterior", "label_entropy", "regret_bound"]


def n_labels(n_states: int, n_actions: int) -> int:
    """Number of distinct labels, ``A^S``."""
    return int(n_actions) ** int(n_states)


def policy_labels(policy: np.ndarray, n_actions: int) -> np.ndarray:
    """Integer label of each policy ``[..., H, S]``: its step-1 rule read as a base-``A`` number."""
    first = policy[..., 0, :].astype(np.int64)
    if n_labels(first.shape[-1], n_actions) >= 2**62:
        raise ValueError(f"A^S = {n_actions}^{first.shape[-1]} labels do not fit in int64")
    powers = np.int64(n_actions) ** np.arange(first.shape[-1], dtype=np.int64)
    return (first * powers).sum(-1)


def kl_to_sampled_posterior(
    q_probs: np.ndarray, q_labels: np.ndarray, p_labels: np.ndarray, total_labels: int
) -> np.ndarray:
    """``KL(q || p_hat)`` per learner over labels.

    Args:
        q_probs: ``[L, J]`` the approximate posterior's probability of each of its ``J`` policies.
        q_labels: ``[L, J]`` their labels (equal labels are merged).
        p_labels: ``[L, n]`` labels of ``n`` policies drawn from the exact posterior.
        total_labels: size of the label set, for the smoothing
            ``p_hat(x) = (count(x) + 1/2) / (n + total_labels / 2)``.

    Returns:
        ``[L]`` KL divergences in nats.
    """
    n_l, n_draws = p_labels.shape
    if q_probs.shape != q_labels.shape or q_probs.shape[0] != n_l:
        raise ValueError(f"q_probs {q_probs.shape}, q_labels {q_labels.shape}, p_labels {p_labels.shape} disagree")
    # One key per (learner, label), so that all learners are handled by one sort.
    q_keys = np.arange(n_l)[:, None] * total_labels + q_labels
    p_keys = np.sort((np.arange(n_l)[:, None] * total_labels + p_labels).ravel())
    keys, inverse = np.unique(q_keys.ravel(), return_inverse=True)
    q_mass = np.bincount(inverse, weights=q_probs.ravel())
    count = np.searchsorted(p_keys, keys, side="right") - np.searchsorted(p_keys, keys, side="left")
    p_hat = (count + 0.5) / (n_draws + total_labels / 2)
    terms = np.where(q_mass > 0, q_mass * (np.log(np.maximum(q_mass, 1e-300)) - np.log(p_hat)), 0.0)
    return np.bincount(keys // total_labels, weights=terms, minlength=n_l)


def label_entropy(labels: np.ndarray) -> float:
    """Plug-in entropy (nats) of the empirical distribution of ``labels``."""
    _, counts = np.unique(np.asarray(labels).ravel(), return_counts=True)
    freq = counts / counts.sum()
    return float(-(freq * np.log(freq)).sum())


def regret_bound(
    kl_per_episode: np.ndarray, entropy: float, horizon: int, r_max: float = 1.0, c: float = 1.0
) -> np.ndarray:
    """The theorem's bound after each episode ``k = 1..K``, from ``E[KL]`` of each episode ``[K]``.

    Returns ``[K]``: ``sqrt(c k (H R_max)^2 entropy) + 2 H R_max sum_{i <= k} sqrt(KL_i)``.
    """
    kl = np.maximum(np.asarray(kl_per_episode, dtype=np.float64), 0.0)
    k = np.arange(1, kl.shape[-1] + 1)
    scale = horizon * r_max
    return np.sqrt(c * k * scale**2 * entropy) + 2 * scale * np.cumsum(np.sqrt(kl), axis=-1)
