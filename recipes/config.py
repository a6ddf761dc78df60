"""The training configuration: Hydra structured configs, one typed dataclass per job.

Every field carries its meaning and the source of its default in ``metadata["help"]``
(``--help`` prints them). Groups follow Algorithm 1: ``env`` (the task), ``model`` (line 2),
``rollout`` (lines 8-10), ``posterior`` (line 3 and 15: N, M and the policy pick), ``policy``
(lines 11-12: SAC), ``eval`` and ``run``. The dataclass defaults are the paper-scale setting
(MBPO's published values, Janner et al. 2019 and mbrl-lib's configs, where the PS-MBPO paper
is silent); presets
(``recipes/conf/preset/*.yaml``) change them for smaller machines.

The variants (``sac``, ``mbpo``, ``ps-mbpo``, ``ops-mbpo``, ``ps-mbpo-fixed``) are
configurations of one agent: fields whose value the variant decides default to ``None`` and are
filled by :func:`resolve`; a value the user sets that contradicts the variant is an error
(:func:`check`), never silently replaced.
"""

from __future__ import annotations

import collections
import dataclasses
import difflib
import importlib.util
import math
from dataclasses import dataclass, field
from typing import Any, Optional

VARIANTS = ("sac", "mbpo", "ps-mbpo", "ops-mbpo", "ps-mbpo-fixed")
"""``sac``: no model, lambda = 1. ``mbpo``: one policy, each imagined step by a random elite.
``ps-mbpo``: N*M policies, uniform pick per episode. ``ops-mbpo``: optimistic pick.
``ps-mbpo-fixed``: the PS-MBPO agent always acting with one member (the paper's "without the
sampling step" ablation)."""

SAMPLING_MODE = {"sac": "fixed", "mbpo": "fixed", "ps-mbpo": "ps", "ops-mbpo": "ops",
                 "ps-mbpo-fixed": "fixed"}
LOGGERS = ("csv", "tensorboard", "wandb")
LOGGER_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb"}
"""The package each of TorchRL's loggers needs (not installed with this project)."""
MODEL_VAL_METRICS = ("mse", "nll")


def _f(default: Any, help: str) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class EnvConfig:
    """The real environment."""

    task: str = _f("dmc:cartpole-swingup", "dmc:<domain>-<task> | gym:<Id> | metaworld:<task>")
    action_repeat: int = _f(1, "simulator steps per agent step, rewards summed (1 = none; "
                               "Dreamer/PlaNet use 2-8 on DMC)")


@dataclass
class ModelConfig:
    """The dynamics ensemble and its training (Algorithm 1, line 2)."""

    members: Optional[int] = _f(None, "ensemble size; None = N (ps/ops) or 7 (mbpo, MBPO's "
                                      "setting); ps/ops need exactly N")
    elites: int = _f(5, "elites; MBPO rolls out with a random elite (MBPO: 5 of 7); capped at N "
                        "for ps/ops")
    hidden: int = _f(200, "hidden width of each member (MBPO: 200)")
    depth: int = _f(4, "hidden layers of each member (MBPO: 4)")
    lr: float = _f(1e-3, "Adam learning rate (MBPO: 1e-3)")
    weight_decay: float = _f(5e-5, "weight decay (mbrl-lib: 5e-5)")
    batch_size: int = _f(256, "minibatch (MBPO: 256)")
    holdout_ratio: float = _f(0.2, "held-out share for early stopping and elites (MBPO: 0.2)")
    patience: int = _f(5, "epochs without improvement before stopping (MBPO: 5)")
    max_epochs: Optional[int] = _f(None, "cap on epochs per fit; None = no cap (MBPO)")
    val_metric: str = _f("mse", "validation loss for early stopping and elites: mse (MBPO) | nll")
    nll_beta: float = _f(0.0, "beta-NLL's beta in [0, 1] (Seitzer et al. 2022): 0 = MBPO's "
                          "Gaussian NLL; 0.5 keeps a sparse reward's mean from being explained "
                          "as variance (docs/world_model.md)")
    train_freq: int = _f(250, "agent steps between model fits (MBPO: 250)")
    predict_delta: bool = _f(True, "predict s' - s instead of s' (MBPO: delta)")
    normalize_targets: bool = _f(True, "normalise each target dimension ('Fixing That Free "
                                       "Lunch', 2025)")


