"""Tabular posterior-sampling RL: the paper's regret-versus-lambda analysis, runnable on a CPU.

* :mod:`~components.tabular.mdps`: RiverSwim, Dirichlet random MDPs, batched simulation.
* :mod:`~components.tabular.planning`: exact finite-horizon value iteration and evaluation.
* :mod:`~components.tabular.posterior`: the exact conjugate posterior and a bootstrapped ensemble.
* :mod:`~components.tabular.psrl`: exact PSRL and the approximate (lambda, PS/OPS) agent.
* :mod:`~components.tabular.regret_bound`: KL, entropy and bound of the paper's theorem.
* :mod:`~components.tabular.experiment`: the vectorised sweep behind ``recipes/tabular_psrl.py``.

See ``docs/theory.md``.
"""

from components.tabular.experiment import ENVS, SweepConfig, SweepResult, run_sweep
from components.tabular.mdps import TabularMDP, random_mdps, riverswim, rollout
from components.tabular.planning import expected_return, policy_evaluation, value_iteration
from components.tabular.posterior import ConjugatePrior, Counts, PerturbedCounts
from components.tabular.psrl import EnsemblePSRL, ExactPSRL

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
