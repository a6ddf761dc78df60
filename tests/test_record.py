"""recipes/record.py: a saved run's agent as a GIF or a frame strip; bad input is one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from torchrl_psmbpo.recipes.cli import compose, save_config
from torchrl_psmbpo.recipes.loop import train
from torchrl_psmbpo.recipes.rundir import CHECKPOINT_NAME

RECORD = Path(__file__).resolve().parent.parent / "recipes" / "record.py"


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory) -> Path:
    from torchrl_psmbpo import make_env

    try:
        make_env("dmc:cartpole-swingup", seed=0, from_pixels=True).rollout(1)
    except Exception as exc:  # no MuJoCo GL backend on this machine
        pytest.skip(f"MuJoCo cannot render offscreen here ({exc}); set MUJOCO_GL=egl or osmesa")
    run_dir = tmp_path_factory.mktemp("saved") / "run"
    cfg = compose("dmc", ["variant=sac", "preset=small", "total_steps=60", "init_random_steps=50",
                          "env.action_repeat=25", "eval.every=60", "progress=false"])
    save_config(run_dir, cfg)
    train(cfg, run_dir)
    return run_dir


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(RECORD), *map(str, args)], capture_output=True,
                          text=True, timeout=240)


def test_gif_of_the_most_likely_member_leaves_the_run_untouched(saved_run, tmp_path):
    from PIL import Image

    from torchrl_psmbpo.recipes.record import record

    before = {p: p.read_bytes() for p in saved_run.rglob("*") if p.is_file()}
    result = record(saved_run, tmp_path / "a.gif", scale=0.5, stride=2)
    assert result["member"] == 0.0 and result["return"] >= 0
    with Image.open(tmp_path / "a.gif") as gif:
        # 1000 simulator steps / action repeat 25 = 40 agent steps; the recorder keeps every
        # second (20 frames), the stride every second of those
        assert gif.n_frames == 10 and gif.size == (160, 120)
    assert {p: p.read_bytes() for p in saved_run.rglob("*") if p.is_file()} == before


def test_an_existing_out_file_is_overwritten(saved_run, tmp_path):
    from PIL import Image

    from torchrl_psmbpo.recipes.record import record

    out = tmp_path / "again.gif"
    out.write_bytes(b"an older recording")
    record(saved_run, out, scale=0.5, stride=2)
    with Image.open(out) as gif:
        assert gif.n_frames == 10


def test_png_out_is_one_strip_of_the_kept_frames(saved_run, tmp_path, capsys):
    from PIL import Image

    from torchrl_psmbpo.recipes.record import main

    assert main([str(saved_run), "--out", str(tmp_path / "strip.png"), "--scale", "0.25",
                 "--stride", "6"]) == 0
    assert f"wrote {tmp_path / 'strip.png'} (return" in capsys.readouterr().out
    with Image.open(tmp_path / "strip.png") as strip:
        assert strip.size == (80 * 4, 60)  # frames 0, 6, 12, 18 of 20, 80x60 each


def test_bad_member_is_one_line_through_the_command_line(saved_run, tmp_path):
    out = cli(saved_run, "--member", "3", "--out", tmp_path / "x.gif")
    assert out.returncode == 1, out.stderr
    assert out.stderr.strip() == "error: --member 3 is out of range: the run has 1 members (0..0)."
    assert not (tmp_path / "x.gif").exists()


def test_missing_run_and_unreadable_checkpoint_are_one_line(saved_run, tmp_path):
    import shutil

    from torchrl_psmbpo.recipes.record import main

    with pytest.raises(SystemExit, match="^error: .*nope: no config.yaml; a run dir holds "
                                         "config.yaml and checkpoint.pt.$"):
        main([str(tmp_path / "nope"), "--out", str(tmp_path / "x.gif")])
    broken = tmp_path / "broken"
    shutil.copytree(saved_run, broken)
    (broken / CHECKPOINT_NAME).write_bytes(b"")
    with pytest.raises(SystemExit) as err:
        main([str(broken), "--out", str(tmp_path / "x.gif")])
    assert str(err.value) == (f"error: Checkpoint '{broken / CHECKPOINT_NAME}' is empty (0 bytes): "
                              "unreadable.")
    assert not (tmp_path / "x.gif").exists()
