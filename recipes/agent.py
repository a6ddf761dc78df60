"""Build every piece of a (PS-/OPS-)MBPO agent from a config, and checkpoint them together.

The pieces are the package's components, untouched: the real env with the posterior-sampling
transform, the dynamics ensemble and its trainer, the imagined-rollout env, the policy
ensemble, the real and model buffers and the mixed-batch sampler. The variants of
``config.VARIANTS`` differ only in how these are configured here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from tensordict import TensorDict
from torchrl.envs import TransformedEnv

from components.world_model.dynamics import DynamicsEnsemble
from components.world_model.trainer import DynamicsTrainer
from components.envs.factory import make_env, termination_fn
from components.envs.episode_seeding import EpisodeSeeder
from components.world_model.imagined_env import ImaginedRolloutEnv
from components.policy.ensemble import PolicyEnsemble
from components.replay.buffers import (
    TRANSITION_KEYS,
    MixedBatchSampler,
    ModelReplay,
    make_real_buffer,
    mbpo_model_capacity,
)
from components.sampling.transform import PosteriorSamplingTransform
from config import Config

EVAL_SEED_OFFSET = 10_000


SAMPLING_MODE = {
    "sac": "fixed",
    "mbpo": "fixed",
    "ps-mbpo": "ps",
    "ops-mbpo": "ops",
    "ps-mbpo-fixed": "fixed",
}


@dataclass
class Agent:
    """Everything a run trains or keeps, built by :func:`build_agent`."""

    cfg: Config
    env: TransformedEnv
    sampler_transform: PosteriorSamplingTransform
    seeder: EpisodeSeeder
    policies: PolicyEnsemble
    real_buffer: Any
    model: DynamicsEnsemble | None
    model_trainer: DynamicsTrainer | None
    model_env: ImaginedRolloutEnv | None
    model_buffer: ModelReplay | None
    batch_sampler: MixedBatchSampler
    last_losses: TensorDict | None = None  # the last update's per-member losses, for logging

    @property
    def model_based(self) -> bool:
        return self.model is not None

    def state_dict(self) -> dict[str, Any]:
        out = {
            "sampler_transform": self.sampler_transform.state_dict(),
            "seeder": self.seeder.state_dict(),
            "policies": self.policies.state_dict(),
            "real_buffer": self.real_buffer.state_dict(),
            "batch_sampler": self.batch_sampler.state_dict(),
        }
        if self.model_based:
            out["model"] = self.model.state_dict()
            out["model_trainer"] = self.model_trainer.state_dict()
            out["model_buffer"] = self.model_buffer.state_dict()
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler_transform.load_state_dict(state["sampler_transform"])
        self.seeder.load_state_dict(state["seeder"])
        self.policies.load_state_dict(state["policies"])
        self.real_buffer.load_state_dict(state["real_buffer"])
        self.batch_sampler.load_state_dict(state["batch_sampler"])
        if self.model_based:
            self.model.load_state_dict(state["model"])
            self.model_trainer.load_state_dict(state["model_trainer"])
            self.model_buffer.load_state_dict(state["model_buffer"])


def make_real_env(cfg: Config, seed: int) -> tuple[TransformedEnv, EpisodeSeeder]:
    """The task's env, seeded per episode (so that a resumed run sees the same episodes)."""
    env = make_env(cfg.task, seed=seed, device=cfg.device, action_repeat=cfg.action_repeat)
    seeder = EpisodeSeeder(seed)
    env.append_transform(seeder)
    return env, seeder


def build_agent(cfg: Config) -> Agent:
    """Build the agent of ``cfg.variant`` (see ``config.VARIANTS``)."""
    device = torch.device(cfg.device)
    env, seeder = make_real_env(cfg, cfg.seed)
    num_policies = cfg.num_models * cfg.policies_per_model
    sampler_transform = PosteriorSamplingTransform(
        num_policies,
        mode=SAMPLING_MODE[cfg.variant],
        temperature=cfg.ops_temperature,
        fixed_index=cfg.fixed_policy_index if cfg.variant == "ps-mbpo-fixed" else 0,
        seed=cfg.seed,
        episode_seeded=True,  # a resumed run re-makes the pick of the episode it resumes at
    )
    env.append_transform(sampler_transform)
    obs_dim = env.observation_spec["observation"].shape[-1]
    act_dim = env.action_spec.shape[-1]

    policies = PolicyEnsemble(
        obs_dim,
        act_dim,
        ensemble_shape=(cfg.num_models, cfg.policies_per_model),
        actor_hidden=cfg.actor_hidden,
        critic_hidden=cfg.critic_hidden,
        actor_lr=cfg.actor_lr,
        critic_lr=cfg.critic_lr,
        alpha_lr=cfg.alpha_lr,
        gamma=cfg.gamma,
        tau=cfg.tau,
        init_alpha=cfg.init_alpha,
        grad_clip_norm=cfg.grad_clip_norm or None,
        device=device,
    )
    real_buffer = make_real_buffer(cfg.real_buffer_size, device=device, seed=cfg.seed)

    model = model_trainer = model_env = model_buffer = None
    if cfg.variant != "sac":
        model = DynamicsEnsemble(
            obs_dim,
            act_dim,
            num_members=cfg.model_members,
            num_elites=cfg.num_elites,
            hidden=cfg.model_hidden,
            depth=cfg.model_depth,
            predict_delta=cfg.predict_delta,
            normalize_targets=cfg.normalize_targets,
            device=device,
        )
        model_trainer = DynamicsTrainer(
            model,
            lr=cfg.model_lr,
            weight_decay=cfg.model_weight_decay,
            batch_size=cfg.model_batch_size,
            holdout_ratio=cfg.model_holdout_ratio,
            patience=cfg.model_patience,
            val_metric=cfg.model_val_metric,
            max_epochs=cfg.model_max_epochs or None,
            seed=cfg.seed,
        )
        mbpo = cfg.variant == "mbpo"
        model_env = ImaginedRolloutEnv(
            model,
            termination_fn(cfg.task),
            batch_size=(cfg.num_models, cfg.policies_per_model, cfg.rollouts_per_step),
            member_mode="random" if mbpo else "per_model",
            device=device,
        )
        capacity = mbpo_model_capacity(
            cfg.rollouts_per_step,
            max(cfg.rollout_schedule[2], cfg.rollout_schedule[3]),
            cfg.model_retain_epochs * cfg.epoch_length,
        )
        model_buffer = ModelReplay(
            (cfg.num_models, cfg.policies_per_model),
            capacity,
            device=device,
            seed=cfg.seed + 1,
            keys=TRANSITION_KEYS,
        )
    batch_sampler = MixedBatchSampler(
        real_buffer,
        model_buffer,
        real_ratio=cfg.real_ratio,
        batch_size=cfg.batch_size,
        ensemble_shape=(cfg.num_models, cfg.policies_per_model),
        seed=cfg.seed + 2,
    )
    return Agent(
        cfg=cfg,
        env=env,
        sampler_transform=sampler_transform,
        seeder=seeder,
        policies=policies,
        real_buffer=real_buffer,
        model=model,
        model_trainer=model_trainer,
        model_env=model_env,
        model_buffer=model_buffer,
        batch_sampler=batch_sampler,
    )
