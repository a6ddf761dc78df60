"""Posterior-sampling agents for tabular MDPs, batched over independent learners.

Both agents follow the same episode protocol, for ``L`` learners at once::

    policy = agent.begin_episode(rng)       # [L, H, S] deterministic non-stationary policies
    ... roll out the episode ...
    agent.observe(s, a, r, s2, rng)          # [L, H] transitions of the episode
    agent.end_episode(returns)               # [L] realised returns

* :class:`ExactPSRL`: draw one MDP from the exact conjugate posterior per episode and act
  optimally in it, ``pi ~ p(pi | D) = int delta(pi | M) p(M | D) dM``.
* :class:`EnsemblePSRL`: the approximate, factorised posterior of the paper,
  ``q(pi | D, lambda) = int q(pi | M, D, lambda) q(M | D) dM``, with ``N`` perturbed models
  (``q(M | D)``, a bootstrapped ensemble) and ``M`` policies per model. Policy ``(n, m)`` is
  optimal in the planning MDP

      P_{n,m} = lambda * Ptilde_{n,m} + (1 - lambda) * P_n      (rewards alike),

  where ``P_n`` is model ``n`` and ``Ptilde_{n,m}`` is policy ``(n, m)``'s own fit of the real
  data (its own bootstrap weights and random initialisation), the tabular counterpart of a
  policy trained on a batch with a share ``lambda`` of real data and ``1 - lambda`` of data from
  model ``n``. ``lambda = 0`` gives ``delta(pi | M_n)`` (the ``M`` policies of a model coincide),
  ``lambda = 1`` a policy that depends on the real data only. The acting policy is drawn
  uniformly (PS) or from ``p(i) ~ exp(sum_l R(pi_i, l) / tau)`` over past real returns (OPS).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from torchrl_psmbpo.theory.tabular.planning import value_iteration
from torchrl_psmbpo.theory.tabular.posterior import ConjugatePrior, Counts, PerturbedCounts

__all__ = ["ExactPSRL", "EnsemblePSRL", "SELECTIONS"]

SELECTIONS = ("ps", "ops")


class ExactPSRL:
    """Exact PSRL with the conjugate Dirichlet/Beta posterior.

    Args:
        n_learners: independent learners run side by side (e.g. seeds).
        n_states, n_actions, horizon: the MDP sizes.
        prior: the conjugate prior.

    Examples:
        >>> agent = ExactPSRL(4, 6, 2, 20, ConjugatePrior(alpha=1 / 6))
        >>> agent.begin_episode(np.random.default_rng(0)).shape
        (4, 20, 6)
    """

    def __init__(self, n_learners: int, n_states: int, n_actions: int, horizon: int, prior: ConjugatePrior) -> None:
        self.prior, self.horizon = prior, horizon
        self.counts = Counts(n_learners, n_states, n_actions)

    def begin_episode(self, rng: np.random.Generator) -> np.ndarray:
        p, r = self.counts.sample_posterior(self.prior, rng)
        return value_iteration(p, r, self.horizon)[0]

    def observe(self, state, action, reward, next_state, rng: np.random.Generator | None = None) -> None:
        self.counts.add(state, action, reward, next_state)

    def end_episode(self, returns: np.ndarray) -> None:
        """Exact PSRL keeps no per-policy statistics."""


class EnsemblePSRL:
    """Approximate PSRL with ``N`` perturbed models and ``M`` policies per model.

    Args:
        n_learners: independent learners run side by side.
        n_states, n_actions, horizon: the MDP sizes.
        prior: the prior the members' random initialisations are drawn from.
        n_models: ``N``, ensemble size of ``q(M | D)``.
        n_policies: ``M``, policies per model.
        lam: real-data weight ``lambda`` in ``[0, 1]``, a scalar or one per learner.
        selection: ``"ps"`` or ``"ops"``, a string or one per learner.
        tau: OPS temperature (returns are summed over episodes, then divided by ``tau``);
            default ``horizon``, the largest possible return of one episode.
        model_bootstrap, data_bootstrap: bootstrap of the models and of the policies' own fits
            of the real data (see :class:`~torchrl_psmbpo.theory.tabular.posterior.PerturbedCounts`).
        prior_weight: pseudo-count weight of every member's random initialisation.
        rng: generator for the initialisations.
    """

    def __init__(
        self,
        n_learners: int,
        n_states: int,
        n_actions: int,
        horizon: int,
        prior: ConjugatePrior,
        *,
        n_models: int = 5,
        n_policies: int = 5,
        lam: float | Sequence[float] | np.ndarray = 0.0,
        selection: str | Sequence[str] = "ps",
        tau: float | None = None,
        model_bootstrap: str = "poisson",
        data_bootstrap: str = "poisson",
        prior_weight: float | None = None,
        rng: np.random.Generator,
    ) -> None:
        lam_arr = np.broadcast_to(np.asarray(lam, dtype=np.float64), (n_learners,)).copy()
        if np.any(lam_arr < 0) or np.any(lam_arr > 1):
            raise ValueError(f"lam must lie in [0, 1], got {np.unique(lam_arr).tolist()}")
        sel = np.broadcast_to(np.asarray(selection), (n_learners,))
        bad = sorted(set(sel.tolist()) - set(SELECTIONS))
        if bad:
            raise ValueError(f"selection must be one of {SELECTIONS}, got {bad}")
        if n_models < 1 or n_policies < 1:
            raise ValueError(f"n_models and n_policies must be >= 1, got {n_models}, {n_policies}")
        self.tau = float(horizon if tau is None else tau)
        if self.tau <= 0:
            raise ValueError(f"tau must be positive, got {tau}")
        self.horizon, self.n_models, self.n_policies = horizon, n_models, n_policies
        self.n_members = n_models * n_policies
        self.lam = lam_arr
        self.optimistic = sel == "ops"
        self.counts = Counts(n_learners, n_states, n_actions)
        kw = dict(prior_weight=prior_weight, rng=rng)
        self.models = PerturbedCounts(n_learners, n_models, n_states, n_actions, prior, bootstrap=model_bootstrap, **kw)
        self.data = PerturbedCounts(
            n_learners, self.n_members, n_states, n_actions, prior, bootstrap=data_bootstrap, **kw
        )
        self.cum_return = np.zeros((n_learners, self.n_members))
        self.policies: np.ndarray | None = None  # [L, J, H, S] planned this episode
        self.probs: np.ndarray | None = None  # [L, J] the selection distribution this episode
        self.index: np.ndarray | None = None  # [L] the member acting this episode

    def planning_mdps(self) -> tuple[np.ndarray, np.ndarray]:
        """The ``N * M`` planning MDPs per learner: ``([L, J, S, A, S], [L, J, S, A])``."""
        pm, rm = self.models.estimate()
        pd, rd = self.data.estimate()
        # Member j = n * M + m plans on model n = j // M.
        pm, rm = np.repeat(pm, self.n_policies, axis=1), np.repeat(rm, self.n_policies, axis=1)
        lam_r = self.lam[:, None, None, None]  # broadcasts over [J, S, A]
        lam_p = lam_r[..., None]  # and over [J, S, A, S]
        return lam_p * pd + (1 - lam_p) * pm, lam_r * rd + (1 - lam_r) * rm

    def selection_probs(self) -> np.ndarray:
        """``[L, J]``: uniform for PS, ``softmax(cum_return / tau)`` for OPS."""
        logits = np.where(self.optimistic[:, None], self.cum_return / self.tau, 0.0)
        logits = logits - logits.max(-1, keepdims=True)
        w = np.exp(logits)
        return w / w.sum(-1, keepdims=True)

    def begin_episode(self, rng: np.random.Generator) -> np.ndarray:
        p, r = self.planning_mdps()
        self.policies = value_iteration(p, r, self.horizon)[0]
        self.probs = self.selection_probs()
        u = rng.random(self.probs.shape[0])
        self.index = np.minimum((u[:, None] >= np.cumsum(self.probs, -1)).sum(-1), self.n_members - 1)
        return self.policies[np.arange(self.index.shape[0]), self.index]

    def observe(self, state, action, reward, next_state, rng: np.random.Generator) -> None:
        self.counts.add(state, action, reward, next_state)
        self.models.add(state, action, reward, next_state, rng)
        self.data.add(state, action, reward, next_state, rng)

    def end_episode(self, returns: np.ndarray) -> None:
        """Credit the acting member with the episode's real return (OPS's ``R_E(pi_i, l)``)."""
        if self.index is None:
            raise RuntimeError("end_episode called before begin_episode")
        self.cum_return[np.arange(self.index.shape[0]), self.index] += returns
