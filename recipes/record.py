"""Record what a saved run's agent does: deterministic evaluation episodes as a GIF.

Loads a run dir's ``config.yaml`` and ``checkpoint.pt``, picks the member the run's posterior
finds most likely (as the run's own evaluations do; ``--member`` chooses another), renders
``--episodes`` deterministic episodes offscreen with TorchRL's ``VideoRecorder`` (through
:class:`torchrl_psmbpo.recipes.evaluation.Evaluator`) and writes the first as a GIF. MuJoCo needs an offscreen
backend on a machine without a display: ``MUJOCO_GL=egl`` (or ``osmesa``); Gym's classic-control
tasks draw with pygame instead.

Usage:
    MUJOCO_GL=egl python recipes/record.py bench/results/protocol_v1/runs/dmc_cartpole-swingup/sac/seed0 \\
        --out docs/img/cartpole_swingup_sac.gif --scale 0.5 --stride 2
    MUJOCO_GL=egl python recipes/record.py <run dir> --out strip.png --scale 0.4 --stride 16

Bad input (an ``--out`` that cannot be written, no run dir, an unreadable config or checkpoint,
a member out of range, no offscreen rendering) is one ``error:`` line and exit code 1, before
anything is rendered. Only the GIF is written (default
``<run dir>/videos/record.gif``); the config, logs and checkpoint are only read.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from omegaconf import OmegaConf

from torchrl_psmbpo.recipes.build import EVAL_SEED_OFFSET, make_policies, make_posterior
from torchrl_psmbpo.recipes.checkpoint import CHECKPOINT_NAME, CheckpointError, load_checkpoint
from torchrl_psmbpo.recipes.cli import to_config
from torchrl_psmbpo.recipes.evaluation import Evaluator, rendering_problem
from torchrl_psmbpo.recipes.rundir import RunDirError, check_writable


def record(run_dir: str | Path, out: str | Path, episodes: int = 1, member: int | None = None,
           scale: float = 1.0, stride: int = 1) -> dict[str, float]:
    """Write ``out`` (a GIF of the first episode); return ``{"return", "member"[, "success"]}``.

    ``scale`` resizes the frames and ``stride`` keeps every ``stride``-th of the recorded frames
    (the recorder already keeps every second agent step), for GIFs small enough for docs.

    Raises:
        ValueError: an ``out`` that cannot be written, a missing or unreadable run dir,
            config or checkpoint, or a bad member.
        RuntimeError: the task cannot render here (MuJoCo without an offscreen backend, or a
            Gym classic-control task without pygame).
    """
    run_dir, out = Path(run_dir), Path(out)
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder: give the file to write (e.g. "
                         f"{out / 'record.gif'}).")
    try:  # before anything is loaded or rendered
        check_writable(out.parent, what="--out folder")  # an existing file is overwritten
        if out.exists() and not os.access(out, os.W_OK):
            raise RunDirError(f"Cannot write to {str(out)!r}: it is read-only here.")
    except RunDirError as err:
        raise ValueError(f"--out {out}: {err}") from None
    if not (run_dir / "config.yaml").is_file():
        raise ValueError(f"{run_dir}: no config.yaml; a run dir holds config.yaml and {CHECKPOINT_NAME}.")
    try:
        cfg = to_config(OmegaConf.load(run_dir / "config.yaml"))
    except Exception as err:
        raise ValueError(f"{run_dir / 'config.yaml'} is unreadable ({str(err).splitlines()[0]}).") from None
    try:
        payload = load_checkpoint(run_dir, cfg)
    except CheckpointError as err:
        raise ValueError(str(err)) from None
    posterior = make_posterior(cfg)
    posterior.load_state_dict(payload["state"]["posterior"])
    chosen = posterior.most_likely() if member is None else member
    if not 0 <= chosen < cfg.num_policies:
        raise ValueError(f"--member {chosen} is out of range: the run has {cfg.num_policies} "
                         f"members (0..{cfg.num_policies - 1}).")
    problem = rendering_problem(cfg.env.task)  # one render on a throwaway env
    if problem is not None:
        raise RuntimeError(f"{problem}.")
    with tempfile.TemporaryDirectory() as tmp:
        from torchrl.record.loggers import CSVLogger

        evaluator = Evaluator(cfg.env.task, cfg.seed + EVAL_SEED_OFFSET, episodes, "cpu",
                              cfg.env.action_repeat, video_logger=CSVLogger("video", tmp),
                              video_dir=tmp)
        obs_dim = evaluator.env.observation_spec["observation"].shape[-1]
        act_dim = evaluator.env.action_spec.shape[-1]
        policies = make_policies(cfg, obs_dim, act_dim)
        policies.load_state_dict(payload["state"]["policies"])
        result = evaluator.evaluate(policies, chosen, round_index=0, step=0)
        out.parent.mkdir(parents=True, exist_ok=True)
        shrink(Path(tmp) / "eval_0.gif", out, scale, stride)
    return {**result, "member": float(chosen)}


def shrink(gif: Path, out: Path, scale: float, stride: int) -> None:
    """Copy ``gif`` to ``out`` with frames resized by ``scale`` and every ``stride``-th kept; an
    ``out`` ending in ``.png`` gets the kept frames side by side as one strip instead."""
    if scale == 1.0 and stride == 1 and out.suffix.lower() == ".gif":
        shutil.move(str(gif), out)
        return
    from PIL import Image, ImageSequence

    with Image.open(gif) as im:
        duration = im.info.get("duration", 80) * stride
        size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
        frames = [f.convert("RGB").resize(size, Image.LANCZOS)
                  for i, f in enumerate(ImageSequence.Iterator(im)) if i % stride == 0]
    if out.suffix.lower() == ".png":
        strip = Image.new("RGB", (size[0] * len(frames), size[1]))
        for i, frame in enumerate(frames):
            strip.paste(frame, (i * size[0], 0))
        strip.save(out)
        return
    frames[0].save(out, save_all=True, append_images=frames[1:], duration=duration, loop=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--out", type=Path, default=None,
                        help="the GIF to write (default: <run dir>/videos/record.gif); a .png "
                             "gets the kept frames as one strip")
    parser.add_argument("--episodes", type=int, default=1, help="episodes to evaluate (the first is recorded)")
    parser.add_argument("--member", type=int, default=None, help="flat member index (default: most likely)")
    parser.add_argument("--scale", type=float, default=1.0, help="resize frames by this factor")
    parser.add_argument("--stride", type=int, default=1, help="keep every k-th recorded frame")
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error(f"--episodes must be >= 1, got {args.episodes}")
    if not 0 < args.scale <= 4:
        parser.error(f"--scale must lie in (0, 4], got {args.scale}")
    if args.stride < 1:
        parser.error(f"--stride must be >= 1, got {args.stride}")
    out = args.out if args.out is not None else args.run_dir / "videos" / "record.gif"
    try:
        result = record(args.run_dir, out, args.episodes, args.member, args.scale, args.stride)
    except (ValueError, RuntimeError) as err:
        raise SystemExit(f"error: {err}") from None
    shown = ", ".join(f"{k} {v:.3g}" for k, v in result.items())
    print(f"wrote {out} ({shown})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
