"""Posterior sampling over policies: PS (uniform) or OPS (optimistic) pick once per episode.

* :mod:`~torchrl_psmbpo.sampling.posterior`: :class:`PolicyPosterior`, the distribution over the
  N*M members (``pick``: line 3 of Algorithm 1, ``update``: line 15), and
  ``ops_probabilities``.
* :mod:`~torchrl_psmbpo.sampling.transform`: :class:`PosteriorSamplingTransform`, a TorchRL
  ``Transform`` usable on any env that picks from a ``PolicyPosterior`` at every reset and
  writes the member under :data:`POLICY_INDEX_KEY`.
"""

from torchrl_psmbpo.sampling.posterior import (
    SAMPLING_MODES,
    STATISTICS,
    PolicyPosterior,
    ops_probabilities,
)
from torchrl_psmbpo.sampling.transform import (
    POLICY_INDEX_KEY,
    FinishedEpisode,
    PosteriorSamplingTransform,
)

__all__ = [
    "POLICY_INDEX_KEY",
    "PolicyPosterior",
    "PosteriorSamplingTransform",
    "FinishedEpisode",
    "SAMPLING_MODES",
    "STATISTICS",
    "ops_probabilities",
]
