"""The imagined-rollout env over a dynamics ensemble, and the rollout-length schedule."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule, TensorDictModuleBase
from torchrl.data import LazyTensorStorage, ReplayBuffer
from torchrl.envs.utils import check_env_specs
from torchrl.modules import MLP, NormalParamExtractor, ProbabilisticActor, TanhNormal

from torchrl_psmbpo.replay.buffers import valid_after_termination
from torchrl_psmbpo.world_model.dynamics import DynamicsEnsemble
from torchrl_psmbpo.world_model.imagined_env import ImaginedRolloutEnv
from torchrl_psmbpo.world_model.rollout_schedule import rollout_length
from torchrl_psmbpo.termination import hopper_terminated

D, A = 3, 2
N, M, B = 4, 2, 6


def never(obs, action, next_obs):
    return torch.zeros(next_obs.shape[:-1] + (1,), dtype=torch.bool, device=next_obs.device)


def above(threshold: float):
    def fn(obs, action, next_obs):
        return next_obs[..., :1] > threshold

    return fn


@pytest.fixture(scope="module")
def model() -> DynamicsEnsemble:
    torch.manual_seed(0)
    model = DynamicsEnsemble(D, A, num_members=5, num_elites=3, hidden=32, depth=2)
    with torch.no_grad():  # distinct, non-trivial members and a non-identity normaliser
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
        model.input_scale.copy_(torch.tensor([1.0, 2.0, 0.5, 1.0, 1.0]))
        model.target_scale.copy_(torch.tensor([0.1, 0.2, 0.3, 1.0]))
    model.set_elites([4, 0, 2])
    return model


def start_states(batch=(B,), seed=0) -> TensorDict:
    g = torch.Generator().manual_seed(seed)
    return TensorDict({"observation": torch.randn(*batch, D, generator=g)}, list(batch))


def stock_actor(env) -> ProbabilisticActor:
    torch.manual_seed(1)
    net = torch.nn.Sequential(MLP(in_features=D, out_features=2 * A, num_cells=[16]), NormalParamExtractor())
    return ProbabilisticActor(
        TensorDictModule(net, in_keys=["observation"], out_keys=["loc", "scale"]),
        in_keys=["loc", "scale"],
        distribution_class=TanhNormal,
        spec=env.action_spec,
    )


def test_check_env_specs(model):
    for mode, n in (("per_model", N), ("random", 1)):
        members = [0, 1, 2, 3] if mode == "per_model" else None
        env = ImaginedRolloutEnv(model, above(1.0), (n, M, B), member_mode=mode, members=members)
        check_env_specs(env, tensordict=start_states())
        check_env_specs(env)  # reset() without start states reuses the last ones
        assert env.batch_size == (n, M, B)
        assert env.action_spec.shape == (n, M, B, A) and env.observation_spec["observation"].shape == (n, M, B, D)


def test_check_env_specs_on_a_fresh_env_with_a_start_state_source(model):
    pool = start_states((40,), seed=3)
    buffer = ReplayBuffer(storage=LazyTensorStorage(100))
    buffer.extend(pool)
    sources = {
        "replay buffer": buffer,
        "storage": buffer.storage,
        "tensor": pool["observation"],
        "tensordict": pool,
        "callable": lambda b: pool["observation"][:b],
    }
    rows = pool["observation"]
    for name, source in sources.items():
        env = ImaginedRolloutEnv(model, above(1.0), (N, M, B), start_states=source)
        check_env_specs(env, break_when_any_done="both")
        obs = env.reset()["observation"]
        assert obs.shape == (N, M, B, D), name
        # every start state is a row of the source, broadcast to every model and policy
        first = obs[0, 0]
        assert ((first[:, None, :] - rows[None]).abs().sum(-1) == 0).any(-1).all(), name
        assert torch.equal(obs, first.expand(N, M, B, D)), name
    # given start states still win over the source
    env = ImaginedRolloutEnv(model, never, (N, M, B), start_states=pool["observation"])
    torch.testing.assert_close(env.reset(start_states())["observation"][1, 1], start_states()["observation"])
    # the source can be set later, e.g. once the real buffer exists
    fresh = ImaginedRolloutEnv(model, never, (N, M, B))
    with pytest.raises(ValueError, match="reset needs start states.*start_states="):
        check_env_specs(fresh)
    fresh.start_states = buffer
    check_env_specs(fresh)


def test_bad_start_state_sources_are_refused(model):
    with pytest.raises(ValueError, match=r"start_states is a tensor of shape \(5, 7\); accepted: a tensor \[K, 3\]"):
        ImaginedRolloutEnv(model, never, (N, M, B), start_states=torch.zeros(5, 7))
    with pytest.raises(ValueError, match="start_states of type str is not accepted"):
        ImaginedRolloutEnv(model, never, (N, M, B), start_states="buffer")
    with pytest.raises(ValueError, match="TensorDict with keys \\['obs'\\]"):
        ImaginedRolloutEnv(model, never, (N, M, B), start_states=TensorDict({"obs": torch.zeros(4, D)}, [4]))
    empty = ImaginedRolloutEnv(model, never, (N, M, B), start_states=ReplayBuffer(storage=LazyTensorStorage(10)))
    with pytest.raises(ValueError, match=r"holds no transitions yet \(len 0\)"):
        empty.reset()
    odd = ImaginedRolloutEnv(model, never, (N, M, B), start_states=lambda b: [0.0] * b)
    with pytest.raises(ValueError, match="start_states\\(B\\) returned a list"):
        odd.reset()


def test_rollout_defaults_run_every_step_of_the_batch(model):
    """TorchRL's default (break_when_any_done=True) would stop all N*M*B at the first termination."""
    env = ImaginedRolloutEnv(model, above(0.5), (N, M, B), deterministic=True)
    torch.manual_seed(0)
    data = env.rollout(6, tensordict=start_states())
    assert data.batch_size == (N, M, B, 6)
    terminated = data["next", "terminated"].squeeze(-1)
    assert terminated[..., 0].any() and not terminated[..., 0].all()
    torch.manual_seed(0)  # same random actions
    explicit = env.rollout(6, auto_reset=False, tensordict=start_states(), break_when_any_done=False)
    torch.testing.assert_close(data["next", "observation"], explicit["next", "observation"])
    # the stock behaviour is still there when asked for
    stopped = env.rollout(6, tensordict=start_states(), break_when_any_done=True)
    assert stopped.batch_size == (N, M, B, 1)
    # no tensordict: reset from the source
    sourced = ImaginedRolloutEnv(model, never, (N, M, B), start_states=start_states((30,)))
    assert sourced.rollout(3).batch_size == (N, M, B, 3)


