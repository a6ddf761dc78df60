"""PolicyPosterior: exact OPS probabilities, pick frequencies, crediting, most_likely, state."""

from __future__ import annotations

import io
import math

import pytest
import torch
from tensordict.nn import TensorDictModule
from torchrl.collectors import Collector

from components.envs.factory import make_env
from components.sampling import PolicyPosterior, PosteriorSamplingTransform

# Upper 0.1% quantiles of the chi-square distribution (standard tables), by degrees of freedom:
# a correct sampler fails a frequency test below with probability 0.001.
CHI2_999 = {3: 16.266, 4: 18.467}


def _chi_square(counts: torch.Tensor, probs: torch.Tensor) -> float:
    expected = probs * counts.sum()
    return float(((counts - expected) ** 2 / expected).sum())


def _softmax(values: list[float], tau: float) -> torch.Tensor:
    weights = [math.exp(v / tau) for v in values]
    return torch.tensor([w / sum(weights) for w in weights], dtype=torch.float64)


# ---------------------------------------------------------------- probabilities
def test_ops_probabilities_are_the_papers_formula_on_credited_returns():
    tau = 5.0
    posterior = PolicyPosterior(4, mode="ops", temperature=tau, seed=0)
    torch.testing.assert_close(posterior.probs, torch.full((4,), 0.25, dtype=torch.float64))
    episodes = [(2, 3.0), (0, -4.0), (2, 6.5), (1, 1.0), (2, -0.5)]
    for index, ret in episodes:
        posterior.update(index, ret)
    sums = [-4.0, 1.0, 9.0, 0.0]  # member 3 never played: R_E = 0 in every episode
    torch.testing.assert_close(posterior.cumulative_returns, torch.tensor(sums, dtype=torch.float64))
    assert posterior.play_counts.tolist() == [1, 1, 3, 0]
    assert posterior.num_episodes == 5
    torch.testing.assert_close(posterior.probs, _softmax(sums, tau), rtol=0, atol=1e-15)


def test_one_500_return_episode_at_tau_100_gives_148_times_the_odds():
    posterior = PolicyPosterior(3, mode="ops", temperature=100.0, seed=0)
    posterior.update(1, 500.0)
    probs = posterior.probs
    assert float(probs[1] / probs[0]) == pytest.approx(math.exp(5.0), rel=1e-12)
    assert float(probs[1] / probs[0]) == pytest.approx(148.41, abs=0.01)


