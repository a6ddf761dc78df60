"""Every docstring example under ``components/`` runs: one test per module, so a failure names it."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest
import torch

import torchrl_psmbpo


def _modules() -> list[str]:
    names = [torchrl_psmbpo.__name__]
    for info in pkgutil.walk_packages(torchrl_psmbpo.__path__, prefix=f"{torchrl_psmbpo.__name__}."):
        if info.name.split(".")[1] != "recipes":  # in a wheel's folder, not an editable install's
            names.append(info.name)
    return sorted(names)


MODULES = _modules()


def test_every_subpackage_is_collected():
    for sub in ("envs", "world_model", "policy", "sampling", "replay", "theory"):
        assert f"torchrl_psmbpo.{sub}" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    torch.manual_seed(0)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    # examples use torch and TensorDict without importing them, as the module does
    globs = {"torch": torch, **vars(module)}
    for test in finder.find(module, name, globs=globs):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples failed in {name}"
