"""Factories: build each piece of the agent from the config (no recipe logic, no loop state).

The pieces are the package's components, untouched. The variants (``recipes/conf/variant/``)
differ only in the values these factories read: SAC gets no world model (``model.members=0``) and
lambda = 1, MBPO one policy over a random-elite ensemble (``rollout.member_mode=random``),
PS/OPS-MBPO N*M policies each on its own model, picked by ``posterior.mode``.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import torch
from torchrl.envs import RewardSum, TransformedEnv

from torchrl_psmbpo.envs import EpisodeSeeder, make_env, termination_fn
from torchrl_psmbpo.policy import PolicyEnsemble
from torchrl_psmbpo.replay import (
    TRANSITION_KEYS,
    MixedBatchSampler,
    ModelReplay,
    make_real_buffer,
    mbpo_model_capacity,
)
from torchrl_psmbpo.sampling import PosteriorSamplingTransform
from torchrl_psmbpo.sampling.posterior import PolicyPosterior
from torchrl_psmbpo.world_model import DynamicsEnsemble, DynamicsTrainer, ImaginedRolloutEnv
from torchrl_psmbpo.world_model.rollout_schedule import rollout_length
from torchrl_psmbpo.recipes.config import Config

EVAL_SEED_OFFSET = 10_000
"""The evaluation env's seed is the run's seed plus this (never the training episodes')."""


class RealEnv(NamedTuple):
    env: TransformedEnv
    seeder: EpisodeSeeder


class WorldModel(NamedTuple):
    model: DynamicsEnsemble
    trainer: DynamicsTrainer
    imagined_env: ImaginedRolloutEnv
    buffer: ModelReplay


def make_posterior(cfg: Config) -> PolicyPosterior:
    """Line 3 and 15's distribution over the N*M members."""
    return PolicyPosterior(
        cfg.num_policies, mode=cfg.posterior.mode, seed=cfg.seed,
        temperature=cfg.posterior.ops_temperature, statistic=cfg.posterior.ops_statistic,
        mix=cfg.posterior.ops_mix, fixed_index=cfg.posterior.fixed_index,
        episode_seeded=True,  # a resumed run re-makes the pick of the episode it resumes at
    )


def make_real_env(cfg: Config, posterior: PolicyPosterior) -> RealEnv:
    """The task's env, reseeded per episode, stamped with the acting member's index."""
    env = make_env(cfg.env.task, seed=cfg.seed, device=cfg.run.device,
                   action_repeat=cfg.env.action_repeat)
    seeder = EpisodeSeeder(cfg.seed)
    env.append_transform(seeder)
    env.append_transform(PosteriorSamplingTransform(posterior=posterior, credit_returns=False))
    env.append_transform(RewardSum())  # "episode_reward": the real return R_E of line 15
    return RealEnv(env, seeder)


def make_policies(cfg: Config, obs_dim: int, act_dim: int) -> PolicyEnsemble:
    """The N*M SAC agents (1*1 for sac and mbpo); the action prior, when on, is half the
    actor's widths unless ``policy.prior_hidden`` says otherwise."""
    p = cfg.policy
    prior = p.prior_hidden if p.prior_hidden is not None else [
        max(1, w // 2) for w in p.actor_hidden]
    return PolicyEnsemble(
        obs_dim, act_dim, ensemble_shape=cfg.shape, actor_hidden=tuple(p.actor_hidden),
        critic_hidden=tuple(p.critic_hidden), actor_lr=p.actor_lr, critic_lr=p.critic_lr,
        alpha_lr=p.alpha_lr, gamma=p.gamma, tau=p.tau, init_alpha=p.init_alpha,
        grad_clip_norm=p.grad_clip_norm, action_prior=p.action_prior, prior_hidden=tuple(prior),
        prior_lr=p.prior_lr, target_kl=p.target_kl, device=torch.device(cfg.run.device),
        compile=p.compile,
        cudagraphs=p.cudagraphs,
    )


def model_capacity(cfg: Config, horizon: int) -> int:
    """MBPO's model-buffer size: ``per_step * horizon * retain_epochs * epoch_length``."""
    return mbpo_model_capacity(
        cfg.rollout.per_step, horizon, cfg.rollout.retain_epochs * cfg.rollout.epoch_length
    )


def make_world_model(
    cfg: Config,
    obs_dim: int,
    act_dim: int,
    *,
    model_cls: Callable[..., DynamicsEnsemble] = DynamicsEnsemble,
    trainer_cls: Callable[..., DynamicsTrainer] = DynamicsTrainer,
) -> WorldModel | None:
    """The dynamics ensemble, its trainer, the imagined env and the N*M model buffers.

    Args:
        cfg: the run's config (``None`` is returned for a model-free variant).
        obs_dim: observation size.
        act_dim: action size.

    Keyword Args:
        model_cls: builds the model from :class:`~torchrl_psmbpo.world_model.DynamicsEnsemble`'s
            arguments (a subclass, e.g. one whose ``predict`` is a simulator).
        trainer_cls: builds its trainer from
            :class:`~torchrl_psmbpo.world_model.DynamicsTrainer`'s arguments.
    """
    if not cfg.model_based:
        return None
    m, device = cfg.model, torch.device(cfg.run.device)
    model = model_cls(
        obs_dim, act_dim, num_members=m.members, num_elites=m.elites, hidden=m.hidden,
        depth=m.depth, predict_delta=m.predict_delta, normalize_targets=m.normalize_targets,
        device=device,
    )
    trainer = trainer_cls(
        model, lr=m.lr, weight_decay=m.weight_decay, batch_size=m.batch_size,
        holdout_ratio=m.holdout_ratio, patience=m.patience, val_metric=m.val_metric,
        max_epochs=m.max_epochs, seed=cfg.seed, nll_beta=m.nll_beta,
    )
    imagined_env = ImaginedRolloutEnv(
        model, termination_fn(cfg.env.task), batch_size=(*cfg.shape, cfg.rollout.per_step),
        member_mode=cfg.rollout.member_mode,
        deterministic=cfg.rollout.deterministic, device=device,
        information_weight=cfg.rollout.information_weight,
        information_sign=cfg.rollout.information_sign,
    )
    first = rollout_length(0, cfg.rollout.schedule)
    buffer = ModelReplay(cfg.shape, model_capacity(cfg, first), device=device, seed=cfg.seed + 1,
                         keys=TRANSITION_KEYS)
    return WorldModel(model, trainer, imagined_env, buffer)


WorldModelFactory = Callable[[Config, int, int], WorldModel | None]
"""``(cfg, obs_dim, act_dim) -> WorldModel | None``: what :func:`torchrl_psmbpo.recipes.loop.train` builds its
world model with (:func:`make_world_model` by default)."""


def make_buffers(cfg: Config, world: WorldModel | None) -> tuple[Any, MixedBatchSampler]:
    """The real buffer D_E and the sampler of lambda-real / (1 - lambda)-imagined batches."""
    real = make_real_buffer(cfg.policy.real_buffer_size, device=torch.device(cfg.run.device),
                            seed=cfg.seed)
    sampler = MixedBatchSampler(
        real, None if world is None else world.buffer, real_ratio=cfg.policy.real_ratio,
        batch_size=cfg.policy.batch_size, ensemble_shape=cfg.shape, seed=cfg.seed + 2,
    )
    return real, sampler


__all__ = ["EVAL_SEED_OFFSET", "RealEnv", "WorldModel", "make_posterior", "make_real_env",
           "make_policies", "make_world_model", "WorldModelFactory", "make_buffers",
           "model_capacity"]
