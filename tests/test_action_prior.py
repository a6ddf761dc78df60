"""PolicyEnsemble's optional action prior p_a(a|s) (Marino & Yue): the KL estimate, the
reduction to SAC with a uniform prior, the prior's learning, acting with it, state, bad input."""

from __future__ import annotations

import io
import math

import pytest
import torch
from tensordict import TensorDict
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.modules import TanhNormal

import torchrl_psmbpo.policy._update as update_module
from helpers import sac_batch
from torchrl_psmbpo.policy._networks import normal_kl, tanh_normal_log_prob, tanh_normal_rsample
from torchrl_psmbpo.policy.ensemble import PolicyEnsemble

BACKENDS = ("bmm", "vmap")
OBS, ACT, HID = 5, 3, (32, 32)


def ensemble(shape=(2, 2), backend="bmm", **kwargs) -> PolicyEnsemble:
    return PolicyEnsemble(OBS, ACT, shape, actor_hidden=HID, critic_hidden=HID, backend=backend, **kwargs)


def make_batch(n: int, m: int, b: int, observation: torch.Tensor | None = None) -> TensorDict:
    return sac_batch(n, m, b, OBS, ACT, observation=observation)


def closed_form_kl(ens: PolicyEnsemble, observation: torch.Tensor) -> torch.Tensor:
    """Per-member mean over ``observation [N, M, b, O]`` of KL(pi || p_a), closed form."""
    k = ens.num_members
    obs = observation.reshape(k, -1, OBS)
    with torch.no_grad():
        loc, scale = ens._backend.actor_all(obs)
        p_loc, p_scale = ens._backend.prior_all(obs)
    return normal_kl(loc, scale, p_loc, p_scale).mean(-1).view(ens.ensemble_shape)


