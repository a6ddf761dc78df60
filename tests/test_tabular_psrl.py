"""Tabular PSRL: MDPs, exact planning, posteriors, the lambda-factorised agent, the sweep and recipe."""

from __future__ import annotations

import csv
import importlib.util
import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from torchrl_psmbpo.theory.tabular import (
    ConjugatePrior,
    Counts,
    EnsemblePSRL,
    ExactPSRL,
    PerturbedCounts,
    SweepConfig,
    TabularMDP,
    expected_return,
    policy_evaluation,
    random_mdps,
    riverswim,
    rollout,
    run_sweep,
    value_iteration,
)
from torchrl_psmbpo.theory.tabular.regret_bound import kl_to_sampled_posterior, label_entropy, policy_labels, regret_bound

ROOT = Path(__file__).resolve().parents[1]


def _batch(mdp: TabularMDP, n: int) -> TabularMDP:
    return TabularMDP(
        np.broadcast_to(mdp.transitions, (n,) + mdp.transitions.shape),
        np.broadcast_to(mdp.rewards, (n,) + mdp.rewards.shape),
        np.broadcast_to(mdp.initial, (n,) + mdp.initial.shape),
        mdp.horizon,
    )


def test_value_iteration_matches_brute_force():
    rng = np.random.default_rng(1)
    m = random_mdps(3, n_states=2, n_actions=2, horizon=3, alpha=1.0, rng=rng)
    policy, values = value_iteration(m.transitions, m.rewards, m.horizon)
    # All 2^(H*S) = 64 deterministic non-stationary policies, evaluated exactly.
    every = np.array(list(itertools.product([0, 1], repeat=6))).reshape(-1, 3, 2)
    v_all = policy_evaluation(m.transitions[:, None], m.rewards[:, None], every[None])
    np.testing.assert_allclose(values[:, 0], v_all[:, :, 0].max(1), atol=1e-12)
    v_greedy = policy_evaluation(m.transitions, m.rewards, policy)
    np.testing.assert_allclose(v_greedy, values, atol=1e-12)


def test_riverswim_optimum_swims_right():
    m = riverswim()
    policy, values = value_iteration(m.transitions, m.rewards, m.horizon)
    assert np.all(policy[0] == 1)  # swim right everywhere at the first step
    always_left = np.zeros_like(policy)
    v_left = expected_return(m.initial, policy_evaluation(m.transitions, m.rewards, always_left))
    assert expected_return(m.initial, values) > 3.0 > 0.2 > v_left  # 20 * 0.005 = 0.1 for "left"


def test_rollout_frequencies_follow_the_mdp():
    m = riverswim()
    rng = np.random.default_rng(0)
    n = 4000
    right = np.ones((n, m.horizon, m.n_states), dtype=np.int64)
    s, a, r, s2 = rollout(_batch(m, n), right, rng)
    assert np.all(s[:, 0] == 0) and np.all(s[:, 1:] == s2[:, :-1])
    mid = s == 2
    frac = np.array([(s2[mid] == t).mean() for t in (1, 2, 3)])
    np.testing.assert_allclose(frac, [0.05, 0.6, 0.35], atol=0.02)
    np.testing.assert_allclose(r[s == m.n_states - 1].mean(), 1.0)


def test_exact_posterior_moments():
    c = Counts(1, 3, 2)
    c.add(np.array([[0, 0, 0, 0]]), np.array([[1, 1, 1, 1]]), np.array([[1.0, 0, 1, 1]]), np.array([[2, 2, 2, 1]]))
    prior = ConjugatePrior(alpha=0.5)
    p, r = c.sample_posterior(prior, np.random.default_rng(0), n_samples=20000)
    np.testing.assert_allclose(p[0, :, 0, 1].mean(0), np.array([0.5, 1.5, 3.5]) / 5.5, atol=0.01)
    np.testing.assert_allclose(r[0, :, 0, 1].mean(), 4 / 6, atol=0.01)  # Beta(1 + 3, 1 + 1)
    np.testing.assert_allclose(p[0, :, 1, 0].mean(0), [1 / 3] * 3, atol=0.01)  # unvisited: prior


