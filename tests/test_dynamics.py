"""The dynamics ensemble and its maximum-likelihood trainer."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from tensordict import TensorDict
from torchrl.data import LazyTensorStorage, ListStorage, ReplayBuffer

from torchrl_psmbpo.world_model.dynamics import DynamicsEnsemble
from torchrl_psmbpo.world_model.trainer import DynamicsTrainer, mbpo_weight_decay

OBS_RANGE = torch.tensor([1.0, 2.0])  # training states: theta in [-1, 1], theta_dot in [-2, 2]
NOISE = 0.01


def pendulum(obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise-free damped pendulum step (dt = 0.05) and a quadratic reward."""
    th, thd = obs[..., 0], obs[..., 1]
    thd2 = thd + 0.05 * (-10.0 * torch.sin(th) - 0.5 * thd + 3.0 * act[..., 0])
    th2 = th + 0.05 * thd2
    reward = -(th**2) - 0.1 * thd**2 - 0.01 * act[..., 0] ** 2
    return torch.stack([th2, thd2], -1), reward.unsqueeze(-1)


def pendulum_data(n: int, seed: int = 0, scale: float = 1.0) -> TensorDict:
    g = torch.Generator().manual_seed(seed)
    obs = (torch.rand(n, 2, generator=g) * 2 - 1) * OBS_RANGE * scale
    act = torch.rand(n, 1, generator=g) * 2 - 1
    nxt, rew = pendulum(obs, act)
    nxt = nxt + NOISE * torch.randn(nxt.shape, generator=g)
    return TensorDict({"observation": obs, "action": act, "next": {"observation": nxt, "reward": rew}}, [n])


def small_model(seed: int = 0, **kwargs) -> DynamicsEnsemble:
    torch.manual_seed(seed)
    kw = dict(num_members=5, num_elites=3, hidden=64, depth=2)
    kw.update(kwargs)
    return DynamicsEnsemble(2, 1, **kw)


@pytest.fixture(scope="module")
def trained():
    model = small_model()
    trainer = DynamicsTrainer(model, max_epochs=60, patience=8, seed=0, batch_size=256)
    metrics = trainer.train(pendulum_data(2000))
    return model, metrics


# ---------------------------------------------------------------------------- learning
def test_every_member_learns_the_pendulum(trained):
    model, metrics = trained
    test = pendulum_data(2000, seed=1)
    obs, act = test["observation"], test["action"]
    true_next, true_rew = pendulum(obs, act)
    delta_var = (true_next - obs).var(0)
    with torch.no_grad():
        for k in range(model.num_members):
            nxt, rew = model.predict(obs, act, selection=k, deterministic=True)
            # Held-out error of the next state, relative to the variance of the true change.
            rel_state = ((nxt - true_next) ** 2).mean(0) / delta_var
            rel_rew = ((rew - true_rew) ** 2).mean() / true_rew.var()
            assert (rel_state < 0.01).all(), (k, rel_state)
            assert rel_rew < 0.01, (k, rel_rew)
    # The validation metrics are computed in normalised target space and are small too.
    assert (metrics["val_mse"] < 0.05).all(), metrics["val_mse"]
    assert metrics["num_val"] == 400 and metrics["num_train"] == 1600


def test_predicted_variance_grows_away_from_data(trained):
    model, _ = trained
    near = pendulum_data(1000, seed=2)
    far = pendulum_data(1000, seed=3, scale=4.0)
    far = far[(far["observation"].abs() > 2 * OBS_RANGE).any(-1)]  # outside the training box
    with torch.no_grad():
        spread = {}
        for name, td in (("near", near), ("far", far)):
            mean, logvar = model.gaussian(td["observation"], td["action"])
            spread[name] = mean.var(0).mean().item()  # disagreement between members
            total = model.predict(td["observation"], td["action"], selection="ensemble_mean")
            assert all(torch.isfinite(t).all() for t in total)
    assert spread["far"] > 100 * spread["near"], spread


