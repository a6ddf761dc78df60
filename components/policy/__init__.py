"""The policy posterior: N*M SAC agents with stacked parameters, updated together.

* :mod:`~torchrl_psmbpo.policy.ensemble`: :class:`PolicyEnsemble`, the public class.
* :mod:`~torchrl_psmbpo.policy.export`: ``save_agent`` / ``load_agent`` / ``load_ensemble``: a
  trained ensemble's actors as a file that loads as stock TorchRL actors.
* ``_networks``, ``_batched_mlp``, ``_update``, ``_sac_step``, ``_acting``: its private parts
  (TorchRL actor/critic factories, the batched-matmul MLP, the SAC losses of every member in one
  pass through ``bmm`` or ``torch.vmap``, the ``bmm`` update's hand-written gradients, and the
  acting modules).
"""

from torchrl_psmbpo.policy.ensemble import PolicyEnsemble
from torchrl_psmbpo.policy.export import load_agent, load_ensemble, save_agent

__all__ = ["PolicyEnsemble", "save_agent", "load_agent", "load_ensemble"]
