"""PolicyEnsemble: equivalence with N·M independent TorchRL SAC agents, independence of the
members, the acting paths, state_dict, bad input, and that it learns Pendulum."""

from __future__ import annotations

import io
import traceback

import pytest
import torch
import torch.distributions.normal as normal_module
from tensordict import TensorDict
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torchrl.collectors import Collector
from torchrl.data import Categorical, LazyTensorStorage, ReplayBuffer
from torchrl.envs import TensorDictPrimer
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.modules import ProbabilisticActor
from torchrl.objectives import SACLoss, SoftUpdate

from helpers import sac_batch
from torchrl_psmbpo.envs.factory import make_env
from torchrl_psmbpo.policy.ensemble import PolicyEnsemble

BACKENDS = ("bmm", "vmap")
OBS, ACT, HID = 5, 3, (32, 32)


def small_ensemble(shape=(2, 2), backend="bmm", **kwargs) -> PolicyEnsemble:
    return PolicyEnsemble(
        OBS, ACT, shape, actor_hidden=HID, critic_hidden=HID, backend=backend, **kwargs
    )


def make_batch(n: int, m: int, b: int, obs: int = OBS, act: int = ACT) -> TensorDict:
    return sac_batch(n, m, b, obs, act)


class NoiseQueue:
    """Feeds chosen standard-normal draws to torch.distributions.Normal.rsample."""

    def __init__(self, monkeypatch):
        self.queue: list[torch.Tensor] = []
        monkeypatch.setattr(normal_module, "_standard_normal", self._draw)

    def _draw(self, shape, dtype, device):
        eps = self.queue.pop(0)
        assert tuple(eps.shape) == tuple(shape), (eps.shape, shape)
        return eps.to(device, dtype)


def max_abs_diff(a: TensorDict, b: TensorDict) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a.values(True, True), b.values(True, True)))


def stacked(modules) -> TensorDict:
    return torch.stack([TensorDict.from_module(mod).data for mod in modules])


# ---------------------------------------------------------------- equivalence with SACLoss
@pytest.mark.parametrize(
    "backend,clip", [("bmm", None), ("vmap", None), ("bmm", 0.5)], ids=["bmm", "vmap", "bmm-clip"]
)
def test_update_equals_independent_torchrl_sac_agents(backend, clip, monkeypatch):
    torch.manual_seed(0)
    n_, m_, b = 2, 2, 32
    hp = dict(actor_lr=1e-3, critic_lr=2e-3, alpha_lr=3e-3, gamma=0.97, tau=0.05, init_alpha=0.5)
    ens = small_ensemble((n_, m_), backend, grad_clip_norm=clip, **hp)
    agents = {}
    for n in range(n_):
        for m in range(m_):
            loss = SACLoss(
                ens.member(n, m), ens.member_critics(n, m), loss_function="l2",
                alpha_init=hp["init_alpha"], target_entropy=-float(ACT),
            )
            loss.make_value_estimator(gamma=hp["gamma"])
            optims = [
                torch.optim.Adam(loss.actor_network_params.values(True, True), lr=hp["actor_lr"]),
                torch.optim.Adam(loss.qvalue_network_params.values(True, True), lr=hp["critic_lr"]),
                torch.optim.Adam([loss.log_alpha], lr=hp["alpha_lr"]),
            ]
            agents[n, m] = (loss, optims, SoftUpdate(loss, tau=hp["tau"]))
    noise_queue = NoiseQueue(monkeypatch)
    clipped = False
    for _ in range(4):
        batch = make_batch(n_, m_, b)
        noise = torch.randn(n_, m_, 2, b, ACT)
        out = ens.update(batch, noise=noise)
        assert out.batch_size == torch.Size([n_, m_])
        for (n, m), (loss, optims, updater) in agents.items():
            # SACLoss draws the target's next action first, then the actor-loss action
            noise_queue.queue[:] = [noise[n, m, 0], noise[n, m, 1]]
            ref = loss(batch[n, m])
            (ref["loss_actor"] + ref["loss_qvalue"] + ref["loss_alpha"]).backward()
            if clip is not None:
                norms = [
                    torch.nn.utils.clip_grad_norm_(list(loss.actor_network_params.values(True, True)), clip),
                    torch.nn.utils.clip_grad_norm_(list(loss.qvalue_network_params.values(True, True)), clip),
                ]
                clipped |= any(float(x) > clip for x in norms)
            for opt in optims:
                opt.step()
                opt.zero_grad()
            updater.step()
            for key in ("loss_actor", "loss_qvalue", "loss_alpha", "alpha", "entropy"):
                torch.testing.assert_close(out[key][n, m], ref[key].detach(), rtol=1e-5, atol=1e-5)
            assert max_abs_diff(TensorDict.from_module(ens.member(n, m)).data, loss.actor_network_params.data) < 1e-5
            assert max_abs_diff(stacked(ens.member_critics(n, m)), loss.qvalue_network_params.data) < 1e-5
            assert max_abs_diff(
                stacked(ens.member_critics(n, m, target=True)), loss.target_qvalue_network_params.data
            ) < 1e-5
            torch.testing.assert_close(ens.log_alpha[n, m], loss.log_alpha.detach(), rtol=0, atol=1e-6)
    assert clip is None or clipped, "the clip norm never bit: the clipped variant tested nothing"