def test_elites_are_the_lowest_validation_losses(trained):
    model, metrics = trained
    order = torch.argsort(metrics["val_mse"])
    assert metrics["elites"] == order[: model.num_elites].tolist() == model.elites
    td = TensorDict({"observation": torch.zeros(3, 4, 2), "action": torch.zeros(3, 4, 1)}, [3, 4])
    out = model(td.clone(), selection="stacked", members="elites", deterministic=True)
    for i, k in enumerate(model.elites):
        alone, _ = model.predict(td["observation"][i], td["action"][i], selection=k, deterministic=True)
        torch.testing.assert_close(out["next", "observation"][i], alone, rtol=0, atol=1e-6)
    elite_model = small_model(elites_only=True)
    elite_model.load_state_dict(model.state_dict())
    assert elite_model.elites == model.elites
    out = elite_model(td.clone(), selection="stacked", deterministic=True)
    assert out["next", "observation"].shape == (3, 4, 2)
    with pytest.raises(ValueError, match="leading dimension of size 3"):
        elite_model(td[:1].expand(5, 4).clone(), selection="stacked")


# ---------------------------------------------------------------------------- batching
def test_batched_pass_equals_each_member_alone():
    model = small_model(hidden=32, depth=3)
    with torch.no_grad():
        for p in model.parameters():  # move away from the symmetric init
            p.add_(0.05 * torch.randn_like(p))
    x = torch.randn(5, 17, 3)
    mean, logvar = model.network(x)
    for k in range(model.num_members):
        raw = model.member_network(k)(x[k])
        m_k, raw_lv = raw.split(model.target_dim, -1)
        lo, hi = model.min_logvar[k], model.max_logvar[k]
        lv = hi - torch.nn.functional.softplus(hi - raw_lv)
        lv = lo + torch.nn.functional.softplus(lv - lo)
        torch.testing.assert_close(mean[k], m_k, rtol=0, atol=1e-5)
        torch.testing.assert_close(logvar[k], lv, rtol=0, atol=1e-5)
    # A shared input is the same as the input repeated per member.
    shared, _ = model.network(x[0])
    torch.testing.assert_close(shared, model.network(x[0].expand(5, 17, 3))[0], rtol=0, atol=0)
    # A subset of members gathers the right weights.
    sub, _ = model.network(x[[3, 1]], torch.tensor([3, 1]))
    torch.testing.assert_close(sub, mean[[3, 1]], rtol=0, atol=1e-6)


def test_random_member_selection_routes_each_sample_to_its_member():
    model = small_model()
    x = torch.randn(300, 3)
    assignment = torch.randint(5, (300,))
    mean, logvar = model._network_assigned(x, assignment, None)
    all_mean, all_logvar = model.network(x)
    rows = torch.arange(300)
    torch.testing.assert_close(mean, all_mean[assignment, rows], rtol=0, atol=1e-5)
    torch.testing.assert_close(logvar, all_logvar[assignment, rows], rtol=0, atol=1e-5)
    # Through predict: every deterministic prediction is one of the elites' predictions, and
    # every elite is used.
    obs, act = torch.randn(400, 2), torch.rand(400, 1)
    per_member = torch.stack(
        [model.predict(obs, act, selection=k, deterministic=True)[0] for k in range(5)]
    )
    pred, _ = model.predict(obs, act, selection="random", members="elites", deterministic=True)
    match = ((pred.unsqueeze(0) - per_member).abs().amax(-1) < 1e-5)
    assert match.any(0).all()
    used = set(match.float().argmax(0).tolist())
    assert used == set(model.elites)


def test_members_are_independent():
    model = small_model()
    trainer = DynamicsTrainer(model, seed=0, max_epochs=1)
    x, y = torch.randn(5, 64, 3), torch.randn(5, 64, 3)
    nll_term, _ = trainer._member_losses(x, y)
    for i in range(model.num_members):
        model.zero_grad()
        (nll_term[i] + 0.01 * model.logvar_bound_penalty()[i]).backward(retain_graph=True)
        for name, p in model.named_parameters():
            others = torch.ones(model.num_members, dtype=torch.bool)
            others[i] = False
            assert p.grad[i].abs().sum() > 0, (name, i)
            assert (p.grad[others] == 0).all(), (name, i)


