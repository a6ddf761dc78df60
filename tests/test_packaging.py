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
        "import sys, torchrl_psmbpo\n"
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
    out = subprocess.run([sys.executable, "-c", "from torchrl_psmbpo.recipes.psmbpo_dmc import run; import sys; "
                          "sys.argv = ['psmbpo-dmc', '--help']; run()"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0 and "Override any field with key=value" in out.stdout


# --- one import name: torchrl_psmbpo (components/ at its top, recipes/ under it) -------------

PACKAGE = "torchrl_psmbpo"
FOLDERS = {"components": PACKAGE, "recipes": f"{PACKAGE}.recipes"}
GENERIC = tuple(FOLDERS)  # the folder names, which must never be import names of ours


def test_every_folder_is_a_package_under_the_one_name_and_its_data_ships(metadata):
    """Each folder with an ``__init__.py`` under components/ and recipes/ installs as the package
    its place gives (components/world_model -> torchrl_psmbpo.world_model), nothing installs at
    the top but torchrl_psmbpo, and every config and anchor file of recipes/ is package data."""
    import fnmatch

    expected = {}
    for folder, name in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            sub = init.parent.relative_to(ROOT / folder).parts
            expected[".".join((name, *sub))] = init.parent.relative_to(ROOT).as_posix()
    assert set(metadata["packages"]) == set(expected)
    assert {k: v for k, v in metadata["package_dir"].items() if k} == expected
    assert {p.split(".")[0] for p in metadata["packages"]} == {PACKAGE}
    patterns = metadata["package_data"][f"{PACKAGE}.recipes"]
    data = [p.relative_to(ROOT / "recipes").as_posix()
            for sub in ("conf", "anchors") for p in (ROOT / "recipes" / sub).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts]
    assert any(d.endswith("dmc.yaml") for d in data) and any(d.endswith(".csv") for d in data)
    missing = [d for d in data if not any(fnmatch.fnmatchcase(d, pat) for pat in patterns)]
    assert not missing, f"not shipped as package data: {missing}"
    targets = [e.split("=", 1)[1] for e in metadata["entry_points"]["console_scripts"]]
    assert all(t.startswith(f"{PACKAGE}.recipes.") for t in targets), targets


def test_no_code_imports_a_folder_name():
    """Our code names its modules ``torchrl_psmbpo...`` only: an import of the bare folder names
    would load a user's own ``components``/``recipes`` package, or a second copy of ours."""
    statement = re.compile(rf"^\s*(from|import)\s+({'|'.join(GENERIC)})\b", re.M)
    files = [p for folder in ("components", "recipes", "tests", "bench", "docs")
             for p in (ROOT / folder).rglob("*.py")]
    found = [f"{p.relative_to(ROOT)}: {m.group(0).strip()}"
             for p in files for m in statement.finditer(p.read_text(encoding="utf-8"))]
    assert not found, "\n".join(found)


def test_a_project_with_its_own_components_and_recipes_packages_imports_ours(tmp_path):
    """A user's project with packages of its own named like our folders, first on sys.path,
    imports every module of ours and keeps its own: ours neither reads nor replaces them."""
    for folder in GENERIC:
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "__init__.py").write_text(f"OWNER = 'user {folder}'\n")
        (tmp_path / folder / "own.py").write_text(f"OWNER = 'user {folder} own'\n")
    code = f"""
import importlib, pkgutil, sys
from pathlib import Path
sys.path.insert(0, {str(tmp_path)!r})
import {PACKAGE}
from {PACKAGE} import DynamicsEnsemble, ImaginedRolloutEnv, PolicyEnsemble, PosteriorSamplingTransform
from {PACKAGE}.recipes.cli import CONF_DIR
assert (CONF_DIR / "dmc.yaml").is_file(), CONF_DIR
for package in ({PACKAGE}, importlib.import_module({PACKAGE}.__name__ + ".recipes")):
    for info in pkgutil.walk_packages(package.__path__, prefix=package.__name__ + "."):
        importlib.import_module(info.name)
for folder in {GENERIC!r}:
    assert importlib.import_module(folder).OWNER == "user " + folder
    assert importlib.import_module(folder + ".own").OWNER == "user " + folder + " own"
for name, module in sorted(sys.modules.items()):
    if name.split(".")[0] in {GENERIC!r}:
        assert Path(module.__file__).is_relative_to({str(tmp_path)!r}), (name, module.__file__)
print(len([m for m in sys.modules if m.startswith("{PACKAGE}.")]), "modules of ours")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert int(out.stdout.split()[-4]) >= 20, out.stdout


def test_a_wheel_holds_the_one_package_its_data_and_the_entry_points(tmp_path):
    """What ``pip install .`` installs: a wheel built from a copy of the checkout has
    ``torchrl_psmbpo/`` (with ``recipes/``, its Hydra configs and anchors) and no other top."""
    import shutil
    import zipfile

    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("setup.py", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    for folder in GENERIC:
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=ignore)
    code = "from setuptools import build_meta; print(build_meta.build_wheel('dist'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    wheel = zipfile.ZipFile(tmp_path / "dist" / out.stdout.split()[-1])
    names = wheel.namelist()
    assert {n.split("/")[0] for n in names if ".dist-info/" not in n} == {PACKAGE}
    for path in ("__init__.py", "world_model/dynamics.py", "theory/tabular/psrl.py",
                 "recipes/cli.py", "recipes/conf/dmc.yaml", "recipes/conf/preset/cpu_dmc.yaml",
                 "recipes/conf/hydra/launcher/slurm.yaml", "recipes/anchors/README.md",
                 "recipes/anchors/tdmpc2_results/LICENSE",
                 "recipes/anchors/tdmpc2_results/sac_walker-walk.csv"):
        assert f"{PACKAGE}/{path}" in names, path
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert f"psmbpo-dmc = {PACKAGE}.recipes.psmbpo_dmc:run" in wheel.read(entry_points).decode()
