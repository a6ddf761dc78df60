"""The shared training loop end to end: every variant, every recipe, resume, bad input."""

from __future__ import annotations

import csv
import math
import runpy
import sys
from pathlib import Path

import pytest
import torch

from checkpoint import load_checkpoint
from config import make_config
from loop import NonFiniteLossError, train

TINY = {
    "preset": "small",
    "total_steps": "240",
    "init_random_steps": "100",
    "epoch_length": "100",
    "num_models": "2",
    "policies_per_model": "2",
    "num_elites": "2",
    "model_hidden": "16",
    "model_depth": "2",
    "model_max_epochs": "3",
    "model_train_freq": "50",
    "rollouts_per_step": "8",
    "updates_per_step": "1",
    "batch_size": "16",
    "actor_hidden": "16,16",
    "critic_hidden": "16,16",
    "eval_every": "200",
    "checkpoint_every": "200",
    "progress": "false",
}


def _cfg(tmp_path: Path, **overrides):
    values = dict(TINY, run_dir=str(tmp_path / "run"), **{k: str(v) for k, v in overrides.items()})
    return make_config(values)


def _scalar(run_dir: str, name: str) -> list[tuple[int, float]]:
    path = Path(run_dir) / "logs" / "scalars" / f"{name}.csv"
    with open(path) as fh:
        return [(int(float(a)), float(b)) for a, b in csv.reader(fh)]


@pytest.mark.parametrize("variant", ["sac", "mbpo", "ps-mbpo", "ops-mbpo", "ps-mbpo-fixed"])
def test_every_variant_runs_and_logs(tmp_path, variant):
    cfg = _cfg(tmp_path, variant=variant, task="gym:Pendulum-v1", total_steps=230)
    result = train(cfg)
    assert result["step"] == 230 and result["episodes"] == 1
    returns = _scalar(result["run_dir"], "train/return")
    assert [s for s, _ in returns] == [200]
    assert all(math.isfinite(r) for _, r in returns)
    assert math.isfinite(result["last_eval"])
    assert _scalar(result["run_dir"], "loss/qvalue")
    members = cfg.num_models * cfg.policies_per_model
    per_member = Path(result["run_dir"]) / "logs" / "scalars" / "loss"
    logged = sorted(p.stem for p in per_member.glob("qvalue_member*.csv"))
    assert logged == (sorted(f"qvalue_member{i}" for i in range(members)) if members > 1 else [])
    picked = [int(v) for _, v in _scalar(result["run_dir"], "train/policy_index")]
    assert all(0 <= i < cfg.num_models * cfg.policies_per_model for i in picked)
    if variant == "ps-mbpo-fixed":
        assert picked == [cfg.fixed_policy_index]
    if variant != "sac":
        assert _scalar(result["run_dir"], "model/val_nll")
        assert _scalar(result["run_dir"], "rollout_length")
    assert Path(result["checkpoint"]).is_file()


@pytest.mark.parametrize(
    "recipe,task",
    [
        ("psmbpo_dmc.py", "dmc:cartpole-swingup"),
        ("psmbpo_gym.py", "gym:HalfCheetah-v5"),
        ("psmbpo_metaworld.py", "metaworld:reach-v3"),
    ],
)
def test_recipes_run_from_the_command_line(tmp_path, monkeypatch, capsys, recipe, task):
    recipes = Path(__file__).resolve().parent.parent / "recipes"
    args = [f"{k}={v}" for k, v in TINY.items()]
    args += [f"task={task}", "total_steps=150", f"run_dir={tmp_path / 'run'}", "variant=ops-mbpo"]
    monkeypatch.setattr(sys, "argv", [recipe] + args)
    runpy.run_path(str(recipes / recipe), run_name="__main__")
    out = capsys.readouterr().out
    assert "done: 150 env steps" in out
    assert (tmp_path / "run" / "checkpoint.pt").is_file()


