"""The paper's analysis, apart from the TorchRL components (NumPy only, runs in seconds).

* :mod:`~torchrl_psmbpo.theory.example1`: Example 1, the KL between the exact and the
  ensemble-induced policy posteriors.
* :mod:`~torchrl_psmbpo.theory.tabular`: tabular PSRL and the regret-versus-lambda experiment.
"""