def test_rollout_shapes_and_keys_from_b_or_nmb_start_states(model):
    env = ImaginedRolloutEnv(model, never, (N, M, B))
    for batch in ((B,), (N, M, B), (1, M, B)):
        start = start_states(batch)
        data = env.rollout(5, auto_reset=False, tensordict=start, break_when_any_done=False)
        assert data.batch_size == (N, M, B, 5)
        keys = set(data.keys(True, True))
        assert {"observation", "action", ("next", "observation"), ("next", "reward"), ("next", "terminated"),
                ("next", "done"), ("next", "truncated")} <= keys
        assert data["next", "reward"].shape == (N, M, B, 5, 1)
        first = torch.broadcast_to(start["observation"], (N, M, B, D))
        torch.testing.assert_close(data["observation"][..., 0, :], first)
        # step t's next observation is step t+1's observation
        torch.testing.assert_close(data["next", "observation"][..., :-1, :], data["observation"][..., 1:, :])
        assert set(start.keys()) == {"observation"}  # the caller's start states are left alone
    # auto_reset=True with the start states given works too
    data = env.rollout(2, tensordict=start_states(), break_when_any_done=False)
    assert data.batch_size == (N, M, B, 2)


def test_slice_n_is_stepped_by_member_n(model):
    members = [3, 1, 4, 0]
    env = ImaginedRolloutEnv(model, never, (N, M, B), members=members, deterministic=True)
    data = env.rollout(3, auto_reset=False, tensordict=start_states(), break_when_any_done=False)
    for n, k in enumerate(members):
        obs, act = data["observation"][n], data["action"][n]
        nxt, rew = model.predict(obs, act, selection=k, deterministic=True)
        torch.testing.assert_close(data["next", "observation"][n], nxt, rtol=0, atol=1e-5)
        torch.testing.assert_close(data["next", "reward"][n], rew, rtol=0, atol=1e-5)
        other = model.predict(obs, act, selection=members[(n + 1) % N], deterministic=True)[0]
        assert not torch.allclose(data["next", "observation"][n], other, atol=1e-3)
    # Default members are range(N); "elites" follows the model's elites.
    assert ImaginedRolloutEnv(model, never, (N, M, B)).members == [0, 1, 2, 3]
    assert ImaginedRolloutEnv(model, never, (3, M, B), members="elites").members == [4, 0, 2]


