"""PosteriorSamplingTransform: PS/OPS/fixed picks, partial resets, returns, specs, state."""

from __future__ import annotations

import io
import math

import pytest
import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Bounded, Categorical, Composite, Unbounded
from torchrl.collectors import Collector
from torchrl.envs import EnvBase, SerialEnv, TransformedEnv
from torchrl.envs.utils import check_env_specs

from torchrl_psmbpo.envs.factory import make_env
from torchrl_psmbpo.sampling import (
    POLICY_INDEX_KEY,
    FinishedEpisode,
    PolicyPosterior,
    PosteriorSamplingTransform,
    ops_probabilities,
)

# Upper 0.1% quantiles of the chi-square distribution (standard tables), by degrees of freedom.
CHI2_999 = {3: 16.266, 6: 22.458, 9: 27.877}


class ScriptedEnv(EnvBase):
    """Tiny batched env: episode lengths drawn in [min_len, max_len], scripted or random rewards.

    With ``episode_returns`` (unbatched use), episode ``k`` pays ``episode_returns[k]`` spread
    evenly over its ``min_len`` steps.
    """

    def __init__(
        self,
        batch: tuple[int, ...] = (),
        *,
        min_len: int = 2,
        max_len: int = 6,
        episode_returns: list[float] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size=torch.Size(batch))
        shape = torch.Size(batch)
        self.observation_spec = Composite(observation=Unbounded((*shape, 1)), shape=shape)
        self.action_spec = Bounded(-1.0, 1.0, (*shape, 1))
        self.reward_spec = Unbounded((*shape, 1))
        self.done_spec = Composite(
            done=Categorical(2, (*shape, 1), dtype=torch.bool),
            terminated=Categorical(2, (*shape, 1), dtype=torch.bool),
            truncated=Categorical(2, (*shape, 1), dtype=torch.bool),
            shape=shape,
        )
        self.min_len, self.max_len = min_len, max_len
        self.episode_returns = episode_returns
        self.episodes_started = 0
        self.rng = torch.Generator().manual_seed(seed)
        self.t = torch.zeros(shape, dtype=torch.long)
        self.length = torch.zeros(shape, dtype=torch.long)

    def _reset(self, tensordict: TensorDictBase | None, **kwargs) -> TensorDictBase:
        shape = self.batch_size
        reset = None if tensordict is None else tensordict.get("_reset", None)
        reset = torch.ones(shape, dtype=torch.bool) if reset is None else reset.reshape(shape)
        self.episodes_started += int(reset.sum())
        lengths = torch.randint(self.min_len, self.max_len + 1, shape, generator=self.rng)
        self.t = torch.where(reset, torch.zeros_like(self.t), self.t)
        self.length = torch.where(reset, lengths, self.length)
        return TensorDict(
            {
                "observation": self.t.unsqueeze(-1).float(),
                "done": torch.zeros(*shape, 1, dtype=torch.bool),
                "terminated": torch.zeros(*shape, 1, dtype=torch.bool),
                "truncated": torch.zeros(*shape, 1, dtype=torch.bool),
            },
            batch_size=shape,
        )

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        self.t = self.t + 1
        done = (self.t >= self.length).unsqueeze(-1)
        if self.episode_returns is not None:
            per_step = self.episode_returns[self.episodes_started - 1] / self.min_len
            reward = torch.full((*self.batch_size, 1), per_step)
        else:
            reward = torch.randn(*self.batch_size, 1, generator=self.rng)
        return TensorDict(
            {
                "observation": self.t.unsqueeze(-1).float(),
                "reward": reward,
                "done": done,
                "terminated": done.clone(),
                "truncated": torch.zeros_like(done),
            },
            batch_size=self.batch_size,
        )

    def _set_seed(self, seed: int | None) -> None:
        self.rng.manual_seed(0 if seed is None else seed)


def _chi_square(counts: torch.Tensor, probs: torch.Tensor) -> float:
    expected = probs * counts.sum()
    return float(((counts - expected) ** 2 / expected).sum())


