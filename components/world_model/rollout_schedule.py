"""MBPO's truncated linear rollout-length schedule.

MBPO (Janner et al. 2019, ``mbpo/algorithms/mbpo.py::_set_rollout_length``) grows the imagined
rollout length linearly from ``min_len`` at ``min_epoch`` to ``max_len`` at ``max_epoch`` and holds
it outside that range; e.g. ``[20, 150, 1, 15]`` for Hopper (rollout length 1 for 20 epochs, then
+1 about every 9 epochs up to 15). An MBPO "epoch" is 1000 environment steps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["rollout_length"]


def rollout_length(epoch: float, schedule: Sequence[float] = (20, 150, 1, 15)) -> int:
    """Rollout length at ``epoch`` for ``schedule = (min_epoch, max_epoch, min_len, max_len)``.

    Args:
        epoch (float): current epoch (fractions allowed, e.g. ``env_steps / 1000``).
        schedule (sequence of 4 numbers): ``(min_epoch, max_epoch, min_len, max_len)`` with
            ``min_epoch <= max_epoch`` and integer lengths ``>= 1``. Defaults to MBPO's Hopper
            schedule ``(20, 150, 1, 15)``.

    Returns:
        ``min_len`` up to ``min_epoch``, ``max_len`` from ``max_epoch`` on, and in between
        ``int(min_len + (epoch - min_epoch) / (max_epoch - min_epoch) * (max_len - min_len))``
        (truncated, as in MBPO).

    Examples:
        >>> rollout_length(0, (20, 150, 1, 15))
        1
        >>> rollout_length(60, (20, 150, 1, 15))
        5
        >>> rollout_length(500, (20, 150, 1, 15))
        15
    """
    if isinstance(schedule, (str, bytes)) or len(schedule) != 4:
        raise ValueError(
            f"schedule must be (min_epoch, max_epoch, min_len, max_len), got {schedule!r}"
        )
    min_epoch, max_epoch, min_len, max_len = schedule
    if not min_epoch <= max_epoch:
        raise ValueError(f"schedule {tuple(schedule)}: min_epoch={min_epoch} must be <= max_epoch={max_epoch}")
    for name, value in (("min_len", min_len), ("max_len", max_len)):
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ValueError(f"schedule {tuple(schedule)}: {name}={value!r} must be an integer >= 1")
    if not math.isfinite(epoch):
        raise ValueError(f"epoch must be finite, got {epoch!r}")
    if epoch <= min_epoch:
        return int(min_len)
    if epoch >= max_epoch:
        return int(max_len)
    frac = (epoch - min_epoch) / (max_epoch - min_epoch)
    return int(min_len + frac * (max_len - min_len))
