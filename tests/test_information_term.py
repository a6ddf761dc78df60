"""Marino & Yue's information term of imagined outcomes: zero when the members agree, positive
in expectation for the producing member when they disagree, the batched pass equal to a loop
over members, numerically stable; and its use as a reward term in ImaginedRolloutEnv."""

from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict
from torchrl.envs.utils import check_env_specs

from torchrl_psmbpo.world_model.dynamics import DynamicsEnsemble, gaussian_log_prob, information_gain
from torchrl_psmbpo.world_model.imagined_env import ImaginedRolloutEnv

D, A, E = 3, 2, 5


def make_model(identical: bool = False, spread: float = 0.3) -> DynamicsEnsemble:
    torch.manual_seed(0)
    model = DynamicsEnsemble(D, A, num_members=E, num_elites=3, hidden=32, depth=2)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(spread * torch.randn_like(p))
            if identical:
                p.copy_(p[:1].expand_as(p))
        model.input_scale.copy_(torch.tensor([1.0, 2.0, 0.5, 1.0, 1.0]))
        model.target_loc.copy_(torch.tensor([0.1, -0.2, 0.0, 0.5]))
        model.target_scale.copy_(torch.tensor([0.1, 0.2, 0.3, 1.0]))
    return model


def never(obs, action, next_obs):
    return torch.zeros(next_obs.shape[:-1] + (1,), dtype=torch.bool)


def loop_information(model, obs, action, next_obs, reward, source, members):
    """The term member by member, with each member exported as a plain nn.Sequential."""
    x = model.transform_inputs(model.make_inputs(obs, action)).reshape(-1, D + A)
    y = model.transform_targets(model.make_targets(obs, next_obs, reward)).reshape(-1, D + 1)
    log_probs = []
    for k in members:
        out = model.member_network(k)(x)
        mean, raw = out[:, : D + 1].clamp(-model.clip, model.clip), out[:, D + 1 :]
        hi, lo = model.max_logvar[k, 0], model.min_logvar[k, 0]
        logvar = hi - torch.nn.functional.softplus(hi - raw)
        logvar = lo + torch.nn.functional.softplus(logvar - lo)
        normal = torch.distributions.Normal(mean.double(), (0.5 * logvar).exp().double())
        log_probs.append(normal.log_prob(y.double()).sum(-1))
    log_probs = torch.stack(log_probs)  # [E', rows]
    own = log_probs[source.reshape(-1), torch.arange(y.shape[0])]
    return (own - torch.log(log_probs.exp().mean(0))).reshape(source.shape)


# ---------------------------------------------------------------- the term itself
@pytest.mark.parametrize("selection", ["stacked", "random"])
def test_information_is_zero_when_all_members_agree(selection):
    model = make_model(identical=True)
    lead = (E,) if selection == "stacked" else (3,)
    _, _, info = model.predict_with_information(
        torch.randn(*lead, 40, D), torch.rand(*lead, 40, A) * 2 - 1, selection=selection
    )
    assert info.shape == (*lead, 40, 1)
    assert info.abs().max() < 1e-5


def test_information_is_positive_in_expectation_for_the_producing_member():
    """E_{y ~ p_n}[info] = KL(p_n || mixture) > 0 when members disagree, and info <= log E."""
    model = make_model()
    obs = torch.randn(16, D).expand(E, 2000, 16, D)  # 16 states, 2000 outcomes each, per member
    action = (torch.rand(16, A) * 2 - 1).expand(E, 2000, 16, A)
    torch.manual_seed(1)
    _, _, info = model.predict_with_information(obs, action, selection="stacked")
    per_state = info.mean(1)  # [E, 16, 1]: Monte Carlo KL(p_n || mixture) per member and state
    stderr = info.std(1) / math.sqrt(2000)
    assert (per_state > 5 * stderr).all()
    assert info.max() <= math.log(E) + 1e-5
    assert (info < 0).any()  # single outcomes can be negative: only the expectation is >= 0


