"""Example 1 of the paper, executable: policy posteriors and their KL divergences.

Exact posterior sampling turns a posterior over MDPs into a posterior over policies,

    p(pi | D) = sum_M delta(pi | M) p(M | D),

and the paper's factorised approximation keeps a distribution over policies *given* the model,

    q(pi | D) = sum_M q(pi | M, D) q(M | D).

Both are a matrix-vector product on discrete supports: ``policy_given_model[i, j]`` is the
probability of policy ``i`` under model ``j`` (a 0/1 matrix for ``delta(pi | M)``, a
column-stochastic matrix for ``q(pi | M, D)``) and the model posterior is a vector over models.
:func:`example_1` reproduces the paper's numbers: ``KL(q^delta || p) = log 3``, the largest KL
any ``q`` on the simplex can have from ``p = [2/3, 1/3]``, while the factorised posterior with
the paper's ``q(pi | M, D)`` matrix reaches ``KL = 0`` with the same wrong ``q(M | D)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "policy_posterior",
    "kl_divergence",
    "max_kl_over_simplex",
    "kl_optimal_policy_given_model",
    "optimal_policy_matrix",
    "Example1",
    "example_1",
]

_ATOL = 1e-9


def _as_distribution(x: Any, name: str, axis: int | None = None) -> np.ndarray:
    """``x`` as a float64 array of probabilities (non-negative, summing to one along ``axis``)."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be an array of numbers, got {type(x).__name__}") from err
    if arr.size == 0:
        raise ValueError(f"{name} is empty; expected at least one support point")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"{name} must be finite and non-negative, got {arr.tolist()}")
    sums = arr.sum() if axis is None else arr.sum(axis=axis)
    if not np.allclose(sums, 1.0, atol=1e-6):
        where = "in total" if axis is None else "along each column (over policies)"
        raise ValueError(f"{name} must sum to 1 {where}, got sums {np.round(sums, 6).tolist()}")
    return arr


def policy_posterior(policy_given_model: Any, model_posterior: Any) -> np.ndarray:
    """The posterior over policies ``sum_M q(pi | M) q(M | D)`` on discrete supports.

    Args:
        policy_given_model: ``[n_policies, n_models]`` matrix; column ``j`` is the distribution of
            the policy under model ``j``. A 0/1 matrix with one 1 per column is ``delta(pi | M)``
            (the optimal policy of each model); any column-stochastic matrix is a ``q(pi | M, D)``.
        model_posterior: ``[n_models]`` probabilities ``p(M | D)`` or ``q(M | D)``.

    Returns:
        ``[n_policies]`` probabilities.

    Examples:
        >>> policy_posterior([[1, 0], [0, 1]], [2 / 3, 1 / 3])
        array([0.66666667, 0.33333333])
    """
    model = _as_distribution(model_posterior, "model_posterior")
    if model.ndim != 1:
        raise ValueError(f"model_posterior must be a vector, got shape {model.shape}")
    cond = _as_distribution(policy_given_model, "policy_given_model", axis=0)
    if cond.ndim != 2 or cond.shape[1] != model.shape[0]:
        raise ValueError(
            f"policy_given_model must have shape [n_policies, n_models={model.shape[0]}], "
            f"got {cond.shape}"
        )
    return cond @ model


def kl_divergence(q: Any, p: Any) -> float:
    """``KL(q || p) = sum_i q_i log(q_i / p_i)`` in nats, with ``0 log 0 = 0``.

    Returns ``inf`` when ``q`` puts mass where ``p`` has none.

    Examples:
        >>> round(kl_divergence([0.0, 1.0], [2 / 3, 1 / 3]), 6)  # log 3
        1.098612
    """
    q = _as_distribution(q, "q")
    p = _as_distribution(p, "p")
    if q.shape != p.shape:
        raise ValueError(f"q and p must have the same shape, got {q.shape} and {p.shape}")
    support = q > 0
    if np.any(p[support] == 0):
        return float("inf")
    return float(np.sum(q[support] * (np.log(q[support]) - np.log(p[support]))))


def max_kl_over_simplex(p: Any) -> float:
    """``max_{q in simplex} KL(q || p) = -log min_i p_i``.

    KL is convex in ``q``, so its maximum over the simplex sits at a vertex ``e_i``, where it is
    ``-log p_i``.

    Examples:
        >>> round(max_kl_over_simplex([2 / 3, 1 / 3]), 6)  # log 3
        1.098612
    """
    p = _as_distribution(p, "p")
    smallest = float(p.min())
    return float("inf") if smallest == 0 else -float(np.log(smallest))


