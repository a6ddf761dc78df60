"""The tests check the code of the checkout they are in: ``torchrl_psmbpo`` must be installed from
it (``pip install -e .`` here), not from another checkout or a wheel, or the run stops at once."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_EXPECTED = {"torchrl_psmbpo": ROOT / "components", "torchrl_psmbpo.recipes": ROOT / "recipes"}


def pytest_configure(config):
    for name, folder in _EXPECTED.items():
        spec = importlib.util.find_spec(name)
        found = Path(spec.origin).resolve().parent if spec and spec.origin else None
        if found != folder:
            pytest.exit(f"{name} is imported from {found}, not from this checkout's {folder}: "
                        f"install this checkout (pip install -e '{ROOT}[test]') into the venv "
                        "that runs the tests", returncode=4)