def test_ps_picks_are_uniform():
    num_policies, envs, resets = 7, 500, 20
    ps = PosteriorSamplingTransform(num_policies, mode="ps", seed=0)
    env = TransformedEnv(ScriptedEnv((envs,)), ps)
    picks = torch.cat([env.reset()["policy_index"] for _ in range(resets)])
    assert picks.dtype == torch.int64 and picks.shape == (envs * resets,)
    counts = torch.bincount(picks, minlength=num_policies).double()
    torch.testing.assert_close(ps.probs, torch.full((num_policies,), 1 / num_policies,
                                                    dtype=torch.float64))
    assert _chi_square(counts, ps.probs) < CHI2_999[num_policies - 1]


def test_ops_probabilities_follow_the_formula_on_scripted_returns():
    returns = [5.0, -3.0, 10.0, 2.0, 7.0, -1.0, 4.0, 0.5, 8.0, -6.0, 3.0, 9.0]
    tau, num_policies = 4.0, 4
    ps = PosteriorSamplingTransform(num_policies, mode="ops", temperature=tau, seed=1)
    env = TransformedEnv(ScriptedEnv(min_len=2, max_len=2, episode_returns=returns), ps)
    played: list[tuple[int, float]] = []
    for episode_return in returns:
        td = env.rollout(10)  # stops at the episode's end (2 steps)
        assert td.shape == (2,)
        index = int(td["policy_index"][0])
        played.append((index, episode_return))
        cumulative = [sum(r for i, r in played if i == j) for j in range(num_policies)]
        weights = [math.exp(c / tau) for c in cumulative]
        expected = torch.tensor([w / sum(weights) for w in weights], dtype=torch.float64)
        torch.testing.assert_close(ps.probs, expected)
        torch.testing.assert_close(
            ps.cumulative_returns, torch.tensor(cumulative, dtype=torch.float64)
        )
        assert ps.last_episode == FinishedEpisode(index, pytest.approx(episode_return))
        assert ps.last_episode["return"] == pytest.approx(episode_return)
    counts = torch.bincount(torch.tensor([i for i, _ in played]), minlength=num_policies)
    assert torch.equal(ps.play_counts, counts)
    assert [e.index for e in ps.pop_finished_episodes()] == [i for i, _ in played]
    assert ps.pop_finished_episodes() == []


def test_ops_picks_follow_the_distribution():
    tau = 2.0
    target = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    posterior = PolicyPosterior(4, mode="ops", temperature=tau, seed=2)
    posterior.update(torch.arange(4), tau * target.log())  # p(i) = exp(R_i / tau) / Z = target
    ps = PosteriorSamplingTransform(posterior=posterior)
    torch.testing.assert_close(ps.probs, target)
    env = TransformedEnv(ScriptedEnv((500,)), ps)
    picks = torch.cat([env.reset()["policy_index"] for _ in range(20)])  # resets do not credit
    counts = torch.bincount(picks, minlength=4).double()
    assert _chi_square(counts, target) < CHI2_999[3]


def test_ops_is_stable_for_large_returns_and_small_temperature():
    returns = torch.tensor([1e6, 1e6 + 1.0, -1e6, 0.0], dtype=torch.float64)
    probs = ops_probabilities(returns, 1e-3)
    assert torch.isfinite(probs).all()
    torch.testing.assert_close(probs, torch.tensor([0.0, 1.0, 0.0, 0.0], dtype=torch.float64))
    probs = ops_probabilities(torch.tensor([1e300, 0.0], dtype=torch.float64), 1e-10)
    torch.testing.assert_close(probs, torch.tensor([1.0, 0.0], dtype=torch.float64))
    probs = ops_probabilities(torch.tensor([3e5, 3e5]), 1e-9)
    torch.testing.assert_close(probs, torch.tensor([0.5, 0.5], dtype=torch.float64))
    with pytest.raises(ValueError, match="finite"):
        ops_probabilities(torch.tensor([float("nan"), 0.0]), 1.0)


def test_partial_reset_changes_only_the_reset_envs():
    ps = PosteriorSamplingTransform(1_000_000, seed=3)
    env = TransformedEnv(ScriptedEnv((4,)), ps)
    td = env.reset()
    before = td["policy_index"].clone()
    td = env.rand_step(td)
    td = env.step_mdp(td)
    td["_reset"] = torch.tensor([True, False, True, False]).unsqueeze(-1)
    after = env.reset(td)["policy_index"]
    assert torch.equal(after[[1, 3]], before[[1, 3]])
    assert (after[[0, 2]] != before[[0, 2]]).all()  # 1e-6 chance each of a repeat
    assert torch.equal(ps.current_index, after)


