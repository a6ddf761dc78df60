"""The shared training loop end to end: every variant, crediting, resume, NaN, model buffers."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch

from torchrl_psmbpo.recipes.checkpoint import CheckpointError, load_checkpoint
from torchrl_psmbpo.recipes.cli import compose
from torchrl_psmbpo.recipes.loop import NonFiniteLossError, train

TINY = [
    "preset=small", "task=gym:Pendulum-v1", "total_steps=240", "init_random_steps=100",
    "rollout.epoch_length=100", "num_models=2", "policies_per_model=2", "model.elites=2",
    "model.hidden=16", "model.depth=2", "model.max_epochs=3", "model.train_freq=50",
    "rollout.per_step=8", "updates_per_step=1", "policy.batch_size=16", "actor_hidden=[16,16]",
    "critic_hidden=[16,16]", "eval.every=200", "checkpoint_every=200", "progress=false",
]


def tiny(variant: str, *extra: str):
    args = [f"variant={variant}"] + TINY + list(extra)
    if variant in ("sac", "mbpo"):
        args = [a for a in args if not a.startswith(("num_models", "policies_per_model"))]
    if variant == "sac":
        args = [a for a in args if not a.startswith(("model.", "rollout."))]
    if variant == "mbpo":
        args.append("model.members=2")
    return compose("gym", args)


def scalar(run_dir: str | Path, name: str) -> list[tuple[int, float]]:
    path = Path(run_dir) / "logs" / "scalars" / f"{name}.csv"
    with open(path) as fh:
        return [(int(float(a)), float(b)) for a, b in csv.reader(fh)]


@pytest.mark.parametrize("variant", ["sac", "mbpo", "ps-mbpo", "ops-mbpo", "ps-mbpo-fixed"])
def test_every_variant_runs_and_logs(tmp_path, variant):
    cfg = tiny(variant, "total_steps=230")
    result = train(cfg, tmp_path)
    assert result["step"] == 230 and result["episodes"] == 1 and not result["stopped"]
    returns = scalar(tmp_path, "train/return")
    assert [s for s, _ in returns] == [200] and all(math.isfinite(r) for _, r in returns)
    # evaluation every eval.every steps and once at the end of the run
    assert [s for s, _ in scalar(tmp_path, "eval/return")] == [200, 230]
    assert math.isfinite(result["last_eval"])
    members = cfg.num_policies
    logged = sorted(p.stem for p in (tmp_path / "logs/scalars/loss").glob("qvalue_member*.csv"))
    assert logged == (sorted(f"qvalue_member{i}" for i in range(members)) if members > 1 else [])
    for name in ("env", "update"):
        assert scalar(tmp_path, f"time/{name}_s")[-1][1] > 0
    if variant != "sac":
        fits = scalar(tmp_path, "model/val_nll")
        # one fit at the start of learning and every train_freq steps after: logged once each
        assert [s for s, _ in fits] == [100, 150, 200]
    assert Path(result["checkpoint"]).is_file()


def test_random_phase_episodes_are_credited_to_no_member(tmp_path):
    """Issue: random-action episodes used to be credited to the member picked at their reset."""
    cfg = tiny("ops-mbpo", "total_steps=600", "init_random_steps=400",
               "posterior.ops_temperature=50")
    result = train(cfg, tmp_path)
    credited = scalar(tmp_path, "train/credited")
    assert credited == [(200, 0.0), (400, 0.0), (600, 1.0)]
    state = torch.load(result["checkpoint"], weights_only=False)["state"]["posterior"]
    counts = torch.as_tensor(state["play_counts"])
    assert int(counts.sum()) == 1  # only the third episode, the first played by a policy
    cum = torch.as_tensor(state["cumulative_returns"])
    played = int(scalar(tmp_path, "train/policy_index")[-1][1])
    assert cum[played] == pytest.approx(scalar(tmp_path, "train/return")[-1][1], rel=1e-5)
    assert (cum[torch.arange(4) != played] == 0).all()
    # the run ends at an episode end: its phase times are logged once at that step, not twice
    for phase in ("env", "update"):
        assert [s for s, _ in scalar(tmp_path, f"time/{phase}_s")] == [200, 400, 600]


def test_partly_random_episode_is_not_credited(tmp_path):
    cfg = tiny("ops-mbpo", "total_steps=400", "init_random_steps=150")
    train(cfg, tmp_path)
    assert scalar(tmp_path, "train/credited") == [(200, 0.0), (400, 1.0)]


def test_model_buffers_follow_the_rollout_length(tmp_path):
    """MBPO resizes its model buffer as the rollout length grows."""
    cfg = tiny("ps-mbpo", "total_steps=400", "rollout.schedule=[1,3,1,3]",
               "rollout.retain_epochs=1")
    from torchrl_psmbpo.recipes.build import make_world_model

    world = make_world_model(cfg, 3, 1)
    assert world.buffer.capacity_per_member == 8 * 1 * 100  # per_step * R * epoch_length
    result = train(cfg, tmp_path)
    state = torch.load(result["checkpoint"], weights_only=False)
    assert state["progress"]["horizon"] == 3
    world.buffer.load_state_dict(state["state"]["model_buffer"])
    assert world.buffer.capacity_per_member == 8 * 3 * 100


def test_resumed_run_equals_uninterrupted_run(tmp_path):
    common = ("variant=ops-mbpo", "posterior.ops_temperature=50")
    cfg_full = tiny("ops-mbpo", "total_steps=420", "posterior.ops_temperature=50")
    full = train(cfg_full, tmp_path / "full")
    half = train(tiny("ops-mbpo", "total_steps=200", "posterior.ops_temperature=50"),
                 tmp_path / "half")
    resumed = train(cfg_full, tmp_path / "half", resume=load_checkpoint(half["checkpoint"], cfg_full))
    del common
    assert resumed["step"] == full["step"] == 420
    a = torch.load(full["checkpoint"], weights_only=False)["state"]
    b = torch.load(resumed["checkpoint"], weights_only=False)["state"]

    def flat(state, prefix=""):
        if isinstance(state, dict):
            for k, v in state.items():
                yield from flat(v, f"{prefix}/{k}")
        elif hasattr(state, "items"):  # TensorDict
            for k, v in state.items(True, True):
                yield f"{prefix}/{k}", v
        elif isinstance(state, (tuple, list)):  # e.g. a buffer's saved RNG state
            for i, v in enumerate(state):
                yield from flat(v, f"{prefix}/{i}")
        else:
            yield prefix, state

    fa, fb = dict(flat(a)), dict(flat(b))
    assert fa.keys() == fb.keys()
    for key, va in fa.items():
        vb = fb[key]
        if "real_buffer/_storage/_storage" in key:  # rows past the 420 written are uninitialised
            va, vb = va[:420], vb[:420]
        if isinstance(va, torch.Tensor):
            torch.testing.assert_close(va, vb, rtol=0, atol=0, msg=key)
        else:
            assert va == vb, key
    assert scalar(tmp_path / "full", "train/return") == scalar(tmp_path / "half", "train/return")


def test_a_world_model_factory_given_to_train_is_the_one_used(tmp_path):
    """train(world_model_factory=...) builds the world model with it: its model predicts every
    imagined step, its trainer fits, its weights are checkpointed; a factory that changes nothing
    gives the run the default factory gives."""
    from torchrl_psmbpo.world_model import DynamicsEnsemble, DynamicsTrainer
    from torchrl_psmbpo.recipes.build import make_world_model

    calls = {"predict": 0, "train": 0}

    class CountingModel(DynamicsEnsemble):
        def predict(self, *args, **kwargs):
            calls["predict"] += 1
            return super().predict(*args, **kwargs)

    class CountingTrainer(DynamicsTrainer):
        def train(self, data):
            calls["train"] += 1
            return super().train(data)

    built = []

    def factory(cfg, obs_dim, act_dim):
        built.append(make_world_model(cfg, obs_dim, act_dim, model_cls=CountingModel,
                                      trainer_cls=CountingTrainer))
        return built[-1]

    cfg = tiny("mbpo", "total_steps=160")
    result = train(cfg, tmp_path / "custom", world_model_factory=factory)
    assert len(built) == 1 and type(built[0].model) is CountingModel
    # model fits at agent steps 100 and 150; one imagined step per learning agent step
    assert calls == {"predict": 60, "train": 2}
    saved = torch.load(result["checkpoint"], weights_only=False)["state"]["model"]
    for name, value in built[0].model.state_dict().items():
        torch.testing.assert_close(saved[name], value, rtol=0, atol=0)
    train(cfg, tmp_path / "default")
    assert scalar_logs(tmp_path / "custom") == scalar_logs(tmp_path / "default")


def scalar_logs(run_dir: Path) -> dict[str, str]:
    """Every scalar CSV of a run but the wall-clock timings, by relative path."""
    root = Path(run_dir) / "logs" / "scalars"
    return {p.relative_to(root).as_posix(): p.read_text() for p in sorted(root.rglob("*.csv"))
            if not p.relative_to(root).as_posix().startswith("time/")}


class Killed(BaseException):
    """Stands for SIGKILL: the process dies at a step boundary, writing nothing more."""


class KillAt:
    """A stop flag that kills the run (raises) when asked at agent step ``step + 1``."""

    def __init__(self, step: int):
        self.calls, self.step = 0, step

    def __bool__(self):
        self.calls += 1
        if self.calls > self.step:
            raise Killed
        return False


# checkpoints and evaluations both every 200 agent steps: each periodic checkpoint is written at
# an evaluation step (as with the recipes' defaults), the case a resume must get right
ON_EVAL = ("total_steps=420", "eval.every=200", "checkpoint_every=200")


@pytest.mark.parametrize("variant", ["ops-mbpo", "sac"])
def test_resume_from_a_periodic_checkpoint_after_a_kill_equals_the_uninterrupted_run(
        tmp_path, variant):
    """Killed at step 300, after the checkpoint of step 200 (an evaluation step): the resumed run
    drops the rows logged after the checkpoint and ends with every scalar file identical."""
    cfg = tiny(variant, *ON_EVAL, *(["posterior.ops_temperature=50"] if variant == "ops-mbpo" else []))
    full = train(cfg, tmp_path / "full")
    with pytest.raises(Killed):
        train(cfg, tmp_path / "killed", stop=KillAt(300))
    payload = load_checkpoint(tmp_path / "killed", cfg)
    assert payload["progress"]["step"] == 200
    assert [s for s, _ in scalar(tmp_path / "killed", "eval/return")] == [200]
    assert scalar(tmp_path / "killed", "train/return")  # rows past the checkpoint were written
    resumed = train(cfg, tmp_path / "killed", resume=payload)
    assert resumed["step"] == full["step"] == 420
    a, b = scalar_logs(tmp_path / "full"), scalar_logs(tmp_path / "killed")
    assert a.keys() == b.keys() and len(a) > 10
    for name in a:
        assert a[name] == b[name], name
    assert [s for s, _ in scalar(tmp_path / "killed", "eval/return")] == [200, 400, 420]


def test_evaluation_draws_nothing_from_the_training_streams(tmp_path):
    """The same run with evaluations every 100 steps or never in between logs the same training."""
    often = train(tiny("ps-mbpo", "total_steps=400", "eval.every=100"), tmp_path / "often")
    rarely = train(tiny("ps-mbpo", "total_steps=400", "eval.every=400"), tmp_path / "rarely")
    a, b = scalar_logs(tmp_path / "often"), scalar_logs(tmp_path / "rarely")
    train_logs = [k for k in a if not k.startswith("eval/")]
    assert len(train_logs) > 10 and all(a[k] == b[k] for k in train_logs)
    assert often["step"] == rarely["step"] == 400


def test_checkpoint_from_another_config_is_refused(tmp_path):
    first = train(tiny("sac", "total_steps=20"), tmp_path)
    other = tiny("sac", "policy.batch_size=32")
    with pytest.raises(CheckpointError,
                       match=r"another config \(policy.batch_size: checkpoint 16 vs now 32\)"):
        load_checkpoint(first["checkpoint"], other)


def test_checkpoint_older_than_a_field_resumes_while_the_field_keeps_its_default(tmp_path):
    """A checkpoint written before model.nll_beta existed (its config lacks the key) resumes
    with the default (the behaviour it was trained with), and is refused with another value."""
    first = train(tiny("mbpo", "total_steps=20"), tmp_path)
    payload = torch.load(first["checkpoint"], weights_only=False)
    del payload["config"]["model.nll_beta"]
    torch.save(payload, first["checkpoint"])
    assert load_checkpoint(first["checkpoint"], tiny("mbpo", "total_steps=20"))["progress"]
    with pytest.raises(CheckpointError,
                       match=r"another config \(model.nll_beta: checkpoint None vs now 0.5\)"):
        load_checkpoint(first["checkpoint"], tiny("mbpo", "total_steps=20", "model.nll_beta=0.5"))


def test_nan_loss_stops_the_run_and_keeps_the_checkpoint(tmp_path, monkeypatch):
    from torchrl_psmbpo.policy.ensemble import PolicyEnsemble

    cfg = tiny("sac", "total_steps=200")
    first = train(tiny("sac", "total_steps=100"), tmp_path)
    saved = Path(first["checkpoint"]).read_bytes()
    real_update = PolicyEnsemble.update

    def nan_update(self, batch):
        out = real_update(self, batch)
        out["loss_qvalue"] = torch.full_like(out["loss_qvalue"], float("nan"))
        return out

    monkeypatch.setattr(PolicyEnsemble, "update", nan_update)
    with pytest.raises(NonFiniteLossError, match=r"Non-finite SAC loss at agent step 101 .*left intact"):
        train(cfg, tmp_path, resume=load_checkpoint(first["checkpoint"], cfg))
    assert Path(first["checkpoint"]).read_bytes() == saved


def test_stop_flag_ends_with_a_checkpoint(tmp_path):
    class StopAt:
        def __init__(self):
            self.calls = 0

        def __bool__(self):
            self.calls += 1
            return self.calls > 150

    result = train(tiny("ps-mbpo", "total_steps=1000"), tmp_path, stop=StopAt())
    assert result["stopped"] and result["step"] == 150
    assert torch.load(result["checkpoint"], weights_only=False)["progress"]["step"] == 150


def test_marino_yue_switches_run_and_are_logged(tmp_path):
    cfg = tiny("ps-mbpo", "total_steps=230", "policy.action_prior=true",
               "policy.prior_rollouts=true", "rollout.information_weight=0.1")
    train(cfg, tmp_path)
    for name in ("loss/kl_prior", "loss/loss_prior", "imagined/information", "imagined/reward"):
        values = scalar(tmp_path, name)
        assert [s for s, _ in values] == [200] and math.isfinite(values[0][1]), name
    off = tmp_path / "off"
    train(tiny("ps-mbpo", "total_steps=230"), off)
    assert not (off / "logs/scalars/imagined/information.csv").exists()
    assert not (off / "logs/scalars/loss/kl_prior.csv").exists()


def test_evaluation_videos_are_recorded_when_asked(tmp_path):
    from torchrl_psmbpo import make_env

    try:
        make_env("dmc:cartpole-swingup", seed=0, from_pixels=True).rollout(1)
    except Exception as exc:  # no MuJoCo GL backend on this machine
        pytest.skip(f"MuJoCo cannot render offscreen here ({exc}); set MUJOCO_GL=egl or osmesa")
    cfg = compose("dmc", ["variant=sac", "preset=small", "total_steps=60",
                          "init_random_steps=50", "env.action_repeat=8", "eval.every=60",
                          "progress=false", "eval.video=true"])
    train(cfg, tmp_path)
    gifs = sorted((tmp_path / "videos").glob("eval_*.gif"))
    assert [g.name for g in gifs] == ["eval_60.gif"]
    tensors = list((tmp_path / "logs" / "videos").glob("eval_60*"))
    video = torch.load(tensors[0], weights_only=False)
    assert video.dtype == torch.uint8 and video.shape[:3] == (1, 63, 3)  # 125 steps, every 2nd


def test_a_checkpoints_rng_states_are_loaded_onto_the_cpu_and_the_rest_is_left_alone():
    from torchrl_psmbpo.recipes.checkpoint import rng_states_on_cpu

    weights = torch.ones(3)
    state = {"rng": {"torch": torch.zeros(4, dtype=torch.uint8), "numpy": ("MT19937", 1)},
             "state": {"policies": {"w": weights},
                       "real_buffer": {"_rng": (torch.zeros(2, dtype=torch.uint8), "cuda")},
                       "posterior": {"rng_state": torch.zeros(2, dtype=torch.uint8)}}}
    out = rng_states_on_cpu(state)
    assert out["state"]["policies"]["w"] is weights  # not an RNG state: untouched
    assert out["state"]["real_buffer"]["_rng"][1] == "cuda"  # torchrl's generator device kept
    assert out["rng"]["numpy"] == ("MT19937", 1)
    for t in (out["rng"]["torch"], out["state"]["real_buffer"]["_rng"][0],
              out["state"]["posterior"]["rng_state"]):
        assert t.device.type == "cpu" and t.dtype == torch.uint8


def test_every_run_leaves_an_agent_that_loads_without_the_training_code_and_acts(tmp_path):
    """agent.pt: plain tensors (weights_only), the most likely member as a stock TorchRL actor
    that acts in make_env(task) exactly as the ensemble's member does; every member loadable."""
    from tensordict import TensorDict
    from torchrl.envs import ExplorationType, set_exploration_type
    from torchrl.modules import ProbabilisticActor

    from torchrl_psmbpo import load_agent, load_ensemble, make_env
    from torchrl_psmbpo.policy.export import agent_info
    from torchrl_psmbpo.recipes.build import make_policies

    cfg = tiny("ops-mbpo", "total_steps=230", "posterior.ops_temperature=50")
    result = train(cfg, tmp_path)
    torch.load(tmp_path / "agent.pt", weights_only=True)  # no pickled code inside
    info = agent_info(tmp_path)
    state = torch.load(result["checkpoint"], weights_only=False)["state"]
    from torchrl_psmbpo.sampling.posterior import PolicyPosterior

    posterior = PolicyPosterior(4, mode="ops", temperature=50.0)
    posterior.load_state_dict(state["posterior"])
    assert info["member"] == posterior.most_likely() and info["task"] == "gym:Pendulum-v1"
    assert info["ensemble_shape"] == [2, 2] and info["action_repeat"] == 1
    actor = load_agent(tmp_path)
    assert isinstance(actor, ProbabilisticActor)
    policies = make_policies(cfg, 3, 1)
    policies.load_state_dict(state["policies"])
    obs = torch.randn(16, 3)
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        expected = policies.member(*policies.member_index(info["member"]))(
            TensorDict({"observation": obs}, [16]))["action"]
        got = actor(TensorDict({"observation": obs}, [16]))["action"]
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
        env = make_env(info["task"], seed=0)
        rollout = env.rollout(5, actor)
    assert rollout["next", "reward"].shape == (5, 1)
    members = load_ensemble(tmp_path)
    assert len(members) == 4
    with pytest.raises(ValueError, match=r"member 4 is out of range: the saved ensemble has 4 members"):
        load_agent(tmp_path, member=4)
    with pytest.raises(FileNotFoundError, match="No saved agent"):
        load_agent(tmp_path / "nowhere")


def test_wandb_takes_a_project_group_and_run_name():
    import dataclasses

    from torchrl_psmbpo.recipes.loop import logger_names

    cfg = tiny("ps-mbpo")
    assert logger_names(cfg, Path("/r")) == {"experiment_name": "logs"}  # csv: <run dir>/logs
    wandb = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, logger="wandb", group="sweep1"))
    assert logger_names(wandb, Path("/r")) == {
        "experiment_name": "ps-mbpo_gym_Pendulum-v1_seed0",
        "wandb_kwargs": {"project": "psmbpo", "group": "sweep1", "save_dir": "/r"}}
    named = dataclasses.replace(wandb, run=dataclasses.replace(wandb.run, name="mine", project="p"))
    assert logger_names(named, Path("/r"))["experiment_name"] == "mine"
    assert logger_names(named, Path("/r"))["wandb_kwargs"]["project"] == "p"