def kl_optimal_policy_given_model(model_posterior: Any, target: Any) -> np.ndarray:
    """A ``q(pi | M, D)`` whose policy posterior equals ``target`` for the given ``q(M | D)``.

    ``min over q(pi | M) of KL(sum_M q(pi | M) q(M | D) || target)`` is 0, reached when every
    model in the support of ``q(M | D)`` carries the whole ``target`` as its policy distribution.
    Models outside the support do not matter; they get the uniform column, as in the paper.

    Args:
        model_posterior: ``[n_models]`` approximate posterior ``q(M | D)``.
        target: ``[n_policies]`` policy posterior to match, e.g. the exact ``p(pi | D)``.

    Returns:
        ``[n_policies, n_models]`` column-stochastic matrix.
    """
    model = _as_distribution(model_posterior, "model_posterior")
    target = _as_distribution(target, "target")
    if model.ndim != 1 or target.ndim != 1:
        raise ValueError(
            f"model_posterior and target must be vectors, got shapes {model.shape}, {target.shape}"
        )
    out = np.full((target.shape[0], model.shape[0]), 1.0 / target.shape[0])
    out[:, model > 0] = target[:, None]
    return out


def optimal_policy_matrix(optimal_policy: Any, n_policies: int) -> np.ndarray:
    """The 0/1 matrix ``delta(pi | M)`` from the index of each model's optimal policy.

    Examples:
        >>> optimal_policy_matrix([0, 1], 2)
        array([[1., 0.],
               [0., 1.]])
    """
    idx = np.asarray(optimal_policy)
    if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
        raise TypeError(f"optimal_policy must be a vector of integer indices, got {idx!r}")
    if np.any(idx < 0) or np.any(idx >= n_policies):
        raise ValueError(f"optimal_policy indices must lie in [0, {n_policies}), got {idx.tolist()}")
    out = np.zeros((n_policies, idx.shape[0]))
    out[idx, np.arange(idx.shape[0])] = 1.0
    return out


@dataclass(frozen=True)
class Example1:
    """All numbers of Example 1 (models ``M1, M2``; policies ``pi1, pi2``)."""

    delta: np.ndarray  # delta(pi | M), [2, 2]
    p_model: np.ndarray  # exact p(M | D)
    q_model: np.ndarray  # approximate q(M | D)
    p_policy: np.ndarray  # exact p(pi | D)
    q_delta_policy: np.ndarray  # q^delta(pi | D) = delta @ q(M | D)
    kl_delta: float  # KL(q^delta || p)
    max_kl: float  # max over the simplex of KL(q || p)
    q_policy_given_model: np.ndarray  # the paper's q(pi | M, D)
    q_factorised_policy: np.ndarray  # q(pi | D) = q(pi | M, D) @ q(M | D)
    kl_factorised: float  # KL(q(pi | D) || p)


def example_1() -> Example1:
    """The paper's Example 1 with the numbers that make it consistent.

    The paper's text first says ``p(M1 | D) = 1/3, p(M2 | D) = 2/3`` and then uses
    ``p(M1 | D) = 2/3, p(M2 | D) = 1/3`` in the matrix product. Only the second gives the stated
    ``p(pi1 | D) = 2/3`` and ``KL = log 3``, so it is the one used here.
    """
    delta = optimal_policy_matrix([0, 1], 2)
    p_model = np.array([2 / 3, 1 / 3])
    q_model = np.array([0.0, 1.0])
    p_policy = policy_posterior(delta, p_model)
    q_delta = policy_posterior(delta, q_model)
    q_given_model = np.array([[1 / 2, 2 / 3], [1 / 2, 1 / 3]])
    q_fact = policy_posterior(q_given_model, q_model)
    return Example1(
        delta=delta,
        p_model=p_model,
        q_model=q_model,
        p_policy=p_policy,
        q_delta_policy=q_delta,
        kl_delta=kl_divergence(q_delta, p_policy),
        max_kl=max_kl_over_simplex(p_policy),
        q_policy_given_model=q_given_model,
        q_factorised_policy=q_fact,
        kl_factorised=kl_divergence(q_fact, p_policy),
    )