def test_backends_give_the_same_updates():
    torch.manual_seed(3)
    a = small_ensemble((2, 3), "bmm")
    b = small_ensemble((2, 3), "vmap")
    b.load_state_dict(a.state_dict())
    for _ in range(2):
        batch, noise = make_batch(2, 3, 16), torch.randn(2, 3, 2, 16, ACT)
        oa, ob = a.update(batch, noise), b.update(batch, noise)
        assert max_abs_diff(oa, ob) < 1e-5
    assert max_abs_diff(a.actor_params.data, b.actor_params.data) < 1e-6
    assert max_abs_diff(a.target_critic_params.data, b.target_critic_params.data) < 1e-6


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_members_loss_gives_zero_gradient_to_every_other_member(backend):
    torch.manual_seed(1)
    ens = small_ensemble((2, 3), backend)
    losses = ens.loss(make_batch(2, 3, 16))
    params = [*ens.actor_params.values(True, True), *ens.critic_params.values(True, True), ens.log_alpha]
    n, m = 1, 2
    total = losses["loss_actor"][n, m] + losses["loss_qvalue"][n, m] + losses["loss_alpha"][n, m]
    grads = torch.autograd.grad(total, params, allow_unused=True, materialize_grads=True)
    others = torch.ones(2, 3, dtype=torch.bool)
    others[n, m] = False
    for p, g in zip(params, grads):
        assert g.shape == p.shape
        assert (g[others] == 0).all()
    assert all(g[n, m].abs().sum() > 0 for g in grads)


# ---------------------------------------------------------------- the update of 7d7b145
FROZEN_CASES = {
    # the CPU protocol's shape (K = 4, 128 wide, batch 256, obs 5, act 1), then walker-walk's sizes
    "protocol": dict(obs=5, act=1, shape=(2, 2), hidden=(128, 128), b=256, kwargs={}),
    "walker": dict(obs=24, act=6, shape=(2, 3), hidden=(32, 32), b=64, kwargs={}),
    "clip-smooth_l1-odd_batch": dict(
        obs=OBS, act=ACT, shape=(1, 3), hidden=HID, b=37,
        kwargs=dict(grad_clip_norm=0.5, loss_function="smooth_l1", gamma=0.97, tau=0.05, init_alpha=0.5),
    ),
    "depths": dict(obs=7, act=2, shape=(3, 1), hidden=(48,), b=40, kwargs=dict(critic_hidden=(40, 24, 16))),
    "prior": dict(obs=OBS, act=2, shape=(2, 1), hidden=HID, b=32, kwargs=dict(action_prior=True, prior_lr=1e-3)),
}


