"""TorchRL components for model-based RL with posterior sampling (PS-MBPO / OPS-MBPO).

What is where (each subpackage is one job of the agent; see docs/index.md):

* :mod:`torchrl_psmbpo.envs`: ``make_env`` for ``dmc:``, ``gym:`` and ``metaworld:`` tasks,
  ``termination_fn``, and :class:`EpisodeSeeder`.
* :mod:`torchrl_psmbpo.world_model`: :class:`DynamicsEnsemble`, :class:`DynamicsTrainer`,
  :class:`ImaginedRolloutEnv`, ``rollout_length`` and ``never_terminates``.
* :mod:`torchrl_psmbpo.policy`: :class:`PolicyEnsemble`, the N*M SAC agents; ``save_agent`` and
  ``load_agent`` (a trained agent as stock TorchRL actors).
* :mod:`torchrl_psmbpo.sampling`: :class:`PolicyPosterior` (PS / OPS pick per episode, credit) and
  :class:`PosteriorSamplingTransform` (picks at every reset of an env).
* :mod:`torchrl_psmbpo.replay`: the real buffer, :class:`ModelReplay`, :class:`MixedBatchSampler`,
  ``TRANSITION_KEYS`` (select them before mixing imagined with real data) and
  ``valid_after_termination`` (the imagined steps to keep).
* :mod:`torchrl_psmbpo.theory`: Example 1 and the tabular experiment (not TorchRL components).

Shared by the subpackages (each may import them; they import none of the subpackages):

* :mod:`torchrl_psmbpo.keys`: ``POLICY_INDEX_KEY`` and ``TRANSITION_KEYS``, the entries that
  several parts read or write;
* :mod:`torchrl_psmbpo.seeding`: ``episode_seed``, the seed of each episode of a run;
* :mod:`torchrl_psmbpo.termination`: the known termination rules of the Gym tasks;
* :mod:`torchrl_psmbpo.batched_linear`: the stacked linear layer both ensembles run on.

Examples:
    >>> from torchrl_psmbpo import PolicyEnsemble, make_env
    >>> env = make_env("dmc:cartpole-swingup", seed=0)
    >>> policies = PolicyEnsemble(5, 1, ensemble_shape=(2, 2), actor_hidden=(8,), critic_hidden=(8,))
    >>> policies.num_members
    4
    >>> policies.member_index(3)
    (1, 1)
"""

from torchrl_psmbpo.envs import EpisodeSeeder, make_env, max_episode_steps, parse_task, termination_fn
from torchrl_psmbpo.keys import POLICY_INDEX_KEY, TRANSITION_KEYS
from torchrl_psmbpo.policy import PolicyEnsemble, load_agent, load_ensemble, save_agent
from torchrl_psmbpo.replay import MixedBatchSampler, ModelReplay, make_real_buffer, mbpo_model_capacity
from torchrl_psmbpo.replay.buffers import valid_after_termination
from torchrl_psmbpo.sampling import PolicyPosterior, PosteriorSamplingTransform, ops_probabilities
from torchrl_psmbpo.world_model import (
    DynamicsEnsemble,
    DynamicsTrainer,
    ImaginedRolloutEnv,
    never_terminates,
    rollout_length,
)

__all__ = [
    "make_env",
    "parse_task",
    "termination_fn",
    "max_episode_steps",
    "EpisodeSeeder",
    "DynamicsEnsemble",
    "DynamicsTrainer",
    "ImaginedRolloutEnv",
    "rollout_length",
    "never_terminates",
    "PolicyEnsemble",
    "save_agent",
    "load_agent",
    "load_ensemble",
    "PolicyPosterior",
    "PosteriorSamplingTransform",
    "POLICY_INDEX_KEY",
    "ops_probabilities",
    "make_real_buffer",
    "ModelReplay",
    "MixedBatchSampler",
    "mbpo_model_capacity",
    "TRANSITION_KEYS",
    "valid_after_termination",
]