# ---------------------------------------------------------------- the KL estimate
def test_tanh_corrected_log_density_is_torchrls_tanh_normal():
    torch.manual_seed(0)
    loc, scale = torch.randn(500, ACT), torch.rand(500, ACT) + 0.2
    pre = loc + torch.randn(500, ACT) * scale
    action = torch.tanh(pre)
    keep = action.abs().amax(-1) < 0.99  # away from the clamp of TorchRL's safe tanh
    ref = TanhNormal(loc, scale, low=-1.0, high=1.0).log_prob(action)
    torch.testing.assert_close(tanh_normal_log_prob(loc, scale, pre)[keep], ref[keep], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sampled_kl_estimate_matches_the_closed_form_before_the_tanh(backend):
    """The actor's KL term, log pi(a|s) - log p_a(a|s) at a ~ pi (both tanh-corrected), is an
    unbiased estimate of the Gaussian KL before the tanh (a bijection leaves the KL unchanged).

    b = 20000 samples per member over 8 distinct states; the tolerance is 5 standard errors of
    the mean, measured from the same samples."""
    torch.manual_seed(0)
    ens = ensemble((1, 2), backend, action_prior=True)
    b = 20000
    obs = torch.randn(1, 2, 8, OBS).repeat_interleave(b // 8, dim=2)
    noise = torch.randn(1, 2, 2, b, ACT)
    out = ens.loss(make_batch(1, 2, b, obs), noise)
    expected = closed_form_kl(ens, obs)
    # the same estimate recomputed sample by sample, for its standard error
    with torch.no_grad():
        loc, scale = ens._backend.actor_all(obs.reshape(2, b, OBS))
        p_loc, p_scale = ens._backend.prior_all(obs.reshape(2, b, OBS))
        eps = noise.reshape(2, 2, b, ACT)[:, 1]
        _, log_prob = tanh_normal_rsample(loc, scale, eps)
        samples = log_prob - tanh_normal_log_prob(p_loc, p_scale, loc + eps * scale)
    torch.testing.assert_close(out["kl_prior"].flatten(), samples.mean(-1), rtol=1e-5, atol=1e-5)
    stderr = samples.std(-1) / math.sqrt(b)
    assert (expected.flatten() > 10 * stderr).all()  # a KL clearly away from 0 is tested
    assert ((out["kl_prior"].flatten() - expected.flatten()).abs() < 5 * stderr).all()
    # the prior's loss is the closed form itself
    torch.testing.assert_close(out["loss_prior"].detach(), expected, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- reduction to SAC
@pytest.mark.parametrize("backend", BACKENDS)
def test_uniform_prior_gives_sacs_gradients_and_updates(backend, monkeypatch):
    """With p_a fixed to the uniform density 2^-A on [-1, 1]^A (patched in place of the
    learned prior's log-density) and the default target_kl, the objective is SAC's up to
    constants: log pi - log p_a = log pi + A log 2. Then
    * the actor loss is SAC's plus alpha * A * log 2 (same actor gradient),
    * the temperature loss and gradient are SAC's (target_kl = A log 2 - target_entropy),
    * the soft target is SAC's minus gamma * alpha * A * log 2 on non-terminal transitions,
      so SAC fed rewards shifted by that constant has the same critic loss and gradient.
    We check the gradients of every actor, critic and temperature, and three full updates."""
    torch.manual_seed(3)
    plain = ensemble(backend=backend, init_alpha=0.7, gamma=0.9)
    torch.manual_seed(3)
    prior = ensemble(backend=backend, init_alpha=0.7, gamma=0.9, action_prior=True)
    prior_state = prior.state_dict()
    for key, value in plain.state_dict().items():
        if isinstance(value, torch.Tensor):  # the SAC members are initialised identically
            assert torch.equal(value, prior_state[key]), key
    uniform = -ACT * math.log(2.0)
    monkeypatch.setattr(
        update_module, "tanh_normal_log_prob", lambda loc, scale, pre: torch.full_like(pre[..., 0], uniform)
    )
    assert float(prior.target_kl) == pytest.approx(ACT * math.log(2.0) + ACT)

    def shifted(batch: TensorDict, ens: PolicyEnsemble) -> TensorDict:
        alpha = ens.log_alpha.detach().exp().view(2, 2, 1, 1)
        not_term = (~batch["next", "terminated"]).float()
        out = batch.clone()
        out["next", "reward"] = batch["next", "reward"] - ens.gamma * not_term * alpha * ACT * math.log(2.0)
        return out

    batch, noise = make_batch(2, 2, 64), torch.randn(2, 2, 2, 64, ACT)
    ref = plain.loss(shifted(batch, plain), noise)
    got = prior.loss(batch, noise)
    alpha = got["alpha"]
    torch.testing.assert_close(got["loss_actor"], ref["loss_actor"] + alpha * ACT * math.log(2.0), rtol=1e-5, atol=1e-5)
    for key in ("loss_qvalue", "loss_alpha", "alpha", "entropy"):
        torch.testing.assert_close(got[key], ref[key], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got["kl_prior"], -got["entropy"] - uniform, rtol=1e-5, atol=1e-5)
    for ens, losses in ((plain, ref), (prior, got)):
        ens.optimizer.zero_grad()
        (losses["loss_actor"].sum() + losses["loss_qvalue"].sum() + losses["loss_alpha"].sum()).backward()
    for name in ("_actor_leaves", "_critic_leaves"):
        for p, q in zip(getattr(plain, name), getattr(prior, name)):
            torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(prior.log_alpha.grad, plain.log_alpha.grad, rtol=1e-5, atol=1e-6)

    for _ in range(3):
        batch, noise = make_batch(2, 2, 64), torch.randn(2, 2, 2, 64, ACT)
        plain.update(shifted(batch, plain), noise)
        prior.update(batch, noise)
    for name in ("_actor_leaves", "_critic_leaves", "_target_leaves"):
        for p, q in zip(getattr(plain, name), getattr(prior, name)):
            torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(prior.log_alpha, plain.log_alpha, rtol=1e-5, atol=1e-6)


def test_default_path_is_plain_sac():
    ens = ensemble()
    assert not ens.action_prior
    assert not any("prior" in key or "target_kl" in key for key in ens.state_dict())
    assert set(ens.update(make_batch(2, 2, 8)).keys()) == {"loss_actor", "loss_qvalue", "loss_alpha", "alpha", "entropy"}
    with pytest.raises(ValueError, match="prior_policy needs PolicyEnsemble\\(..., action_prior=True\\)"):
        ens.prior_policy


# ---------------------------------------------------------------- learning, acting, state
def test_prior_learns_a_fixed_policy():
    """With the policy frozen (actor lr 0), 150 updates bring the prior's closed-form
    KL(pi || p_a) on held-out states below a fifth of its initial value; the prior gets no
    gradient from the actor or critic losses, so the policy does not move."""
    torch.manual_seed(0)
    ens = ensemble((1, 2), action_prior=True, prior_lr=3e-3)
    ens.optimizer.param_groups[0]["lr"] = 0.0  # the actors' group: a fixed policy
    actor_before = [p.clone() for p in ens._actor_leaves]
    held_out = torch.randn(1, 2, 256, OBS)
    before = closed_form_kl(ens, held_out)
    history = []
    for _ in range(150):
        history.append(ens.update(make_batch(1, 2, 64))["loss_prior"])
    after = closed_form_kl(ens, held_out)
    assert (before > 0.02).all()
    assert (after < 0.2 * before).all(), (before, after)
    assert (history[-1] < history[0]).all()
    for p, q in zip(actor_before, ens._actor_leaves):
        assert torch.equal(p, q)


def test_prior_learning_rate_is_its_own():
    ens = ensemble(action_prior=True, actor_lr=1e-3, prior_lr=2e-5)
    lrs = [group["lr"] for group in ens.optimizer.param_groups]
    assert lrs == [1e-3, 3e-4, 3e-4, 2e-5]
    assert len(ens.optimizer.param_groups[3]["params"]) == len(list(ens.prior_params.values(True, True)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_prior_policy_acts_with_each_members_prior(backend):
    torch.manual_seed(0)
    ens = ensemble((2, 3), backend, action_prior=True, prior_hidden=(16,))
    obs = torch.randn(2, 3, 7, OBS)
    td = TensorDict({"observation": obs}, [2, 3, 7])
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        action = ens.prior_policy(td.clone())["action"]
        for n in range(2):
            for m in range(3):
                alone = ens.prior_member(n, m)(TensorDict({"observation": obs[n, m]}, [7]))["action"]
                torch.testing.assert_close(action[n, m], alone, rtol=1e-5, atol=1e-6)
                policy = ens.member(n, m)(TensorDict({"observation": obs[n, m]}, [7]))["action"]
                assert not torch.allclose(alone, policy)  # the prior, not the policy
    sampled = ens.prior_policy(td.clone())["action"]
    assert sampled.shape == (2, 3, 7, ACT) and not torch.equal(sampled, action)
    assert ens.prior_policy.in_keys == ens.ensemble_policy.in_keys
    assert ens.prior_policy.out_keys == ens.ensemble_policy.out_keys


def test_backends_agree_with_the_prior():
    results = []
    for backend in BACKENDS:
        torch.manual_seed(5)
        ens = ensemble(backend=backend, action_prior=True, prior_lr=1e-3)
        torch.manual_seed(6)
        for _ in range(3):
            out = ens.update(make_batch(2, 2, 16), torch.randn(2, 2, 2, 16, ACT))
        results.append((out, [p.clone() for p in ens._prior_leaves], ens.log_alpha.detach().clone()))
    (out_a, prior_a, alpha_a), (out_b, prior_b, alpha_b) = results
    for key in out_a.keys():
        torch.testing.assert_close(out_a[key], out_b[key], rtol=1e-5, atol=1e-5)
    for p, q in zip(prior_a, prior_b):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(alpha_a, alpha_b)


def test_state_dict_round_trip_with_the_prior():
    torch.manual_seed(0)
    ens = ensemble(action_prior=True, target_kl=0.5)
    ens.update(make_batch(2, 2, 8))
    buffer = io.BytesIO()
    torch.save(ens.state_dict(), buffer)
    buffer.seek(0)
    torch.manual_seed(1)
    other = ensemble(action_prior=True)  # other weights, the default target_kl
    other.load_state_dict(torch.load(buffer, weights_only=False))
    assert float(other.target_kl) == 0.5
    batch, noise = make_batch(2, 2, 8), torch.randn(2, 2, 2, 8, ACT)
    a, b = ens.update(batch, noise), other.update(batch, noise)
    for key in a.keys():
        assert torch.equal(a[key], b[key]), key
    for p, q in zip(ens._prior_leaves, other._prior_leaves):
        assert torch.equal(p, q)


def test_bad_prior_options_are_refused():
    with pytest.raises(ValueError, match="target_kl must be a finite float > 0, got -1.0"):
        ensemble(action_prior=True, target_kl=-1.0)
    with pytest.raises(ValueError, match="prior_lr must be a finite float > 0, got 0.0"):
        ensemble(action_prior=True, prior_lr=0.0)
    with pytest.raises(ValueError, match="prior_hidden width must be an int >= 1, got 0"):
        ensemble(action_prior=True, prior_hidden=(0,))
    with pytest.raises(TypeError, match="action_prior must be a bool, got 'yes'"):
        ensemble(action_prior="yes")