def test_an_episode_cut_by_a_reset_is_not_credited():
    ps = PosteriorSamplingTransform(3, mode="ops", seed=8)
    env = TransformedEnv(ScriptedEnv(min_len=4, max_len=4), ps)
    td = env.reset()
    td = env.step_mdp(env.rand_step(td))  # one rewarded step, episode not done
    assert ps.play_counts.sum() == 0
    data = env.rollout(10)  # resets (no done before it), then a whole 4-step episode
    assert data.shape == (4,)
    index = int(data["policy_index"][0])
    assert ps.play_counts.tolist() == [int(i == index) for i in range(3)]
    assert float(ps.cumulative_returns[index]) == pytest.approx(
        float(data["next", "reward"].double().sum()), abs=1e-9
    )


def test_index_is_constant_within_episodes_and_returns_are_credited():
    envs, steps = 6, 80
    ps = PosteriorSamplingTransform(5, mode="ops", temperature=3.0, seed=4)
    env = TransformedEnv(ScriptedEnv((envs,), min_len=2, max_len=7), ps)
    data = env.rollout(steps, break_when_any_done=False)  # auto partial resets
    index, next_index = data["policy_index"], data["next", "policy_index"]
    done = data["next", "done"].squeeze(-1)
    reward = data["next", "reward"].squeeze(-1).double()
    assert torch.equal(index, next_index)
    changed = index[:, 1:] != index[:, :-1]
    assert not (changed & ~done[:, :-1]).any(), "index changed inside an episode"
    expected = torch.zeros(5, dtype=torch.float64)
    played = torch.zeros(5, dtype=torch.int64)
    for e in range(envs):
        running = 0.0
        for t in range(steps):
            running += float(reward[e, t])
            if done[e, t]:
                expected[index[e, t]] += running
                played[index[e, t]] += 1
                running = 0.0
    assert int(done.sum()) > 3 * envs
    torch.testing.assert_close(ps.cumulative_returns, expected)
    assert torch.equal(ps.play_counts, played)
    assert len(ps.pop_finished_episodes()) == int(done.sum())


def test_collector_batches_keep_the_index_within_episodes():
    ps = PosteriorSamplingTransform(5, seed=9)
    env = TransformedEnv(ScriptedEnv((3,), min_len=2, max_len=5), ps)
    collector = Collector(env, None, frames_per_batch=45, total_frames=90)
    try:
        batches = list(collector)
    finally:
        collector.shutdown()
    data = torch.cat(batches, dim=1)  # [3 envs, 30 steps]
    index, done = data["policy_index"], data["next", "done"].squeeze(-1)
    assert torch.equal(index, data["next", "policy_index"])
    assert not ((index[:, 1:] != index[:, :-1]) & ~done[:, :-1]).any()
    assert int(ps.play_counts.sum()) == int(done.sum()) > 0


def test_fixed_mode_always_plays_the_fixed_member():
    ps = PosteriorSamplingTransform(6, mode="fixed", fixed_index=4, seed=5)
    env = TransformedEnv(ScriptedEnv((8,)), ps)
    data = env.rollout(30, break_when_any_done=False)
    assert (data["policy_index"] == 4).all()
    expected = torch.zeros(6, dtype=torch.float64)
    expected[4] = 1.0
    torch.testing.assert_close(ps.probs, expected)
    assert int(ps.play_counts[4]) == int(data["next", "done"].sum()) > 0


def test_state_dict_round_trip_reproduces_picks():
    def make(seed):
        ps = PosteriorSamplingTransform(5, mode="ops", temperature=2.0, seed=seed)
        return ps, TransformedEnv(ScriptedEnv((3,), seed=7), ps)

    ps, env = make(seed=6)
    env.rollout(25, break_when_any_done=False)
    buffer = io.BytesIO()
    torch.save(env.transform.state_dict(), buffer)
    continued = torch.cat([env.reset()["policy_index"] for _ in range(10)])

    resumed, env2 = make(seed=99)
    buffer.seek(0)
    resumed.load_state_dict(torch.load(buffer, weights_only=False))
    torch.testing.assert_close(resumed.cumulative_returns, ps.cumulative_returns)
    torch.testing.assert_close(resumed.probs, ps.probs)
    assert torch.equal(resumed.play_counts, ps.play_counts)
    assert resumed.last_episode == ps.last_episode
    replayed = torch.cat([env2.reset()["policy_index"] for _ in range(10)])
    assert torch.equal(replayed, continued)


