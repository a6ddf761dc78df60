"""bench/diagnose/diagnose_cartpole.py: reads make_env's cartpole layout, tells spinning from swinging."""

from __future__ import annotations

import doctest
import importlib.util
import math
import sys
from pathlib import Path

import torch

from torchrl_psmbpo.envs import make_env
from torchrl_psmbpo.recipes.rundir import CHECKPOINT_NAME

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "diagnose" / "diagnose_cartpole.py"
sys.path.insert(0, str(SCRIPT.parent))  # as when run: it imports its helpers (run_dirs) by name
spec = importlib.util.spec_from_file_location("diagnose_cartpole", SCRIPT)
diag = importlib.util.module_from_spec(spec)
spec.loader.exec_module(diag)


def episode(theta: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
    x = torch.zeros_like(theta) if x is None else x
    zeros = torch.zeros_like(theta)
    return torch.stack([x, theta.cos(), theta.sin(), zeros, zeros], -1)


def test_make_env_cartpole_observation_is_x_cos_sin_first():
    obs = make_env("dmc:cartpole-swingup_sparse", seed=0).reset()["observation"]
    assert obs.shape[-1] == 5
    assert abs(float(obs[1] ** 2 + obs[2] ** 2) - 1) < 1e-5  # cos, sin of one angle
    assert float(obs[1]) < -0.9  # swing-up starts with the pole hanging down
    assert abs(float(obs[0])) < 0.1  # and the cart near the centre


def test_spinning_counts_its_turns_and_its_passes_through_the_top():
    theta = torch.linspace(math.pi, math.pi + 2 * math.pi * 25, 250)  # 25 turns, one way
    out = diag.behaviour(episode(theta))
    assert abs(out["net_turns"] - 25) < 1e-3
    assert 0 < out["upright"] < 0.1
    assert out["rewarded_zone"] == out["upright"]  # cart centred


def test_swinging_through_the_bottom_is_not_turning():
    theta = math.pi + 2.5 * torch.sin(torch.linspace(0, 40 * math.pi, 400))  # crosses +-pi often
    out = diag.behaviour(episode(theta))
    assert out["net_turns"] < 0.2
    assert out["upright"] == 0.0


def test_balancing_off_centre_is_upright_but_not_in_the_rewarded_zone():
    theta = torch.zeros(100)
    out = diag.behaviour(episode(theta, x=torch.full((100,), 0.5)))
    assert out["upright"] == 1.0 and out["rewarded_zone"] == 0.0
    assert out["net_turns"] == 0.0 and abs(out["mean_abs_x"] - 0.5) < 1e-6


def test_a_bad_run_dir_is_one_line_before_any_work(tmp_path, capsys):
    assert diag.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(tmp_path) in err[0] and "config.yaml and checkpoint.pt" in err[0]
    assert diag.main([str(tmp_path), "--episodes", "0"]) == 2
    assert "--episodes 0" in capsys.readouterr().err


def test_docstring_example_runs():
    assert doctest.testmod(diag).failed == 0


def test_a_saved_run_gives_one_row_per_member_and_is_left_untouched(tmp_path, capsys):
    from torchrl_psmbpo.recipes.cli import compose, save_config
    from torchrl_psmbpo.recipes.loop import train

    run_dir = tmp_path / "run"
    cfg = compose("dmc", ["task=dmc:cartpole-swingup_sparse", "variant=ps-mbpo", "preset=small",
                          "total_steps=60", "init_random_steps=50", "env.action_repeat=25",
                          "eval.every=60", "progress=false"])
    save_config(run_dir, cfg)
    train(cfg, run_dir)
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    rows = diag.diagnose(run_dir, "all", 2)
    assert [(r["member"], r["episode"]) for r in rows] == [
        (i, e) for i in range(cfg.num_policies) for e in range(2)]
    for r in rows:
        assert 0 <= r["rewarded_zone"] <= r["upright"] <= 1 and r["net_turns"] >= 0
        assert 0 <= r["return"] <= 1000
    assert diag.main([str(run_dir), "--members", "best"]) == 0
    assert len([line for line in capsys.readouterr().out.splitlines() if str(run_dir) in line]) == 1
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before


def test_a_run_of_another_task_is_refused_by_name(tmp_path, capsys):
    from torchrl_psmbpo.recipes.cli import compose, save_config

    run_dir = tmp_path / "walker"
    save_config(run_dir, compose("dmc", ["task=dmc:walker-walk", "preset=small"]))
    (run_dir / CHECKPOINT_NAME).write_bytes(b"")
    assert diag.main([str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "'dmc:walker-walk'" in err and "dmc:cartpole-*" in err