@dataclass
class RolloutConfig:
    """Imagined rollouts (Algorithm 1, lines 8-10)."""

    per_step: int = _f(400, "B: imagined start states per member per agent step (MBPO: 400)")
    schedule: list[int] = _f([20, 100, 1, 1], "rollout length [min_epoch, max_epoch, min_len, "
                                              "max_len] (MBPO HalfCheetah: 20,100,1,1)")
    epoch_length: int = _f(1000, "agent steps per epoch, the unit of the schedule (MBPO: 1000)")
    retain_epochs: int = _f(1, "epochs of imagined data each model buffer keeps (MBPO: 1)")
    deterministic: bool = _f(True, "step with each member's mean prediction; false samples "
                                   "from its Gaussian as MBPO does, which made the critic run "
                                   "away on walker-walk (docs/world_model.md)")
    information_weight: float = _f(0.0, "beta of Marino & Yue's model-likelihood term added to "
                                        "the imagined reward (0 = off)")
    information_sign: str = _f("pessimistic", "pessimistic (reward - beta*info: favours outcomes "
                                              "the members agree on) | optimistic (reward + "
                                              "beta*info: the paper's sign, a bonus)")


@dataclass
class PosteriorConfig:
    """The posterior over policies: N models x M policies, and the pick per episode."""

    num_models: int = _f(5, "N: dynamics models, each with its own M policies (PS-MBPO)")
    policies_per_model: int = _f(4, "M: policies per model (PS-MBPO)")
    ops_temperature: float = _f(1000.0, "tau of OPS, p(i) ~ exp(score_i / tau), on the scale of "
                                        "returns (ours: docs/sampling_and_replay.md)")
    ops_statistic: str = _f("importance", "OPS score: importance (Exp3's estimate of every "
                                          "member's sum; ours) | sum (the paper's literal sum "
                                          "of real returns) | mean per play")
    ops_mix: float = _f(0.1, "uniform share gamma of the OPS distribution, in [0, 1) (ours; "
                             "0 = the paper's form)")
    fixed_index: int = _f(0, "the member that acts in ps-mbpo-fixed")


@dataclass
class PolicyConfig:
    """The N*M SAC agents (Algorithm 1, lines 11-12)."""

    real_ratio: Optional[float] = _f(None, "lambda, real share of each batch; None = 1 (sac) or "
                                          "0.05 (MBPO)")
    updates_per_step: int = _f(20, "G: SAC updates of every member per agent step (MBPO: 20)")
    batch_size: int = _f(256, "SAC batch per member (SAC/MBPO: 256)")
    actor_hidden: list[int] = _f([256, 256], "actor MLP (SAC: 256,256)")
    critic_hidden: list[int] = _f([256, 256], "critic MLP (SAC: 256,256)")
    actor_lr: float = _f(3e-4, "SAC: 3e-4")
    critic_lr: float = _f(3e-4, "SAC: 3e-4")
    alpha_lr: float = _f(3e-4, "SAC: 3e-4")
    gamma: float = _f(0.99, "discount (SAC: 0.99)")
    tau: float = _f(0.005, "Polyak rate of the target critics (SAC: 0.005)")
    init_alpha: float = _f(1.0, "initial temperature (TorchRL SACLoss: 1.0)")
    grad_clip_norm: Optional[float] = _f(None, "clip each member's gradient norm; None = off")
    real_buffer_size: int = _f(1_000_000, "capacity of the real buffer (MBPO: 1e6)")
    action_prior: bool = _f(False, "Marino & Yue's learned action prior in place of SAC's "
                                   "uniform prior")
    prior_hidden: Optional[list[int]] = _f(None, "action prior MLP; None = half the actor's "
                                                 "widths (ours, for cost: see "
                                                 "docs/inference_perspective.md)")
    prior_lr: float = _f(1e-4, "learning rate of the action prior (slower than the actor: it "
                               "consolidates)")
    target_kl: Optional[float] = _f(None, "temperature target for KL(pi || prior); None = the "
                                         "component's default (SAC's entropy target's analogue)")
    prior_rollouts: bool = _f(False, "imagined rollouts act with each member's action prior "
                                     "instead of its actor (needs action_prior)")
    compile: bool = _f(False, "torch.compile the update's loss computation on a GPU; ignored on "
                              "a CPU, where it is slower (docs/policy_ensemble.md); not yet "
                              "measured on a GPU (docs/gpu.md)")


