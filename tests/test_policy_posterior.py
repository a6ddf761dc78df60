"""PolicyPosterior: exact OPS probabilities, pick frequencies, crediting, most_likely, state."""

from __future__ import annotations

import io
import math

import pytest
import torch
from tensordict.nn import TensorDictModule
from torchrl.collectors import Collector

from torchrl_psmbpo.envs.factory import make_env
from torchrl_psmbpo.sampling import PolicyPosterior, PosteriorSamplingTransform

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


# ---------------------------------------------------------------- the importance statistic
def _returns(member: int, episode: int) -> float:
    """Member 3 is worse by 200 per episode; the others tie; noise of sd ~50 per episode."""
    noise = torch.randn((), generator=torch.Generator().manual_seed(1000 * episode + member))
    return 600.0 - 200.0 * (member == 3) + 50.0 * float(noise)


def _run(posterior: PolicyPosterior, episodes: int) -> list[torch.Tensor]:
    probs = []
    for k in range(episodes):
        probs.append(posterior.probs)
        i = posterior.pick()
        posterior.update(i, _returns(i, k))
    return probs


def test_the_sum_commits_to_the_first_member_played_whatever_its_return():
    """The collapse of the paper's literal rule: the played member's sum grows, the others stay
    at 0, so one episode decides (here the pick is the worst member half the time)."""
    committed_to_worst = 0
    for seed in range(8):
        posterior = PolicyPosterior(4, mode="ops", temperature=100.0, seed=seed)
        first = posterior.pick()
        posterior.update(first, _returns(first, 0))
        assert float(posterior.probs[first]) > 0.9
        probs = _run(posterior, 30)[-1]
        assert int(probs.argmax()) == first
        committed_to_worst += first == 3
    assert committed_to_worst >= 1


def test_importance_keeps_tied_members_uniform_and_discards_the_worse_one_gradually():
    for seed in range(4):
        posterior = PolicyPosterior(4, mode="ops", temperature=1000.0, statistic="importance",
                                    mix=0.1, seed=seed)
        probs = torch.stack(_run(posterior, 100))
        assert probs[:5].max() < 0.5  # nobody holds half the mass after 5 episodes
        assert probs[-1, 3] < 0.05  # the worse member is down to about mix / P = 0.025
        assert int(probs[-1].argmin()) == 3 and probs[-1, :3].sum() > 0.9
        assert posterior.most_likely() != 3


def test_members_with_equal_returns_are_never_discarded_by_importance():
    posterior = PolicyPosterior(4, mode="ops", temperature=10.0, statistic="importance", seed=0)
    for _ in range(50):
        posterior.update(posterior.pick(), 500.0)
    assert torch.equal(posterior.probs, torch.full((4,), 0.25, dtype=torch.float64))


def test_importance_credits_return_minus_baseline_over_the_pick_probability():
    posterior = PolicyPosterior(4, mode="ops", temperature=100.0, statistic="importance",
                                mix=0.2, baseline_rate=0.5, seed=0)
    posterior.update(2, 300.0)  # the first credited episode is its own baseline: scores 0
    assert torch.equal(posterior.scores, torch.zeros(4, dtype=torch.float64))
    posterior.update(1, 400.0)  # uniform probs: (400 - 300) / 0.25
    assert posterior.scores.tolist() == [0.0, 400.0, 0.0, 0.0]
    p0 = float(posterior.probs[0])  # baseline now 300 + 0.5 * 100 = 350
    posterior.update(0, 250.0)
    assert posterior.scores[0].item() == pytest.approx((250.0 - 350.0) / p0)
    q = torch.softmax(posterior.scores / 100.0, 0)
    assert torch.allclose(posterior.probs, 0.8 * q + 0.2 / 4)
    assert float(posterior.probs.min()) >= 0.05
    restored = PolicyPosterior(4, seed=1)
    restored.load_state_dict(posterior.state_dict())
    assert torch.equal(restored.probs, posterior.probs) and restored.mix == 0.2
    restored.update(3, 350.0)
    posterior.update(3, 350.0)
    assert torch.equal(restored.scores, posterior.scores)


def test_a_state_saved_before_mix_and_importance_loads_as_it_ran():
    old = PolicyPosterior(3, mode="ops", temperature=10.0, seed=0)
    old.update(1, 5.0)
    state = old.state_dict()
    for key in ("mix", "baseline_rate", "estimates", "baseline"):
        del state[key]
    loaded = PolicyPosterior(3, mode="ops", statistic="importance", mix=0.3, seed=2)
    loaded.load_state_dict(state)
    assert loaded.mix == 0.0 and loaded.statistic == "sum"
    assert torch.equal(loaded.probs, old.probs)


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
        ({"num_policies": 0}, "num_policies must be an int >= 1, got 0"),
        ({"num_policies": 2.5}, "num_policies must be an int >= 1, got 2.5"),
        ({"num_policies": 3, "mode": "thompson"}, "mode must be one of .* got 'thompson'"),
        ({"num_policies": 3, "statistic": "max"}, "statistic must be one of .* got 'max'"),
        ({"num_policies": 3, "temperature": 0.0}, r"temperature \(tau\) .* > 0, got 0.0"),
        ({"num_policies": 3, "temperature": float("inf")}, r"> 0, got inf"),
        ({"num_policies": 3, "temperature": "1"}, r"> 0, got '1'"),
        ({"num_policies": 3, "fixed_index": 3}, r"fixed_index must lie in \[0, 3\).*got 3"),
        ({"num_policies": 3, "seed": 1.5}, "seed must be an int, got 1.5"),
        ({"num_policies": 3, "mix": 1.0}, r"mix must be a finite float in \[0, 1\), got 1.0"),
        ({"num_policies": 3, "mix": -0.1}, r"mix must be a finite float in \[0, 1\), got -0.1"),
        ({"num_policies": 3, "mix": True}, r"mix must be a finite float in \[0, 1\), got True"),
        ({"num_policies": 3, "baseline_rate": 0.0}, r"baseline_rate must be .* \(0, 1\], got 0.0"),
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
        (lambda: posterior.pick(-1), "count must be an int >= 0, got -1"),
        (lambda: posterior.skip(-2), "count must be an int >= 0, got -2"),
    ]
    for call, match in cases:
        with pytest.raises(ValueError, match=match):
            call()
    assert posterior.num_episodes == 0 and posterior.play_counts.sum() == 0
    with pytest.raises(ValueError, match="num_policies=4, this posterior has num_policies=3"):
        posterior.load_state_dict(PolicyPosterior(4, seed=0).state_dict())