def test_tensordict_interface_and_keys():
    model = small_model(in_keys=("obs", "act"), out_keys=(("nxt", "obs"), "rew"))
    td = TensorDict({"obs": torch.randn(4, 6, 2), "act": torch.rand(4, 6, 1)}, [4, 6])
    out = model(td)
    assert out is td
    assert out["nxt", "obs"].shape == (4, 6, 2) and out["rew"].shape == (4, 6, 1)
    stacked = TensorDict({"obs": torch.randn(5, 7, 2), "act": torch.rand(5, 7, 1)}, [5, 7])
    out = model(stacked, selection="stacked", deterministic=True)
    for k in range(5):
        alone, _ = model.predict(stacked["obs"][k], stacked["act"][k], selection=k, deterministic=True)
        torch.testing.assert_close(out["nxt", "obs"][k], alone, rtol=0, atol=1e-6)


def test_sampling_noise_matches_predicted_variance():
    model = small_model()
    obs, act = torch.zeros(20000, 2), torch.zeros(20000, 1)
    torch.manual_seed(0)
    nxt, rew = model.predict(obs, act, selection=2)
    mean, logvar = model.gaussian(obs[:1], act[:1], members=[2])
    target = torch.cat([nxt - obs, rew], -1)
    torch.testing.assert_close(target.mean(0), mean[0, 0], rtol=0, atol=0.05)
    torch.testing.assert_close(target.var(0).log(), logvar[0, 0], rtol=0, atol=0.05)


# ---------------------------------------------------------------------------- training machinery
def test_retraining_keeps_a_trained_epoch_unless_asked_to_keep_the_start():
    """MBPO's bnn.py: each call's snapshots start empty, so a retraining always ends with weights
    it trained, even when the (redrawn) held-out split favours the weights it started from.
    With a learning rate so large that every epoch makes things worse, ``keep_start_weights``
    (mbrl-lib) ends where it started; the default does not."""
    data = pendulum_data(600)
    for keep in (False, True):
        torch.manual_seed(0)
        model = small_model()
        trainer = DynamicsTrainer(model, seed=0, patience=2, max_epochs=50, batch_size=64,
                                  keep_start_weights=keep)
        trainer.train(data)
        start = {k: v.clone() for k, v in model.layers.state_dict().items()}
        for group in trainer.optimizer.param_groups:
            group["lr"] = 10.0
        metrics = trainer.train(data)
        unchanged = all(torch.equal(start[k], v) for k, v in model.layers.state_dict().items())
        if keep:
            assert (metrics["best_epoch"] == 0).all() and metrics["epochs"] == 2 and unchanged
            torch.testing.assert_close(metrics["val_mse"], torch.tensor(metrics["history"][0]))
        else:
            assert (metrics["best_epoch"] >= 1).all() and not unchanged
            assert (metrics["val_mse"] > torch.tensor(metrics["history"][0])).all()


def test_early_stopping_restores_each_members_best_weights():
    model = small_model()
    trainer = DynamicsTrainer(model, seed=0, patience=2, max_epochs=500, batch_size=64)
    metrics = trainer.train(pendulum_data(600))
    assert metrics["stopped_early"] and metrics["epochs"] < 500
    history = torch.tensor(metrics["history"])  # [epochs + 1, E], row 0 = before training
    assert history.shape == (metrics["epochs"] + 1, 5)
    best = metrics["best_epoch"]
    assert (best >= 1).all() and (best <= metrics["epochs"] - 2).all()
    # The restored weights reproduce each member's best recorded validation loss.
    restored = history[best, torch.arange(5)]
    torch.testing.assert_close(metrics["val_mse"], restored, rtol=1e-4, atol=1e-6)
    assert (restored <= history.min(0).values * 1.0101 + 1e-7).all()


