"""Posterior sampling over policies: PS (uniform) or OPS (optimistic) pick once per episode.

* :mod:`~components.sampling.transform`: :class:`PosteriorSamplingTransform`, a TorchRL
  ``Transform`` usable on any env, and ``ops_probabilities``.
"""

from components.sampling.transform import (
    SAMPLING_MODES,
    FinishedEpisode,
    PosteriorSamplingTransform,
    ops_probabilities,
)

__all__ = ["PosteriorSamplingTransform", "FinishedEpisode", "SAMPLING_MODES", "ops_probabilities"]
