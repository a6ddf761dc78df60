"""PS-MBPO / OPS-MBPO on Metaworld (default metaworld:window-open-v3); see ``--help``."""
from torchrl_psmbpo.recipes.cli import entry_point

run = entry_point("metaworld")  # also the console script psmbpo-metaworld
if __name__ == "__main__":
    run()