def test_mean_statistic_averages_over_plays_and_scores_unplayed_members_zero():
    tau = 2.0
    posterior = PolicyPosterior(3, mode="ops", temperature=tau, statistic="mean", seed=0)
    for index, ret in [(0, 4.0), (0, 2.0), (0, 6.0), (1, 1.0)]:
        posterior.update(index, ret)
    torch.testing.assert_close(posterior.scores, torch.tensor([4.0, 1.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(posterior.probs, _softmax([4.0, 1.0, 0.0], tau), rtol=0, atol=1e-15)
    # the sum would give member 0 exp(12 / 2) odds instead of exp(4 / 2): playing often no longer
    # compounds
    summed = PolicyPosterior(3, mode="ops", temperature=tau, seed=0)
    summed.load_state_dict({**posterior.state_dict(), "statistic": "sum"})
    torch.testing.assert_close(summed.probs, _softmax([12.0, 1.0, 0.0], tau), rtol=0, atol=1e-15)


def test_ps_and_fixed_ignore_the_returns():
    ps = PolicyPosterior(4, mode="ps", seed=0)
    fixed = PolicyPosterior(4, mode="fixed", fixed_index=2, seed=0)
    for posterior in (ps, fixed):
        posterior.update(torch.tensor([0, 1]), torch.tensor([100.0, -100.0]))
    torch.testing.assert_close(ps.probs, torch.full((4,), 0.25, dtype=torch.float64))
    assert fixed.probs.tolist() == [0.0, 0.0, 1.0, 0.0]
    assert fixed.pick() == 2 and fixed.pick(5).tolist() == [2] * 5


# ---------------------------------------------------------------- picks
@pytest.mark.parametrize("statistic", ["sum", "mean"])
def test_ops_pick_frequencies_follow_probs(statistic):
    tau = 3.0
    target = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    posterior = PolicyPosterior(4, mode="ops", temperature=tau, statistic=statistic, seed=1)
    posterior.update(torch.arange(4), tau * target.log())  # exp(R_i / tau) / Z = target
    torch.testing.assert_close(posterior.probs, target)
    picks = posterior.pick(20_000)
    assert picks.dtype == torch.int64 and picks.shape == (20_000,)
    assert _chi_square(torch.bincount(picks, minlength=4).double(), target) < CHI2_999[3]


def test_episode_seeded_picks_are_fresh_per_episode_and_uniform():
    posterior = PolicyPosterior(5, mode="ps", seed=3, episode_seeded=True)
    picks = []
    for _ in range(4000):
        first = posterior.pick()
        assert posterior.pick() == first  # a repeated reset before the episode ends
        picks.append(first)
        posterior.skip()
    counts = torch.bincount(torch.tensor(picks), minlength=5).double()
    assert _chi_square(counts, torch.full((5,), 0.2, dtype=torch.float64)) < CHI2_999[4]


def test_episode_seeded_pick_depends_only_on_seed_episode_and_credits():
    def run(extra_picks: int) -> int:
        posterior = PolicyPosterior(50, mode="ops", temperature=10.0, seed=11, episode_seeded=True)
        for index, ret in [(3, 5.0), (7, 2.0)]:
            for _ in range(extra_picks):
                posterior.pick()
            posterior.update(index, ret)
        posterior.skip()
        return posterior.pick()

    assert run(0) == run(3)


def test_batch_picks_and_count_zero():
    posterior = PolicyPosterior(6, mode="ops", temperature=1.0, seed=0)
    assert posterior.pick(0).shape == (0,)
    assert isinstance(posterior.pick(), int)
    assert ((posterior.pick(7) >= 0) & (posterior.pick(7) < 6)).all()


# ---------------------------------------------------------------- crediting
def test_update_credits_batches_with_repeated_members_and_skip_credits_nothing():
    posterior = PolicyPosterior(3, mode="ops", temperature=1.0, seed=0)
    posterior.update(torch.tensor([1, 1, 2]), torch.tensor([1.5, 2.5, -1.0]))
    posterior.skip(2)
    assert posterior.cumulative_returns.tolist() == [0.0, 4.0, -1.0]
    assert posterior.play_counts.tolist() == [0, 2, 1]
    assert posterior.num_episodes == 5
    probs = posterior.probs
    posterior.skip()
    torch.testing.assert_close(posterior.probs, probs)


def test_random_action_episodes_are_not_credited_under_a_collector():
    """The init_random_steps bug: random-action episodes were credited to the picked members."""
    env = make_env("gym:Pendulum-v1", seed=0)  # 200-step episodes, negative rewards
    posterior = PolicyPosterior(4, mode="ops", temperature=100.0, seed=0)
    sampler = PosteriorSamplingTransform(posterior=posterior)
    env.append_transform(sampler)
    policy = TensorDictModule(lambda obs: torch.zeros(*obs.shape[:-1], 1), ["observation"], ["action"])
    init_random = 400
    sampler.mark_uncredited(next_steps=init_random)
    collector = Collector(env, policy, frames_per_batch=200, total_frames=600,
                          init_random_frames=init_random)
    returns = []
    try:
        for i, data in enumerate(collector):
            finished = sampler.pop_finished_episodes()
            assert len(finished) == 1
            returns.append(float(data["next", "reward"].double().sum()))
            if i < 2:  # random actions: no credit, no play, OPS still uniform
                assert not finished[0].credited
                assert posterior.play_counts.sum() == 0
                assert posterior.cumulative_returns.abs().sum() == 0
                torch.testing.assert_close(posterior.probs, torch.full((4,), 0.25, dtype=torch.float64))
    finally:
        collector.shutdown()
    assert finished[0].credited and finished[0].ret == pytest.approx(returns[2])
    assert posterior.play_counts.tolist() == [int(j == finished[0].index) for j in range(4)]
    assert float(posterior.cumulative_returns[finished[0].index]) == pytest.approx(returns[2])
    assert posterior.num_episodes == 3


# ---------------------------------------------------------------- evaluation member
def test_most_likely_per_mode_with_ties_and_no_credits():
    for mode in ("ps", "ops", "fixed"):
        assert PolicyPosterior(4, mode=mode, fixed_index=2, seed=0).most_likely() == 2
        assert PolicyPosterior(4, mode=mode, seed=0).most_likely() == 0
    ops = PolicyPosterior(4, mode="ops", seed=0)
    ops.skip(3)  # uncredited episodes never decide
    assert ops.most_likely() == 0
    ops.update(torch.tensor([1, 3]), torch.tensor([5.0, 5.0]))
    assert ops.most_likely() == 1  # tie: lowest index
    ops.update(2, -1.0)
    assert ops.most_likely() == 1
    negative = PolicyPosterior(3, mode="ops", seed=0)
    negative.update(torch.tensor([0, 1]), torch.tensor([-10.0, -20.0]))
    assert negative.most_likely() == 2  # unplayed: score 0 beats negative sums (argmax of probs)
    assert negative.most_likely() == int(torch.argmax(negative.probs))

    ps = PolicyPosterior(3, mode="ps", seed=0)
    ps.update(torch.tensor([0, 0, 1]), torch.tensor([10.0, 0.0, 6.0]))
    assert ps.most_likely() == 1  # best mean (6 > 5), not best sum; unplayed 2 excluded
    ps_negative = PolicyPosterior(3, mode="ps", seed=0)
    ps_negative.update(1, -3.0)
    assert ps_negative.most_likely() == 1  # only played members count

    fixed = PolicyPosterior(3, mode="fixed", fixed_index=1, seed=0)
    fixed.update(0, 100.0)
    assert fixed.most_likely() == 1


# ---------------------------------------------------------------- state
@pytest.mark.parametrize("episode_seeded", [False, True])
@pytest.mark.parametrize("mode", ["ps", "ops"])
def test_state_round_trip_with_another_seed_repeats_the_picks(mode, episode_seeded):
    def make(seed):
        return PolicyPosterior(6, mode=mode, temperature=3.0, seed=seed, episode_seeded=episode_seeded)

    posterior = make(5)
    for k in range(6):
        posterior.update(posterior.pick(), float(k) - 2.0)
    buffer = io.BytesIO()
    torch.save(posterior.state_dict(), buffer)

    def continue_run(p: PolicyPosterior) -> list[int]:
        picks = []
        for k in range(15):
            i = p.pick()
            picks.append(i)
            p.update(i, float(k % 4))
        return picks

    expected = continue_run(posterior)
    for seed in (6, None):
        resumed = make(seed)
        buffer.seek(0)
        resumed.load_state_dict(torch.load(buffer, weights_only=False))
        assert resumed.seed == 5
        assert continue_run(resumed) == expected
    assert len(set(expected)) > 1


@pytest.mark.parametrize("episode_seeded", [False, True])
def test_transform_state_round_trip_with_another_seed_repeats_the_picks(episode_seeded):
    """Before: a transform rebuilt with another seed picked other members after loading."""

    def make(seed):
        sampler = PosteriorSamplingTransform(
            8, mode="ops", temperature=50.0, seed=seed, episode_seeded=episode_seeded
        )
        env = make_env("gym:Pendulum-v1", seed=0, action_repeat=10)  # 20-step episodes
        env.append_transform(sampler)
        return sampler, env

    def picks(env) -> list[int]:
        out = []
        for _ in range(4):
            td = env.reset()
            out.append(int(td["policy_index"]))
            assert env.rollout(100, auto_reset=False, tensordict=td).shape == (20,)
        return out

    sampler, env = make(1)
    env.rollout(100)
    state = sampler.state_dict()
    expected = picks(env)
    for seed in (2, None):
        resumed, env2 = make(seed)
        resumed.load_state_dict(state)
        assert resumed.posterior.seed == 1
        assert picks(env2) == expected


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_policies": 0}, "num_policies must be >= 1, got 0"),
        ({"num_policies": 2.5}, "num_policies must be an int >= 1, got 2.5"),
        ({"num_policies": 3, "mode": "thompson"}, "mode must be one of .* got 'thompson'"),
        ({"num_policies": 3, "statistic": "max"}, "statistic must be one of .* got 'max'"),
        ({"num_policies": 3, "temperature": 0.0}, r"temperature \(tau\) .* > 0, got 0.0"),
        ({"num_policies": 3, "temperature": float("inf")}, r"> 0, got inf"),
        ({"num_policies": 3, "temperature": "1"}, r"> 0, got '1'"),
        ({"num_policies": 3, "fixed_index": 3}, r"fixed_index must lie in \[0, 3\).*got 3"),
        ({"num_policies": 3, "seed": 1.5}, "seed must be an int, got 1.5"),
    ],
)
def test_bad_settings_are_one_value_error_naming_the_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PolicyPosterior(**kwargs)


def test_bad_updates_and_picks_are_one_value_error_naming_the_value():
    posterior = PolicyPosterior(3, mode="ops", seed=0)
    cases = [
        (lambda: posterior.update(3, 1.0), r"index must lie in \[0, 3\).*got \[3\]"),
        (lambda: posterior.update(torch.tensor([0, -1]), torch.zeros(2)), r"got \[-1\]"),
        (lambda: posterior.update(True, 1.0), "index must be an int, got True"),
        (lambda: posterior.update(torch.tensor([0.0]), 1.0), "index must hold integers"),
        (lambda: posterior.update(0, float("nan")), r"episode_return must be finite, got \[nan\]"),
        (lambda: posterior.update(0, "10"), "episode_return must be a finite float, got '10'"),
        (lambda: posterior.update(torch.tensor([0, 1]), 1.0), "one entry per index"),
        (lambda: posterior.pick(-1), "count must be >= 0, got -1"),
        (lambda: posterior.skip(-2), "count must be >= 0, got -2"),
    ]
    for call, match in cases:
        with pytest.raises(ValueError, match=match):
            call()
    assert posterior.num_episodes == 0 and posterior.play_counts.sum() == 0
    with pytest.raises(ValueError, match="num_policies=4, this posterior has num_policies=3"):
        posterior.load_state_dict(PolicyPosterior(4, seed=0).state_dict())
