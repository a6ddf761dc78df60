"""PS-MBPO / OPS-MBPO on Metaworld (default metaworld:window-open-v3).

Usage:
    python recipes/psmbpo_metaworld.py                            # paper-scale defaults
    python recipes/psmbpo_metaworld.py preset=small               # minutes on a laptop CPU
    python recipes/psmbpo_metaworld.py variant=ops-mbpo seed=1    # any field: key=value
    python recipes/psmbpo_metaworld.py -m seed=0,1,2 variant=sac,ps-mbpo hydra/launcher=joblib
    python recipes/psmbpo_metaworld.py resume=<run dir>           # continue a run
    python recipes/psmbpo_metaworld.py --help                     # every field, default and source
    python recipes/psmbpo_metaworld.py --cfg job                  # the composed config
"""

from torchrl_psmbpo.recipes.cli import main


def run() -> None:
    """Console entry point ``psmbpo-metaworld`` (same as ``python recipes/psmbpo_metaworld.py``)."""
    main("metaworld")


if __name__ == "__main__":
    run()
