"""PS-MBPO / OPS-MBPO on DeepMind Control (default dmc:cartpole-swingup); see ``--help``."""
from torchrl_psmbpo.recipes.cli import entry_point

run = entry_point("dmc")  # also the console script psmbpo-dmc
if __name__ == "__main__":
    run()