def test_normalisation_round_trip_and_statistics():
    for delta in (True, False):
        model = small_model(predict_delta=delta)
        data = pendulum_data(500)
        obs, nxt, rew = data["observation"], data["next", "observation"], data["next", "reward"]
        y = model.make_targets(obs, nxt, rew)
        expected_state = nxt - obs if delta else nxt
        torch.testing.assert_close(y[:, :2], expected_state)
        x = model.make_inputs(obs, data["action"])
        model.fit_normalizers(x, y)
        xn, yn = model.transform_inputs(x), model.transform_targets(y)
        torch.testing.assert_close(xn.mean(0), torch.zeros(3), rtol=0, atol=1e-5)
        torch.testing.assert_close(xn.std(0, unbiased=False), torch.ones(3), rtol=0, atol=1e-4)
        torch.testing.assert_close(yn.std(0, unbiased=False), torch.ones(3), rtol=0, atol=1e-4)
        torch.testing.assert_close(model.inverse_transform_targets(yn), y, rtol=0, atol=1e-5)
        back_next, back_rew = model.targets_to_transition(obs, y)
        torch.testing.assert_close(back_next, nxt, rtol=0, atol=1e-6)
        torch.testing.assert_close(back_rew, rew)
    raw = small_model(normalize_targets=False)
    raw.fit_normalizers(x, y)
    assert (raw.target_loc == 0).all() and (raw.target_scale == 1).all()
    assert not torch.allclose(raw.input_scale, torch.ones(3))
    # A constant input dimension keeps scale 1 instead of dividing by zero.
    x_const = x.clone()
    x_const[:, 2] = 0.3
    raw.fit_normalizers(x_const, y)
    assert raw.input_scale[2] == 1.0


def test_direct_targets_also_learn():
    model = small_model(predict_delta=False)
    DynamicsTrainer(model, seed=0, max_epochs=60, batch_size=128).train(pendulum_data(2000))
    test = pendulum_data(500, seed=1)
    true_next, _ = pendulum(test["observation"], test["action"])
    nxt, _ = model.predict(test["observation"], test["action"], selection="ensemble_mean", deterministic=True)
    rel = ((nxt - true_next) ** 2).mean(0) / true_next.var(0)
    assert (rel < 0.02).all(), rel


def test_determinism_under_a_seed():
    runs = []
    for _ in range(2):
        model = small_model(seed=3)
        metrics = DynamicsTrainer(model, seed=7, max_epochs=3, batch_size=64).train(pendulum_data(400))
        torch.manual_seed(11)
        pred = model.predict(torch.randn(10, 2), torch.rand(10, 1))
        runs.append((model.state_dict(), metrics, pred))
    (sd_a, m_a, p_a), (sd_b, m_b, p_b) = runs
    for k in sd_a:
        assert torch.equal(sd_a[k], sd_b[k]), k
    assert torch.equal(m_a["val_mse"], m_b["val_mse"]) and m_a["elites"] == m_b["elites"]
    assert torch.equal(p_a[0], p_b[0]) and torch.equal(p_a[1], p_b[1])


def test_training_resumes_from_state_dicts():
    data = pendulum_data(400)
    model = small_model(seed=1)
    trainer = DynamicsTrainer(model, seed=2, max_epochs=2, batch_size=64)
    trainer.train(data)
    model_state = {k: v.clone() for k, v in model.state_dict().items()}
    trainer_state = copy.deepcopy(trainer.state_dict())  # as torch.save would: Adam's state is live
    continued = trainer.train(data)

    model2 = small_model(seed=99)
    model2.load_state_dict(model_state)
    trainer2 = DynamicsTrainer(model2, seed=123, max_epochs=2, batch_size=64)
    trainer2.load_state_dict(trainer_state)
    resumed = trainer2.train(data)
    assert torch.equal(continued["val_mse"], resumed["val_mse"])
    for k, v in model.state_dict().items():
        assert torch.equal(v, model2.state_dict()[k]), k
    assert "state" in trainer_state["optimizer"] and len(trainer_state["optimizer"]["state"]) > 0


