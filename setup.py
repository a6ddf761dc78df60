"""Install the PS-MBPO / OPS-MBPO TorchRL component set.

Everything installs under one import name, ``torchrl_psmbpo``: the folder ``components/`` is the
package ``torchrl_psmbpo`` (the public API at its top: ``from torchrl_psmbpo import
DynamicsEnsemble``) and ``recipes/`` is ``torchrl_psmbpo.recipes`` (the Hydra apps, the loop, the
report), mapped by ``package_dir`` so that the checkout keeps its layout (docs/packaging.md says
why). Nothing generic such as ``components`` or ``recipes`` lands at the top of the import path.

The core install is what ``components/`` imports: torch, torchrl, tensordict, numpy and tqdm.
The simulators, the recipes' tools and the optional loggers are extras:

    pip install -e '.[all]'    # every suite and the recipes (what the README's run command uses)
    pip install -e '.[test]'   # all of that, plus pytest and pdoc (what CI and the README use)
    pip install -e '.[dmc]'    # the components and DeepMind Control only

``constraints.txt`` holds the exact versions CI and the committed results ran with
(``pip install -c constraints.txt -e '.[test]'``).

Why each range:

* torch ``>=2.13,<2.14``: torchrl 0.14.1 and tensordict 0.14.x ship C++ extensions
  (``torchrl/_torchrl*.so``, ``tensordict/_C.so``) built against the torch 2.13 ABI, and 2.13.0
  is the release everything here was tested with. The default Linux wheel of torch on PyPI is
  the CUDA build (several GB of ``nvidia-*`` packages); for a CPU-only install take torch from
  PyTorch's CPU index first (README.md).
* torchrl ``==0.14.1`` needs tensordict ``>=0.14.3,<0.15`` (its own requirement, repeated here).
* mujoco ``==3.3.0``: metaworld 3.1.1 pins it, and dm_control 1.0.28 is the release built
  against it (dm_control 1.0.50 with mujoco 4.0.0 fails at import of a suite task), so every
  suite extra pins the same mujoco.
* gymnasium ``1.4.*``: the release the Gym and Metaworld wrappers were tested with (metaworld
  3.1.1 needs gymnasium >= 1.1).
* Hydra ``>=1.3.2,<1.4`` with the joblib and submitit launchers 1.2.0: these install together
  (omegaconf resolves to 2.3) and run ``-m`` sweeps locally in parallel and on SLURM.
"""
from setuptools import find_packages, setup

TORCH = ["torch>=2.13,<2.14", "torchrl==0.14.1", "tensordict>=0.14.3,<0.15"]
MUJOCO = "mujoco==3.3.0"
GYMNASIUM = "gymnasium[mujoco]==1.4.*"
PDOC = "pdoc==16.*"

EXTRAS = {
    # DeepMind Control: make_env("dmc:<domain>-<task>")
    "dmc": ["dm_control==1.0.28", MUJOCO],
    # Gym (MuJoCo and classic control): make_env("gym:<Id>")
    "gym": [GYMNASIUM, MUJOCO],
    # Metaworld MT1: make_env("metaworld:<task>"), built through gymnasium.make
    "metaworld": ["metaworld==3.1.1", GYMNASIUM, MUJOCO],
    # recipes/: Hydra apps and sweeps, report curves (matplotlib), intervals (scipy), GIFs and
    # frame strips (pillow)
    "recipes": [
        "hydra-core>=1.3.2,<1.4",
        "hydra-joblib-launcher==1.2.0",
        "hydra-submitit-launcher==1.2.0",
        "matplotlib",
        "pillow",
        "scipy>=1.15",  # scipy.stats.bootstrap(..., rng=) of the report
    ],
    # optional loggers of the recipes: run.logger=wandb | tensorboard
    "wandb": ["wandb"],
    "tensorboard": ["tensorboard"],
    # the API reference (docs/api.md)
    "docs": [PDOC],
}
# Every suite and the recipes: what the README's run command installs.
EXTRAS["all"] = sorted({r for k in ("dmc", "gym", "metaworld", "recipes") for r in EXTRAS[k]})
# The test suite imports every suite, the recipes and pdoc (tests/test_api_docs.py builds the
# API reference): "test" is "all" plus the test runner, so that CI's `pip install -e '.[test]'`
# is all it needs.
EXTRAS["test"] = EXTRAS["all"] + ["pytest", "pytest-xdist", PDOC]

# The import name and the folder of each package: components/ is the top, recipes/ sits under
# it. Every subpackage is listed with its folder, so a wheel and an editable install agree.
PACKAGE = "torchrl_psmbpo"
FOLDERS = {PACKAGE: "components", f"{PACKAGE}.recipes": "recipes"}
PACKAGE_DIR = {
    f"{root}.{sub}" if sub else root: f"{folder}/{sub.replace('.', '/')}" if sub else folder
    for root, folder in FOLDERS.items()
    for sub in ["", *find_packages(where=folder)]
}

setup(
    name="psmbpo-components",
    version="0.1.0",
    description=(
        "TorchRL components for model-based RL with posterior sampling "
        "(PS-MBPO / OPS-MBPO, Wang, Chen & Murphy, AISTATS 2024)"
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=sorted(PACKAGE_DIR),
    package_dir=PACKAGE_DIR,
    package_data={
        f"{PACKAGE}.recipes": [
            "conf/*.yaml", "conf/*/*.yaml", "conf/*/*/*.yaml",
            # the published anchors the report plots (TD-MPC2's result files, MIT)
            "anchors/README.md", "anchors/tdmpc2_results/*.csv", "anchors/tdmpc2_results/LICENSE",
        ],
    },
    install_requires=TORCH + ["numpy", "tqdm"],
    extras_require=EXTRAS,
    # the recipes as commands (the same as python recipes/<script>.py, or python -m
    # torchrl_psmbpo.recipes.report, from a checkout)
    entry_points={"console_scripts": [
        "psmbpo-dmc=torchrl_psmbpo.recipes.psmbpo_dmc:run",
        "psmbpo-gym=torchrl_psmbpo.recipes.psmbpo_gym:run",
        "psmbpo-metaworld=torchrl_psmbpo.recipes.psmbpo_metaworld:run",
        "psmbpo-report=torchrl_psmbpo.recipes.report:main",
        "psmbpo-record=torchrl_psmbpo.recipes.record:main",
    ]},
)