def test_perturbed_members_fit_their_bootstrap_of_the_data():
    rng = np.random.default_rng(0)
    prior = ConjugatePrior(alpha=1 / 3)
    plain = PerturbedCounts(1, 4, 3, 2, prior, bootstrap="none", prior_weight=1e-9, rng=rng)
    boot = PerturbedCounts(1, 4, 3, 2, prior, bootstrap="poisson", rng=rng)
    s2 = rng.choice(3, size=(1, 400), p=[0.2, 0.3, 0.5])
    for pc in (plain, boot):
        pc.add(np.zeros((1, 400), int), np.ones((1, 400), int), np.zeros((1, 400)), s2, rng)
    empirical = np.bincount(s2[0], minlength=3) / 400
    p_plain, _ = plain.estimate()
    np.testing.assert_allclose(p_plain[0, :, 0, 1], np.tile(empirical, (4, 1)), atol=1e-9)
    p_boot, _ = boot.estimate()
    spread = p_boot[0, :, 0, 1].std(0)
    assert np.all(spread > 0.003) and np.all(np.abs(p_boot[0, :, 0, 1] - empirical) < 0.1)
    # Unvisited pairs keep each member's own random initialisation.
    assert np.abs(p_boot[0, 0, 2, 0] - p_boot[0, 1, 2, 0]).sum() > 1e-3


def _agent(lam, selection="ps", n_learners=2, tau=None):
    return EnsemblePSRL(
        n_learners, 4, 2, 5, ConjugatePrior(alpha=0.25), n_models=3, n_policies=2,
        lam=lam, selection=selection, tau=tau, rng=np.random.default_rng(0),
    )


def test_lambda_mixes_model_and_real_data_fits():
    agent = _agent(lam=[0.0, 1.0])
    rng = np.random.default_rng(1)
    agent.observe(rng.integers(0, 4, (2, 30)), rng.integers(0, 2, (2, 30)), rng.random((2, 30)) < 0.5,
                  rng.integers(0, 4, (2, 30)), rng)
    p, r = agent.planning_mdps()
    pm, rm = agent.models.estimate()
    pd, rd = agent.data.estimate()
    # lambda = 0: policy (n, m) plans on model n, so the M policies of a model coincide.
    np.testing.assert_allclose(p[0], np.repeat(pm[0], 2, axis=0))
    # lambda = 1: each policy plans on its own fit of the real data, whatever the models say.
    np.testing.assert_allclose(p[1], pd[1])
    np.testing.assert_allclose(r[1], rd[1])
    mid = _agent(lam=0.25)
    mid.models, mid.data = agent.models, agent.data
    p_mid, _ = mid.planning_mdps()
    np.testing.assert_allclose(p_mid, 0.25 * pd + 0.75 * np.repeat(pm, 2, axis=1))
    agent.begin_episode(rng)
    pol = agent.policies[0]
    assert all(np.array_equal(pol[2 * n], pol[2 * n + 1]) for n in range(3))


def test_ps_is_uniform_and_ops_is_a_softmax_of_summed_returns():
    agent = _agent(lam=0.5, selection=["ps", "ops"], tau=2.0)
    rng = np.random.default_rng(0)
    agent.begin_episode(rng)
    agent.index = np.array([1, 4])
    agent.end_episode(np.array([3.0, 3.0]))
    agent.begin_episode(rng)
    agent.index = np.array([1, 4])
    agent.end_episode(np.array([1.0, 1.0]))
    probs = agent.selection_probs()
    np.testing.assert_allclose(probs[0], 1 / 6)
    expected = np.exp(np.array([0, 0, 0, 0, 4.0, 0]) / 2.0)
    np.testing.assert_allclose(probs[1], expected / expected.sum())


