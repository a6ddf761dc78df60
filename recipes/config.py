"""Configuration of the PS-MBPO training loop: one dataclass, presets, `key=value` overrides.

TorchRL's sota-implementations configure their scripts with Hydra. We use a plain dataclass
with Hydra-style ``key=value`` command-line overrides instead: the whole config is one typed,
documented object that tests can build directly, and it needs no new dependency (hydra-core
and omegaconf would be added only to parse ``key=value``). Every default names its source in
``FIELD_DOCS`` and in docs/algorithm.md.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, fields

VARIANTS = ("sac", "mbpo", "ps-mbpo", "ops-mbpo", "ps-mbpo-fixed")
"""``sac``: no model, lambda = 1. ``mbpo``: one policy, each imagined step by a random elite.
``ps-mbpo``: N*M policies, uniform pick per episode. ``ops-mbpo``: optimistic pick.
``ps-mbpo-fixed``: the PS-MBPO agent acting always with member 0 (the "without the sampling
step" ablation of the paper)."""

PRESETS = ("paper", "small")
LOGGERS = ("csv", "tensorboard", "wandb")
MODEL_VAL_METRICS = ("mse", "nll")


@dataclass
class Config:
    """Every setting of a run. See ``FIELD_DOCS`` (and ``--help``) for each field's meaning."""

    task: str = "dmc:cartpole-swingup"
    variant: str = "ps-mbpo"
    preset: str = "paper"
    seed: int = 0
    device: str = "cpu"
    action_repeat: int = 1
    total_steps: int = 100_000
    init_random_steps: int = 5_000
    epoch_length: int = 1_000
    # posterior: N models x M policies per model
    num_models: int = 5
    policies_per_model: int = 4
    num_elites: int = 5
    ops_temperature: float = 100.0
    fixed_policy_index: int = 0
    # world model (line 2)
    model_members: int = 0
    model_hidden: int = 200
    model_depth: int = 4
    model_lr: float = 1e-3
    model_weight_decay: float = 5e-5
    model_batch_size: int = 256
    model_holdout_ratio: float = 0.2
    model_patience: int = 5
    model_max_epochs: int = 0
    model_val_metric: str = "mse"
    model_train_freq: int = 250
    predict_delta: bool = True
    normalize_targets: bool = True
    # imagined rollouts (lines 8-10)
    rollouts_per_step: int = 400
    rollout_schedule: tuple[int, int, int, int] = (20, 100, 1, 1)
    model_retain_epochs: int = 1
    # policy optimisation (lines 11-12)
    real_ratio: float = 0.05
    updates_per_step: int = 20
    batch_size: int = 256
    actor_hidden: tuple[int, ...] = (256, 256)
    critic_hidden: tuple[int, ...] = (256, 256)
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    alpha_lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    init_alpha: float = 1.0
    grad_clip_norm: float = 0.0
    real_buffer_size: int = 1_000_000
    # evaluation, logging, checkpoints
    eval_every: int = 5_000
    eval_episodes: int = 1
    eval_all_members: bool = False
    logger: str = "csv"
    run_dir: str = ""
    checkpoint_every: int = 10_000
    resume: str = ""
    progress: bool = True


FIELD_DOCS: dict[str, str] = {
    "task": "dmc:<domain>-<task> | gym:<Id> | metaworld:<task>",
    "variant": f"one of {VARIANTS}",
    "preset": "paper (paper-scale defaults) or small (tiny networks, minutes on a laptop CPU)",
    "seed": "seeds torch, the envs (per episode) and the policy sampler",
    "device": "torch device of the networks and buffers (cpu, cuda)",
    "action_repeat": "simulator steps per agent step, rewards summed (1 = none)",
    "total_steps": "real env steps (DMC anchors in DESIGN are at 100K)",
    "init_random_steps": "uniform random actions before learning (MBPO: 5000)",
    "epoch_length": "env steps per MBPO epoch, the unit of the rollout schedule (MBPO: 1000)",
    "num_models": "N: dynamics models, each with its own M policies (PS-MBPO paper)",
    "policies_per_model": "M: policies per model (PS-MBPO paper)",
    "num_elites": "elites among the models; MBPO rolls out with a random elite (MBPO: 5 of 7)",
    "ops_temperature": "tau of OPS, p(i) ~ exp(sum of returns / tau); on the scale of returns (ours)",
    "fixed_policy_index": "the member that acts in ps-mbpo-fixed",
    "model_members": "dynamics ensemble size; 0 = num_models (ps/ops) or 7 (mbpo, MBPO's setting)",
    "model_hidden": "hidden width of each dynamics MLP (MBPO: 200)",
    "model_depth": "hidden layers of each dynamics MLP (MBPO: 4)",
    "model_lr": "dynamics Adam learning rate (MBPO: 1e-3)",
    "model_weight_decay": "dynamics weight decay (mbrl-lib: 5e-5)",
    "model_batch_size": "dynamics minibatch (MBPO: 256)",
    "model_holdout_ratio": "held-out share for early stopping and elites (MBPO: 0.2)",
    "model_patience": "epochs without improvement before stopping (MBPO: 5)",
    "model_max_epochs": "cap on dynamics epochs per training; 0 = none (MBPO: none)",
    "model_val_metric": "validation loss for early stopping, best weights and elites: mse (MBPO) or nll",
    "model_train_freq": "env steps between model trainings, Algorithm 1 line 2 (MBPO: 250)",
    "predict_delta": "predict s' - s instead of s' (MBPO: delta)",
    "normalize_targets": "normalise each target dimension ('Fixing That Free Lunch', 2025)",
    "rollouts_per_step": "B: imagined start states per member per env step (MBPO: 400)",
    "rollout_schedule": "[min_epoch, max_epoch, min_len, max_len] (MBPO HalfCheetah: 20,100,1,1)",
    "model_retain_epochs": "epochs of imagined data each model buffer keeps (MBPO: 1)",
    "real_ratio": "lambda: share of real data in each policy batch (MBPO: 0.05)",
    "updates_per_step": "G: SAC updates of every member per env step (MBPO: 20)",
    "batch_size": "SAC batch per member (MBPO/SAC: 256)",
    "actor_hidden": "actor MLP (SAC: 256,256)",
    "critic_hidden": "critic MLP (SAC: 256,256)",
    "actor_lr": "SAC: 3e-4",
    "critic_lr": "SAC: 3e-4",
    "alpha_lr": "SAC: 3e-4",
    "gamma": "discount (SAC: 0.99)",
    "tau": "Polyak rate of the target critics (SAC: 0.005)",
    "init_alpha": "initial entropy temperature (TorchRL SACLoss: 1.0)",
    "grad_clip_norm": "clip each member's gradient norm; 0 = off",
    "real_buffer_size": "capacity of the real buffer (MBPO: 1e6)",
    "eval_every": "env steps between deterministic evaluations",
    "eval_episodes": "episodes per evaluation",
    "eval_all_members": "also evaluate every member (slow: N*M episodes)",
    "logger": f"one of {LOGGERS}",
    "run_dir": "where logs and checkpoints go; '' = runs/<task>/<variant>/seed<seed>",
    "checkpoint_every": "env steps between checkpoints (taken at the next episode end)",
    "resume": "path of a checkpoint (or run dir) to continue",
    "progress": "show the tqdm bar",
}

SMALL_PRESET: dict[str, typing.Any] = {
    "total_steps": 3_000,
    "init_random_steps": 500,
    "num_models": 2,
    "policies_per_model": 2,
    "num_elites": 2,
    "model_hidden": 64,
    "model_depth": 2,
    "model_max_epochs": 20,
    "rollouts_per_step": 32,
    "updates_per_step": 2,
    "batch_size": 64,
    "actor_hidden": (64, 64),
    "critic_hidden": (64, 64),
    "eval_every": 1_000,
    "checkpoint_every": 1_000,
    "real_buffer_size": 100_000,
}
"""The ``preset=small`` overrides: a CPU smoke-scale run of any variant in minutes."""

SUITE_DEFAULTS: dict[str, dict[str, typing.Any]] = {
    "dmc": {"task": "dmc:cartpole-swingup", "total_steps": 100_000},
    "gym": {"task": "gym:HalfCheetah-v5", "total_steps": 400_000},
    "metaworld": {"task": "metaworld:window-open-v3", "total_steps": 500_000},
}
"""Per-suite defaults of the three recipes (DMC anchors: 100K; MBPO HalfCheetah: 400 epochs)."""


def _convert(name: str, raw: str, annotation: typing.Any) -> typing.Any:
    origin = typing.get_origin(annotation)
    try:
        if annotation is bool or annotation == "bool":
            low = raw.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if origin is tuple:
            return tuple(int(x) for x in raw.replace("[", "").replace("]", "").split(",") if x)
        if annotation is int or annotation == "int":
            return int(float(raw)) if "e" in raw.lower() else int(raw)
        if annotation is float or annotation == "float":
            return float(raw)
        return raw
    except ValueError:
        raise ValueError(f"Cannot read {name}={raw!r} as {annotation}.") from None


def _field_types() -> dict[str, typing.Any]:
    hints = typing.get_type_hints(Config)
    return {f.name: hints[f.name] for f in fields(Config)}


def make_config(overrides: dict[str, typing.Any] | None = None, **suite_defaults) -> Config:
    """Build a validated config: defaults, then suite defaults, then the preset, then overrides.

    Args:
        overrides: field -> value (strings are converted to the field's type).
        **suite_defaults: defaults of the calling recipe, applied before the preset.

    Raises:
        ValueError: an unknown field or a bad value, naming it and what is accepted.

    Examples:
        >>> cfg = make_config({"preset": "small", "variant": "sac"})
        >>> cfg.num_models, cfg.real_ratio
        (1, 1.0)
    """
    overrides = dict(overrides or {})
    types = _field_types()
    for key in list(overrides) + list(suite_defaults):
        if key not in types:
            close = [k for k in types if k.startswith(key[:4])]
            raise ValueError(
                f"Unknown config field {key!r}."
                + (f" Did you mean {close}?" if close else "")
                + f" Accepted: {sorted(types)}"
            )
    values: dict[str, typing.Any] = dict(suite_defaults)
    preset = overrides.get("preset", values.get("preset", "paper"))
    if preset not in PRESETS:
        raise ValueError(f"Unknown preset {preset!r}. Accepted: {PRESETS}.")
    if preset == "small":
        values.update(SMALL_PRESET)
    values.update(overrides)
    for key, val in list(values.items()):
        if isinstance(val, str) and types[key] is not str:
            values[key] = _convert(key, val, types[key])
        elif typing.get_origin(types[key]) is tuple and isinstance(val, list):
            values[key] = tuple(val)
    cfg = Config(**values)
    _apply_variant(cfg, explicit=set(overrides))
    validate(cfg)
    return cfg


def _apply_variant(cfg: Config, explicit: set[str]) -> None:
    """The variants are configurations of one agent (DESIGN section 1)."""
    if cfg.variant == "sac":
        cfg.num_models, cfg.policies_per_model = 1, 1
        cfg.real_ratio = 1.0
    elif cfg.variant == "mbpo":
        cfg.policies_per_model = 1
        if "model_members" not in explicit and cfg.model_members == 0:
            cfg.model_members = 7 if cfg.preset == "paper" else cfg.num_models
        cfg.num_models = 1
    if cfg.model_members == 0:
        cfg.model_members = cfg.num_models
    if cfg.variant != "mbpo":
        # PS-MBPO ties policy group n to model n, so every model is used; SAC has none.
        cfg.num_elites = min(cfg.num_elites, cfg.model_members)


def validate(cfg: Config) -> None:
    """Check every field before any training starts; raise ``ValueError`` naming the bad value."""
    from components.envs.factory import parse_task

    parse_task(cfg.task)
    if cfg.variant not in VARIANTS:
        raise ValueError(f"Unknown variant {cfg.variant!r}. Accepted: {VARIANTS}.")
    if cfg.logger not in LOGGERS:
        raise ValueError(f"Unknown logger {cfg.logger!r}. Accepted: {LOGGERS}.")
    if not (0.0 <= cfg.real_ratio <= 1.0) or math.isnan(cfg.real_ratio):
        raise ValueError(f"real_ratio (lambda) must lie in [0, 1], got {cfg.real_ratio}.")
    if not cfg.ops_temperature > 0:
        raise ValueError(f"ops_temperature (tau) must be > 0, got {cfg.ops_temperature}.")
    for name in ("num_models", "policies_per_model", "num_elites", "model_members"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(cfg, name)}.")
    if cfg.num_elites > cfg.model_members:
        raise ValueError(
            f"num_elites ({cfg.num_elites}) cannot exceed the ensemble size ({cfg.model_members})."
        )
    positive = (
        "total_steps", "epoch_length", "model_hidden", "model_depth", "model_batch_size",
        "model_train_freq", "rollouts_per_step", "updates_per_step", "batch_size",
        "real_buffer_size", "eval_every", "eval_episodes", "checkpoint_every",
        "model_retain_epochs", "action_repeat",
    )
    for name in positive:
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(cfg, name)}.")
    if cfg.init_random_steps < 0:
        raise ValueError(f"init_random_steps must be >= 0, got {cfg.init_random_steps}.")
    if len(cfg.rollout_schedule) != 4 or cfg.rollout_schedule[2] < 1 or cfg.rollout_schedule[3] < 1:
        raise ValueError(
            "rollout_schedule must be [min_epoch, max_epoch, min_len, max_len] with lengths >= 1, "
            f"got {list(cfg.rollout_schedule)}."
        )
    n_policies = cfg.num_models * cfg.policies_per_model
    if cfg.variant == "ps-mbpo-fixed" and not 0 <= cfg.fixed_policy_index < n_policies:
        raise ValueError(
            f"fixed_policy_index must lie in [0, {n_policies}), got {cfg.fixed_policy_index}."
        )
    if cfg.model_val_metric not in MODEL_VAL_METRICS:
        raise ValueError(
            f"Unknown model_val_metric {cfg.model_val_metric!r}. Accepted: {MODEL_VAL_METRICS}."
        )
    if not 0.0 < cfg.model_holdout_ratio < 1.0:
        raise ValueError(f"model_holdout_ratio must lie in (0, 1), got {cfg.model_holdout_ratio}.")


