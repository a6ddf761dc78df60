"""The known termination rules of the Gym tasks, under their former import path.

They live in :mod:`torchrl_psmbpo.termination` (task knowledge, shared by the env factory and the
imagined-rollout env); this module re-exports them so that
``from torchrl_psmbpo.world_model.termination import ...`` keeps working.
"""

from torchrl_psmbpo.termination import *  # noqa: F401,F403
from torchrl_psmbpo.termination import __all__  # noqa: F401