@pytest.mark.parametrize("selection", ["stacked", "random"])
@pytest.mark.parametrize("members", [None, [4, 1, 2]], ids=["all", "subset"])
def test_batched_information_equals_a_loop_over_members(selection, members):
    model = make_model()
    used = list(range(E)) if members is None else members
    lead = (len(used),) if selection == "stacked" else (2, 3)
    obs, action = torch.randn(*lead, 7, D), torch.rand(*lead, 7, A) * 2 - 1
    torch.manual_seed(3)
    next_obs, reward, info = model.predict_with_information(
        obs, action, selection=selection, members=members
    )
    torch.manual_seed(3)
    if selection == "stacked":
        source = torch.arange(len(used)).view(-1, 1).expand(*lead, 7)
    else:  # the draw predict_with_information made first
        source = torch.randint(len(used), (obs[..., 0].numel(),)).view(*lead, 7)
    expected = loop_information(model, obs, action, next_obs, reward, source, used)
    torch.testing.assert_close(info.squeeze(-1).double(), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("selection", ["stacked", "random"])
def test_same_outcomes_as_predict(selection):
    """Switching the term on does not change the imagined dynamics: same draws, same outcomes."""
    model = make_model()
    lead = (E,) if selection == "stacked" else (4,)
    obs, action = torch.randn(*lead, 9, D), torch.rand(*lead, 9, A) * 2 - 1
    torch.manual_seed(7)
    ref = model.predict(obs, action, selection=selection)
    torch.manual_seed(7)
    got = model.predict_with_information(obs, action, selection=selection)
    torch.testing.assert_close(got[0], ref[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got[1], ref[1], rtol=1e-5, atol=1e-5)


def test_information_gain_is_stable_and_exact():
    # far-apart members: densities underflow in exp, not in logsumexp
    log_probs = torch.tensor([[-1e4, -5.0, 0.0], [-2e4, -5.0, 0.0], [-3e4, -5.0, -1e4]], dtype=torch.float64)
    info = information_gain(log_probs, torch.tensor([0, 1, 2]))
    assert torch.isfinite(info).all()
    expected = torch.tensor([math.log(3), 0.0, -1e4 + math.log(3) - math.log(2)], dtype=torch.float64)
    torch.testing.assert_close(info, expected)
    assert torch.isfinite(information_gain(log_probs.float(), torch.tensor([0, 1, 2]))).all()
    # against a direct float64 computation on moderate values
    lp = torch.randn(4, 50, dtype=torch.float64)
    src = torch.randint(4, (50,))
    direct = lp[src, torch.arange(50)] - torch.log(lp.exp().mean(0))
    torch.testing.assert_close(information_gain(lp, src), direct)
    assert float(gaussian_log_prob(torch.zeros(3), torch.zeros(3), torch.zeros(3))) == pytest.approx(
        -1.5 * math.log(2 * math.pi)
    )


def test_predict_with_information_refuses_selections_without_a_producing_member():
    model = make_model()
    for selection in ("ensemble_mean", 2):
        with pytest.raises(ValueError, match="accepted: 'stacked', 'random'"):
            model.predict_with_information(torch.randn(5, D), torch.rand(5, A), selection=selection)


# ---------------------------------------------------------------- in the imagined env
@pytest.mark.parametrize("mode", ["per_model", "random"])
def test_env_adds_the_signed_weighted_term_to_the_reward(mode):
    model = make_model()
    n = E if mode == "per_model" else 1
    start = TensorDict({"observation": torch.randn(6, D)}, [6])
    policy_actions = torch.rand(4, n, 2, 6, A) * 2 - 1
    outs = {}
    for sign, weight in (("pessimistic", 0.0), ("pessimistic", 0.5), ("optimistic", 0.5)):
        env = ImaginedRolloutEnv(
            model, never, (n, 2, 6), member_mode=mode, information_weight=weight, information_sign=sign
        )
        steps = iter(policy_actions)

        def policy(td):
            return td.set("action", next(steps))

        torch.manual_seed(11)
        outs[sign, weight] = env.rollout(4, policy, tensordict=start)
    base = outs["pessimistic", 0.0]
    assert "information" not in base["next"].keys()
    info = outs["pessimistic", 0.5]["next", "information"]
    assert info.shape == (n, 2, 6, 4, 1) and info.abs().max() > 1e-3
    torch.testing.assert_close(outs["optimistic", 0.5]["next", "information"], info)
    for sign, s in (("pessimistic", -1.0), ("optimistic", 1.0)):
        data = outs[sign, 0.5]
        torch.testing.assert_close(data["next", "observation"], base["next", "observation"], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(data["next", "reward"], base["next", "reward"] + s * 0.5 * info, rtol=1e-5, atol=1e-5)
    assert (outs["pessimistic", 0.5]["information"][..., 0, :] == 0).all()  # the reset value


def test_env_with_information_passes_check_env_specs_and_freezes_done_steps():
    model = make_model()

    def falls(obs, action, next_obs):
        return next_obs[..., :1] > 0.3

    env = ImaginedRolloutEnv(
        model, falls, (E, 2, 8), information_weight=1.0, start_states=torch.randn(50, D)
    )
    check_env_specs(env)
    assert env.observation_spec["information"].shape == (E, 2, 8, 1)
    data = env.rollout(5)
    done_before = data["done"].squeeze(-1)  # frozen steps: done at the step's start
    assert done_before.any()
    assert (data["next", "information"].squeeze(-1)[done_before] == 0).all()
    assert (data["next", "reward"].squeeze(-1)[done_before] == 0).all()


def test_bad_information_options_are_refused():
    model = make_model()
    with pytest.raises(ValueError, match="information_weight must be a finite number >= 0, got -0.1"):
        ImaginedRolloutEnv(model, never, (E, 1, 2), information_weight=-0.1)
    with pytest.raises(ValueError, match="information_sign='bonus' is not accepted; accepted: \\('pessimistic', 'optimistic'\\)"):
        ImaginedRolloutEnv(model, never, (E, 1, 2), information_weight=1.0, information_sign="bonus")