def test_sampled_rollout_noise_is_reproducible_and_has_the_model_variance(model):
    env = ImaginedRolloutEnv(model, never, (N, M, B))
    runs = []
    for _ in range(2):
        torch.manual_seed(5)
        runs.append(env.rollout(3, auto_reset=False, tensordict=start_states(), break_when_any_done=False))
    assert torch.equal(runs[0]["next", "observation"], runs[1]["next", "observation"])
    det = ImaginedRolloutEnv(model, never, (N, M, B), deterministic=True)
    mean = det.rollout(1, auto_reset=False, tensordict=start_states(), break_when_any_done=False)
    assert not torch.allclose(runs[0]["next", "observation"][..., 0, :], mean["next", "observation"][..., 0, :])


def test_random_member_mode_uses_one_of_the_members_per_transition(model):
    env = ImaginedRolloutEnv(model, never, (1, M, 200), member_mode="random", deterministic=True)
    assert env.members == model.elites
    data = env.rollout(2, auto_reset=False, tensordict=start_states((200,)), break_when_any_done=False)
    obs, act = data["observation"], data["action"]
    per_member = torch.stack(
        [model.predict(obs, act, selection=k, deterministic=True)[0] for k in range(model.num_members)]
    )
    dist = (data["next", "observation"].unsqueeze(0) - per_member).abs().amax(-1)  # [E, 1, M, 200, 2]
    match = dist < 1e-5
    assert match.any(0).all()  # every transition is some member's prediction
    used = match.flatten(1).float().sum(1)
    elites = model.elites
    assert all(used[k] > 0.2 * used.sum() for k in elites)  # about a third each
    assert all(used[k] == 0 for k in range(model.num_members) if k not in elites)


def test_termination_is_applied_and_trajectories_stay_done(model):
    env = ImaginedRolloutEnv(model, above(0.5), (N, M, B), deterministic=True)
    data = env.rollout(6, auto_reset=False, tensordict=start_states(), break_when_any_done=False)
    terminated = data["next", "terminated"].squeeze(-1)
    fresh = data["next", "observation"][..., 0] > 0.5
    valid = valid_after_termination(data["next", "terminated"].squeeze(-1), time_dim=3)
    assert valid[..., 0].all()
    # on valid transitions, terminated is exactly the termination function
    assert torch.equal(terminated[valid], fresh[valid])
    assert terminated.any() and (~terminated).any()
    # once terminated, it stays done: frozen observation, zero reward, invalid afterwards
    assert (terminated[..., 1:] >= terminated[..., :-1]).all()
    assert torch.equal(data["next", "done"], data["next", "terminated"])
    assert not data["next", "truncated"].any()
    after = ~valid
    assert after.any()
    torch.testing.assert_close(data["next", "observation"][after], data["observation"][after])
    assert (data["next", "reward"][after] == 0).all()
    assert torch.equal(valid[..., 1:], ~terminated[..., :-1])
    # the valid transitions extend a replay buffer directly
    rb = ReplayBuffer(storage=LazyTensorStorage(10_000))
    rb.extend(data[valid])
    assert len(rb) == int(valid.sum())