@pytest.mark.parametrize("case", [*FROZEN_CASES, "chunked"])
def test_update_equals_the_frozen_update(case, monkeypatch):
    """Five updates give bit-identical losses, parameters, target critics, temperatures and
    Adam state to a frozen copy of the update of 7d7b145 (tests/frozen_policy_update.py), with
    given noise and with noise drawn from torch's RNG. "chunked": the fast path's matmuls run
    in member chunks of 3 or 6 (the last one shorter), as large ensembles do."""
    from frozen_policy_update import FrozenUpdate  # tests/ is on sys.path under pytest

    if case == "chunked":
        import torchrl_psmbpo.policy._sac_step as sac_step

        monkeypatch.setattr(sac_step, "_CHUNK_BYTES", 3 * 2 * 64 * 32 * 4)  # 3 critics of [2b = 128, 32]
        c = dict(FROZEN_CASES["walker"], shape=(2, 5))
    else:
        c = FROZEN_CASES[case]
    torch.manual_seed(0)
    ens = PolicyEnsemble(
        c["obs"], c["act"], c["shape"], actor_hidden=c["hidden"],
        **{"critic_hidden": c["hidden"], "actor_lr": 1e-3, "critic_lr": 2e-3, "alpha_lr": 3e-3, **c["kwargs"]},
    )
    assert ens._fast_update != ens.action_prior  # the prior keeps the autograd update
    ens.update(make_batch(*c["shape"], c["b"], c["obs"], c["act"]))  # start from a non-empty Adam state
    frozen = FrozenUpdate(ens)
    for i in range(5):
        batch = make_batch(*c["shape"], c["b"], c["obs"], c["act"])
        if i % 2:
            noise = None  # both draw from torch's RNG
        else:
            noise = torch.randn(*c["shape"], 2, c["b"], c["act"])
        torch.manual_seed(100 + i)
        got = ens.update(batch, noise)
        torch.manual_seed(100 + i)
        expected = frozen.update(batch, noise)
        assert set(got.keys()) == set(expected.keys())
        for key in expected.keys():
            assert torch.equal(got[key], expected[key]), (i, key)
    names = ["actor_params", "critic_params", "target_critic_params"] + ["prior_params"] * ens.action_prior
    for name in names:
        for (key, a), b in zip(getattr(ens, name).items(True, True), getattr(frozen, name).values(True, True)):
            assert torch.equal(a, b), (name, key)
    assert torch.equal(ens.log_alpha, frozen.log_alpha)
    new_state, old_state = ens.optimizer.state_dict()["state"], frozen.optimizer.state_dict()["state"]
    assert new_state.keys() == old_state.keys()
    for index in old_state:
        for key in old_state[index]:
            assert torch.equal(new_state[index][key], old_state[index][key]), (index, key)


def test_update_matches_the_saved_update_of_7d7b145():
    """Three updates from the states and inputs saved by the code of 7d7b145
    (tests/data/make_policy_update_v1.py) give its losses and final state. Bit-identical on the
    machine that wrote the file; 1e-6 allows another CPU's matmul kernels."""
    from pathlib import Path

    saved = torch.load(Path(__file__).parent / "data" / "policy_update_v1.pt", weights_only=False)
    for name, case in saved.items():
        ens = PolicyEnsemble(
            **case["kwargs"], actor_hidden=(16, 16), critic_hidden=(16, 16),
            actor_lr=1e-3, critic_lr=2e-3, alpha_lr=3e-3,
        )
        ens.load_state_dict(case["initial"])
        for (batch, noise), expected in zip(case["inputs"], case["outputs"]):
            shape = noise.shape[:2]
            out = ens.update(TensorDict(batch, [*shape, noise.shape[3]]), noise)
            for key, value in expected.items():
                torch.testing.assert_close(out[key], value, rtol=0, atol=1e-6, msg=f"{name} {key}")
        final = ens.state_dict()
        for key, value in case["final"].items():
            if key == "_extra_state":
                for index, state in value["optimizer"]["state"].items():
                    for k, v in state.items():
                        torch.testing.assert_close(final[key]["optimizer"]["state"][index][k], v, rtol=0, atol=1e-6)
            else:
                torch.testing.assert_close(final[key], value, rtol=0, atol=1e-6, msg=f"{name} {key}")