def test_state_dict_holds_normalisers_and_elites(trained):
    model, _ = trained
    keys = set(model.state_dict())
    assert {"input_loc", "input_scale", "target_loc", "target_scale", "elite_indices"} <= keys
    clone = small_model(seed=5)
    clone.load_state_dict(model.state_dict())
    obs, act = torch.randn(8, 2), torch.rand(8, 1)
    for sel in (0, "ensemble_mean"):
        a = model.predict(obs, act, selection=sel, deterministic=True)
        b = clone.predict(obs, act, selection=sel, deterministic=True)
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_replay_buffer_storage_and_tensordict_sources_agree():
    data = pendulum_data(300)
    results = []
    for source in ("td", "rb", "storage", "list"):
        if source == "td":
            src = data
        elif source == "list":
            src = ReplayBuffer(storage=ListStorage(1000))
            src.extend(data)
        else:
            rb = ReplayBuffer(storage=LazyTensorStorage(1000))
            rb.extend(data)
            src = rb if source == "rb" else rb.storage
        model = small_model(seed=4)
        results.append(DynamicsTrainer(model, seed=0, max_epochs=2, batch_size=64).train(src))
    for r in results[1:]:
        assert torch.equal(r["val_mse"], results[0]["val_mse"])


def test_mbpo_weight_decay_defaults():
    assert mbpo_weight_decay(4) == (2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4)
    trainer = DynamicsTrainer(small_model(depth=4, hidden=16), max_epochs=1)
    decays = [g["weight_decay"] for g in trainer.optimizer.param_groups]
    assert decays == [2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4, 0.0]


# ---------------------------------------------------------------------------- bad input
def test_predictions_stay_finite_for_extreme_finite_inputs():
    model = small_model()
    obs = torch.tensor([[1e30, -1e30], [3e38, 0.0], [-3e38, 1e-30], [0.0, 0.0]])
    act = torch.tensor([[1e30], [-3e38], [0.0], [1e20]])
    for sel in ("random", 0, "ensemble_mean"):
        for det in (True, False):
            nxt, rew = model.predict(obs, act, selection=sel, deterministic=det)
            assert torch.isfinite(rew).all(), (sel, det)
            # obs + delta may round to +-inf next to 3e38, but never to NaN; moderate ones stay finite.
            assert not torch.isnan(nxt).any(), (sel, det)
            assert torch.isfinite(nxt[3]).all(), (sel, det)
    direct = small_model(predict_delta=False)
    for det in (True, False):
        nxt, rew = direct.predict(obs, act, deterministic=det)
        assert torch.isfinite(nxt).all() and torch.isfinite(rew).all()
    mean, logvar = model.gaussian(obs, act)
    assert torch.isfinite(mean).all() and torch.isfinite(logvar).all()


