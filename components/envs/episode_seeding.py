"""Seed every episode of an env from (seed, number of finished episodes).

A run resumed from a checkpoint must see the same episodes as the run it continues. Env RNGs
live inside the simulator (dm_control's ``task.random``, gymnasium's ``np_random``) where a
checkpoint cannot reach them in general; instead this transform makes each episode's initial
state a pure function of the seed and of how many episodes have finished, a count it keeps in
its ``state_dict``. It works for any env whose ``set_seed`` reseeds the next reset (TorchRL's
``GymEnv``/``GymWrapper`` and ``DMControlEnv`` do).
"""

from __future__ import annotations

import torch
from tensordict import TensorDictBase
from torchrl.envs.transforms import Transform

from torchrl_psmbpo.seeding import episode_seed

__all__ = ["EpisodeSeeder", "episode_seed"]


class EpisodeSeeder(Transform):
    """Reseed the base env before each reset with ``episode_seed(seed, finished_episodes)``.

    Only for unbatched envs (one episode at a time), which is how the real env of the
    training loop is run.

    Args:
        seed: the run's seed.

    Examples:
        >>> from torchrl.envs import TransformedEnv
        >>> from torchrl_psmbpo.envs.factory import make_env
        >>> env = make_env("gym:Pendulum-v1")
        >>> _ = env.append_transform(EpisodeSeeder(seed=0))
        >>> first = env.reset()["observation"]
        >>> env2 = make_env("gym:Pendulum-v1")
        >>> _ = env2.append_transform(EpisodeSeeder(seed=0))
        >>> torch.equal(first, env2.reset()["observation"])
        True
    """

    def __init__(self, seed: int) -> None:
        super().__init__(in_keys=[], out_keys=[])
        self.seed = int(seed)
        self.register_buffer("finished_episodes", torch.zeros((), dtype=torch.long))

    def _reset_env_preprocess(self, tensordict: TensorDictBase | None) -> TensorDictBase | None:
        parent = self.parent
        if parent is not None:
            if parent.batch_size.numel() != 1:
                raise ValueError(
                    f"EpisodeSeeder needs an unbatched env, got batch_size {tuple(parent.batch_size)}."
                )
            parent.base_env.set_seed(episode_seed(self.seed, int(self.finished_episodes)))
        return tensordict

    def _step(self, tensordict: TensorDictBase, next_tensordict: TensorDictBase) -> TensorDictBase:
        done = next_tensordict.get("done", None)
        if done is not None and bool(done.any()):
            self.finished_episodes += 1
        return next_tensordict

    def _reset(self, tensordict: TensorDictBase, tensordict_reset: TensorDictBase) -> TensorDictBase:
        return tensordict_reset

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        return tensordict