@pytest.mark.parametrize("batched", [False, True])
def test_specs_pass_with_a_real_env(batched):
    if batched:
        env = TransformedEnv(SerialEnv(2, lambda: make_env("gym:Pendulum-v1", seed=0)))
    else:
        env = make_env("gym:Pendulum-v1", seed=0)
    env.append_transform(PosteriorSamplingTransform(6, seed=0))
    check_env_specs(env, seed=0)
    spec = env.observation_spec["policy_index"]
    assert spec.dtype == torch.int64 and spec.shape == env.batch_size
    td = env.rollout(5)
    assert td["policy_index"].shape == (*env.batch_size, 5)
    assert ((td["policy_index"] >= 0) & (td["policy_index"] < 6)).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_policies": 0}, "num_policies must be an int >= 1, got 0"),
        ({"num_policies": 3, "mode": "thompson"}, "mode must be one of .* got 'thompson'"),
        ({"num_policies": 3, "temperature": 0.0}, r"temperature \(tau\) .* > 0, got 0.0"),
        ({"num_policies": 3, "temperature": -2.0}, r"> 0, got -2.0"),
        ({"num_policies": 3, "temperature": float("nan")}, r"> 0, got nan"),
        ({"num_policies": 3, "mode": "fixed", "fixed_index": 3}, r"\[0, 3\).*got 3"),
    ],
)
def test_bad_input_is_rejected_with_the_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PosteriorSamplingTransform(**kwargs)


def test_bad_types_are_rejected():
    with pytest.raises(ValueError, match="num_policies must be an int >= 1, got 2.5"):
        PosteriorSamplingTransform(2.5)
    with pytest.raises(ValueError, match="> 0"):
        ops_probabilities(torch.zeros(2), 0.0)


def test_episode_seeded_picks_depend_only_on_seed_and_finished_episodes():
    from torchrl_psmbpo.envs.factory import make_env

    def run(reset_twice_after_first: bool) -> list[int]:
        env = make_env("gym:Pendulum-v1", seed=0)
        ps = PosteriorSamplingTransform(50, mode="ps", seed=7, episode_seeded=True)
        env.append_transform(ps)
        picks = []
        for episode in range(4):
            td = env.reset()
            if reset_twice_after_first and episode == 1:
                td = env.reset()  # a resumed run resets again before the same episode
            picks.append(int(td["policy_index"]))
            env.rollout(200, auto_reset=False, tensordict=td)
        assert int(ps.play_counts.sum()) == 4
        return picks

    straight, with_extra_reset = run(False), run(True)
    assert straight == with_extra_reset
    assert len(set(straight)) > 1  # different episodes still get different draws


def test_collector_credits_an_episode_before_the_reset_that_picks_the_next():
    """A Collector steps and resets in one call: the transform credits at "done", before the pick."""
    tau = 1e-3  # OPS is greedy: the next pick is the member with the largest credited sum
    posterior = PolicyPosterior(4, mode="ops", temperature=tau, seed=0)
    env = TransformedEnv(ScriptedEnv(min_len=2, max_len=2, episode_returns=[1.0] * 20),
                         PosteriorSamplingTransform(posterior=posterior))
    collector = Collector(env, None, frames_per_batch=2, total_frames=20)
    try:
        picks = [int(data["policy_index"][0]) for data in collector]
    finally:
        collector.shutdown()
    assert picks == [picks[0]] * 10  # every pick after the first saw the first episode's credit
    assert posterior.play_counts[picks[0]] == 10


