"""PS-MBPO / OPS-MBPO on Gym MuJoCo (default gym:HalfCheetah-v5).

Usage:
    python recipes/psmbpo_gym.py                          # paper-scale defaults
    python recipes/psmbpo_gym.py preset=small             # minutes on a laptop CPU
    python recipes/psmbpo_gym.py variant=ops-mbpo seed=1  # any field: key=value
    python recipes/psmbpo_gym.py resume=runs/<run dir>    # continue a run
    python recipes/psmbpo_gym.py --help                   # every field, default and source
"""

from config import SUITE_DEFAULTS
from run import main

if __name__ == "__main__":
    main(**SUITE_DEFAULTS["gym"])