def test_recipe_rejects_bad_input_before_training(tmp_path, monkeypatch):
    recipes = Path(__file__).resolve().parent.parent / "recipes"
    monkeypatch.setattr(sys, "argv", ["psmbpo_dmc.py", "real_ratio=2", f"run_dir={tmp_path}"])
    with pytest.raises(SystemExit, match=r"real_ratio \(lambda\) must lie in \[0, 1\], got 2.0"):
        runpy.run_path(str(recipes / "psmbpo_dmc.py"), run_name="__main__")
    assert not any(tmp_path.iterdir())


def test_resumed_run_equals_uninterrupted_run(tmp_path):
    common = dict(variant="ops-mbpo", task="gym:Pendulum-v1", ops_temperature=50.0)
    full = train(_cfg(tmp_path / "full", total_steps=420, **common))
    half = train(_cfg(tmp_path / "half", total_steps=200, **common))
    resumed = train(
        _cfg(tmp_path / "half", total_steps=420, resume=half["checkpoint"], **common)
    )
    assert resumed["step"] == full["step"] == 420
    a = torch.load(full["checkpoint"], weights_only=False)["agent"]
    b = torch.load(resumed["checkpoint"], weights_only=False)["agent"]

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
    assert _scalar(full["run_dir"], "train/return") == _scalar(resumed["run_dir"], "train/return")


def test_checkpoint_from_another_config_is_refused(tmp_path):
    first = train(_cfg(tmp_path, variant="sac", task="gym:Pendulum-v1", total_steps=20))
    other = _cfg(tmp_path, variant="sac", task="gym:Pendulum-v1", batch_size=32)
    with pytest.raises(ValueError, match=r"another config \(batch_size: checkpoint 16 vs now 32\)"):
        load_checkpoint(first["checkpoint"], other)


def test_nan_loss_stops_the_run_and_keeps_the_checkpoint(tmp_path, monkeypatch):
    from components.policy.ensemble import PolicyEnsemble

    first = train(_cfg(tmp_path, variant="sac", task="gym:Pendulum-v1", total_steps=100))
    saved = Path(first["checkpoint"]).read_bytes()
    real_update = PolicyEnsemble.update

    def nan_update(self, batch):
        out = real_update(self, batch)
        out["loss_qvalue"] = torch.full_like(out["loss_qvalue"], float("nan"))
        return out

    monkeypatch.setattr(PolicyEnsemble, "update", nan_update)
    resumed = _cfg(tmp_path, variant="sac", task="gym:Pendulum-v1", total_steps=200,
                   resume=first["checkpoint"])
    with pytest.raises(NonFiniteLossError, match=r"Non-finite SAC loss at env step 101 .*left intact"):
        train(resumed)
    assert Path(first["checkpoint"]).read_bytes() == saved


def test_sigterm_writes_a_checkpoint_that_resumes(tmp_path):
    """A cluster's SIGTERM (like Ctrl-C) stops the recipe with a checkpoint, exit code 130."""
    import signal
    import subprocess
    import time

    recipes = Path(__file__).resolve().parent.parent / "recipes"
    run_dir = tmp_path / "run"
    args = [f"{k}={v}" for k, v in TINY.items() if k != "total_steps"]
    args += ["task=gym:Pendulum-v1", "variant=ps-mbpo", "total_steps=100000", f"run_dir={run_dir}"]
    proc = subprocess.Popen(
        [sys.executable, str(recipes / "psmbpo_gym.py"), *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    deadline = time.monotonic() + 120
    while not (run_dir / "logs" / "scalars" / "train" / "return.csv").is_file():  # training
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "checkpoint written to" in out and "Traceback" not in out, out
    state = torch.load(run_dir / "checkpoint.pt", weights_only=False)
    assert state["step"] >= 200  # at least the first episode
    resumed = train(_cfg(tmp_path, variant="ps-mbpo", task="gym:Pendulum-v1",
                         total_steps=state["step"] + 20, resume=str(run_dir / "checkpoint.pt")))
    assert resumed["step"] == state["step"] + 20
