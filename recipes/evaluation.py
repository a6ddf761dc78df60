"""Deterministic evaluation of policy-ensemble members on a separate, seeded env (and videos)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torchrl.envs import ExplorationType, set_exploration_type
from torchrl.record import VideoRecorder
from torchrl.record.loggers import Logger

from torchrl_psmbpo.envs import EpisodeSeeder, make_env, max_episode_steps
from torchrl_psmbpo.policy import PolicyEnsemble
from torchrl_psmbpo.recipes.checkpoint import rng_state, seed_all, set_rng_state


@contextmanager
def own_random_streams(seed: int) -> Iterator[None]:
    """Run a block on random streams of its own: torch's, numpy's and Python's global generators
    are seeded with ``seed`` for the block and given back exactly as they were after it.

    Evaluation runs inside this, so it consumes nothing of the training's streams: a run
    resumed from a checkpoint written at an evaluation step continues to the same numbers as
    the uninterrupted run, whether the evaluation happened before or after the checkpoint.

    Examples:
        >>> _ = torch.manual_seed(0)
        >>> with own_random_streams(123):
        ...     _ = torch.rand(5)
        >>> after = torch.rand(1)
        >>> _ = torch.manual_seed(0)
        >>> torch.equal(after, torch.rand(1))
        True
    """
    saved = rng_state()
    try:
        seed_all(seed)
        yield
    finally:
        set_rng_state(saved)


@functools.cache
def rendering_problem(task: str) -> str | None:
    """Why ``task`` cannot be rendered offscreen here, with the fix, or ``None`` if it can.

    One throwaway env renders one frame (once per task and process, on random streams of its
    own). MuJoCo tasks (``dmc:``, MuJoCo ``gym:`` tasks, ``metaworld:``) need an offscreen
    OpenGL backend on a machine without a display (``MUJOCO_GL=egl`` or ``osmesa``); Gym's
    classic-control tasks draw with pygame instead.
    """
    try:
        with own_random_streams(0):
            env = make_env(task, seed=0, from_pixels=True)
            try:
                env.reset()
            finally:
                env.close()
    except Exception as err:  # no OpenGL context, no pygame, ...
        text = str(err).strip()
        first = text.splitlines()[0] if text else type(err).__name__
        if "pygame" in text.lower():  # Gym's classic control: no MUJOCO_GL involved
            why = ("pygame, which Gym draws it with, is not installed"
                   if "not installed" in text else f"pygame, which Gym draws it with: {first}")
            return (f"{task} cannot render here ({why}): install pygame with "
                    'pip install "gymnasium[classic_control]"')
        return (f"{task} cannot render offscreen here ({first}): set MUJOCO_GL=egl (or osmesa) "
                "for MuJoCo's offscreen rendering on a machine without a display")
    return None


class Evaluator:
    """Runs deterministic episodes of chosen members.

    The env is seeded per evaluation round, so the same member evaluated at the same round
    sees the same episodes whether or not the run was resumed in between; each evaluation runs
    on random streams of its own (:func:`own_random_streams`), so it neither draws from nor
    depends on the training's.

    Args:
        task: the task name.
        seed: the evaluation seed (the run's seed plus an offset).
        episodes: episodes per evaluation.
        device: the env's device.
        action_repeat: as the training env's.
        video_logger: record the first episode of every evaluation with TorchRL's
            ``VideoRecorder`` into this logger (``CSVLogger``: a ``[1, T, C, H, W]`` uint8, every second frame
            tensor under ``logs/videos/``), and as a GIF under ``video_dir``. Needs MuJoCo
            offscreen rendering (``MUJOCO_GL=egl`` or ``osmesa`` on a machine without a display).
        video_dir: where the GIFs go (default: none).
    """

    def __init__(self, task: str, seed: int, episodes: int = 1, device: str = "cpu",
                 action_repeat: int = 1, video_logger: Logger | None = None,
                 video_dir: str | Path | None = None) -> None:
        self.task = task
        self.seed = seed
        self.episodes = episodes
        self.env = make_env(task, seed=seed, device=device, action_repeat=action_repeat,
                            from_pixels=video_logger is not None)
        self.seeder = EpisodeSeeder(seed)
        self.env.append_transform(self.seeder)
        self.recorder = None
        self.video_dir = None if video_dir is None else Path(video_dir)
        if video_logger is not None:
            self.recorder = VideoRecorder(video_logger, tag="eval", in_keys=["pixels"], skip=2)
            self.env.append_transform(self.recorder)
        self.max_steps = -(-max_episode_steps(task) // action_repeat)

    @torch.no_grad()
    def evaluate(self, policies: PolicyEnsemble, member: int, round_index: int,
                 step: int | None = None) -> dict[str, float]:
        """Mean return (and Metaworld success rate) of flat member ``member``'s mean action."""
        returns, successes = [], []
        # episode k of round r always gets the same initial state
        self.seeder.finished_episodes.fill_(round_index * self.episodes)
        with own_random_streams(self.seed * 1_000_003 + round_index), \
                set_exploration_type(ExplorationType.DETERMINISTIC):
            # building the member's actor initialises a module: on the evaluation's streams too
            actor = policies.member(*policies.member_index(int(member)))
            for episode in range(self.episodes):
                td = self.env.rollout(self.max_steps, actor, break_when_any_done=True)
                returns.append(td["next", "reward"].sum().item())
                if ("next", "success") in td.keys(True):
                    successes.append(float(td["next", "success"].any()))
                if self.recorder is not None and episode == 0:
                    self._dump_video(step if step is not None else round_index)
                elif self.recorder is not None:
                    self.recorder.obs = []  # only the first episode of a round is recorded
        out = {"return": sum(returns) / len(returns)}
        if successes:
            out["success"] = sum(successes) / len(successes)
        return out

    def _dump_video(self, step: int) -> None:
        frames = list(self.recorder.obs)
        if self.video_dir is not None and frames:
            from PIL import Image

            self.video_dir.mkdir(parents=True, exist_ok=True)
            images = [Image.fromarray(f.permute(1, 2, 0).cpu().numpy()) for f in frames]
            images[0].save(self.video_dir / f"eval_{step}.gif", save_all=True,
                           append_images=images[1:], duration=80, loop=0)
        self.recorder.dump(step=step)
