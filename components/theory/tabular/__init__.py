"""Tabular posterior-sampling RL: the paper's regret-versus-lambda analysis, runnable on a CPU.

* :mod:`~components.theory.tabular.mdps`: RiverSwim, Dirichlet random MDPs, batched simulation.
* :mod:`~components.theory.tabular.planning`: exact finite-horizon value iteration and evaluation.
* :mod:`~components.theory.tabular.posterior`: the exact conjugate posterior and a bootstrapped ensemble.
* :mod:`~components.theory.tabular.psrl`: exact PSRL and the approximate (lambda, PS/OPS) agent.
* :mod:`~components.theory.tabular.regret_bound`: KL, entropy and bound of the paper's theorem.
* :mod:`~components.theory.tabular.experiment`: the vectorised sweep behind ``recipes/tabular_psrl.py``.

See ``docs/theory.md``.
"""

from components.theory.tabular.experiment import ENVS, SweepConfig, SweepResult, run_sweep
from components.theory.tabular.mdps import TabularMDP, random_mdps, riverswim, rollout
from components.theory.tabular.planning import expected_return, policy_evaluation, value_iteration
from components.theory.tabular.posterior import ConjugatePrior, Counts, PerturbedCounts
from components.theory.tabular.psrl import EnsemblePSRL, ExactPSRL

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
