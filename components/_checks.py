"""The constructor-argument checks every component shares: one rule and one message each.

Each function returns the value in its plain Python type or raises one ``ValueError`` that names
the argument, what is accepted and what it got (wrong types and out-of-range values alike, so a
caller catches one exception class). Every subpackage may import this module (it imports none
of them), like :mod:`torchrl_psmbpo.keys`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

__all__ = ["check_ensemble_shape", "check_int", "check_real"]


def check_int(name: str, value: object, *, minimum: int | None = 1) -> int:
    """``value`` as an ``int`` that is at least ``minimum`` (``None``: any int).

    Booleans are refused (``True`` is an ``int`` to Python, never a count to a user).

    Examples:
        >>> check_int("batch_size", 256)
        256
        >>> check_int("batch_size", 0)
        Traceback (most recent call last):
        ...
        ValueError: batch_size must be an int >= 1, got 0.
    """
    accepted = "an int" if minimum is None else f"an int >= {minimum}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or (
            minimum is not None and value < minimum):
        raise ValueError(f"{name} must be {accepted}, got {value!r}.")
    return int(value)


def check_real(name: str, value: object, *, low: float | None = None, high: float | None = None,
               low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a finite ``float`` in the interval from ``low`` to ``high``.

    Args:
        name: the argument's name, as the message shows it.
        value: what the caller passed.

    Keyword Args:
        low, high: the bounds (``None``: unbounded on that side).
        low_open, high_open: exclude the bound itself (``low=0, low_open=True``: ``> 0``).

    Examples:
        >>> check_real("real_ratio", 0.05, low=0, high=1)
        0.05
        >>> check_real("lr", -1, low=0, low_open=True)
        Traceback (most recent call last):
        ...
        ValueError: lr must be a finite float > 0, got -1.
    """
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        if low is not None and high is not None:
            accepted = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        elif low is not None:
            accepted = f"{'>' if low_open else '>='} {low:g}"
        elif high is not None:
            accepted = f"{'<' if high_open else '<='} {high:g}"
        else:
            accepted = ""
        raise ValueError(f"{name} must be a finite float {accepted}".rstrip() + f", got {value!r}.")
    return float(value)


def check_ensemble_shape(ensemble_shape: Sequence[int]) -> tuple[int, int]:
    """``(N, M)``, models and policies per model, as two ints >= 1.

    Examples:
        >>> check_ensemble_shape([2, 3])
        (2, 3)
    """
    is_pair = isinstance(ensemble_shape, Sequence) and not isinstance(ensemble_shape, str)
    shape = tuple(ensemble_shape) if is_pair else ()
    if len(shape) != 2:
        raise ValueError(f"ensemble_shape must be (N, M) (models, policies per model), "
                         f"got {ensemble_shape!r}.")
    return (check_int("ensemble_shape[0] (N, models)", shape[0]),
            check_int("ensemble_shape[1] (M, policies per model)", shape[1]))
