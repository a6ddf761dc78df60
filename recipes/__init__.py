"""The recipes, installed as ``torchrl_psmbpo.recipes``: the Hydra apps of the three suites and
their command line (``cli``), the training loop (``loop``), its factories (``build``) and
configs (``config``, ``conf/``), checkpoints, evaluation, the report and the recorder.

Importing ``torchrl_psmbpo`` does not import this subpackage: it needs the ``recipes`` extra
(Hydra and the report's tools), the components do not.
"""
