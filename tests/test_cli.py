"""The recipes through the command line, as a user runs them: one-line errors, run dirs, resume,
signals, help. Every case checks the exit code, the message, that no traceback is printed and
that files already saved are left untouched."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from torchrl_psmbpo.recipes.rundir import CHECKPOINT_NAME

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
TINY = [
    "preset=small", "task=gym:Pendulum-v1", "init_random_steps=100", "rollout.epoch_length=100",
    "num_models=2", "policies_per_model=2", "model.elites=2", "model.hidden=16", "model.depth=2",
    "model.max_epochs=3", "model.train_freq=50", "rollout.per_step=8", "updates_per_step=1",
    "policy.batch_size=16", "actor_hidden=[16,16]", "critic_hidden=[16,16]", "eval.every=200",
    "checkpoint_every=200", "progress=false",
]


def run(*args: str, recipe: str = "psmbpo_gym.py", cwd: Path | None = None,
        timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(RECIPES / recipe), *args], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd)


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A finished tiny run (240 agent steps) to resume, overwrite or corrupt (copies of it)."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    out = run(*TINY, "variant=ps-mbpo", "total_steps=240", f"hydra.run.dir={run_dir}")
    assert out.returncode == 0, out.stderr
    assert "done: 240 agent steps" in out.stdout
    return run_dir


BAD = [
    (["run.device=cuda"], "error: run.device='cuda' but CUDA is not available"),
    (["gamma=1.5"], "error: policy.gamma must lie in (0, 1], got 1.5"),
    (["rollout.schedule=[100,20,1,1]"], "0 <= min_epoch <= max_epoch and lengths >= 1, got [100, 20, 1, 1]"),
    (["init_random_steps=2"], "error: run.init_random_steps=2 is too few for ps-mbpo"),
    (["tau=2"], "error: policy.tau must lie in (0, 1], got 2.0"),
    (["model.lr=0"], "error: model.lr must lie in (0, inf), got 0.0"),
    (["policy.batch_size=0"], "error: policy.batch_size must be an integer >= 1, got 0"),
    (["actor_lrr=1"], "error: Unknown config field 'actor_lrr'. Did you mean policy.actor_lr?"),
    (["variant=sac", "real_ratio=0.5"], "error: policy.real_ratio=0.5 contradicts variant=sac"),
    (["variant=sac", "num_models=2"], "error: posterior.num_models=2 contradicts variant=sac, "
                                       "which sets posterior.num_models=1"),
    (["variant=dreamer"], "error: Unknown variant 'dreamer'. Could not find 'variant/dreamer'; "
                          "accepted: mbpo, ops-mbpo, ps-mbpo, ps-mbpo-fixed, sac."),
    (["seed=abc"], "error: Error merging override seed=abc: Value 'abc' of type 'str' could not "
                   "be converted to Integer (full_key: seed)"),
    (["task=dmc:cartpole-swing"], "error: Unknown DeepMind Control task: 'dmc:cartpole-swing'"),
    (["preset=huge"], "Could not find 'preset/huge'; accepted: cpu_dmc, cpu_metaworld, paper, small"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[a[0] for a, _ in BAD])
def test_bad_input_is_one_line_before_any_work(tmp_path, args, message):
    base = TINY if "variant=sac" not in args else ["preset=small", "task=gym:Pendulum-v1"]
    out = run(*base, *args, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    assert message in out.stderr, out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert out.stdout.strip() == ""  # no log lines in front of it (dm_control's import logs)
    assert list(tmp_path.iterdir()) == []  # no run dir, no outputs/ or multirun/


def test_a_fresh_run_never_overwrites_a_saved_one(finished_run):
    before = snapshot(finished_run)
    out = run(*TINY, "variant=ps-mbpo", "total_steps=240", f"hydra.run.dir={finished_run}")
    assert out.returncode == 1
    assert f"Run dir '{finished_run}' already holds a checkpoint" in out.stderr
    assert f"resume={finished_run}" in out.stderr and "Traceback" not in out.stderr
    assert snapshot(finished_run) == before


def test_default_run_dirs_are_distinct(tmp_path):
    args = [*TINY, "variant=sac", "total_steps=30", "eval.every=30"]
    args = [a for a in args if not a.startswith(("num_models", "policies_per_model", "model.",
                                                  "rollout."))]
    assert run(*args, cwd=tmp_path).returncode == 0
    assert run(*args, cwd=tmp_path).returncode == 0
    dirs = sorted(p.parent for p in (tmp_path / "runs").rglob(CHECKPOINT_NAME))
    assert len(dirs) == 2 and dirs[0] != dirs[1]
    assert all((d / "config.yaml").is_file() for d in dirs)


def test_resume_continues_in_the_run_dir_with_its_saved_config(finished_run, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(finished_run, copy)
    # the run stopped at step 240, inside its second episode: that episode starts again
    out = run(f"resume={copy}", "total_steps=440", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "done: 440 agent steps" in out.stdout and str(copy) in out.stdout
    assert torch.load(copy / CHECKPOINT_NAME, weights_only=False)["progress"]["step"] == 440
    assert not (tmp_path / "runs").exists() and not (tmp_path / "outputs").exists()
    returns = (copy / "logs" / "scalars" / "train" / "return.csv").read_text().split()
    assert [int(r.split(",")[0]) for r in returns] == [200, 440]


def test_every_run_dir_records_the_code_versions_host_and_command(finished_run, tmp_path):
    """provenance.json: one entry per process that trained in the run dir (start, resumes)."""
    import json
    import shutil

    head = subprocess.run(["git", "-C", str(RECIPES.parent), "rev-parse", "HEAD"],
                          capture_output=True, text=True)
    entries = json.loads((finished_run / "provenance.json").read_text())
    assert len(entries) == 1
    first = entries[0]
    assert first["start_step"] == 0
    if head.returncode == 0:  # a git checkout: its commit, and the diff when it is dirty
        assert first["commit"] == head.stdout.strip()
        dirty = subprocess.run(["git", "-C", str(RECIPES.parent), "diff", "HEAD", "--quiet", "--", "."])
        assert first["dirty"] == (dirty.returncode != 0)
        if first["dirty"]:
            assert (finished_run / first["diff_file"]).read_text().startswith("diff --git")
    for name in ("python", "torch", "torchrl", "tensordict", "mujoco", "dm_control", "metaworld"):
        assert first["versions"][name], name
    assert first["versions"]["torch"] == torch.__version__
    assert first["host"]["cpu_count"] == os.cpu_count() and first["host"]["torch_threads"] >= 1
    assert any(a.endswith("psmbpo_gym.py") for a in first["command"])
    assert "variant=ps-mbpo" in first["command"]
    copy = tmp_path / "copy"
    shutil.copytree(finished_run, copy)
    assert run(f"resume={copy}", "total_steps=260", cwd=tmp_path).returncode == 0
    entries = json.loads((copy / "provenance.json").read_text())
    assert [e["start_step"] for e in entries] == [0, 240]
    assert f"resume={copy}" in entries[1]["command"]


@pytest.mark.parametrize("case", ["missing", "empty", "truncated", "other config", "no config"])
def test_bad_resume_is_one_line_and_touches_nothing(finished_run, tmp_path, case):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(finished_run, copy)
    ckpt = copy / CHECKPOINT_NAME
    args = [f"resume={copy}"]
    if case == "missing":
        args = [f"resume={tmp_path / 'nowhere'}"]
        message = "no such run directory"
    elif case == "empty":
        ckpt.write_bytes(b"")
        message = f"Checkpoint '{ckpt}' is empty (0 bytes): unreadable."
    elif case == "truncated":
        ckpt.write_bytes(ckpt.read_bytes()[:1000])
        message = f"Checkpoint '{ckpt}' is unreadable (truncated or not a checkpoint"
    elif case == "other config":
        args.append("policy.batch_size=32")
        message = "resume: policy.batch_size cannot change when resuming"
    else:
        (copy / "config.yaml").unlink()
        message = "config.yaml is missing"
    before = snapshot(copy)
    out = run(*args, cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert snapshot(copy) == before


def test_help_and_cfg_job(tmp_path):
    out = run("--help", cwd=tmp_path)
    assert out.returncode == 0 and "policy.real_ratio=0.05" in out.stdout
    assert "variant: mbpo, ops-mbpo, ps-mbpo, ps-mbpo-fixed, sac" in out.stdout  # the group
    assert "(MBPO: 400)" in out.stdout
    out = run("--cfg", "job", "preset=small", "variant=ops-mbpo", "seed=3", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "variant: ops-mbpo" in out.stdout and "seed: 3" in out.stdout
    assert "total_steps: 3000" in out.stdout
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR2, signal.SIGINT])
def test_signal_writes_a_checkpoint_that_resumes(tmp_path, sig):
    """A cluster's SIGTERM/SIGUSR2 (or Ctrl-C) stops at a step boundary with a checkpoint."""
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, str(RECIPES / "psmbpo_gym.py"), *TINY, "variant=ps-mbpo",
         "total_steps=100000", f"hydra.run.dir={run_dir}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
    )
    deadline = time.monotonic() + 180
    while not (run_dir / "logs" / "scalars" / "train" / "return.csv").is_file():  # training
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
        time.sleep(0.2)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert "checkpoint written to" in out and "Traceback" not in out, out
    step = torch.load(run_dir / CHECKPOINT_NAME, weights_only=False)["progress"]["step"]
    assert step >= 200  # at least the first episode
    resumed = run(f"resume={run_dir}", f"total_steps={step + 20}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"done: {step + 20} agent steps" in resumed.stdout


def test_stop_flag_says_what_happens_and_a_second_ctrl_c_stops_at_once(tmp_path, capsys):
    """First Ctrl-C: a line saying a checkpoint follows the step; second: exit 130 at once."""
    from torchrl_psmbpo.recipes.cli import StopFlag

    before = signal.getsignal(signal.SIGINT)  # SIG_IGN under nohup, default_int_handler in a shell
    flag = StopFlag(tmp_path)
    flag.install()
    try:
        assert not flag
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # the handler runs between bytecodes of the main thread
        assert flag and flag.signum == signal.SIGINT
        err = capsys.readouterr().err
        assert err == (f"SIGINT: stopping after the agent step in progress, then writing a "
                       f"checkpoint in {tmp_path}; Ctrl-C again stops at once.\n")
        with pytest.raises(SystemExit) as exc:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
        assert exc.value.code == 130
        assert capsys.readouterr().err == (
            f"Stopped at once (second Ctrl-C): no checkpoint in {tmp_path} yet (the first is "
            "written at run.checkpoint_every).\n")
        (tmp_path / CHECKPOINT_NAME).write_bytes(b"")  # a run that has one
        flag.signum = signal.SIGINT
        with pytest.raises(SystemExit):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
        assert capsys.readouterr().err == (
            f"Stopped at once (second Ctrl-C): no new checkpoint; the last one in {tmp_path} "
            "is kept.\n")
    finally:
        flag.uninstall()
    assert signal.getsignal(signal.SIGINT) == before  # uninstall put the handler back


def test_a_cluster_signal_is_announced_once(capsys):
    from torchrl_psmbpo.recipes.cli import StopFlag

    flag = StopFlag()
    flag.install()
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)  # a repeated SIGTERM does not stop mid-step
        time.sleep(0.05)
        assert flag.signum == signal.SIGTERM
        assert capsys.readouterr().err == (
            "SIGTERM: stopping after the agent step in progress, then writing a checkpoint.\n")
    finally:
        flag.uninstall()
