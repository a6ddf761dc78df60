"""The seed of each episode of a run, shared by the real env's reseeding and the posterior's picks.

:class:`~torchrl_psmbpo.envs.episode_seeding.EpisodeSeeder` reseeds the real env with it before
every reset, and :class:`~torchrl_psmbpo.sampling.posterior.PolicyPosterior` (with
``episode_seeded=True``) reseeds its generator with it before every pick, so that a resumed run
sees the same episodes and the same picks as the run it continues.
"""

from __future__ import annotations

__all__ = ["episode_seed"]


def episode_seed(seed: int, episode: int) -> int:
    """The seed of episode ``episode`` of a run seeded with ``seed`` (fits in 31 bits).

    Args:
        seed: the run's seed.
        episode: how many episodes of the run have finished before this one.

    Examples:
        >>> episode_seed(0, 3)
        3
    """
    return (int(seed) * 1_000_003 + int(episode)) % (2**31 - 1)