def test_bad_inputs_give_clear_errors():
    with pytest.raises(ValueError, match="num_elites=8 is larger than num_members=7"):
        DynamicsEnsemble(3, 1, num_members=7, num_elites=8)
    with pytest.raises(ValueError, match="observation_dim must be an int >= 1, got 0"):
        DynamicsEnsemble(0, 1)
    model = small_model()
    with pytest.raises(ValueError, match="observation has last dimension 3.*observation_dim=2"):
        model.predict(torch.zeros(4, 3), torch.zeros(4, 1))
    with pytest.raises(ValueError, match="action has last dimension 2.*action_dim=1"):
        model.predict(torch.zeros(4, 2), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="selection='best'"):
        model.predict(torch.zeros(4, 2), torch.zeros(4, 1), selection="best")
    with pytest.raises(ValueError, match="selection=9 is not a member index"):
        model.predict(torch.zeros(4, 2), torch.zeros(4, 1), selection=9)
    with pytest.raises(ValueError, match=r"members \[7\] out of range"):
        model.predict(torch.zeros(4, 2), torch.zeros(4, 1), members=[7])
    with pytest.raises(ValueError, match="3 distinct member indices"):
        model.set_elites([0, 0, 1])

    def data_with(**changes):
        td = pendulum_data(50)
        for key, value in changes.items():
            td.set(tuple(key.split("__")), value)
        return td

    trainer = DynamicsTrainer(model, max_epochs=1)
    with pytest.raises(ValueError, match=r"'action'.*last dimension 2.*action_dim=1"):
        trainer.train(data_with(action=torch.zeros(50, 2)))
    with pytest.raises(ValueError, match=r"'observation'.*last dimension 4.*observation_dim=2"):
        td = pendulum_data(50)
        td = TensorDict({"observation": torch.zeros(50, 4), "action": td["action"],
                         "next": {"observation": torch.zeros(50, 4), "reward": td["next", "reward"]}}, [50])
        trainer.train(td)
    bad = pendulum_data(50)["next", "observation"].clone()
    bad[7, 1] = float("nan")
    bad[9, 0] = float("inf")
    with pytest.raises(ValueError, match=r"\('next', 'observation'\).*2 non-finite values.*transition 7"):
        trainer.train(data_with(next__observation=bad))
    rew = torch.zeros(50, 1)
    rew[3] = -float("inf")
    with pytest.raises(ValueError, match=r"\('next', 'reward'\).*1 non-finite"):
        trainer.train(data_with(next__reward=rew))
    with pytest.raises(ValueError, match="empty"):
        trainer.train(pendulum_data(10)[:0])
    with pytest.raises(ValueError, match="empty"):
        trainer.train(ReplayBuffer(storage=LazyTensorStorage(10)))
    with pytest.raises(ValueError, match="has 4 transitions.*at least 5"):
        trainer.train(pendulum_data(4))
    with pytest.raises(KeyError, match="no entry 'action'"):
        trainer.train(pendulum_data(50).exclude("action"))
    with pytest.raises(TypeError, match="ReplayBuffer, a Storage or a TensorDict"):
        trainer.train({"observation": torch.zeros(3, 2)})
    with pytest.raises(ValueError, match="weight_decay has 2 values.*3 linear layers"):
        DynamicsTrainer(model, weight_decay=[1e-4, 1e-4])
    with pytest.raises(ValueError, match="holdout_ratio=0 leaves no validation data"):
        DynamicsTrainer(model, holdout_ratio=0.0, max_epochs=None)
    # Trained without a holdout for a fixed number of epochs: elites from the training loss.
    metrics = DynamicsTrainer(model, holdout_ratio=0.0, max_epochs=1).train(pendulum_data(50))
    assert metrics["num_val"] == 0 and len(metrics["elites"]) == 3 and math.isnan(metrics["val_mse"][0])


def test_progress_bar_shows_epoch_and_losses_and_is_off_by_default(capsys, monkeypatch):
    import functools

    import torchrl_psmbpo.world_model.trainer as trainer_module

    # refresh on every update, so that what the bar shows does not depend on the machine's speed
    monkeypatch.setattr(trainer_module, "tqdm", functools.partial(trainer_module.tqdm, mininterval=0, miniters=1))
    data = pendulum_data(200)
    DynamicsTrainer(small_model(hidden=8, depth=1), max_epochs=3, seed=0).train(data)
    assert "dynamics fit" not in capsys.readouterr().err
    metrics = DynamicsTrainer(
        small_model(hidden=8, depth=1), max_epochs=3, seed=0, progress=True, val_metric="nll"
    ).train(data)
    err = capsys.readouterr().err
    assert "dynamics fit (160 train / 40 val)" in err and "3/3" in err
    last_val = sum(metrics["history"][-1]) / len(metrics["history"][-1])
    assert f"val_nll={last_val:.4g}" in err and "train_nll=" in err and "no_improvement=" in err
    # without a held-out split the bar shows the training loss
    DynamicsTrainer(small_model(hidden=8, depth=1), max_epochs=2, holdout_ratio=0, progress=True).train(data)
    err = capsys.readouterr().err
    assert "2/2" in err and "train_nll=" in err and "val_" not in err


def test_default_epoch_cap_is_200():
    trainer = DynamicsTrainer(small_model(num_members=1, num_elites=1, hidden=4, depth=1),
                              patience=10**6, seed=0, batch_size=64)
    assert trainer.max_epochs == 200
    metrics = trainer.train(pendulum_data(80))
    assert metrics["epochs"] == 200 and not metrics["stopped_early"]