# ---------------------------------------------------------------- acting
@pytest.mark.parametrize("backend", BACKENDS)
def test_indexed_policy_acts_as_the_selected_member(backend, monkeypatch):
    torch.manual_seed(2)
    ens = small_ensemble((2, 3), backend)
    ens.update(make_batch(2, 3, 16))  # members differ from their init
    obs = torch.randn(OBS)
    for i in range(6):
        actor = ens.member(*divmod(i, 3))
        td = TensorDict({"observation": obs, "policy_index": torch.tensor(i)})
        with set_exploration_type(ExplorationType.DETERMINISTIC):
            got = ens.indexed_policy(td.clone())["action"]
            torch.testing.assert_close(got, actor(td.clone())["action"])
        torch.manual_seed(10 + i)
        got = ens.indexed_policy(td.clone())["action"]
        torch.manual_seed(10 + i)
        with set_exploration_type(ExplorationType.RANDOM):
            torch.testing.assert_close(got, actor(td.clone())["action"])
        assert got.shape == (ACT,)

    # several envs: fewer than N·M (weights gathered) and more (all members applied)
    noise_queue = NoiseQueue(monkeypatch)
    for envs, index_shape in ((4, (4, 1)), (9, (9,))):
        obs = torch.randn(envs, OBS)
        index = torch.randint(0, 6, (envs,))
        td = TensorDict({"observation": obs, "policy_index": index.reshape(index_shape)}, [envs])
        torch.manual_seed(5)
        got = ens.indexed_policy(td)["action"]
        torch.manual_seed(5)
        noise = torch.randn(envs, ACT)
        assert got.shape == (envs, ACT)
        for e in range(envs):
            noise_queue.queue[:] = [noise[e]]
            expected = ens.member(*divmod(int(index[e]), 3))(TensorDict({"observation": obs[e]}))["action"]
            torch.testing.assert_close(got[e], expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_ensemble_policy_acts_with_every_member_on_its_slice(backend, monkeypatch):
    torch.manual_seed(4)
    ens = small_ensemble((2, 3), backend)
    ens.update(make_batch(2, 3, 16))
    obs = torch.randn(2, 3, 5, OBS)
    td = TensorDict({"observation": obs}, [2, 3, 5])
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        det = ens.ensemble_policy(td.clone())["action"]
    torch.manual_seed(7)
    rnd = ens.ensemble_policy(td.clone())["action"]
    torch.manual_seed(7)
    noise = torch.randn(2, 3, 5, ACT)
    noise_queue = NoiseQueue(monkeypatch)
    assert det.shape == rnd.shape == (2, 3, 5, ACT)
    for n in range(2):
        for m in range(3):
            actor = ens.member(n, m)
            member_td = TensorDict({"observation": obs[n, m]}, [5])
            with set_exploration_type(ExplorationType.DETERMINISTIC):
                torch.testing.assert_close(det[n, m], actor(member_td.clone())["action"])
            noise_queue.queue[:] = [noise[n, m]]
            torch.testing.assert_close(rnd[n, m], actor(member_td.clone())["action"])
    # no env batch: one observation per member
    one = ens.ensemble_policy(TensorDict({"observation": obs[:, :, 0]}, [2, 3]))["action"]
    assert one.shape == (2, 3, ACT)


def test_deterministic_mode_is_deterministic_and_random_mode_samples():
    torch.manual_seed(5)
    ens = small_ensemble((1, 2))
    td = TensorDict({"observation": torch.randn(1, 2, 64, OBS)}, [1, 2, 64])
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        a, b = ens.ensemble_policy(td.clone())["action"], ens.ensemble_policy(td.clone())["action"]
    assert torch.equal(a, b)
    with set_exploration_type(ExplorationType.RANDOM):
        c, d = ens.ensemble_policy(td.clone())["action"], ens.ensemble_policy(td.clone())["action"]
    assert not torch.equal(c, d) and not torch.equal(a, c)
    assert c.abs().max() < 1


def test_member_is_a_standalone_copy():
    torch.manual_seed(6)
    ens = small_ensemble((2, 2))
    actor = ens.member(1, 0)
    assert type(actor) is ProbabilisticActor
    before = TensorDict.from_module(actor).data.clone()
    ens.update(make_batch(2, 2, 8))
    assert max_abs_diff(TensorDict.from_module(actor).data, before) == 0  # a copy, not a view
    assert max_abs_diff(TensorDict.from_module(ens.member(1, 0)).data, before) > 0
    assert ens.flat_index(1, 0) == 2
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        out = actor(TensorDict({"observation": torch.randn(7, OBS)}, [7]))
    assert out["action"].shape == (7, ACT) and actor.spec["action"].space.high.max() == 1


def test_flat_index_and_member_index_are_inverse_and_match_the_acting_member(monkeypatch):
    torch.manual_seed(8)
    ens = small_ensemble((2, 3))
    pairs = [(n, m) for n in range(2) for m in range(3)]
    assert [ens.flat_index(n, m) for n, m in pairs] == list(range(6))
    assert [ens.member_index(i) for i in range(6)] == pairs
    assert type(ens.flat_index(torch.tensor(1), torch.tensor(2))) is int
    assert ens.member_index(torch.tensor(5)) == (1, 2)
    i = torch.tensor([[0, 5], [3, 4]])
    n, m = ens.member_index(i)
    assert torch.equal(n, torch.tensor([[0, 1], [1, 1]])) and torch.equal(m, torch.tensor([[0, 2], [0, 1]]))
    assert torch.equal(ens.flat_index(n, m), i)
    # member(*member_index(i)) is the member that acts for policy_index i, 0-d tensors accepted
    obs = torch.randn(OBS)
    for index in range(6):
        td = TensorDict({"observation": obs, "policy_index": torch.tensor(index)})
        with set_exploration_type(ExplorationType.DETERMINISTIC):
            acted = ens.indexed_policy(td.clone())["action"]
            alone = ens.member(*ens.member_index(torch.tensor(index)))(TensorDict({"observation": obs}))["action"]
        torch.testing.assert_close(acted, alone, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match=r"policy index i=6 is out of range; accepted: 0..5"):
        ens.member_index(6)
    with pytest.raises(ValueError, match=r"policy index i=-1 is out of range"):
        ens.member_index(torch.tensor([0, -1]))
    with pytest.raises(ValueError, match=r"m=3 is out of range; accepted: 0..2"):
        ens.flat_index(0, 3)
    with pytest.raises(TypeError, match="must be an int or an integer tensor, got 1.0"):
        ens.member_index(1.0)
    with pytest.raises(TypeError, match="got a tensor of dtype torch.float32"):
        ens.flat_index(torch.tensor([0.0]), 0)
    with pytest.raises(TypeError, match="member indices must be ints or 0-d integer tensors"):
        ens.member(torch.tensor([0, 1]), 0)


def test_default_shape_and_one_screen_repr():
    ens = PolicyEnsemble(OBS, ACT, actor_hidden=(8,), critic_hidden=(8,))
    assert ens.ensemble_shape == (5, 4)
    small = small_ensemble((2, 2))
    text = repr(small)
    assert len(text.splitlines()) <= 8
    for part in ("ensemble_shape=[2, 2]", f"observation_dim={OBS}", f"action_dim={ACT}",
                 "actor_hidden=[32, 32]", "backend='bmm'", "device=cpu", "alpha=1"):
        assert part in text, part


# ---------------------------------------------------------------- state
@pytest.mark.parametrize("backend", BACKENDS)
def test_state_dict_round_trip_resumes_to_the_same_next_update(backend):
    torch.manual_seed(8)
    ens = small_ensemble((2, 2), backend, grad_clip_norm=1.0)
    for _ in range(3):
        ens.update(make_batch(2, 2, 16))
    buffer = io.BytesIO()
    torch.save(ens.state_dict(), buffer)
    buffer.seek(0)
    torch.manual_seed(99)  # a different initialisation
    other = small_ensemble((2, 2), backend, grad_clip_norm=1.0)
    other.load_state_dict(torch.load(buffer, weights_only=False))
    batch = make_batch(2, 2, 16)
    torch.manual_seed(11)
    expected = ens.update(batch)
    torch.manual_seed(11)
    got = other.update(batch)
    assert max_abs_diff(expected, got) == 0
    for a, b in zip(ens.state_dict().values(), other.state_dict().values()):
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b)
    assert other.optimizer.state_dict()["state"][0]["step"] == 4


