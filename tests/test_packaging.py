"""Install metadata: the core install is the components' needs only, the extras cover the
rest, constraints.txt agrees with setup.py, and the README's commands are CI's."""

from __future__ import annotations

import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import setuptools
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
OPTIONAL = ("dm_control", "metaworld", "gymnasium", "hydra", "hydra-core", "mujoco", "matplotlib")


@pytest.fixture(scope="module")
def metadata() -> dict:
    """The keyword arguments setup.py passes to ``setuptools.setup``."""
    captured: dict = {}
    original = setuptools.setup
    setuptools.setup = lambda **kwargs: captured.update(kwargs)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(ROOT)
            runpy.run_path(str(ROOT / "setup.py"), run_name="__main__")
    finally:
        setuptools.setup = original
    return captured


def _names(requirements) -> set[str]:
    return {Requirement(r).name.lower().replace("_", "-") for r in requirements}


def test_core_install_lists_only_what_the_components_import(metadata):
    core = _names(metadata["install_requires"])
    assert core == {"torch", "torchrl", "tensordict", "numpy", "tqdm"}
    assert not core & {n.replace("_", "-") for n in OPTIONAL}
    torch = next(Requirement(r) for r in metadata["install_requires"] if r.startswith("torch"))
    assert "2.13.0" in torch.specifier and "2.14.0" not in torch.specifier


def test_extras_cover_every_suite_the_recipes_and_the_tests(metadata):
    extras = {k: _names(v) for k, v in metadata["extras_require"].items()}
    assert {"dm-control", "mujoco"} <= extras["dmc"]
    assert "gymnasium" in extras["gym"] and "metaworld" in extras["metaworld"]
    assert {"hydra-core", "hydra-joblib-launcher", "hydra-submitit-launcher", "matplotlib",
            "pillow", "scipy"} <= extras["recipes"]
    assert extras["wandb"] == {"wandb"} and extras["tensorboard"] == {"tensorboard"}
    assert extras["all"] == extras["dmc"] | extras["gym"] | extras["metaworld"] | extras["recipes"]
    # CI installs '.[test]' only: it must hold everything the test suite imports
    assert extras["all"] | {"pytest", "pytest-xdist", "pdoc"} == extras["test"]


def test_constraints_satisfy_setup_requirements(metadata):
    pinned = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pinned[name.lower().replace("_", "-")] = version
    requirements = list(metadata["install_requires"])
    for extra, reqs in metadata["extras_require"].items():
        if extra not in ("wandb", "tensorboard"):  # optional loggers: not in CI's set
            requirements += reqs
    for r in map(Requirement, requirements):
        name = r.name.lower().replace("_", "-")
        assert name in pinned, f"{name} is required but not in constraints.txt"
        assert r.specifier.contains(pinned[name], prereleases=True), (r, pinned[name])


def test_readme_test_command_is_what_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    install = re.search(r"^python3 -m venv .*$", ci, re.M).group(0)
    run = re.search(r"^\.venv/bin/python -m pytest.*$", ci, re.M).group(0)
    assert f"{install} && {run}" in readme


def test_citation_cites_the_software_and_both_papers():
    import yaml

    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["type"] == "software" and cff["license"] == "MIT"
    titles = [r["title"] for r in cff["references"]]
    assert "Model-based Policy Optimization under Approximate Bayesian Inference" in titles
    assert "An Inference Perspective on Model-Based Reinforcement Learning" in titles
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def test_import_components_loads_no_suite_or_recipe_dependency():
    code = (
        "import sys, components\n"
        f"print(sorted(m for m in {OPTIONAL[:4]!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr


def test_user_facing_text_points_at_nothing_outside_the_repository():
    """README, docs, setup.py and the packages' sources say the facts, not where a design note
    or an issue tracker outside the repository keeps them."""
    pattern = re.compile(r"DESIGN section|DESIGN\.md|\.\./shared|shared/(papers|anchors|probes)|"
                         r"\bissue \d+|\bthe issue\b", re.I)
    files = [ROOT / "README.md", ROOT / "setup.py", *sorted((ROOT / "docs").glob("*.md"))]
    for package in ("components", "recipes"):
        files += sorted((ROOT / package).rglob("*.py")) + sorted((ROOT / package).rglob("*.yaml"))
    found = [f"{path.relative_to(ROOT)}:{i}: {line.strip()}"
             for path in files
             for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if pattern.search(line)]
    assert not found, "\n".join(found)


def test_console_scripts_point_at_the_recipes_entry_functions(metadata):
    import importlib

    scripts = dict(e.split("=", 1) for e in metadata["entry_points"]["console_scripts"])
    assert set(scripts) == {"psmbpo-dmc", "psmbpo-gym", "psmbpo-metaworld", "psmbpo-report",
                            "psmbpo-record"}
    for name, target in scripts.items():
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func)), name
    out = subprocess.run([sys.executable, "-c", "from recipes.psmbpo_dmc import run; import sys; "
                          "sys.argv = ['psmbpo-dmc', '--help']; run()"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0 and "Override any field with key=value" in out.stdout