def test_task_termination_function_from_the_package(model):
    hop = DynamicsEnsemble(11, 3, num_members=5, num_elites=3, hidden=16, depth=1)
    env = ImaginedRolloutEnv(hop, hopper_terminated, (2, 1, 8), deterministic=True)
    start = torch.zeros(8, 11)
    start[:, 0] = 1.25
    data = env.rollout(2, auto_reset=False, tensordict=TensorDict({"observation": start}, [8]),
                       break_when_any_done=False)
    expected = hopper_terminated(data["observation"], data["action"], data["next", "observation"])
    valid = valid_after_termination(data["next", "terminated"].squeeze(-1), time_dim=3)
    assert torch.equal(data["next", "terminated"][valid], expected[valid])


def test_a_stock_torchrl_actor_drives_it(model):
    env = ImaginedRolloutEnv(model, never, (N, M, B))
    actor = stock_actor(env)
    with torch.no_grad():
        data = env.rollout(4, actor, auto_reset=False, tensordict=start_states(), break_when_any_done=False)
    assert data.batch_size == (N, M, B, 4)
    assert data["action"].abs().max() <= 1.0
    expected = actor(data[..., 0].select("observation").clone())["loc"]
    torch.testing.assert_close(data["loc"][..., 0, :], expected)


class PerPolicyLinear(TensorDictModuleBase):
    """A policy batched over [N, M]: policy (n, m) has its own matrix W[n, m]."""

    in_keys = ["observation"]
    out_keys = ["action"]

    def __init__(self, n: int, m: int):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(n, m, D, A))

    def forward(self, td):
        td["action"] = torch.tanh(torch.einsum("nmbd,nmda->nmba", td["observation"], self.weight))
        return td


def test_a_policy_batched_over_models_and_policies(model):
    torch.manual_seed(2)
    env = ImaginedRolloutEnv(model, never, (N, M, B))
    policy = PerPolicyLinear(N, M)
    with torch.no_grad():
        data = env.rollout(3, policy, auto_reset=False, tensordict=start_states(), break_when_any_done=False)
    for n in range(N):
        for m in range(M):
            expected = torch.tanh(data["observation"][n, m] @ policy.weight[n, m])
            torch.testing.assert_close(data["action"][n, m], expected)


def test_bad_configuration_gives_clear_errors(model):
    with pytest.raises(ValueError, match="needs N members: N=4 but 3 members"):
        ImaginedRolloutEnv(model, never, (4, M, B), members="elites")
    with pytest.raises(ValueError, match=r"N=6 but 6 members.*|out of range"):
        ImaginedRolloutEnv(model, never, (6, M, B))
    with pytest.raises(ValueError, match=r"members \[0, 9\] out of range"):
        ImaginedRolloutEnv(model, never, (2, M, B), members=[0, 9])
    with pytest.raises(ValueError, match=r"batch_size must be \(N, M, B\)"):
        ImaginedRolloutEnv(model, never, (N, B))
    with pytest.raises(ValueError, match="member_mode='mbpo'"):
        ImaginedRolloutEnv(model, never, (N, M, B), member_mode="mbpo")
    env = ImaginedRolloutEnv(model, never, (N, M, B))
    with pytest.raises(ValueError, match="needs start states"):
        env.reset()
    with pytest.raises(ValueError, match="last dimension 5; the model expects observation_dim=3"):
        env.reset(TensorDict({"observation": torch.zeros(B, 5)}, [B]))
    with pytest.raises(ValueError, match=r"does not broadcast to the env's batch \[4, 2, 6\]; "
                                         r"give batch \[B\] = \[6\] or \[N, M, B\] = \[4, 2, 6\]"):
        env.reset(TensorDict({"observation": torch.zeros(B + 1, D)}, [B + 1]))
    bad = ImaginedRolloutEnv(model, lambda o, a, n: n[..., 0] > 0, (N, M, B))
    with pytest.raises(ValueError, match=r"termination_fn returned shape \(4, 2, 6\); expected \(4, 2, 6, 1\)"):
        bad.rollout(1, auto_reset=False, tensordict=start_states(), break_when_any_done=False)


