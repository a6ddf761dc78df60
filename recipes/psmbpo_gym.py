"""PS-MBPO / OPS-MBPO on Gym MuJoCo (default gym:HalfCheetah-v5); see ``--help``."""
from torchrl_psmbpo.recipes.cli import entry_point

run = entry_point("gym")  # also the console script psmbpo-gym
if __name__ == "__main__":
    run()