@dataclass
class EvalConfig:
    """Deterministic evaluation on a separate env."""

    every: int = _f(5_000, "agent steps between evaluations (and one at the end of every run)")
    episodes: int = _f(1, "episodes per evaluation")
    all_members: bool = _f(False, "also evaluate every member (N*M episodes)")
    video: bool = _f(False, "record the first episode of every evaluation (TorchRL's "
                            "VideoRecorder into the logger, a GIF under videos/); needs offscreen "
                            "rendering (MUJOCO_GL=egl or osmesa; pygame for Gym's classic control)")


@dataclass
class RunConfig:
    """Length, device, threads, logging and checkpoints of one run."""

    total_steps: int = _f(100_000, "agent steps (DMC anchors are at 100K simulator steps)")
    init_random_steps: int = _f(5_000, "uniform random actions before learning (MBPO: 5000)")
    device: str = _f("cpu", "torch device of networks and buffers: cpu | cuda | cuda:<i>")
    threads: Optional[int] = _f(None, "torch threads; None = torch's default (all cores), or "
                                      "cores / jobs under the joblib launcher")
    logger: str = _f("csv", "csv | tensorboard | wandb")
    project: str = _f("psmbpo", "wandb project (TorchRL's sota scripts: logger.project_name)")
    group: Optional[str] = _f(None, "wandb group, e.g. one per sweep; None = none")
    name: Optional[str] = _f(None, "wandb run name; None = <variant>_<task>_seed<k>")
    checkpoint_every: int = _f(10_000, "agent steps between checkpoints (and one at the end)")
    progress: bool = _f(True, "show the tqdm bar")
    resume_if_exists: bool = _f(False, "continue from the run dir's checkpoint if there is one "
                                       "(for requeued cluster jobs); else a fresh run refuses a "
                                       "dir that holds one")
    discard_existing: bool = _f(False, "delete an earlier run's files (checkpoint, config, logs) "
                                       "from the run dir and start afresh; with "
                                       "resume_if_exists, only when there is no checkpoint to "
                                       "continue (a job killed before its first one)")


