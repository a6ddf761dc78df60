"""What several test files (and benches) do the same way: SAC batches, played episodes, a
folder made read-only.

Under pytest ``tests/`` is on ``sys.path`` (``from helpers import sac_batch``); the benches put
the repository root on it (``from tests.helpers import sac_batch``).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import unittest
from pathlib import Path

import torch
from tensordict import TensorDict


def sac_batch(
    n: int, m: int, b: int, obs: int, act: int, *, terminated: float = 0.25, observation: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> TensorDict:
    """A random ``[n, m, b]`` batch of the transitions ``PolicyEnsemble.update`` reads.

    Args:
        n, m, b: the ensemble shape and the batch per member.
        obs, act: observation and action sizes.
        terminated: the probability of each transition to be terminal.
        observation: the ``[n, m, b, obs]`` observations (drawn when ``None``).
        generator: the random stream to draw from (``None``: torch's global one).
    """
    g = generator
    return TensorDict(
        {
            "observation": torch.randn(n, m, b, obs, generator=g) if observation is None else observation,
            "action": torch.rand(n, m, b, act, generator=g) * 2 - 1,
            "next": {
                "observation": torch.randn(n, m, b, obs, generator=g),
                "reward": torch.randn(n, m, b, 1, generator=g),
                "terminated": torch.rand(n, m, b, 1, generator=g) < terminated,
                "done": torch.zeros(n, m, b, 1, dtype=torch.bool),
            },
        },
        [n, m, b],
    )


def scripted_actions(env, steps: int, seed: int = 0) -> torch.Tensor:
    """``steps`` uniform actions in ``[-1, 1]`` for ``env``, from their own generator."""
    g = torch.Generator().manual_seed(seed)
    shape = (steps,) + tuple(env.action_spec.shape)
    return torch.rand(shape, generator=g) * 2 - 1


def play(env, actions: torch.Tensor) -> TensorDict:
    """Step ``env`` through ``actions`` (resetting after done), return the stacked transitions."""
    out = []
    td = env.reset()
    for a in actions:
        td["action"] = a
        td = env.step(td)
        out.append(td.clone())
        td = env.step_mdp(td)
        if out[-1]["next", "done"].any():
            td = env.reset()
    return torch.stack(out)


@contextlib.contextmanager
def read_only(path: Path):
    """``path`` cannot be written while inside (``chattr +i`` as root, whom modes do not stop).

    Raises ``unittest.SkipTest`` (a skip, under pytest) where root cannot use ``chattr +i``.
    """
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
            raise unittest.SkipTest("cannot make a folder read-only for root here (chattr +i)")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
    else:
        mode = path.stat().st_mode
        path.chmod(0o555)
        try:
            yield
        finally:
            path.chmod(mode)
