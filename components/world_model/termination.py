"""The known termination rules of the Gym tasks, under their former import path.

They live in :mod:`components.termination` (task knowledge, shared by the env factory and the
imagined-rollout env); this module re-exports them so that
``from components.world_model.termination import ...`` keeps working.
"""

from components.termination import *  # noqa: F401,F403
from components.termination import __all__  # noqa: F401