def test_credit_returns_false_only_reports_and_the_caller_credits():
    def run(credit_returns: bool) -> tuple[PolicyPosterior, list[FinishedEpisode]]:
        posterior = PolicyPosterior(5, mode="ps", seed=4)
        ps = PosteriorSamplingTransform(posterior=posterior, credit_returns=credit_returns)
        env = TransformedEnv(ScriptedEnv((3,), min_len=2, max_len=6), ps)
        env.rollout(40, break_when_any_done=False)
        finished = ps.pop_finished_episodes()
        if not credit_returns:
            assert posterior.num_episodes == 0 and posterior.play_counts.sum() == 0
            for ep in finished:  # what the training loop does at episode ends
                posterior.update(ep.index, ep.ret)
        return posterior, finished

    by_transform, finished = run(True)
    by_caller, finished_again = run(False)
    assert finished == finished_again and len(finished) > 10
    torch.testing.assert_close(by_caller.cumulative_returns, by_transform.cumulative_returns)
    assert torch.equal(by_caller.play_counts, by_transform.play_counts)


def test_marked_episodes_are_reported_but_neither_credited_nor_played():
    posterior = PolicyPosterior(3, mode="ops", seed=8)
    ps = PosteriorSamplingTransform(posterior=posterior)
    env = TransformedEnv(ScriptedEnv(min_len=3, max_len=3, episode_returns=[5.0, 7.0, 11.0]), ps)
    with pytest.raises(RuntimeError, match="reset the env first, or pass next_steps > 0"):
        ps.mark_uncredited()
    td = env.reset()
    ps.mark_uncredited()  # e.g. one random action in this episode
    assert not bool(ps.current_credited)
    env.rollout(10, auto_reset=False, tensordict=td)
    assert ps.last_episode == FinishedEpisode(int(td["policy_index"]), pytest.approx(5.0), False)
    assert posterior.play_counts.sum() == 0 and posterior.num_episodes == 1
    data = env.rollout(10)  # the mark ended at the reset: this episode is credited
    index = int(data["policy_index"][0])
    assert ps.last_episode == FinishedEpisode(index, pytest.approx(7.0), True)
    assert posterior.cumulative_returns.tolist() == pytest.approx([7.0 * (i == index) for i in range(3)])


def test_mark_uncredited_next_steps_covers_every_episode_touching_those_steps():
    posterior = PolicyPosterior(4, mode="ps", seed=1)
    ps = PosteriorSamplingTransform(posterior=posterior)
    env = TransformedEnv(ScriptedEnv(min_len=4, max_len=4), ps)
    ps.mark_uncredited(next_steps=5)  # before the first reset: steps 1-5
    env.rollout(12, break_when_any_done=False)  # episodes: steps 1-4, 5-8, 9-12
    assert [ep.credited for ep in ps.pop_finished_episodes()] == [False, False, True]
    assert posterior.play_counts.sum() == 1 and posterior.num_episodes == 3


def test_mark_uncredited_with_a_mask_marks_only_those_envs():
    posterior = PolicyPosterior(4, mode="ps", seed=2)
    ps = PosteriorSamplingTransform(posterior=posterior)
    env = TransformedEnv(ScriptedEnv((3,), min_len=3, max_len=3), ps)
    td = env.reset()
    ps.mark_uncredited(mask=torch.tensor([True, False, True]))
    env.rollout(3, auto_reset=False, tensordict=td)
    finished = ps.pop_finished_episodes()
    assert [ep.credited for ep in finished] == [False, True, False]
    assert posterior.play_counts.sum() == 1 and posterior.num_episodes == 3
    with pytest.raises(ValueError, match=r"mask must be a bool tensor of the env's batch shape \[3\]"):
        ps.mark_uncredited(mask=torch.tensor([True, False]))
    with pytest.raises(ValueError, match="next_steps must be an int >= 0, got -1"):
        ps.mark_uncredited(next_steps=-1)


def test_transform_takes_a_posterior_or_its_settings_not_both():
    posterior = PolicyPosterior(3, mode="ops", seed=0)
    with pytest.raises(ValueError, match=r"got posterior= and also \{'mode': 'ps'\}"):
        PosteriorSamplingTransform(posterior=posterior, mode="ps")
    with pytest.raises(ValueError, match="needs num_policies or posterior="):
        PosteriorSamplingTransform()
    ps = PosteriorSamplingTransform(posterior=posterior)
    assert ps.posterior is posterior and ps.num_policies == 3 and ps.mode == "ops"
    assert POLICY_INDEX_KEY == "policy_index" and ps.out_keys == [POLICY_INDEX_KEY]
