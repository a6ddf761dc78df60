"""The training configuration: Hydra structured configs, one typed dataclass per job.

Every field carries its meaning and the source of its default in ``metadata["help"]``
(``--help`` prints them). Groups follow Algorithm 1: ``env`` (the task), ``model`` (line 2),
``rollout`` (lines 8-10), ``posterior`` (line 3 and 15: N, M and the policy pick), ``policy``
(lines 11-12: SAC), ``eval`` and ``run``. The dataclass defaults are the paper-scale setting
(MBPO's published values, Janner et al. 2019 and mbrl-lib's configs, where the PS-MBPO paper
is silent); presets
(``recipes/conf/preset/*.yaml``) change them for smaller machines.

The variants are configurations of one agent, one file each (``recipes/conf/variant/*.yaml``,
composed after the preset): a file sets the fields its variant decides, and a command-line value
that contradicts it is an error (:func:`check`), never silently replaced. A bare ``Config()``
lacks its variant's file: :func:`torchrl_psmbpo.recipes.cli.compose` or
:func:`~torchrl_psmbpo.recipes.cli.to_config` (``to_config({"variant": "sac"})``) applies it.
"""

from __future__ import annotations

import collections
import dataclasses
import difflib
import importlib.util
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

VARIANT_DIR = Path(__file__).resolve().parent / "conf" / "variant"
VARIANTS = tuple(sorted(p.stem for p in VARIANT_DIR.glob("*.yaml")))
"""The variants, one file each in ``recipes/conf/variant/`` (its first comment says what it is)."""
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

    members: int = _f(7, "ensemble size (MBPO: 7); the ps/ops variants set N (model n trains "
                         "policies (n, 1..M)), sac 0 (no model)")
    elites: int = _f(5, "elites; MBPO rolls out with a random elite (MBPO: 5 of 7); the ps/ops "
                        "variants set every member")
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
    member_mode: str = _f("per_model", "the member that steps each rollout: per_model ((n, m) in "
                                       "model n: PS-MBPO) | random (a random elite per step: "
                                       "MBPO); the variant's")


@dataclass
class PosteriorConfig:
    """The posterior over policies: N models x M policies, and the pick per episode."""

    num_models: int = _f(5, "N: dynamics models, each with its own M policies (PS-MBPO)")
    policies_per_model: int = _f(4, "M: policies per model (PS-MBPO)")
    mode: str = _f("ps", "the pick per episode: ps (uniform) | ops (optimistic, posterior.ops_*) "
                         "| fixed (posterior.fixed_index); the variant's")
    ops_temperature: float = _f(1000.0, "tau of OPS, p(i) ~ exp(score_i / tau), on the scale of "
                                        "returns (ours: docs/sampling_and_replay.md)")
    ops_statistic: str = _f("importance", "OPS score: importance (Exp3's estimate of every "
                                          "member's sum; ours) | sum (the paper's literal sum "
                                          "of real returns) | mean per play")
    ops_mix: float = _f(0.1, "uniform share gamma of the OPS distribution, in [0, 1) (ours; "
                             "0 = the paper's form)")
    fixed_index: int = _f(0, "the member that acts when posterior.mode=fixed")


@dataclass
class PolicyConfig:
    """The N*M SAC agents (Algorithm 1, lines 11-12)."""

    real_ratio: float = _f(0.05, "lambda, real share of each batch (MBPO: 0.05; sac: 1)")
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
    cudagraphs: bool = _f(False, "capture the update of all members (losses, backward, Adam, "
                                 "Polyak) as one CUDA graph; ignored off CUDA; not yet measured "
                                 "on a GPU (docs/gpu.md)")


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

    variant: str = _f("ps-mbpo", f"recipes/conf/variant/<name>.yaml: {' | '.join(VARIANTS)}")
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
        """(N, M): dynamics models x policies per model."""
        return self.posterior.num_models, self.posterior.policies_per_model

    @property
    def num_policies(self) -> int:
        return self.shape[0] * self.shape[1]

    @property
    def model_based(self) -> bool:
        """A world model is trained (every variant but sac, whose file sets no members)."""
        return self.model.members > 0


GROUPS = {"env": EnvConfig, "model": ModelConfig, "rollout": RolloutConfig,
          "posterior": PosteriorConfig, "policy": PolicyConfig, "eval": EvalConfig,
          "run": RunConfig}
FREE = frozenset({"run.total_steps", "run.progress", "run.device", "run.threads", "run.logger",
                  "run.project", "run.group", "run.name", "run.checkpoint_every",
                  "run.resume_if_exists", "run.discard_existing", "eval.every", "eval.episodes",
                  "eval.all_members", "eval.video"})
"""What does not shape a run: a resume may change these (``resume=<dir> total_steps=...``), and
a checkpoint is resumed whatever their values (:func:`comparable`)."""
VARIANT_FIELDS = frozenset({"posterior.mode", "rollout.member_mode"})
"""What only a variant's file sets (never the command line): checkpoints compare them through
``variant`` (:func:`comparable`; older ones lack them), and a saved config.yaml that lacks them
takes its variant file's (:func:`torchrl_psmbpo.recipes.cli.to_config`)."""


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
# Variants: what a variant's file sets, and what a config never reads
# ----------------------------------------------------------------------------------------------

