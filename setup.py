"""Install the PS-MBPO / OPS-MBPO TorchRL component set.

Pins follow ../shared/DESIGN.md section 4 (versions checked to install and import together):
torch is pinned to the 2.13 series because an unpinned requirement pulls the newest release
with several GB of CUDA packages; torchrl 0.14.1 needs tensordict >=0.14.3,<0.15;
metaworld 3.1.1 pins mujoco 3.3.0, and dm_control 1.0.28 is the release built against it.
"""
from setuptools import find_packages, setup

setup(
    name="psmbpo-components",
    version="0.1.0",
    description=(
        "TorchRL components for model-based RL with posterior sampling "
        "(PS-MBPO / OPS-MBPO, Wang, Chen & Murphy, AISTATS 2024)"
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["components", "components.*", "recipes"]),
    package_data={"recipes": ["conf/*.yaml", "conf/*/*.yaml", "conf/*/*/*.yaml"]},
    install_requires=[
        "torch==2.13.*",
        "torchrl==0.14.1",
        "tensordict>=0.14.3,<0.15",
        "gymnasium[mujoco]==1.4.*",
        "mujoco==3.3.0",
        "dm_control==1.0.28",
        "metaworld==3.1.1",
        "tqdm",
        # matplotlib: learning-curve and regret plots (docs/ and the plot command).
        "matplotlib",
        # Hydra: structured configs, multirun sweeps and their launchers (recipes/). The
        # joblib and submitit launchers run sweeps locally in parallel and on SLURM; these
        # versions install together with omegaconf 2.3 (DESIGN section 4).
        "hydra-core>=1.3.2,<1.4",
        "hydra-joblib-launcher==1.2.0",
        "hydra-submitit-launcher==1.2.0",
    ],
    extras_require={
        # pdoc: the API reference (docs/api.md); in "test" too, since tests/test_api_docs.py builds it
        "test": ["pytest", "pytest-xdist", "pdoc==16.*"],
        "docs": ["pdoc==16.*"],
    },
)