def test_exact_psrl_regret_is_sublinear_on_riverswim():
    m = riverswim()
    n, episodes = 16, 60
    batch = _batch(m, n)
    v_star = expected_return(m.initial, value_iteration(m.transitions, m.rewards, m.horizon)[1])
    agent = ExactPSRL(n, m.n_states, m.n_actions, m.horizon, ConjugatePrior(alpha=1 / m.n_states))
    rng = np.random.default_rng(0)
    regret = []
    for _ in range(episodes):
        policy = agent.begin_episode(rng)
        regret.append(v_star - expected_return(batch.initial, policy_evaluation(batch.transitions, batch.rewards, policy)))
        agent.observe(*rollout(batch, policy, rng))
    regret = np.array(regret).mean(1)
    first, last = regret[: episodes // 4].mean(), regret[-episodes // 4 :].mean()
    assert first > 0.5 and last < 0.2 * first, (first, last)


def test_kl_estimator_and_bound_formula():
    # q puts 1/2 on label 0 and 1/2 on label 1; 6 of 10 draws of p have label 0, 2 label 1.
    q_probs = np.array([[0.25, 0.25, 0.5]])
    q_labels = np.array([[0, 0, 1]])
    p_labels = np.array([[0] * 6 + [1] * 2 + [3] * 2])
    p_hat = (np.array([6, 2]) + 0.5) / (10 + 4 / 2)
    expected = 0.5 * math.log(0.5 / p_hat[0]) + 0.5 * math.log(0.5 / p_hat[1])
    assert kl_to_sampled_posterior(q_probs, q_labels, p_labels, 4)[0] == pytest.approx(expected)
    assert label_entropy(np.array([0, 0, 1, 1])) == pytest.approx(math.log(2))
    policy = np.array([[[1, 0, 1], [0, 0, 0]]])  # step-1 rule (1, 0, 1) -> 1 + 0 * 2 + 1 * 4
    assert policy_labels(policy, 2).tolist() == [5]
    b = regret_bound(np.array([0.25, 1.0]), entropy=2.0, horizon=10)
    np.testing.assert_allclose(b, [math.sqrt(1 * 100 * 2) + 20 * 0.5, math.sqrt(2 * 100 * 2) + 20 * 1.5])


SMALL = dict(episodes=12, seeds=3, lambdas=(0.0, 1.0), kl_every=4, kl_samples=64, entropy_samples=256)


@pytest.mark.parametrize("env", ["riverswim", "random"])
def test_sweep_is_deterministic_under_a_seed(env):
    a = run_sweep(SweepConfig(env=env, **SMALL), progress=False)
    b = run_sweep(SweepConfig(env=env, **SMALL), progress=False)
    c = run_sweep(SweepConfig(env=env, seed=1, **SMALL), progress=False)
    assert a.regret.shape == (5, 3, 12) and [x[0] for x in a.agents][:3] == ["exact-psrl", "ps-lambda=0", "ops-lambda=0"]
    np.testing.assert_array_equal(a.regret, b.regret)
    np.testing.assert_array_equal(a.kl, b.kl)
    assert not np.array_equal(a.regret, c.regret)
    assert np.all(a.regret >= -1e-9) and np.all(a.kl[0] == 0) and np.all(a.kl[1:] >= 0)


def test_recipe_writes_csv_and_png(tmp_path):
    out = tmp_path / "run"
    spec = importlib.util.spec_from_file_location("tabular_psrl_recipe", ROOT / "recipes" / "tabular_psrl.py")
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    recipe.main(["--episodes", "8", "--seeds", "2", "--lambdas", "0", "0.5", "1", "--kl-every", "4",
                 "--kl-samples", "32", "--out", str(out), "--no-progress"])
    with open(out / "regret.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 7 * 8  # 2 envs x (exact + 3 lambdas x 2 selections) x 8 episodes
    assert {r["agent"] for r in rows} >= {"exact-psrl", "ps-lambda=0.5", "ops-lambda=1"}
    with open(out / "summary.csv") as f:
        summary = list(csv.DictReader(f))
    assert len(summary) == 14 and all(float(r["final_cum_regret_se"]) >= 0 for r in summary)
    png = (out / "regret.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) < 300_000


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match=r"lam must lie in \[0, 1\]"):
        _agent(lam=1.5)
    with pytest.raises(ValueError, match=r"selection must be one of \('ps', 'ops'\), got \['thompson'\]"):
        _agent(lam=0.5, selection="thompson")
    with pytest.raises(ValueError, match="env must be one of"):
        SweepConfig(env="gridworld")
    with pytest.raises(ValueError, match="RiverSwim has 2 actions"):
        SweepConfig(env="riverswim", n_actions=3)
    with pytest.raises(ValueError, match="bootstrap must be one of"):
        PerturbedCounts(1, 2, 3, 2, ConjugatePrior(alpha=1.0), bootstrap="jackknife", rng=np.random.default_rng())
    with pytest.raises(ValueError, match="transitions must be non-negative and sum to 1"):
        TabularMDP(np.ones((2, 2, 2)), np.zeros((2, 2)), np.array([1.0, 0.0]), 3)
