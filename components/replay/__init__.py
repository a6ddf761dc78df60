"""Replay: the real buffer D_E, the N*M model buffers D_M^{n,m} and the exact-lambda mixed sampler.

* :mod:`~torchrl_psmbpo.replay.buffers`: ``make_real_buffer``, :class:`ModelReplay`,
  :class:`MixedBatchSampler`, ``mbpo_model_capacity``, ``TRANSITION_KEYS``.
"""

from torchrl_psmbpo.replay.buffers import (
    TRANSITION_KEYS,
    MixedBatchSampler,
    ModelReplay,
    make_real_buffer,
    mbpo_model_capacity,
)

__all__ = [
    "TRANSITION_KEYS",
    "make_real_buffer",
    "ModelReplay",
    "MixedBatchSampler",
    "mbpo_model_capacity",
]
