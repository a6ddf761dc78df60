"""Real environments: one factory for DeepMind Control, Gym (MuJoCo) and Metaworld, and per-episode seeds.

* :mod:`~torchrl_psmbpo.envs.factory`: ``make_env(task)``, ``parse_task``, ``termination_fn``.
* :mod:`~torchrl_psmbpo.envs.episode_seeding`: :class:`EpisodeSeeder`, a transform that reseeds
  every episode so that a resumed run replays the same episodes.
"""

from torchrl_psmbpo.envs.episode_seeding import EpisodeSeeder, episode_seed
from torchrl_psmbpo.envs.factory import (
    SUITES,
    dmc_tasks,
    make_env,
    max_episode_steps,
    metaworld_tasks,
    parse_task,
    termination_fn,
)

__all__ = [
    "SUITES",
    "make_env",
    "parse_task",
    "termination_fn",
    "max_episode_steps",
    "dmc_tasks",
    "metaworld_tasks",
    "EpisodeSeeder",
    "episode_seed",
]