# ---------------------------------------------------------------- bad input
def test_bad_construction_is_refused():
    with pytest.raises(ValueError, match=r"ensemble_shape\[0\] \(N, models\) must be an int >= 1, "
                                         r"got 0"):
        PolicyEnsemble(3, 1, (0, 2))
    with pytest.raises(ValueError, match=r"ensemble_shape\[1\] \(M, policies per model\) must be an "
                                         r"int >= 1, got -1"):
        PolicyEnsemble(3, 1, (2, -1))
    with pytest.raises(ValueError, match=r"ensemble_shape must be \(N, M\) \(models, policies per model\), got 4"):
        PolicyEnsemble(3, 1, 4)
    with pytest.raises(ValueError, match=r"backend must be one of \('vmap', 'bmm'\), got 'loop'"):
        PolicyEnsemble(3, 1, (1, 1), backend="loop")
    with pytest.raises(ValueError, match=r"tau must be a finite float in \(0, 1\], got 0"):
        PolicyEnsemble(3, 1, (1, 1), tau=0)
    with pytest.raises(ValueError, match="compile=True needs backend='bmm'"):
        PolicyEnsemble(3, 1, (1, 1), backend="vmap", compile=True)
    with pytest.raises(ValueError, match="cudagraphs=True needs backend='bmm'"):
        PolicyEnsemble(3, 1, (1, 1), backend="vmap", cudagraphs=True)


