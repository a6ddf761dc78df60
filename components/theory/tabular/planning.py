"""Exact finite-horizon planning on batches of tabular MDPs: value iteration and evaluation.

Both work on any leading batch shape, so the optimal policies of thousands of sampled MDPs
(one per posterior sample, ensemble member and seed) come out of one call.
"""

from __future__ import annotations

import numpy as np

__all__ = ["value_iteration", "policy_evaluation", "expected_return"]


def _check(transitions: np.ndarray, rewards: np.ndarray) -> None:
    if transitions.ndim < 3 or rewards.shape != transitions.shape[:-1]:
        raise ValueError(
            f"need transitions [..., S, A, S] and rewards [..., S, A], got {transitions.shape}, {rewards.shape}"
        )


def _greedy(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Argmax (lowest action on ties) and max over the last axis; a loop over the few actions is
    several times faster than ``argmax``/``max`` reductions over a tiny axis."""
    best, arg = q[..., 0], np.zeros(q.shape[:-1], dtype=np.int64)
    for a in range(1, q.shape[-1]):
        better = q[..., a] > best
        arg = np.where(better, a, arg)
        best = np.where(better, q[..., a], best)
    return arg, best


def _expect(flat_transitions: np.ndarray, values: np.ndarray, n_actions: int) -> np.ndarray:
    """``sum_s' P(s'|s,a) V(s')`` as ``[..., S, A]`` from ``P`` reshaped to ``[..., S*A, S]``."""
    out = flat_transitions @ values[..., :, None]
    return out.reshape(out.shape[:-2] + (-1, n_actions))


def value_iteration(
    transitions: np.ndarray, rewards: np.ndarray, horizon: int
) -> tuple[np.ndarray, np.ndarray]:
    """Optimal non-stationary policy and values by backward induction.

    Args:
        transitions: ``[..., S, A, S]``.
        rewards: ``[..., S, A]`` mean rewards.
        horizon: ``H``.

    Returns:
        ``(policy, values)``: ``policy[..., h, s]`` the greedy action at step ``h`` (ties go to the
        lowest action), ``values[..., h, s]`` the optimal value-to-go, ``values[..., H, :] = 0``.

    Examples:
        >>> from torchrl_psmbpo.theory.tabular.mdps import riverswim
        >>> m = riverswim()
        >>> policy, values = value_iteration(m.transitions, m.rewards, m.horizon)
        >>> policy.shape, values.shape
        ((20, 6), (21, 6))
    """
    _check(transitions, rewards)
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    batch, s_count, n_a = transitions.shape[:-3], transitions.shape[-1], transitions.shape[-2]
    flat = transitions.reshape(batch + (s_count * n_a, s_count))
    # Step-major buffers keep each step's slice contiguous; the returned arrays are views.
    values = np.zeros((horizon + 1,) + batch + (s_count,))
    policy = np.zeros((horizon,) + batch + (s_count,), dtype=np.int64)
    for h in range(horizon - 1, -1, -1):
        policy[h], values[h] = _greedy(rewards + _expect(flat, values[h + 1], n_a))
    return np.moveaxis(policy, 0, -2), np.moveaxis(values, 0, -2)


def policy_evaluation(transitions: np.ndarray, rewards: np.ndarray, policy: np.ndarray) -> np.ndarray:
    """Value-to-go ``[..., H + 1, S]`` of a non-stationary deterministic ``policy[..., H, S]``."""
    _check(transitions, rewards)
    horizon, s_count = policy.shape[-2], transitions.shape[-1]
    if policy.shape[-1] != s_count:
        raise ValueError(f"policy must have shape [..., H, S={s_count}], got {policy.shape}")
    batch = np.broadcast_shapes(transitions.shape[:-3], policy.shape[:-2])
    values = np.zeros((horizon + 1,) + batch + (s_count,))
    for h in range(horizon - 1, -1, -1):
        a = policy[..., h, :]
        r = np.take_along_axis(rewards, a[..., None], axis=-1)[..., 0]
        p = np.take_along_axis(transitions, a[..., None, None], axis=-2)[..., 0, :]
        values[h] = r + (p @ values[h + 1][..., :, None])[..., 0]
    return np.moveaxis(values, 0, -2)


def expected_return(initial: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``E_{s ~ initial}[V_1(s)]`` from values ``[..., H + 1, S]`` and ``initial[..., S]``."""
    return (initial * values[..., 0, :]).sum(-1)
