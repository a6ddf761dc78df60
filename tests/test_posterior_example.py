"""Example 1 of the paper: policy posteriors and their KL divergences, exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest

from torchrl_psmbpo.theory.example1 import (
    example_1,
    kl_divergence,
    kl_optimal_policy_given_model,
    max_kl_over_simplex,
    optimal_policy_matrix,
    policy_posterior,
)


def test_example_1_numbers():
    ex = example_1()
    np.testing.assert_allclose(ex.p_policy, [2 / 3, 1 / 3], atol=1e-15)
    np.testing.assert_array_equal(ex.q_delta_policy, [0.0, 1.0])
    assert ex.kl_delta == pytest.approx(math.log(3), abs=1e-12)
    assert ex.max_kl == pytest.approx(math.log(3), abs=1e-12)
    # The factorised posterior with the paper's q(pi | M, D) matrix and the same wrong q(M | D).
    np.testing.assert_array_equal(ex.q_model, [0.0, 1.0])
    np.testing.assert_allclose(ex.q_policy_given_model, [[1 / 2, 2 / 3], [1 / 2, 1 / 3]])
    np.testing.assert_allclose(ex.q_factorised_policy, ex.p_policy, atol=1e-15)
    assert ex.kl_factorised == pytest.approx(0.0, abs=1e-12)


def test_log3_is_the_maximum_over_the_simplex():
    p = example_1().p_policy
    grid = np.linspace(0, 1, 1001)
    kls = [kl_divergence([x, 1 - x], p) for x in grid]
    assert max(kls) == pytest.approx(math.log(3), abs=1e-12)
    assert grid[int(np.argmax(kls))] == 0.0  # the vertex q = (0, 1) = q^delta
    assert max_kl_over_simplex([0.5, 0.2, 0.3]) == pytest.approx(-math.log(0.2))


def test_seed_text_numbers_are_inconsistent():
    """With p(M1|D) = 1/3 (the paper's sentence) p(pi1|D) would be 1/3 and KL log(3/2), not log 3."""
    delta = optimal_policy_matrix([0, 1], 2)
    p = policy_posterior(delta, [1 / 3, 2 / 3])
    np.testing.assert_allclose(p, [1 / 3, 2 / 3])
    assert kl_divergence([0.0, 1.0], p) == pytest.approx(math.log(3 / 2))


def test_any_discrete_inputs():
    rng = np.random.default_rng(0)
    n_pi, n_m = 4, 3
    p_model = rng.dirichlet(np.ones(n_m))
    delta = optimal_policy_matrix([2, 0, 2], n_pi)
    p_pi = policy_posterior(delta, p_model)
    np.testing.assert_allclose(p_pi, [p_model[1], 0, p_model[0] + p_model[2], 0])
    # A stochastic q(pi | M) matrix, and the KL-optimal one for a wrong q(M | D).
    q_model = np.array([0.0, 0.0, 1.0])
    cond = rng.dirichlet(np.ones(n_pi), size=n_m).T
    np.testing.assert_allclose(policy_posterior(cond, q_model), cond[:, 2])
    best = kl_optimal_policy_given_model(q_model, p_pi)
    np.testing.assert_allclose(best.sum(0), 1.0)
    assert kl_divergence(policy_posterior(best, q_model), p_pi) == pytest.approx(0.0, abs=1e-12)
    assert kl_divergence(policy_posterior(delta, q_model), p_pi) == pytest.approx(-math.log(p_pi[2]))
    assert kl_divergence([0.5, 0.5], [1.0, 0.0]) == math.inf


@pytest.mark.parametrize(
    "cond, model, match",
    [
        ([[1, 0], [1, 1]], [0.5, 0.5], "sum to 1 along each column"),
        ([[1, 0], [0, 1]], [0.7, 0.7], "model_posterior must sum to 1"),
        ([[1, 0], [0, 1]], [1.5, -0.5], "non-negative"),
        ([[1, 0, 0], [0, 1, 1]], [0.5, 0.5], r"shape \[n_policies, n_models=2\]"),
    ],
)
def test_bad_inputs_are_named(cond, model, match):
    with pytest.raises(ValueError, match=match):
        policy_posterior(cond, model)


def test_bad_types_and_indices():
    with pytest.raises(TypeError, match="policy_given_model must be an array of numbers"):
        policy_posterior([["a", "b"]], [1.0])
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 2\)"):
        optimal_policy_matrix([0, 2], 2)
    with pytest.raises(ValueError, match="same shape"):
        kl_divergence([1.0], [0.5, 0.5])
