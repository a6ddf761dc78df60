"""bench/grid.py: which runs it launches, how it recognises finished ones, its errors."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

GRID_PY = Path(__file__).resolve().parents[1] / "bench" / "grid.py"
spec = importlib.util.spec_from_file_location("bench_grid", GRID_PY)
grid = importlib.util.module_from_spec(spec)
spec.loader.exec_module(grid)


def fake_run(run_dir: Path, total_steps: int, last_eval_step: int | None) -> None:
    """A run dir as git keeps it: config.yaml and the scalar logs, no checkpoint."""
    (run_dir / "logs" / "scalars" / "eval").mkdir(parents=True)
    (run_dir / "config.yaml").write_text(f"run:\n  total_steps: {total_steps}\n")
    if last_eval_step is not None:
        rows = f"1250,10.0\n{last_eval_step},500.0\n"
        (run_dir / "logs" / "scalars" / "eval" / "return.csv").write_text(rows)


def test_finished_reads_the_final_evaluation_of_committed_logs(tmp_path: Path):
    fake_run(tmp_path / "done", 25_000, 25_000)
    fake_run(tmp_path / "cut", 25_000, 17_500)
    fake_run(tmp_path / "no_evals", 25_000, None)
    assert grid.finished(tmp_path / "done")
    assert not grid.finished(tmp_path / "cut")
    assert not grid.finished(tmp_path / "no_evals")
    assert not grid.finished(tmp_path / "missing")


def test_inference_comparison_runs_each_term_and_skips_finished_seeds(tmp_path, monkeypatch):
    _, table = grid.COMPARISONS["inference"]
    monkeypatch.setitem(grid.COMPARISONS, "inference", (tmp_path, table))
    fake_run(tmp_path / "dmc_cartpole-swingup" / "ps-mbpo+prior" / "seed1", 25_000, 25_000)
    cmds = grid.commands("inference", tasks=["dmc:cartpole-swingup"], jobs=2)
    by_dir = {next(a for a in argv if a.startswith("hydra.sweep.dir=")).rsplit("/", 1)[1]: argv
              for _, argv in cmds}
    assert set(by_dir) == {"ps-mbpo+prior", "ps-mbpo+info", "ps-mbpo+prior+info"}
    prior, info, both = by_dir["ps-mbpo+prior"], by_dir["ps-mbpo+info"], by_dir["ps-mbpo+prior+info"]
    assert "seed=0,2" in prior and "seed=0,1,2" in info  # seed 1 of the prior arm is done
    for argv in (prior, info, both):
        assert argv[:4] == ["-m", "preset=cpu_dmc", "task=dmc:cartpole-swingup", "variant=ps-mbpo"]
    assert "policy.action_prior=true" in prior and "rollout.information_weight=1.0" not in prior
    assert "rollout.information_weight=1.0" in info and "policy.action_prior=true" not in info
    assert {"policy.action_prior=true", "rollout.information_weight=1.0"} <= set(both)
    sparse = grid.commands("inference", tasks=["dmc:cartpole-swingup_sparse"])
    signs = [[a for a in argv if a.startswith("rollout.information_sign")] for _, argv in sparse]
    assert signs == [[], ["rollout.information_sign=optimistic"]]  # default sign: pessimistic


def test_grid_arms_are_the_variants_and_filters_apply(tmp_path, monkeypatch):
    _, table = grid.COMPARISONS["grid"]
    monkeypatch.setitem(grid.COMPARISONS, "grid", (tmp_path, table))  # not the committed runs
    cmds = grid.commands("grid", tasks=["metaworld:window-open-v3"], arms=["sac"], seeds=[7])
    assert cmds == []  # seed 7 is not in the grid
    (suite, argv), = grid.commands("grid", tasks=["metaworld:window-open-v3"], arms=["sac"],
                                   seeds=[0])
    assert suite == "metaworld"
    assert argv[1:4] == ["preset=cpu_metaworld", "task=metaworld:window-open-v3", "variant=sac"]
    assert "seed=0" in argv


def test_nll_beta0_comparison_reruns_the_model_based_variants_with_mbpo_nll(tmp_path, monkeypatch):
    _, table = grid.COMPARISONS["nll_beta0"]
    monkeypatch.setitem(grid.COMPARISONS, "nll_beta0", (tmp_path, table))
    cmds = grid.commands("nll_beta0", tasks=["dmc:cartpole-swingup_sparse"])
    arms = [next(a for a in argv if a.startswith("hydra.sweep.dir=")).rsplit("/", 1)[1]
            for _, argv in cmds]
    assert arms == ["mbpo", "ps-mbpo", "ops-mbpo"]  # sac has no model: the grid's sac serves
    assert all("model.nll_beta=0" in argv and "preset=cpu_dmc" in argv for _, argv in cmds)


def test_posterior_comparison_varies_m_at_n_2_on_identical_seeds(tmp_path, monkeypatch):
    _, table = grid.COMPARISONS["posterior"]
    monkeypatch.setitem(grid.COMPARISONS, "posterior", (tmp_path, table))
    for task, seeds in (("dmc:cartpole-swingup", "seed=0,1,2,3,4"),
                        ("dmc:cartpole-swingup_sparse", "seed=0,1,2,3,4,5,6,7")):
        cmds = grid.commands("posterior", tasks=[task])
        arms = {next(a for a in argv if a.startswith("hydra.sweep.dir=")).rsplit("/", 1)[1]: argv
                for _, argv in cmds}
        assert list(arms) == ["mbpo", "ps-mbpo-M1", "ps-mbpo-M2", "ps-mbpo-M3", "ops-mbpo"]
        assert all(seeds in argv and "preset=cpu_dmc" in argv for argv in arms.values())
        for m in (1, 2, 3):
            assert "posterior.policies_per_model=%d" % m in arms[f"ps-mbpo-M{m}"]
        # N stays the protocol's (2) in every arm, and OPS runs the protocol's rule
        assert not any(a.startswith("posterior.num_models") for argv in arms.values() for a in argv)
        assert not any(a.startswith("posterior.ops_") for a in arms["ops-mbpo"])


@pytest.mark.parametrize("args, message", [
    (["--comparison", "nope"],
     "error: unknown comparison 'nope'; accepted: ['grid', 'inference', 'protocol', 'posterior', 'visited', 'nll_beta0']"),
    (["--tasks", "dmc:walker-walk"], "error: unknown task 'dmc:walker-walk' for --comparison grid"),
    (["--comparison", "inference", "--variants", "sac"],
     "error: unknown variant 'sac' for --comparison inference; accepted: ['ps-mbpo+info', "),
])
def test_bad_selections_are_one_line_errors(args, message):
    out = subprocess.run([sys.executable, str(GRID_PY), "--dry-run", *args],
                         capture_output=True, text=True)
    assert out.returncode == 1
    assert out.stderr.startswith(message) and out.stderr.count("\n") == 1, out.stderr
    assert out.stdout == ""
