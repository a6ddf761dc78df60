"""PS-MBPO / OPS-MBPO on DeepMind Control (default dmc:cartpole-swingup).

Usage:
    python recipes/psmbpo_dmc.py                            # paper-scale defaults
    python recipes/psmbpo_dmc.py preset=small               # minutes on a laptop CPU
    python recipes/psmbpo_dmc.py variant=ops-mbpo seed=1    # any field: key=value
    python recipes/psmbpo_dmc.py -m seed=0,1,2 variant=sac,ps-mbpo hydra/launcher=joblib
    python recipes/psmbpo_dmc.py resume=<run dir>           # continue a run
    python recipes/psmbpo_dmc.py --help                     # every field, default and source
    python recipes/psmbpo_dmc.py --cfg job                  # the composed config
"""

from torchrl_psmbpo.recipes.cli import main


def run() -> None:
    """Console entry point ``psmbpo-dmc`` (same as ``python recipes/psmbpo_dmc.py``)."""
    main("dmc")


if __name__ == "__main__":
    run()
