"""The cumulative-regret-versus-lambda sweep (the paper's Figure 2), vectorised over seeds.

All agents of a sweep (exact PSRL, and for every ``lambda`` and selection rule an
:class:`~torchrl_psmbpo.theory.tabular.psrl.EnsemblePSRL`) run side by side on one copy of the true MDP per
seed: the approximate agents are a single batch of ``len(lambdas) * len(selections) * seeds``
learners, so an episode of the whole sweep is a handful of array operations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm.auto import trange

from torchrl_psmbpo.theory.tabular.mdps import TabularMDP, random_mdps, riverswim, rollout
from torchrl_psmbpo.theory.tabular.planning import expected_return, policy_evaluation, value_iteration
from torchrl_psmbpo.theory.tabular.posterior import BOOTSTRAPS, ConjugatePrior, Counts
from torchrl_psmbpo.theory.tabular.psrl import SELECTIONS, EnsemblePSRL, ExactPSRL
from torchrl_psmbpo.theory.tabular.regret_bound import (
    kl_to_sampled_posterior,
    label_entropy,
    n_labels,
    policy_labels,
    regret_bound,
)

__all__ = ["ENVS", "SweepConfig", "SweepResult", "make_true_mdps", "run_sweep"]

ENVS = ("riverswim", "random")


@dataclass(frozen=True)
class SweepConfig:
    """Settings of one sweep.

    Args:
        env: ``"riverswim"`` (one fixed MDP) or ``"random"`` (one MDP per seed drawn from the
            conjugate prior, so the average is a Bayesian regret).
        n_states, n_actions, horizon: sizes (RiverSwim always has 2 actions).
        episodes: ``K``.
        seeds: independent runs per agent.
        lambdas: real-data weights of the approximate agents.
        selections: ``"ps"`` and/or ``"ops"``.
        n_models, n_policies: ``N`` and ``M`` of the ensemble.
        tau: OPS temperature, default the horizon.
        model_bootstrap, data_bootstrap: bootstrap of the models and of the policies' real-data fits.
        alpha: Dirichlet concentration of the prior (and of the random MDP family); default
            ``1 / n_states``.
        prior_weight: pseudo-count weight of the members' random initialisations.
        kl_every: estimate the KL term every this many episodes (held constant in between).
        kl_samples: exact posterior draws per learner for each KL estimate.
        entropy_samples: prior draws for the entropy of the optimal-policy labels.
        seed: master seed.
    """

    env: str = "riverswim"
    n_states: int = 6
    n_actions: int = 2
    horizon: int = 20
    episodes: int = 300
    seeds: int = 20
    lambdas: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    selections: tuple[str, ...] = ("ps", "ops")
    n_models: int = 5
    n_policies: int = 5
    tau: float | None = None
    model_bootstrap: str = "poisson"
    data_bootstrap: str = "poisson"
    alpha: float | None = None
    prior_weight: float | None = None
    kl_every: int = 10
    kl_samples: int = 256
    entropy_samples: int = 4096
    seed: int = 0

    def __post_init__(self) -> None:
        if self.env not in ENVS:
            raise ValueError(f"env must be one of {ENVS}, got {self.env!r}")
        for name in ("episodes", "seeds", "kl_every", "kl_samples", "entropy_samples", "horizon"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lambdas or any(not 0 <= lam <= 1 for lam in self.lambdas):
            raise ValueError(f"lambdas must be non-empty values in [0, 1], got {self.lambdas}")
        if not self.selections or any(s not in SELECTIONS for s in self.selections):
            raise ValueError(f"selections must be non-empty, from {SELECTIONS}, got {self.selections}")
        if self.env == "riverswim" and self.n_actions != 2:
            raise ValueError(f"RiverSwim has 2 actions, got n_actions={self.n_actions}")
        for name in ("model_bootstrap", "data_bootstrap"):
            if getattr(self, name) not in BOOTSTRAPS:
                raise ValueError(f"{name} must be one of {BOOTSTRAPS}, got {getattr(self, name)!r}")

    @property
    def prior(self) -> ConjugatePrior:
        return ConjugatePrior(alpha=1.0 / self.n_states if self.alpha is None else self.alpha)


@dataclass
class SweepResult:
    """Per-episode measurements of every agent.

    ``agents[g] = (name, lambda, selection)``; ``regret[g, b, k]`` the exact expected regret of
    agent ``g``, seed ``b``, episode ``k``; ``kl[g, b, k]`` the estimated label KL between its
    policy posterior and the exact one at the start of episode ``k`` (0 for exact PSRL; held
    constant between estimates); ``entropy`` the label entropy of ``pi*`` under the prior;
    ``optimal_value[b]`` the optimal value of seed ``b``'s MDP; ``kl_reference[b, k]`` the same
    KL estimate for ``N * M`` exact posterior draws with equal weights on exact PSRL's data, the
    level a perfect but finite ensemble reaches (the estimator's floor for the approximate agents).
    """

    config: SweepConfig
    agents: list[tuple[str, float, str]]
    regret: np.ndarray
    kl: np.ndarray
    entropy: float
    optimal_value: np.ndarray
    kl_reference: np.ndarray

    def cumulative(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard error over seeds of the cumulative regret, each ``[G, K]``."""
        cum = self.regret.cumsum(-1)
        n = cum.shape[1]
        se = cum.std(1, ddof=1) / np.sqrt(n) if n > 1 else np.zeros_like(cum[:, 0])
        return cum.mean(1), se

    def bound(self) -> np.ndarray:
        """The theorem's expression with ``C = 1`` after each episode, ``[G, K]`` (R_max = 1)."""
        return regret_bound(self.kl.mean(1), self.entropy, self.config.horizon)

    def _agent_columns(self, name: str, lam: float, selection: str) -> dict:
        """The columns that name an agent, first in the rows of both tables."""
        return dict(env=self.config.env, agent=name, selection=selection, lam="" if np.isnan(lam) else lam)

    def rows(self) -> list[dict]:
        """One CSV row per agent and episode."""
        mean, se = self.cumulative()
        bound, kl, ref = self.bound(), self.kl.mean(1), self.kl_reference.mean(0)
        out = []
        for g, (name, lam, sel) in enumerate(self.agents):
            for k in range(mean.shape[1]):
                out.append(
                    dict(
                        **self._agent_columns(name, lam, sel),
                        episode=k + 1,
                        cum_regret_mean=mean[g, k],
                        cum_regret_se=se[g, k],
                        kl_mean=kl[g, k],
                        kl_reference=ref[k],
                        bound_c1=bound[g, k],
                    )
                )
        return out

    def summary_rows(self) -> list[dict]:
        """One row per agent: final cumulative regret (mean, standard error), regret per episode
        in the first and last quarter, mean KL estimate and the bound after ``K`` episodes."""
        mean, se = self.cumulative()
        bound = self.bound()
        quarter = max(1, self.regret.shape[-1] // 4)
        out = []
        for g, (name, lam, sel) in enumerate(self.agents):
            out.append(
                dict(
                    **self._agent_columns(name, lam, sel),
                    episodes=self.regret.shape[-1],
                    seeds=self.regret.shape[1],
                    final_cum_regret_mean=mean[g, -1],
                    final_cum_regret_se=se[g, -1],
                    regret_per_episode_first_quarter=self.regret[g, :, :quarter].mean(),
                    regret_per_episode_last_quarter=self.regret[g, :, -quarter:].mean(),
                    kl_mean=self.kl[g].mean(),
                    kl_reference=self.kl_reference.mean(),
                    bound_c1_final=bound[g, -1],
                    trivial_bound=self.optimal_value.mean() * self.regret.shape[-1],
                )
            )
        return out


def make_true_mdps(config: SweepConfig) -> TabularMDP:
    """One true MDP per seed: RiverSwim repeated, or draws from the prior."""
    if config.env == "riverswim":
        m = riverswim(config.n_states, config.horizon)
        b = (config.seeds,)
        return TabularMDP(
            np.broadcast_to(m.transitions, b + m.transitions.shape),
            np.broadcast_to(m.rewards, b + m.rewards.shape),
            np.broadcast_to(m.initial, b + m.initial.shape),
            m.horizon,
        )
    rng = np.random.default_rng([config.seed, 1])
    prior = config.prior
    return random_mdps(
        config.seeds,
        config.n_states,
        config.n_actions,
        config.horizon,
        alpha=prior.alpha,
        reward_prior=(prior.reward_a, prior.reward_b),
        rng=rng,
    )


def _prior_entropy(config: SweepConfig, n_actions: int, rng: np.random.Generator) -> float:
    empty = Counts(1, config.n_states, n_actions)
    p, r = empty.sample_posterior(config.prior, rng, config.entropy_samples)
    return label_entropy(policy_labels(value_iteration(p, r, config.horizon)[0], n_actions))


def _posterior_labels(
    counts: Counts, rows: slice, n_draws: int, config: SweepConfig, n_actions: int, rng
) -> np.ndarray:
    """Labels ``[len(rows), n_draws]`` of the optimal policies of exact posterior draws."""
    p, r = counts.sample_posterior(config.prior, rng, n_draws, rows=rows)
    return policy_labels(value_iteration(p, r, config.horizon)[0], n_actions)


def _estimate_kl(
    counts: Counts,
    q_probs: np.ndarray | None,
    q_labels: np.ndarray | None,
    config: SweepConfig,
    n_actions: int,
    rng: np.random.Generator,
    n_members: int,
    chunk: int = 16,
) -> np.ndarray:
    """Label KL of each learner's policy posterior from the exact one given its data.

    With ``q_labels=None`` the approximate posterior is replaced by ``n_members`` exact posterior
    draws with equal weights: the KL a perfect but finite ensemble would get (a reference level).
    """
    total = n_labels(config.n_states, n_actions)
    n_l = counts.shape[0]
    out = np.zeros(n_l)
    for lo in range(0, n_l, chunk):
        rows = slice(lo, min(lo + chunk, n_l))
        p_labels = _posterior_labels(counts, rows, config.kl_samples, config, n_actions, rng)
        if q_labels is None:
            ql = _posterior_labels(counts, rows, n_members, config, n_actions, rng)
            qp = np.full(ql.shape, 1.0 / n_members)
        else:
            ql, qp = q_labels[rows], q_probs[rows]
        out[rows] = kl_to_sampled_posterior(qp, ql, p_labels, total)
    return out


def run_sweep(config: SweepConfig, progress: bool = True) -> SweepResult:
    """Run exact PSRL and every approximate agent of ``config`` for ``config.episodes`` episodes.

    Examples:
        >>> res = run_sweep(SweepConfig(episodes=5, seeds=2, lambdas=(0.0, 1.0)), progress=False)
        >>> res.regret.shape  # exact PSRL + 2 lambdas x 2 selections, 2 seeds, 5 episodes
        (5, 2, 5)
    """
    rng = np.random.default_rng(config.seed)
    true = make_true_mdps(config)
    n_s, n_a, n_b = true.n_states, true.n_actions, config.seeds
    optimal = expected_return(true.initial, value_iteration(true.transitions, true.rewards, true.horizon)[1])

    approx_specs = [(f"{sel}-lambda={lam:g}", float(lam), sel) for lam in config.lambdas for sel in config.selections]
    agents = [("exact-psrl", float("nan"), "exact")] + approx_specs
    n_g = len(approx_specs)
    exact = ExactPSRL(n_b, n_s, n_a, config.horizon, config.prior)
    approx = EnsemblePSRL(
        n_g * n_b,
        n_s,
        n_a,
        config.horizon,
        config.prior,
        n_models=config.n_models,
        n_policies=config.n_policies,
        lam=np.repeat([s[1] for s in approx_specs], n_b),
        selection=np.repeat([s[2] for s in approx_specs], n_b),
        tau=config.tau,
        model_bootstrap=config.model_bootstrap,
        data_bootstrap=config.data_bootstrap,
        prior_weight=config.prior_weight,
        rng=rng,
    )
    runs = [(exact, np.arange(n_b)), (approx, np.tile(np.arange(n_b), n_g))]
    per_learner = [true.take(idx) for _, idx in runs]

    regret = np.zeros((1 + n_g, n_b, config.episodes))
    kl = np.zeros_like(regret)
    entropy = _prior_entropy(config, n_a, rng)
    kl_reference = np.zeros((n_b, config.episodes))
    last_kl, last_ref = np.zeros(n_g * n_b), np.zeros(n_b)
    n_members = config.n_models * config.n_policies
    for k in trange(config.episodes, desc=f"{config.env}: {1 + n_g} agents x {n_b} seeds", disable=not progress):
        for i, ((agent, idx), mdp) in enumerate(zip(runs, per_learner)):
            policy = agent.begin_episode(rng)
            value = expected_return(mdp.initial, policy_evaluation(mdp.transitions, mdp.rewards, policy))
            reg = (optimal[idx] - value).reshape(-1, n_b)
            if i == 0:
                regret[0, :, k] = reg[0]
                if k % config.kl_every == 0:
                    last_ref = _estimate_kl(agent.counts, None, None, config, n_a, rng, n_members)
                kl_reference[:, k] = last_ref
            else:
                regret[1:, :, k] = reg
                if k % config.kl_every == 0:
                    labels = policy_labels(agent.policies, n_a)
                    last_kl = _estimate_kl(agent.counts, agent.probs, labels, config, n_a, rng, n_members)
                kl[1:, :, k] = last_kl.reshape(n_g, n_b)
            s, a, r, s2 = rollout(mdp, policy, rng)
            agent.observe(s, a, r, s2, rng)
            agent.end_episode(r.sum(-1))
    return SweepResult(config, agents, regret, kl, entropy, optimal, kl_reference)
