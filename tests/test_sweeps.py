"""Sweeps through Hydra's launchers (joblib locally in parallel, submitit locally as on SLURM),
then the multi-seed report over the sweep: four run dirs, a table and a PNG."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from torchrl_psmbpo.recipes.report import write_report
from torchrl_psmbpo.recipes.rundir import CHECKPOINT_NAME

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
SWEEP = ["-m", "preset=small", "task=gym:Pendulum-v1", "total_steps=120", "init_random_steps=100",
         "eval.every=1000", "progress=false", "variant=sac,ps-mbpo", "seed=0,1"]


@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_two_by_two_multirun_then_report(tmp_path, launcher):
    sweep_dir = tmp_path / "sweep"
    extra = ["hydra.launcher.n_jobs=2"] if launcher == "joblib" else []
    out = subprocess.run(
        [sys.executable, str(RECIPES / "psmbpo_gym.py"), *SWEEP, f"hydra/launcher={launcher}",
         f"hydra.sweep.dir={sweep_dir}", *extra],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    runs = sorted(p.parent for p in sweep_dir.glob("*/config.yaml"))
    assert len(runs) == 4
    seen = {(OmegaConf.load(r / "config.yaml").variant, OmegaConf.load(r / "config.yaml").seed)
            for r in runs}
    assert seen == {("sac", 0), ("sac", 1), ("ps-mbpo", 0), ("ps-mbpo", 1)}
    assert all((r / CHECKPOINT_NAME).is_file() for r in runs)
    if launcher == "joblib":  # n_jobs=2: each job gets cores // 2 torch threads
        import os

        expected = max(1, (os.cpu_count() or 1) // 2)
        assert out.stdout.count(f"(torch threads: {expected};") == 4, out.stdout[-3000:]
    tables = write_report([sweep_dir], tmp_path / "report", marks=[120], threshold=-100.0)
    table = tables["gym:Pendulum-v1"]
    assert "| sac |" in table and "| ps-mbpo |" in table and "(n=2)" in table
    assert list((tmp_path / "report").glob("*_return.png"))