def test_bad_batches_are_refused():
    ens = small_ensemble((2, 3))
    with pytest.raises(ValueError, match=r"batch_size \[N, M, b\] = \[2, 3, b\], got \[3, 2, 8\]"):
        ens.update(make_batch(3, 2, 8))
    with pytest.raises(ValueError, match=r"got \[6, 8\]"):
        ens.update(make_batch(2, 3, 8).reshape(6, 8))
    bad = make_batch(2, 3, 8)
    del bad["next", "terminated"]
    with pytest.raises(KeyError, match="terminated"):
        ens.update(bad)
    with pytest.raises(ValueError, match=r"batch\['observation'\] must have shape \[2, 3, 8, 5\], got \[2, 3, 8, 4\]"):
        ens.update(make_batch(2, 3, 8, obs=4))
    with pytest.raises(ValueError, match=r"noise must have shape \[N, M, 2, b, A\] = \[2, 3, 2, 8, 3\]"):
        ens.update(make_batch(2, 3, 8), noise=torch.randn(2, 3, 8, 3))


def test_bad_policy_index_and_member_are_refused():
    ens = small_ensemble((2, 3))
    obs = torch.randn(4, OBS)
    for bad in (6, -1):
        index = torch.tensor([0, 1, bad, 2])
        with pytest.raises(ValueError, match=rf"policy_index must be in \[0, 6\) .* got \[{bad}\]"):
            ens.indexed_policy(TensorDict({"observation": obs, "policy_index": index}, [4]))
    with pytest.raises(TypeError, match="integer tensor, got dtype torch.float32"):
        ens.indexed_policy(TensorDict({"observation": obs, "policy_index": torch.zeros(4)}, [4]))
    with pytest.raises(ValueError, match=r"batch shape \[4\] .* got shape \[2\]"):
        ens.indexed_policy(TensorDict({"observation": obs, "policy_index": torch.zeros(2, dtype=torch.long)}))
    with pytest.raises(ValueError, match=r"\[N, M\] = \[2, 3\], got \[3, 2, 5\]"):
        ens.ensemble_policy(TensorDict({"observation": torch.randn(3, 2, OBS)}, [3, 2]))
    with pytest.raises(ValueError, match=r"member \(2, 0\) is outside the ensemble shape \[2, 3\]"):
        ens.member(2, 0)


# ---------------------------------------------------------------- compile, CUDA graphs, learning
def test_compile_option_gives_the_eager_update():
    """On a CPU, compile=True is ignored (the compiled update was slower there); the compiled
    loss computation itself, what a GPU runs with compile=True, gives the eager losses."""
    torch.manual_seed(9)
    eager = small_ensemble((1, 2))
    compiled = small_ensemble((1, 2), compile=True)
    assert not compiled.compiled and compiled._fast_update and "compiled=False" in repr(compiled)
    compiled.load_state_dict(eager.state_dict())
    batch, noise = make_batch(1, 2, 8), torch.randn(1, 2, 2, 8, ACT)
    compiled._backend.compile()
    expected, got = eager.loss(batch, noise), compiled.loss(batch, noise)
    assert max_abs_diff(expected.detach(), got.detach()) < 1e-5
    assert max_abs_diff(eager.update(batch, noise), compiled.update(batch, noise)) == 0
    assert max_abs_diff(eager.actor_params.data, compiled.actor_params.data) == 0


def test_cudagraphs_option_is_ignored_off_cuda():
    """CUDA graphs exist on CUDA devices only: on a CPU cudagraphs=True is ignored (as compile=True
    is), with the same update bit for bit and the same (non-capturable) optimizer."""
    torch.manual_seed(9)
    eager = small_ensemble((1, 2))
    graphed = small_ensemble((1, 2), cudagraphs=True)
    assert not graphed.cudagraphs and "cudagraphs=False" in repr(graphed)
    assert [g["capturable"] for g in graphed.optimizer.param_groups] == [False] * 3
    graphed.load_state_dict(eager.state_dict())
    for _ in range(2):
        batch, noise = make_batch(1, 2, 8), torch.randn(1, 2, 2, 8, ACT)
        assert max_abs_diff(eager.update(batch, noise), graphed.update(batch, noise)) == 0
    assert graphed._graph is None
    assert max_abs_diff(eager.actor_params.data, graphed.actor_params.data) == 0


