"""Tabular posterior-sampling RL: the paper's regret-versus-lambda analysis, runnable on a CPU.

* :mod:`~torchrl_psmbpo.theory.tabular.mdps`: RiverSwim, Dirichlet random MDPs, batched simulation.
* :mod:`~torchrl_psmbpo.theory.tabular.planning`: exact finite-horizon value iteration and evaluation.
* :mod:`~torchrl_psmbpo.theory.tabular.posterior`: the exact conjugate posterior and a bootstrapped ensemble.
* :mod:`~torchrl_psmbpo.theory.tabular.psrl`: exact PSRL and the approximate (lambda, PS/OPS) agent.
* :mod:`~torchrl_psmbpo.theory.tabular.regret_bound`: KL, entropy and bound of the paper's theorem.
* :mod:`~torchrl_psmbpo.theory.tabular.experiment`: the vectorised sweep behind ``recipes/tabular_psrl.py``.

See ``docs/theory.md``.
"""

from torchrl_psmbpo.theory.tabular.experiment import ENVS, SweepConfig, SweepResult, run_sweep
from torchrl_psmbpo.theory.tabular.mdps import TabularMDP, random_mdps, riverswim, rollout
from torchrl_psmbpo.theory.tabular.planning import expected_return, policy_evaluation, value_iteration
from torchrl_psmbpo.theory.tabular.posterior import ConjugatePrior, Counts, PerturbedCounts
from torchrl_psmbpo.theory.tabular.psrl import EnsemblePSRL, ExactPSRL

__all__ = [
    "ENVS",
    "SweepConfig",
    "SweepResult",
    "run_sweep",
    "TabularMDP",
    "random_mdps",
    "riverswim",
    "rollout",
    "expected_return",
    "policy_evaluation",
    "value_iteration",
    "ConjugatePrior",
    "Counts",
    "PerturbedCounts",
    "EnsemblePSRL",
    "ExactPSRL",
]
