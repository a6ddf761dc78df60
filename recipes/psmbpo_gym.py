"""PS-MBPO / OPS-MBPO on Gym MuJoCo (default gym:HalfCheetah-v5).

Usage:
    python recipes/psmbpo_gym.py                            # paper-scale defaults
    python recipes/psmbpo_gym.py preset=small               # minutes on a laptop CPU
    python recipes/psmbpo_gym.py variant=ops-mbpo seed=1    # any field: key=value
    python recipes/psmbpo_gym.py -m seed=0,1,2 variant=sac,ps-mbpo hydra/launcher=joblib
    python recipes/psmbpo_gym.py resume=<run dir>           # continue a run
    python recipes/psmbpo_gym.py --help                     # every field, default and source
    python recipes/psmbpo_gym.py --cfg job                  # the composed config
"""

from torchrl_psmbpo.recipes.cli import main


def run() -> None:
    """Console entry point ``psmbpo-gym`` (same as ``python recipes/psmbpo_gym.py``)."""
    main("gym")


if __name__ == "__main__":
    run()
