"""Runs you can trust: every mistake or fault around a run dir ends in one ``error:`` line, exit
code 1, before anything is written, with nothing already saved lost (recipes/rundir.py, the
checks in recipes/cli.py, the checksums and write errors of recipes/checkpoint.py).

Each case runs the recipe as a user does (a subprocess) on a copy of one finished tiny run."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import read_only
from torchrl_psmbpo.recipes.rundir import CHECKPOINT_NAME
from test_cli import RECIPES, TINY, run, snapshot

ARGS = [*TINY, "variant=ps-mbpo"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished tiny run of 240 agent steps (tests work on copies of it)."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    out = run(*ARGS, "total_steps=240", f"hydra.run.dir={run_dir}")
    assert out.returncode == 0, out.stderr
    return run_dir


@pytest.fixture
def copy(finished, tmp_path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(finished, target)
    return target


def refused(out: subprocess.CompletedProcess, *fragments: str) -> str:
    """The one ``error:`` line of a refused command (checked: exit 1, no traceback)."""
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


# ----------------------------------------------------------------------------------------------
# 1. One process per run dir
# ----------------------------------------------------------------------------------------------

def test_a_second_process_in_a_run_dir_is_refused_naming_the_first(copy, tmp_path):
    from torchrl_psmbpo.recipes.rundir import lock_run_dir

    lock = lock_run_dir(copy)  # this test process trains in it, as far as anyone can tell
    try:
        before = snapshot(copy)
        for args in ([*ARGS, "total_steps=260", f"hydra.run.dir={copy}",
                      "run.resume_if_exists=true"], [f"resume={copy}", "total_steps=260"]):
            refused(run(*args, cwd=tmp_path), f"is in use by another process (PID {os.getpid()} ",
                    "run.lock")
            assert snapshot(copy) == before
    finally:
        lock.release()


def test_a_stale_lock_of_a_dead_process_is_taken_over(copy, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (copy / "run.lock").write_text(f"pid {dead.pid} host elsewhere\n")
    out = run(f"resume={copy}", "total_steps=260", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "done: 260 agent steps" in out.stdout
    assert not (copy / "run.lock").exists()  # released at exit


# ----------------------------------------------------------------------------------------------
# 2. A run killed before its first checkpoint is not mixed with a new one
# ----------------------------------------------------------------------------------------------

def test_an_earlier_run_without_checkpoint_is_refused_unless_discarded(copy, tmp_path):
    (copy / CHECKPOINT_NAME).unlink()  # as a run killed before its first checkpoint leaves it
    before = snapshot(copy)
    args = [*ARGS, "total_steps=110", "eval.every=110", f"hydra.run.dir={copy}"]
    refused(run(*args, cwd=tmp_path), "holds an earlier run's files (config.yaml, logs, "
            "provenance.json, agent.pt) but no checkpoint", "run.discard_existing=true")
    assert snapshot(copy) == before
    out = run(*args, "run.discard_existing=true", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "deleted" in out.stdout and "done: 110 agent steps" in out.stdout
    evals = (copy / "logs" / "scalars" / "eval" / "return.csv").read_text().split()
    assert [int(r.split(",")[0]) for r in evals] == [110]  # the new run's only
    assert not (copy / "logs" / "scalars" / "train" / "return.csv").exists()  # no episode ended
    assert len(torch.load(copy / CHECKPOINT_NAME, weights_only=False)["progress"]) > 0


# ----------------------------------------------------------------------------------------------
# 3. A finished run is not resumed to its own length
# ----------------------------------------------------------------------------------------------

def test_resuming_a_finished_run_to_its_length_is_refused(copy, tmp_path):
    before = snapshot(copy)
    for args in ([f"resume={copy}"], [*ARGS, "total_steps=240", f"hydra.run.dir={copy}",
                                       "run.resume_if_exists=true"]):
        refused(run(*args, cwd=tmp_path), "already reached 240 agent steps",
                f"resume={copy} total_steps=<more than 240>")
        assert snapshot(copy) == before  # no second, different final evaluation


# ----------------------------------------------------------------------------------------------
# 4. hydra.run.dir= in every spelling is checked before Hydra writes .hydra/ there
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("prefix", ["", "+", "++"])
def test_a_saved_runs_dir_is_refused_before_hydra_writes_its_record(copy, tmp_path, prefix):
    before = snapshot(copy)
    expected = ([f"Run dir '{copy}' already holds a checkpoint", f"resume={copy}"] if prefix != "+"
                else ["An item is already at 'hydra.run.dir'"])  # Hydra's: + adds a new key
    refused(run(*ARGS, "total_steps=240", f"{prefix}hydra.run.dir={copy}", cwd=tmp_path),
            *expected)
    assert snapshot(copy) == before  # .hydra/ included, byte for byte


def test_resume_if_exists_accepts_capital_true_and_keeps_the_hydra_record(copy, tmp_path):
    hydra_before = {k: v for k, v in snapshot(copy).items() if k.startswith(".hydra")}
    assert hydra_before
    out = run(*ARGS, "total_steps=260", f"hydra.run.dir={copy}", "run.resume_if_exists=True",
              cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "done: 260 agent steps" in out.stdout
    assert {k: v for k, v in snapshot(copy).items() if k.startswith(".hydra")} == hydra_before


# ----------------------------------------------------------------------------------------------
# 5. A corrupted checkpoint is refused
# ----------------------------------------------------------------------------------------------

def test_a_corrupted_checkpoint_is_refused_in_one_line(finished, copy, tmp_path):
    from torchrl_psmbpo.recipes.checkpoint import CheckpointError, load_checkpoint, verify_checksum
    from torchrl_psmbpo.recipes.cli import compose

    ckpt = copy / CHECKPOINT_NAME
    assert verify_checksum(ckpt)
    data = bytearray(ckpt.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 4000] = bytes(b ^ 0xFF for b in data[middle:middle + 4000])
    ckpt.write_bytes(bytes(data))
    before = snapshot(copy)
    message = refused(run(f"resume={copy}", "total_steps=440", cwd=tmp_path),
                      f"Checkpoint '{ckpt}' is corrupted")
    assert "checksums" in message
    assert snapshot(copy) == before
    cfg = compose("gym", [*ARGS, "total_steps=240"])
    with pytest.raises(CheckpointError, match="is corrupted"):
        load_checkpoint(ckpt, cfg)
    # any torch.save archive carries the checksums: a plain one loads as the run's own do
    torch.save(torch.load(finished / CHECKPOINT_NAME, weights_only=False), tmp_path / "old.pt")
    assert verify_checksum(tmp_path / "old.pt")
    assert load_checkpoint(tmp_path / "old.pt", cfg)["progress"]["step"] == 240


# ----------------------------------------------------------------------------------------------
# 6. Tracebacks that are now one line, checked before any work
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("logger", ["wandb", "tensorboard"])
def test_a_logger_whose_package_is_missing_is_refused_before_any_dir(tmp_path, logger):
    if importlib.util.find_spec(logger) is not None:
        pytest.skip(f"{logger} is installed here")
    refused(run(*ARGS, f"run.logger={logger}", f"hydra.run.dir={tmp_path / 'run'}",
                cwd=tmp_path), f"run.logger={logger} needs the {logger} package",
            f"pip install {logger}")
    assert list(tmp_path.iterdir()) == []  # not even a config.yaml


def _no_pygame() -> None:
    if importlib.util.find_spec("pygame") is not None:
        pytest.skip("pygame is installed here: gym:Pendulum-v1 renders")


def test_eval_video_without_rendering_is_refused_before_any_dir(tmp_path):
    _no_pygame()
    message = refused(run(*ARGS, "eval.video=true", f"hydra.run.dir={tmp_path / 'run'}",
                          cwd=tmp_path), "eval.video=true: gym:Pendulum-v1 cannot render here",
                      "pygame", "eval.video=false")
    assert "MUJOCO_GL" not in message  # that is for MuJoCo, not Gym's classic control
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("change", ["run.logger=tensorboard", "eval.video=true"])
def test_resuming_with_a_logger_or_video_that_cannot_work_is_refused(copy, tmp_path, change):
    if change == "eval.video=true":
        _no_pygame()
    elif importlib.util.find_spec("tensorboard") is not None:
        pytest.skip("tensorboard is installed here")
    before = snapshot(copy)
    refused(run(f"resume={copy}", "total_steps=440", change, cwd=tmp_path), change)
    assert snapshot(copy) == before


def test_a_read_only_parent_is_refused_before_any_dir(tmp_path):
    parent = tmp_path / "ro"
    parent.mkdir()
    with read_only(parent):
        refused(run(*ARGS, f"hydra.run.dir={parent / 'run'}", cwd=tmp_path),
                f"Cannot write to '{parent}' (for run dir '{parent / 'run'}')", "read-only")
    assert list(parent.iterdir()) == []


def test_a_read_only_run_dir_is_refused_on_resume(copy, tmp_path):
    before = snapshot(copy)
    with read_only(copy):
        refused(run(f"resume={copy}", "total_steps=440", cwd=tmp_path),
                f"Cannot write to '{copy}'", "read-only")
    assert snapshot(copy) == before


def test_a_full_disk_while_writing_a_checkpoint_keeps_the_last_one(copy, tmp_path):
    """A file size limit below the checkpoint's size stands for a full disk (EFBIG for ENOSPC:
    the same failed write)."""
    import resource

    ckpt = copy / CHECKPOINT_NAME
    saved = ckpt.read_bytes()
    limit = len(saved) // 4  # the logs and provenance fit, the checkpoint does not

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    out = subprocess.run([sys.executable, str(RECIPES / "psmbpo_gym.py"), f"resume={copy}",
                          "total_steps=440"], capture_output=True, text=True, timeout=240,
                         cwd=tmp_path, preexec_fn=small_files)
    refused(out, f"Could not write checkpoint '{ckpt}' (File too large); the partial file was "
            "removed, the last checkpoint (agent step 240) kept", f"resume={copy}")
    assert ckpt.read_bytes() == saved
    assert not (copy / f"{CHECKPOINT_NAME}.tmp").exists()
    assert run(f"resume={copy}", "total_steps=260", cwd=tmp_path).returncode == 0


def test_a_full_disk_while_writing_the_logs_is_one_line(tmp_path, monkeypatch):
    import errno

    import torchrl_psmbpo.recipes.loop
    from torchrl_psmbpo.recipes.cli import UserError, compose, run_in

    def full(logger, metrics, step):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "run" / "a.csv"))

    monkeypatch.setattr(torchrl_psmbpo.recipes.loop, "log", full)
    cfg = compose("gym", ["preset=small", "task=gym:Pendulum-v1", "variant=sac",
                          "total_steps=120", "init_random_steps=100", "progress=false"])
    with pytest.raises(UserError, match=rf"^Could not write {tmp_path / 'run' / 'a.csv'} \(No "
                                        rf"space left on device\): resume={tmp_path / 'run'} "):
        run_in(tmp_path / "run", cfg, resume=False)
    assert not (tmp_path / "run" / "run.lock").exists()  # released


def test_record_refuses_an_unwritable_out_before_rendering(copy, tmp_path):
    target = tmp_path / "ro"
    target.mkdir()
    with read_only(target):
        out = run(str(copy), "--out", str(target / "x.gif"), recipe="record.py", cwd=tmp_path)
    message = refused(out, f"--out {target / 'x.gif'}: Cannot write to '{target}'", "read-only")
    assert message.startswith("error: --out ") and not (target / "x.gif").exists()


def test_record_says_pygame_not_mujoco_gl_for_a_gym_classic_control_task(copy, tmp_path):
    _no_pygame()
    out = run(str(copy), "--out", str(tmp_path / "x.gif"), recipe="record.py", cwd=tmp_path)
    message = refused(out, "gym:Pendulum-v1 cannot render here", "pygame")
    assert "MUJOCO_GL" not in message
    assert not (tmp_path / "x.gif").exists()