class HostReads(TorchDispatchMode):
    """Records every op that reads a tensor's value back to the host (``.item()``, ``bool()``,
    ``nonzero``, ...) or takes or makes a tensor on the host, with where it was called."""

    READS = ("_local_scalar_dense", "nonzero", "is_nonzero", "equal", "masked_select", "unique")

    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        on_host = any(
            isinstance(t, torch.Tensor) and t.device.type == "cpu" for t in tree_leaves((args, kwargs, out))
        )
        if on_host or func.__name__.split(".")[0] in self.READS:
            ours = [f for f in traceback.extract_stack() if "/components/" in f.filename]
            self.found.append(f"{func} at {ours[-1].filename}:{ours[-1].lineno}" if ours else str(func))
        return out


@pytest.mark.parametrize("path", ["autograd", "autograd-clip-prior", "hand-written"])
def test_the_update_reads_nothing_back_to_the_host(path, monkeypatch):
    """What cudagraphs=True captures must not wait for the device: the update (input checks, noise
    draw, losses, gradients, clipping, Polyak update) run on the meta device, which has no values,
    calls no op that reads a value to the host and touches no host tensor. Adam's step is left out
    (stubbed): on the meta device torch runs a non-capturable Adam, which does read its step
    counts; the captured update uses the fused, capturable one, which torch itself checks when a
    capture starts."""
    kwargs = dict(grad_clip_norm=0.5, action_prior=True) if path == "autograd-clip-prior" else {}
    ens = PolicyEnsemble(OBS, ACT, (2, 2), actor_hidden=HID, critic_hidden=HID, device="meta", **kwargs)
    ens._fast_update = path == "hand-written"  # on a CPU the default; runs on meta too
    monkeypatch.setattr(ens.optimizer, "step", lambda: None)
    batch = make_batch(2, 2, 8).to("meta")
    ens.update(batch)  # the hand-written update makes its workspace once, at its first call
    reads = HostReads()
    with reads:
        out = ens.update(batch)
        ens.update(batch, torch.randn(2, 2, 2, 8, ACT, device="meta"))
    assert out["loss_actor"].device.type == "meta"
    assert not reads.found, "\n".join(reads.found)


def test_members_learn_pendulum_from_real_data():
    """SAC with lambda = 1: a collector acts with the member in "policy_index" (picked at
    random at each reset), every member trains on its own batches of the shared real data."""
    torch.manual_seed(0)
    n_, m_, b, steps, random_steps = 1, 2, 128, 3000, 500
    env = make_env("gym:Pendulum-v1", seed=0)
    env.append_transform(
        TensorDictPrimer(policy_index=Categorical(2, shape=(), dtype=torch.int64), random=True)
    )
    eval_env = make_env("gym:Pendulum-v1", seed=123)
    ens = PolicyEnsemble(
        3, 1, (n_, m_), actor_hidden=(64, 64), critic_hidden=(64, 64),
        actor_lr=1e-3, critic_lr=1e-3, alpha_lr=1e-3,
    )

    def evaluate() -> torch.Tensor:
        returns = []
        with set_exploration_type(ExplorationType.DETERMINISTIC), torch.no_grad():
            for i in range(n_ * m_):
                actor = ens.member(*divmod(i, m_))
                eps = [eval_env.rollout(200, actor)["next", "reward"].sum() for _ in range(2)]
                returns.append(torch.stack(eps).mean())
        return torch.stack(returns)

    before = evaluate()
    buffer = ReplayBuffer(storage=LazyTensorStorage(steps), batch_size=n_ * m_ * b)
    collector = Collector(
        env, ens.indexed_policy, frames_per_batch=100, total_frames=steps,
        init_random_frames=random_steps,
    )
    seen = 0
    played = set()
    for data in collector:
        buffer.extend(data.reshape(-1))
        seen += data.numel()
        if seen > random_steps:
            played.update(data["policy_index"].tolist())
            for _ in range(data.numel()):
                ens.update(buffer.sample().reshape(n_, m_, b))
    collector.shutdown()
    after = evaluate()
    assert played == {0, 1}
    # random Pendulum policies score about -1200; both members end far above
    assert (after > before + 400).all(), (before, after)
    assert after.mean() > -600, after
