"""The shared constructor-argument checks: what each accepts, what it refuses, and the message."""

from __future__ import annotations

import math

import pytest

from torchrl_psmbpo._checks import check_ensemble_shape, check_int, check_real


@pytest.mark.parametrize("value", [1, 7, 2**40])
def test_check_int_accepts_ints_at_or_above_the_minimum(value):
    assert check_int("n", value) == value and type(check_int("n", value)) is int


@pytest.mark.parametrize(
    ("value", "minimum", "match"),
    [
        (0, 1, "n must be an int >= 1, got 0."),
        (-1, 0, "n must be an int >= 0, got -1."),
        (True, 1, "n must be an int >= 1, got True."),  # a bool is never a count
        (2.0, 1, "n must be an int >= 1, got 2.0."),
        ("3", None, "n must be an int, got '3'."),
    ],
)
def test_check_int_refuses_with_one_value_error(value, minimum, match):
    with pytest.raises(ValueError, match=match.replace(".", r"\.")):
        check_int("n", value, minimum=minimum)


def test_check_int_without_minimum_accepts_negative_ints():
    assert check_int("seed", -5, minimum=None) == -5


@pytest.mark.parametrize(
    ("kwargs", "value", "ok"),
    [
        ({"low": 0, "high": 1}, 0, True),
        ({"low": 0, "high": 1}, 1, True),
        ({"low": 0, "high": 1, "low_open": True}, 0, False),
        ({"low": 0, "high": 1, "high_open": True}, 1, False),
        ({"low": 0, "high": 1, "high_open": True}, 0.999, True),
        ({"low": 0, "low_open": True}, 1e-12, True),
        ({"low": 0, "low_open": True}, 1e300, True),
        ({"low": 0}, math.inf, False),  # finite only
        ({}, math.nan, False),
        ({}, True, False),
        ({}, "1", False),
    ],
)
def test_check_real_bounds(kwargs, value, ok):
    if ok:
        assert check_real("x", value, **kwargs) == float(value)
    else:
        with pytest.raises(ValueError, match=r"^x must be a finite float"):
            check_real("x", value, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "value", "accepted"),
    [
        ({"low": 0, "high": 1, "high_open": True}, 1.0, r"in \[0, 1\)"),
        ({"low": 0, "high": 1, "low_open": True}, 0.0, r"in \(0, 1\]"),
        ({"low": 0, "low_open": True}, -5.0, "> 0"),
        ({"high": 2}, 5.0, "<= 2"),
    ],
)
def test_check_real_message_names_the_accepted_interval(kwargs, value, accepted):
    with pytest.raises(ValueError, match=rf"^x must be a finite float {accepted}, got {value}\.$"):
        check_real("x", value, **kwargs)


def test_check_ensemble_shape():
    assert check_ensemble_shape((2, 3)) == (2, 3)
    assert check_ensemble_shape([1, 1]) == (1, 1)
    for bad in (4, "ab", (2,), (1, 2, 3)):
        with pytest.raises(ValueError, match=r"ensemble_shape must be \(N, M\)"):
            check_ensemble_shape(bad)
    with pytest.raises(ValueError, match=r"ensemble_shape\[1\] \(M, policies per model\)"):
        check_ensemble_shape((2, 0))