def test_extreme_start_states_give_no_nan(model):
    env = ImaginedRolloutEnv(model, never, (N, M, B))
    start = start_states()
    start["observation"][0] = 1e30
    start["observation"][1] = -1e30
    data = env.rollout(3, auto_reset=False, tensordict=start, break_when_any_done=False)
    assert not torch.isnan(data["next", "observation"]).any()
    assert torch.isfinite(data["next", "reward"]).all()


# ---------------------------------------------------------------------------- rollout schedule
def test_rollout_length_schedule():
    schedule = (20, 150, 1, 15)
    assert [rollout_length(e, schedule) for e in (0, 20, 21, 85, 149.9, 150, 1000)] == [1, 1, 1, 8, 14, 15, 15]
    # matches MBPO's formula int(min_len + (epoch - min_epoch) / (max_epoch - min_epoch) * (max_len - min_len))
    for e in range(20, 151):
        assert rollout_length(e, schedule) == int(1 + (e - 20) / 130 * 14)
    assert rollout_length(7, (20, 100, 1, 1)) == 1  # constant schedules (HalfCheetah)
    assert rollout_length(30, (20, 20, 1, 5)) == 5
    assert rollout_length(5, (20, 100, 5, 1)) == 5 and rollout_length(100, (20, 100, 5, 1)) == 1
    with pytest.raises(ValueError, match="min_epoch=150 must be <= max_epoch=20"):
        rollout_length(3, (150, 20, 1, 15))
    with pytest.raises(ValueError, match="min_len=0 must be an integer >= 1"):
        rollout_length(3, (20, 150, 0, 15))
    with pytest.raises(ValueError, match=r"\(min_epoch, max_epoch, min_len, max_len\)"):
        rollout_length(3, (20, 150, 1))


def test_gradients_flow_only_when_differentiable(model):
    start = start_states()
    policy = PerPolicyLinear(N, M)
    plain = ImaginedRolloutEnv(model, never, (N, M, B))
    data = plain.rollout(2, policy, auto_reset=False, tensordict=start, break_when_any_done=False)
    assert not data["next", "observation"].requires_grad
    diff = ImaginedRolloutEnv(model, never, (N, M, B), differentiable=True)
    data = diff.rollout(2, policy, auto_reset=False, tensordict=start, break_when_any_done=False)
    data["next", "reward"].sum().backward()
    assert policy.weight.grad is not None and policy.weight.grad.abs().sum() > 0


def _linear_policy(in_key="observation", out_key="action", seed=3) -> TensorDictModule:
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(D, A), torch.nn.Tanh())
    return TensorDictModule(net, in_keys=[in_key], out_keys=[out_key])


def test_the_env_uses_the_model_s_own_keys(model):
    """A model built with in_keys=("state", "act") and a reward out_key ("next", "rew"): the env
    reads and writes those, with any TorchRL policy over them."""
    custom = DynamicsEnsemble(D, A, num_members=5, num_elites=3, hidden=32, depth=2,
                              in_keys=("state", "act"), out_keys=(("next", "state"), ("next", "rew")))
    custom.load_state_dict(model.state_dict())
    env = ImaginedRolloutEnv(custom, never, (N, M, B), start_states=torch.randn(20, D))
    check_env_specs(env)
    assert set(env.observation_spec.keys()) == {"state"}
    assert env.action_keys == ["act"] and env.reward_keys == ["rew"]
    start = TensorDict({"state": start_states()["observation"]}, [B])
    policy = _linear_policy("state", "act")
    data = env.rollout(3, policy, tensordict=start)
    assert data.batch_size == (N, M, B, 3)
    assert {"state", "act", ("next", "state"), ("next", "rew")} <= set(data.keys(True, True))
    assert "observation" not in data.keys() and ("next", "reward") not in data.keys(True)
    # the same numbers as the default-key env over the same weights and actions
    plain = ImaginedRolloutEnv(model, never, (N, M, B), deterministic=True)
    ours = ImaginedRolloutEnv(custom, never, (N, M, B), deterministic=True)
    a = ours.rollout(3, policy, tensordict=start)
    b = plain.rollout(3, _linear_policy(), tensordict=start_states())
    torch.testing.assert_close(a["next", "state"], b["next", "observation"])
    torch.testing.assert_close(a["next", "rew"], b["next", "reward"])
    assert env.transition_keys == ("state", "act", ("next", "state"), ("next", "rew"),
                                   ("next", "terminated"), ("next", "done"))
    # start states under another key: one line naming the key to pass
    with pytest.raises(ValueError, match=r"a TensorDict with 'state' of batch \[B\] = \[6\] or "
                                         r"\[N, M, B\] = \[4, 2, 6\] \(got keys \['observation'\]\)"):
        ImaginedRolloutEnv(custom, never, (N, M, B)).reset(start_states())
    with pytest.raises(ValueError, match=r"TensorDict \[K\] with 'state'"):
        ImaginedRolloutEnv(custom, never, (N, M, B), start_states=start_states((20,)))


