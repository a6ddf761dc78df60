"""The tests check the code of the checkout they are in: ``torchrl_psmbpo`` must be installed from
it (``pip install -e .`` here), not from another checkout or a wheel, or the run stops at once."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import torch

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
    # One torch thread per test process, and for the runs the CLI tests start as subprocesses:
    # the tests' networks are tiny, so a second thread gains nothing, and with two xdist
    # workers (or other processes) on the machine OpenMP waits slow each op by 10-50x.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _one_thread_again():
    """Back to one thread after each test: one that runs the CLI in process with ``run.threads``
    would otherwise leave its threads to the tests (and module fixtures) after it."""
    yield
    torch.set_num_threads(1)