def parse_overrides(argv: list[str]) -> dict[str, str]:
    """Read ``key=value`` arguments (Hydra style; ``--key=value`` and ``--key value`` also work)."""
    out: dict[str, str] = {}
    it = iter(argv)
    for arg in it:
        if "=" in arg:
            key, value = arg.split("=", 1)
        else:
            key, value = arg, next(it, None)
            if value is None:
                raise ValueError(f"Missing value for {arg!r}: write {arg.lstrip('-')}=<value>.")
        out[key.lstrip("-").replace("-", "_")] = value
    return out


def help_text() -> str:
    """The ``--help`` text: every field with its default and source."""
    lines = ["Override any field with key=value, e.g. preset=small variant=ops-mbpo seed=1", ""]
    for f in fields(Config):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        lines.append(f"  {f.name}={default!s:<22} {FIELD_DOCS.get(f.name, '')}")
    return "\n".join(lines)


def comparable(cfg: Config) -> dict[str, typing.Any]:
    """The fields a checkpoint must agree on to be resumed (everything that shapes the run)."""
    free = {"total_steps", "resume", "progress", "logger", "run_dir", "eval_every",
            "eval_episodes", "eval_all_members", "checkpoint_every", "device"}
    return {k: v for k, v in dataclasses.asdict(cfg).items() if k not in free}


__all__ = [
    "Config", "FIELD_DOCS", "VARIANTS", "PRESETS", "SMALL_PRESET", "SUITE_DEFAULTS",
    "make_config", "validate", "parse_overrides", "help_text", "comparable",
]