@pytest.mark.parametrize("member_mode", ["per_model", "random"])
def test_a_one_dimensional_batch_is_one_model_slice_and_one_policy(model, member_mode):
    """batch_size=(B,): a plain [B] env (N = M = 1), the same numbers as (1, 1, B)."""
    env = ImaginedRolloutEnv(model, never, (B,), member_mode=member_mode, deterministic=True,
                             start_states=torch.randn(20, D))
    check_env_specs(env)
    assert env.batch_size == (B,) and env.action_spec.shape == (B, A)
    actor = stock_actor(env)  # a stock actor over [B, D] observations
    with torch.no_grad():
        data = env.rollout(4, actor, tensordict=start_states())
    assert data.batch_size == (B, 4) and data["next", "reward"].shape == (B, 4, 1)
    policy = _linear_policy()
    nested = ImaginedRolloutEnv(model, never, (1, 1, B), member_mode=member_mode, deterministic=True)
    torch.manual_seed(5)
    flat = env.rollout(4, policy, tensordict=start_states())
    torch.manual_seed(5)  # the same random member draws in "random" mode
    deep = nested.rollout(4, policy, tensordict=start_states())
    torch.testing.assert_close(flat["next", "observation"], deep["next", "observation"][0, 0])
    torch.testing.assert_close(flat["next", "reward"], deep["next", "reward"][0, 0])
    with pytest.raises(ValueError, match=r"batch_size must be \(N, M, B\), or \(B,\) for N = M = 1"):
        ImaginedRolloutEnv(model, never, (M, B))


def test_a_one_dimensional_batch_with_termination_and_information(model):
    env = ImaginedRolloutEnv(model, above(0.5), (B,), member_mode="random", information_weight=0.1)
    torch.manual_seed(0)
    data = env.rollout(5, tensordict=start_states())
    assert data["next", "information"].shape == (B, 5, 1)
    done = data["next", "terminated"]
    assert (done[:, 1:] >= done[:, :-1]).all()  # stays done once terminated
    assert valid_after_termination(done, time_dim=1).shape == (B, 5, 1)


def test_transitions_only_returns_what_mixes_with_real_data(model):
    from torchrl_psmbpo import TRANSITION_KEYS

    env = ImaginedRolloutEnv(model, never, (B,), member_mode="random")
    actor = stock_actor(env)
    with torch.no_grad():
        full = env.rollout(3, actor, tensordict=start_states())
        data = env.rollout(3, actor, tensordict=start_states(), transitions_only=True)
    assert {"loc", "scale", "done"} <= set(full.keys())
    assert set(data.keys(True, True)) == set(TRANSITION_KEYS) == set(env.transition_keys)
    real = full.reshape(-1).clone().update({"extra": torch.zeros(B * 3)})
    mixed = torch.cat([real.select(*TRANSITION_KEYS), data.reshape(-1)])
    assert mixed.batch_size == (2 * B * 3,)