@dataclass
class Config:
    """Every setting of a run. ``--help`` lists each field with its default and source."""

    variant: str = _f("ps-mbpo", f"one of {VARIANTS}")
    seed: int = _f(0, "seeds torch, the envs (per episode), the buffers and the policy pick")
    env: EnvConfig = field(default_factory=EnvConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    posterior: PosteriorConfig = field(default_factory=PosteriorConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    run: RunConfig = field(default_factory=RunConfig)

    @property
    def shape(self) -> tuple[int, int]:
        """(N, M): dynamics models x policies per model; (1, 1) for sac and mbpo (one policy)."""
        if self.variant in ("sac", "mbpo"):
            return 1, 1
        return self.posterior.num_models, self.posterior.policies_per_model

    @property
    def num_policies(self) -> int:
        return self.shape[0] * self.shape[1]

    @property
    def model_based(self) -> bool:
        return self.variant != "sac"


GROUPS = {"env": EnvConfig, "model": ModelConfig, "rollout": RolloutConfig,
          "posterior": PosteriorConfig, "policy": PolicyConfig, "eval": EvalConfig,
          "run": RunConfig}
FREE = frozenset({"run.total_steps", "run.progress", "run.device", "run.threads", "run.logger",
                  "run.project", "run.group", "run.name", "run.checkpoint_every",
                  "run.resume_if_exists", "run.discard_existing", "eval.every", "eval.episodes",
                  "eval.all_members", "eval.video"})
"""What does not shape a run: a resume may change these (``resume=<dir> total_steps=...``), and
a checkpoint is resumed whatever their values (:func:`comparable`)."""


def leaf_fields(cls: type = Config, prefix: str = "") -> dict[str, dataclasses.Field]:
    """Every leaf field by dotted name, e.g. ``"policy.real_ratio"``."""
    out: dict[str, dataclasses.Field] = {}
    for f in dataclasses.fields(cls):
        if f.name in GROUPS:
            out.update(leaf_fields(GROUPS[f.name], f"{prefix}{f.name}."))
        else:
            out[prefix + f.name] = f
    return out


def short_names() -> dict[str, str]:
    """A leaf name unique across the groups stands for its dotted name (``total_steps`` ->
    ``run.total_steps``, ``task`` -> ``env.task``)."""
    leaves = [n.split(".") for n in leaf_fields() if "." in n]
    counts = collections.Counter(leaf for _, leaf in leaves)
    return {leaf: f"{group}.{leaf}" for group, leaf in leaves if counts[leaf] == 1}


def unknown_field(name: str) -> str:
    """The one line for an unknown field, with the nearest valid (dotted) names.

    Examples:
        >>> unknown_field("actor_lrr")
        "Unknown config field 'actor_lrr'. Did you mean policy.actor_lr? See --help for all fields."
    """
    shorts = short_names()
    close = difflib.get_close_matches(name, [*leaf_fields(), *shorts], n=4, cutoff=0.6)
    close = close or [c for c in leaf_fields() if c.rsplit(".", 1)[-1] == name.rsplit(".", 1)[-1]]
    dotted = list(dict.fromkeys(shorts.get(c, c) for c in close))[:3]
    hint = f" Did you mean {' or '.join(dotted)}?" if dotted else ""
    return f"Unknown config field {name!r}.{hint} See --help for all fields."


def help_text() -> str:
    """``--help`` (Hydra's help template, ``hydra.help.template``): every field with its default
    and where the default comes from."""
    lines = [
        "Override any field with key=value (Hydra syntax), e.g.",
        "  python recipes/psmbpo_dmc.py preset=small variant=ops-mbpo seed=1 policy.batch_size=128",
        "Sweeps: add -m and comma lists: -m seed=0,1,2 variant=sac,ps-mbpo hydra/launcher=joblib",
        "Continue a run: resume=<run dir> [total_steps=<more>]. --cfg job prints the config.",
        "Short forms: a leaf name unique across groups (total_steps, task, ...) stands for its",
        "dotted name.",
        "",
        "$APP_CONFIG_GROUPS",
    ]
    group = None
    for name, f in leaf_fields().items():
        if (name.split(".")[0] if "." in name else "") != group:
            group = name.split(".")[0] if "." in name else ""
            lines.append(f"[{group or 'top level'}]")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        lines.append(f"  {name}={default!s:<24} {f.metadata.get('help', '')}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Variants
# ----------------------------------------------------------------------------------------------

_VARIANT_FORBIDS: dict[str, tuple[str, ...]] = {
    "sac": ("posterior.num_models", "posterior.policies_per_model", "model.", "rollout.",
            "posterior.ops_", "posterior.fixed_index"),
    "mbpo": ("posterior.num_models", "posterior.policies_per_model", "posterior.ops_",
             "posterior.fixed_index"),
    "ps-mbpo": ("posterior.ops_", "posterior.fixed_index"),
    "ops-mbpo": ("posterior.fixed_index",),
    "ps-mbpo-fixed": ("posterior.ops_",),
}
"""Fields a variant decides or does not use: setting one on the command line is an error."""

_WHY = {
    "sac": "has no model and one policy (N = M = 1, lambda = 1)",
    "mbpo": "has one policy over the whole ensemble (N = M = 1 policies; set model.members)",
    "ps-mbpo": "picks uniformly (no OPS temperature) and never acts with a fixed member",
    "ops-mbpo": "picks optimistically, not a fixed member",
    "ps-mbpo-fixed": "always acts with posterior.fixed_index (no OPS)",
}


def check_overrides(variant: str, overridden: dict[str, Any]) -> None:
    """Refuse a command-line value that contradicts the variant (one line naming both).

    Args:
        variant: the chosen variant.
        overridden: dotted field -> value, as the user wrote them.

    Raises:
        ValueError: e.g. ``variant=sac`` with ``policy.real_ratio=0.5``.
    """
    for key, value in overridden.items():
        if variant == "sac" and key == "policy.real_ratio" and float(value) != 1.0:
            raise ValueError(
                f"policy.real_ratio={value} contradicts variant=sac (SAC learns from real data "
                "only, lambda = 1); use a model-based variant to mix imagined data.")
        for prefix in _VARIANT_FORBIDS.get(variant, ()):
            if key == prefix or (prefix.endswith((".", "_")) and key.startswith(prefix)):
                raise ValueError(f"{key}={value} contradicts variant={variant}: {variant} "
                                 f"{_WHY[variant]}; drop {key} or choose another variant.")


def resolve(cfg: Config) -> Config:
    """Fill the fields the variant decides (``None`` defaults and N, M); return a new config.

    Examples:
        >>> cfg = resolve(Config(variant="sac"))
        >>> cfg.posterior.num_models, cfg.policy.real_ratio, cfg.model.members
        (1, 1.0, 0)
        >>> resolve(Config(variant="mbpo")).model.members
        7
    """
    cfg = dataclasses.replace(cfg, **{g: dataclasses.replace(getattr(cfg, g)) for g in GROUPS})
    cfg.posterior.num_models, cfg.posterior.policies_per_model = cfg.shape
    if cfg.policy.real_ratio is None:
        cfg.policy.real_ratio = 1.0 if cfg.variant == "sac" else 0.05
    if cfg.variant == "sac":
        cfg.model.members = 0
    elif cfg.variant == "mbpo":
        cfg.model.members = 7 if cfg.model.members is None else cfg.model.members
    else:  # PS-MBPO ties policy group n to model n: every model is used, elites are moot
        cfg.model.members = cfg.shape[0] if cfg.model.members is None else cfg.model.members
        cfg.model.elites = min(cfg.model.elites, cfg.model.members)
    return cfg


# ----------------------------------------------------------------------------------------------
# Checks: every value, before any env, model or directory is created
# ----------------------------------------------------------------------------------------------

_INTERVALS = {"policy.real_ratio": "[0, 1]", "policy.gamma": "(0, 1]", "policy.tau": "(0, 1]",
              "model.holdout_ratio": "(0, 1)", "model.nll_beta": "[0, 1]",
              "posterior.ops_mix": "[0, 1)", "model.weight_decay": "[0, inf)",
              "rollout.information_weight": "[0, inf)", "policy.target_kl": "[0, inf)"}
"""The float fields that do not lie in (0, inf), as every other float must. Every int field is
>= 1 but those of :data:`_FREE_INTS`. ``None``, where a field allows it, is not checked."""
_FREE_INTS = ("seed", "posterior.fixed_index", "run.init_random_steps")


def _in(value: float, interval: str) -> bool:
    low, high = (float(x) for x in interval[1:-1].split(", "))
    return math.isfinite(value) and (value > low if interval[0] == "(" else value >= low) and (
        value < high if interval[-1] == ")" else value <= high)


def _get(cfg: Config, name: str) -> Any:
    group, _, leaf = name.rpartition(".")
    return getattr(getattr(cfg, group) if group else cfg, leaf)


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def check(cfg: Config, typed: dict[str, Any]) -> Config:
    """Check a composed config and the values the user typed; return it resolved.

    Args:
        cfg: the composed config (defaults, suite, preset and overrides).
        typed: dotted field -> value of the command line (checked against the variant).

    Raises:
        ValueError: one line naming the bad value and what is accepted.
    """
    # the components own these lists; imported here, not at the top, so that --help needs no
    # torch
    from torchrl_psmbpo.envs.factory import parse_task
    from torchrl_psmbpo.sampling.posterior import STATISTICS
    from torchrl_psmbpo.world_model.imagined_env import INFORMATION_SIGNS

    choices = {"variant": VARIANTS, "run.logger": LOGGERS, "model.val_metric": MODEL_VAL_METRICS,
               "posterior.ops_statistic": STATISTICS, "rollout.information_sign": INFORMATION_SIGNS}
    for name, accepted in choices.items():
        _require(_get(cfg, name) in accepted,
                 f"Unknown {name} {_get(cfg, name)!r}. Accepted: {tuple(accepted)}.")
    check_overrides(cfg.variant, typed)
    cfg = resolve(cfg)
    parse_task(cfg.env.task)
    package = LOGGER_PACKAGES.get(cfg.run.logger)
    _require(package is None or importlib.util.find_spec(package) is not None,
             f"run.logger={cfg.run.logger} needs the {package} package, which is not installed "
             f"here: pip install {package} (this project's extra: pip install -e '.[{package}]'), "
             "or use run.logger=csv.")
    for name, f in sorted(leaf_fields().items(), key=lambda item: item[0] not in typed):
        value = _get(cfg, name)  # the values typed first: an error names what the user wrote
        if value is None or (name.startswith("model.") and not cfg.model_based):
            continue
        if f.type in ("int", "Optional[int]") and name not in _FREE_INTS:
            _require(value >= 1, f"{name} must be an integer >= 1, got {value}.")
        elif f.type in ("float", "Optional[float]"):
            interval = _INTERVALS.get(name, "(0, inf)")
            _require(_in(value, interval), f"{name} must lie in {interval}, got {value}.")
    for name in ("actor_hidden", "critic_hidden", "prior_hidden"):
        sizes = getattr(cfg.policy, name)
        _require(sizes is None or (len(sizes) >= 1 and all(s >= 1 for s in sizes)),
                 f"policy.{name} must be a non-empty list of sizes >= 1, got {sizes}.")
    _require(cfg.run.init_random_steps >= 0,
             f"run.init_random_steps must be >= 0, got {cfg.run.init_random_steps}.")
    sched = list(cfg.rollout.schedule)
    _require(len(sched) == 4 and 0 <= sched[0] <= sched[1] and min(sched[2:]) >= 1,
             "rollout.schedule must be [min_epoch, max_epoch, min_len, max_len] with "
             f"0 <= min_epoch <= max_epoch and lengths >= 1, got {sched}.")
    if cfg.model_based:
        _require(cfg.model.elites <= cfg.model.members,
                 f"model.elites ({cfg.model.elites}) cannot exceed model.members "
                 f"({cfg.model.members}).")
        _require(cfg.variant == "mbpo" or cfg.model.members == cfg.shape[0],
                 f"model.members={cfg.model.members} must equal posterior.num_models="
                 f"{cfg.shape[0]} for {cfg.variant} (model n trains policies (n, 1..M)).")
        # the first model fit needs a training and a held-out transition, and a batch to start
        needed = max(math.ceil(1 / cfg.model.holdout_ratio),
                     math.ceil(1 / (1 - cfg.model.holdout_ratio))) + 1
        _require(cfg.run.init_random_steps >= needed,
                 f"run.init_random_steps={cfg.run.init_random_steps} is too few for "
                 f"{cfg.variant}: the first model fit needs at least {needed} transitions with "
                 f"model.holdout_ratio={cfg.model.holdout_ratio}.")
    _require(not cfg.policy.prior_rollouts or cfg.policy.action_prior,
             "policy.prior_rollouts=true needs policy.action_prior=true (the rollout policy is "
             "the learned prior).")
    _require(cfg.variant != "ps-mbpo-fixed" or 0 <= cfg.posterior.fixed_index < cfg.num_policies,
             f"posterior.fixed_index must lie in [0, {cfg.num_policies}), got "
             f"{cfg.posterior.fixed_index}.")
    check_device(cfg.run.device)
    if cfg.eval.video:
        from torchrl_psmbpo.recipes.evaluation import rendering_problem

        problem = rendering_problem(cfg.env.task)
        _require(problem is None, f"eval.video=true: {problem}; or set eval.video=false.")
    return cfg


def check_device(device: str) -> None:
    """``cpu``, ``cuda`` or ``cuda:<i>`` that exists on this machine."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        dev = None
    _require(dev is not None and dev.type in ("cpu", "cuda"),
             f"Unknown run.device {device!r}. Accepted: cpu, cuda, cuda:<index>.")
    if dev.type == "cuda":
        _require(torch.cuda.is_available(),
                 f"run.device={device!r} but CUDA is not available on this machine "
                 "(torch.cuda.is_available() is False); use run.device=cpu.")
        _require(dev.index is None or dev.index < torch.cuda.device_count(),
                 f"run.device={device!r}: this machine has {torch.cuda.device_count()} CUDA "
                 "device(s).")


def comparable(cfg: Config) -> dict[str, Any]:
    """The fields a checkpoint must agree on to be resumed (everything that shapes the run)."""
    return {k: v for k, v in flatten(dataclasses.asdict(cfg)).items() if k not in FREE}


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = list(v) if isinstance(v, tuple) else v
    return out


__all__ = [
    "Config", "EnvConfig", "ModelConfig", "RolloutConfig", "PosteriorConfig", "PolicyConfig",
    "EvalConfig", "RunConfig", "VARIANTS", "SAMPLING_MODE", "FREE", "resolve", "check",
    "check_overrides", "comparable", "help_text", "leaf_fields", "short_names", "unknown_field",
    "flatten",
]