def variant_values(cfg: Config) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fields that ``recipes/conf/variant/<variant>.yaml`` sets, as written there and resolved
    against ``cfg``: ``({name: raw}, {name: value})``.

    Examples:
        >>> from torchrl_psmbpo.recipes.config import Config, variant_values
        >>> raw, value = variant_values(Config(variant="ps-mbpo"))
        >>> raw["model.members"], value["model.members"], value["posterior.mode"]
        ('${posterior.num_models}', 5, 'ps')
    """
    from omegaconf import OmegaConf

    path = VARIANT_DIR / f"{cfg.variant}.yaml"
    own = OmegaConf.load(path) if path.is_file() else OmegaConf.create()
    node = OmegaConf.merge(OmegaConf.structured(cfg), own)
    raw = flatten(OmegaConf.to_container(own))
    return raw, {k: OmegaConf.select(node, k) for k in raw}


def unread(cfg: Config) -> dict[str, str]:
    """The fields a run of ``cfg`` never reads (by prefix), each with why."""
    mode = cfg.posterior.mode
    out = {} if cfg.model_based else dict.fromkeys(("model.", "rollout."), "has no model "
                                                                          "(model.members=0)")
    if mode != "ops":
        out["posterior.ops_"] = f"picks with posterior.mode={mode}; only ops reads posterior.ops_*"
    if mode != "fixed":
        out["posterior.fixed_index"] = f"picks with posterior.mode={mode}; only fixed reads it"
    return out


def check_typed(cfg: Config, typed: dict[str, Any]) -> None:
    """Refuse a command-line value, with one line naming it and the variant, for a field that the
    variant's file sets (unless the value is the same), that a run of it never reads, or one of
    :data:`VARIANT_FIELDS` (a variant's file sets those).

    Raises:
        ValueError: e.g. ``variant=sac`` with ``policy.real_ratio=0.5``.
    """
    raw, value = variant_values(cfg)
    where, v = f"recipes/conf/variant/{cfg.variant}.yaml", cfg.variant
    for key, typed_value in typed.items():
        if key in value:
            if _get(cfg, key) == value[key]:
                continue
            ref = re.fullmatch(r"\$\{([\w.]+)\}", str(raw[key]))
            if ref:
                raise ValueError(f"{key}={typed_value} must equal {ref[1]}={_get(cfg, ref[1])} "
                                 f"for variant={v} ({where}); drop {key}.")
            raise ValueError(f"{key}={typed_value} contradicts variant={v}, which sets {key}="
                             f"{value[key]} ({where}); drop {key} or choose another variant.")
        for prefix, why in unread(cfg).items():
            if key.startswith(prefix):
                raise ValueError(f"{key}={typed_value} contradicts variant={v}: {v} {why}; drop "
                                 f"{key} or choose another variant.")
        if key in VARIANT_FIELDS:
            raise ValueError(f"{key}={typed_value}: only a variant's file sets {key}, and {where} "
                             "does not; drop it or choose another variant.")


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
    """Check a composed config and the values the user typed; return it.

    Args:
        cfg: the composed config (defaults, suite, preset and overrides).
        typed: dotted field -> value of the command line (checked against the variant).

    Raises:
        ValueError: one line naming the bad value and what is accepted.
    """
    # the components own these lists; imported here, not at the top, so that --help needs no
    # torch
    from torchrl_psmbpo.envs.factory import parse_task
    from torchrl_psmbpo.sampling.posterior import SAMPLING_MODES, STATISTICS
    from torchrl_psmbpo.world_model.imagined_env import INFORMATION_SIGNS, MEMBER_MODES

    choices = {"run.logger": LOGGERS, "model.val_metric": MODEL_VAL_METRICS,
               "posterior.mode": SAMPLING_MODES, "posterior.ops_statistic": STATISTICS,
               "rollout.member_mode": MEMBER_MODES, "rollout.information_sign": INFORMATION_SIGNS}
    for name, accepted in choices.items():
        _require(_get(cfg, name) in accepted,
                 f"Unknown {name} {_get(cfg, name)!r}. Accepted: {tuple(accepted)}.")
    check_typed(cfg, typed)
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
    _require(cfg.posterior.mode != "fixed" or 0 <= cfg.posterior.fixed_index < cfg.num_policies,
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
    return {k: v for k, v in flatten(dataclasses.asdict(cfg)).items()
            if k not in FREE | VARIANT_FIELDS}


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
    "EvalConfig", "RunConfig", "VARIANTS", "VARIANT_DIR", "VARIANT_FIELDS", "FREE", "check",
    "check_typed", "variant_values", "unread", "comparable", "help_text", "leaf_fields",
    "short_names", "unknown_field", "flatten",
]
