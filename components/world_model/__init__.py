"""The world model: the dynamics ensemble, its trainer, the imagined-rollout env and its rules.

* :mod:`~torchrl_psmbpo.world_model.dynamics`: :class:`DynamicsEnsemble`, N probabilistic MLPs in
  one batched pass (a ``TensorDictModuleBase``).
* :mod:`~torchrl_psmbpo.world_model.trainer`: :class:`DynamicsTrainer`, maximum likelihood with a
  hold-out split, early stopping and elites (Algorithm 1, line 2).
* :mod:`~torchrl_psmbpo.world_model.imagined_env`: :class:`ImaginedRolloutEnv`, a
  ``ModelBasedEnvBase`` of batch ``[N, M, B]`` (Algorithm 1, lines 9-10).
* :mod:`~torchrl_psmbpo.world_model.rollout_schedule`: MBPO's truncated linear rollout length.
* the known termination rules of the Gym tasks are in :mod:`torchrl_psmbpo.termination` (task
  knowledge the env factory shares); ``TerminationFn`` and ``never_terminates`` are re-exported.
"""

from torchrl_psmbpo.world_model.dynamics import DynamicsEnsemble
from torchrl_psmbpo.world_model.imagined_env import ImaginedRolloutEnv
from torchrl_psmbpo.world_model.rollout_schedule import rollout_length
from torchrl_psmbpo.termination import TerminationFn, never_terminates
from torchrl_psmbpo.world_model.trainer import DynamicsTrainer, mbpo_weight_decay

__all__ = [
    "DynamicsEnsemble",
    "DynamicsTrainer",
    "ImaginedRolloutEnv",
    "rollout_length",
    "mbpo_weight_decay",
    "TerminationFn",
    "never_terminates",
]