def _sparse_reward_data(n: int, generator: torch.Generator) -> TensorDict:
    """A reward of 4 on ~3% of the inputs (a sharp corner of the box), 0 elsewhere."""
    obs = torch.rand(n, 3, generator=generator) * 2 - 1
    act = torch.rand(n, 1, generator=generator) * 2 - 1
    reward = 4.0 * ((obs[:, 0] > 0.8) & (obs[:, 1] > 0.4)).float()[:, None]
    return TensorDict({"observation": obs, "action": act,
                       "next": {"observation": obs + 0.1 * act, "reward": reward}}, [n])


def test_beta_nll_fits_a_sparse_reward_that_the_plain_nll_explains_as_variance():
    """The sparse-task finding (docs/world_model.md): MBPO's NLL (beta 0) leaves the mean of a
    rare reward far below it, and beta-NLL's beta = 0.5 fits it."""
    g = torch.Generator().manual_seed(0)
    train, test = _sparse_reward_data(4000, g), _sparse_reward_data(2000, g)
    hit = test["next", "reward"].reshape(-1) > 0
    predicted = {}
    for beta in (0.0, 0.5):
        torch.manual_seed(0)
        model = DynamicsEnsemble(3, 1, num_members=2, num_elites=2, hidden=128, depth=3)
        DynamicsTrainer(model, max_epochs=60, seed=0, nll_beta=beta).train(train)
        with torch.no_grad():
            _, reward = model.predict(test["observation"], test["action"],
                                      selection="ensemble_mean", deterministic=True)
        predicted[beta] = (reward.reshape(-1)[hit].mean().item(),
                           reward.reshape(-1)[~hit].mean().item())
    assert predicted[0.0][0] < 1.5  # true mean 4: the plain NLL's variance absorbs it
    assert predicted[0.5][0] > 2.0 and abs(predicted[0.5][1]) < 0.1
    for bad in (-0.1, 1.5, True, "0.5"):
        with pytest.raises(ValueError, match=r"nll_beta .* must be a finite float in \[0, 1\]"):
            DynamicsTrainer(small_model(), nll_beta=bad)


def _data_with_constant_dimensions(n: int, seed: int = 0) -> TensorDict:
    """The pendulum plus two state dimensions that never change (Metaworld's padding and goal)."""
    data = pendulum_data(n, seed)
    const = torch.tensor([0.0, 0.16]).expand(n, 2)
    return TensorDict({"observation": torch.cat([data["observation"], const], -1),
                       "action": data["action"],
                       "next": {"observation": torch.cat([data["next", "observation"], const], -1),
                                "reward": data["next", "reward"]}}, [n])


@pytest.mark.parametrize("predict_delta", [True, False])
def test_dimensions_constant_in_the_data_stay_constant_in_sampled_predictions(predict_delta):
    """The Metaworld finding (docs/results_v1.md, section 4): with scale 1 for a constant target
    dimension, every sampled prediction carried the network's normalised noise (std ~0.4) in raw
    units on it, so imagined next states left the data on 34 of 39 dimensions."""
    torch.manual_seed(0)
    model = DynamicsEnsemble(4, 1, num_members=2, num_elites=2, hidden=64, depth=2,
                             predict_delta=predict_delta)
    DynamicsTrainer(model, max_epochs=10, seed=0, nll_beta=0.5).train(_data_with_constant_dimensions(1000))
    test = _data_with_constant_dimensions(500, seed=1)
    with torch.no_grad():
        nxt, _ = model.predict(test["observation"], test["action"], deterministic=False)
    torch.testing.assert_close(nxt[:, 2:], test["next", "observation"][:, 2:], rtol=0, atol=1e-4)
    # The varying dimensions still carry the sampled noise.
    spread = (nxt[:, :2] - test["next", "observation"][:, :2]).std(0)
    assert (spread > 1e-3).all(), spread
    # The constant dimensions' targets are normalised by 1e-6, the varying ones by their std.
    assert (model.target_scale[2:4] == 1e-6).all() and (model.target_scale[:2] > 1e-3).all()
