"""The tests check the code of the checkout they are in: ``torchrl_psmbpo`` must be installed from
it (``pip install -e .`` here), not from another checkout or a wheel, or the run stops at once."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
_EXPECTED = {"torchrl_psmbpo": ROOT / "components", "torchrl_psmbpo.recipes": ROOT / "recipes"}


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread until the module's last test: the tests' networks are tiny, so a
    second thread gains nothing, and with other processes on the machine OpenMP waits can slow
    each op by 10-50x. With ``pytestmark = pytest.mark.usefixtures("one_thread")`` it is set up
    before the module's own module-scoped fixtures (models trained once), which then run on one
    thread too."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_configure(config):
    for name, folder in _EXPECTED.items():
        spec = importlib.util.find_spec(name)
        found = Path(spec.origin).resolve().parent if spec and spec.origin else None
        if found != folder:
            pytest.exit(f"{name} is imported from {found}, not from this checkout's {folder}: "
                        f"install this checkout (pip install -e '{ROOT}[test]') into the venv "
                        "that runs the tests", returncode=4)
