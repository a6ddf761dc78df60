"""The one training loop of PS-MBPO / OPS-MBPO (and SAC, MBPO, the no-sampling ablation).

:func:`train` reads as the paper's Algorithm 1; each block carries its line numbers. Setup and
bookkeeping (factories, checkpoints, evaluation, logging, the progress bar) are named helpers,
one call each. Steps are agent steps (one action; ``env.action_repeat`` simulator steps).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDictBase
from torchrl._utils import timeit
from torchrl.envs.utils import step_mdp
from torchrl.record.loggers import Logger, get_logger
from tqdm import tqdm

from torchrl_psmbpo.policy import PolicyEnsemble, save_agent
from torchrl_psmbpo.policy.export import AGENT_NAME
from torchrl_psmbpo.keys import TRANSITION_KEYS
from torchrl_psmbpo.replay import MixedBatchSampler
from torchrl_psmbpo.sampling.posterior import PolicyPosterior
from torchrl_psmbpo.world_model.rollout_schedule import rollout_length
from torchrl_psmbpo.recipes.build import (
    EVAL_SEED_OFFSET,
    WorldModel,
    WorldModelFactory,
    make_buffers,
    make_policies,
    make_posterior,
    make_real_env,
    make_world_model,
    model_capacity,
)
from torchrl_psmbpo.recipes.checkpoint import (
    CHECKPOINT_NAME,
    log_sizes,
    rewind_logs,
    rng_state,
    save_checkpoint,
    seed_all,
    set_rng_state,
    written_or_kept,
)
from torchrl_psmbpo.recipes.config import Config, comparable, flatten
from torchrl_psmbpo.recipes.evaluation import Evaluator, own_random_streams
from torchrl_psmbpo.recipes.rundir import PHASES


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite; the run stops and the last checkpoint is kept."""


@dataclass
class Progress:
    """The loop's counters (saved in checkpoints)."""

    step: int = 0
    episodes: int = 0
    eval_round: int = 0
    horizon: int = 0
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))
    last_return: float = math.nan
    last_eval: float = math.nan
    last_checkpoint_step: int = 0
    checkpoint: str | None = None


def train(cfg: Config, run_dir: str | Path, resume: dict | None = None,
          stop: Any = None,
          world_model_factory: WorldModelFactory = make_world_model) -> dict[str, Any]:
    """Run Algorithm 1 for ``cfg.run.total_steps`` agent steps in ``run_dir``.

    Args:
        cfg: a resolved, validated :class:`torchrl_psmbpo.recipes.config.Config` (``torchrl_psmbpo.recipes.cli.compose``).
        run_dir: where logs and checkpoints go.
        resume: a loaded checkpoint (``torchrl_psmbpo.recipes.checkpoint.load_checkpoint``) to continue from.
        stop: anything truthy once the run must stop (``torchrl_psmbpo.recipes.cli.StopFlag``); checked once
            per step, then a checkpoint is written.
        world_model_factory: ``(cfg, obs_dim, act_dim) -> WorldModel | None`` that builds the
            world model (default :func:`torchrl_psmbpo.recipes.build.make_world_model`; e.g. its ``model_cls``
            and ``trainer_cls`` give it another model, such as a simulator as an oracle).

    Returns:
        ``{"step", "episodes", "last_return", "last_eval", "run_dir", "checkpoint", "stopped"}``.
    """
    run_dir = Path(run_dir)
    seed_all(cfg.seed)
    timeit.erase()
    posterior = make_posterior(cfg)
    real = make_real_env(cfg, posterior)
    act_space = real.env.action_spec
    obs_dim, act_dim = real.env.observation_spec["observation"].shape[-1], act_space.shape[-1]
    policies = make_policies(cfg, obs_dim, act_dim)
    world = world_model_factory(cfg, obs_dim, act_dim)
    real_buffer, batch_sampler = make_buffers(cfg, world)
    stateful = {"posterior": posterior, "seeder": real.seeder, "policies": policies,
                "real_buffer": real_buffer, "batch_sampler": batch_sampler}
    if world is not None:
        stateful.update(model=world.model, model_trainer=world.trainer, model_buffer=world.buffer)
    run, logger = restore(cfg, run_dir, resume, stateful)
    evaluator = Evaluator(cfg.env.task, cfg.seed + EVAL_SEED_OFFSET, cfg.eval.episodes,
                          cfg.run.device, cfg.env.action_repeat,
                          video_logger=logger if cfg.eval.video else None,
                          video_dir=run_dir / "videos" if cfg.eval.video else None)
    bar = tqdm(total=cfg.run.total_steps, initial=run.step, disable=not cfg.run.progress,
               desc=cfg.variant)
    td, random_episode, stopped, imagined, losses = None, False, False, {}, None
    # the step whose phase times are logged (a checkpoint is written after its step's row)
    timed_at = run.step if resume is not None else None
    while run.step < cfg.run.total_steps:
        if stop:
            stopped = True
            break
        learning = run.step >= cfg.run.init_random_steps

        # Line 2: train the N models on D_E by maximum likelihood (every model.train_freq steps)
        if world is not None and learning and (run.step - cfg.run.init_random_steps) % cfg.model.train_freq == 0:
            with timeit("model"):
                log(logger, train_models(world, real_buffer, run), run.step)

        # Line 3: an episode starts; the stamp transform writes posterior.pick() on its data
        if td is None:
            td, random_episode = real.env.reset(), False

        # Lines 6-7: step the real env with the picked member; add the transition to D_E
        with timeit("env"), torch.no_grad():
            # before learning starts, uniform random actions (such episodes are not credited)
            td = policies.indexed_policy(td) if learning else td.set("action", act_space.rand())
            td = real.env.step(td)
            real_buffer.extend(td.select(*TRANSITION_KEYS).unsqueeze(0))
        random_episode |= not learning
        run.step += 1

        if learning:
            if world is not None:
                # Lines 8-10: start states s ~ D_E; every (n, m) rolls out its own model
                with timeit("rollout"):
                    imagined = imagine(world, policies, real_buffer, cfg, run)
            # Lines 11-12: G SAC updates of every member on lambda real + (1 - lambda) imagined
            with timeit("update"):
                losses = update_policies(policies, batch_sampler, cfg.policy.updates_per_step, run)

        episode_done = bool(td["next", "done"].item())
        if episode_done:
            # Line 15: update the optimistic distribution with the episode's real return
            metrics = end_episode(posterior, td, credited=not random_episode, run=run)
            if losses is not None:
                metrics |= loss_metrics(losses) | imagined
            log(logger, metrics | timing(run), run.step)
            timed_at = run.step
        maybe_evaluate(cfg, evaluator, policies, posterior, run, logger, bar)
        if episode_done:  # after this step's evaluation: a resume never skips or repeats one
            maybe_checkpoint(cfg, run_dir, run, stateful, logger)
        td = None if episode_done else step_mdp(td)
        bar.update(1)

    if not stopped and run.step % cfg.eval.every != 0:
        evaluate(evaluator, policies, posterior, run, logger)  # every run ends with an evaluation
    if timed_at != run.step:  # the phase times once per step: not again after an episode's row
        log(logger, timing(run), run.step)
    # the acting policy (and every member) as stock TorchRL actors: torchrl_psmbpo.load_agent(run_dir);
    # before the last checkpoint, so that a run whose last checkpoint exists has its agent too
    export_agent(cfg, run_dir, run, policies, posterior)
    checkpoint(cfg, run_dir, run, stateful, logger)
    bar.close()
    return {"step": run.step, "episodes": run.episodes, "last_return": run.last_return,
            "last_eval": run.last_eval, "run_dir": str(run_dir), "checkpoint": run.checkpoint,
            "stopped": stopped}


# ----------------------------------------------------------------------------------------------
# The algorithm's steps
# ----------------------------------------------------------------------------------------------

def train_models(world: WorldModel, real_buffer: Any, run: Progress) -> dict[str, float]:
    """Line 2: maximum likelihood on all real data, early stopping, elites."""
    metrics = world.trainer.train(real_buffer)
    val = torch.as_tensor(metrics["val_nll"], dtype=torch.float32)
    check_finite(val, "dynamics validation loss", run)
    return {"model/val_nll": float(val.mean()),
            "model/val_mse": float(torch.as_tensor(metrics["val_mse"]).float().mean()),
            "model/epochs": float(metrics["epochs"])}


def imagine(world: WorldModel, policies: PolicyEnsemble, real_buffer: Any, cfg: Config,
            run: Progress) -> dict[str, float]:
    """Lines 8-10: start states from D_E, every (n, m) rolls out its own model for R steps.

    The model buffers follow the rollout length as MBPO's do: when the schedule changes R,
    each keeps ``per_step * R * retain_epochs * epoch_length`` transitions (newest kept).
    The rollout policy is each member's SAC actor, or its action prior with
    ``policy.prior_rollouts`` (Marino & Yue). Returns the imagined reward's mean (and the
    information term's, when it is on) for logging.
    """
    horizon = rollout_length(run.step / cfg.rollout.epoch_length, cfg.rollout.schedule)
    if horizon != run.horizon:
        world.buffer.resize(model_capacity(cfg, horizon))
        run.horizon = horizon
    start = real_buffer.sample(cfg.rollout.per_step).select("observation")
    with torch.no_grad():
        rollout = world.imagined_env.rollout(
            horizon, policies.prior_policy if cfg.policy.prior_rollouts else policies.ensemble_policy,
            auto_reset=False, tensordict=world.imagined_env.reset(start), break_when_any_done=False,
        )
    world.buffer.extend_rollout(rollout)
    out = {"imagined/reward": float(rollout["next", "reward"].mean()), "rollout_length": float(horizon)}
    if ("next", "information") in rollout.keys(True):
        out["imagined/information"] = float(rollout["next", "information"].mean())
    return out


def update_policies(policies: PolicyEnsemble, batch_sampler: MixedBatchSampler, updates: int,
                    run: Progress) -> TensorDictBase:
    """Lines 11-12: G SAC updates of every member, each on its own mixed batch."""
    for _ in range(updates):
        losses = policies.update(batch_sampler.sample())
    check_finite(torch.stack([losses["loss_actor"], losses["loss_qvalue"]]), "SAC loss", run)
    return losses


def end_episode(posterior: PolicyPosterior, td: TensorDictBase, credited: bool,
                run: Progress) -> dict[str, float]:
    """Line 15: credit the real return to the member that played (episodes with random actions
    are no play of anyone: only the episode count advances)."""
    index = int(td["policy_index"])
    ret = float(td["next", "episode_reward"])
    if credited:
        posterior.update(index, ret)
    else:
        posterior.skip()
    run.episodes += 1
    run.last_return = ret
    probs = posterior.probs
    return {"train/return": ret, "train/policy_index": float(index),
            "train/credited": float(credited), "ops/max_prob": float(probs.max()),
            **{f"ops/p{i}": float(p) for i, p in enumerate(probs.tolist())}}


# ----------------------------------------------------------------------------------------------
# Bookkeeping: evaluation, logging, checkpoints
# ----------------------------------------------------------------------------------------------

def maybe_evaluate(cfg: Config, evaluator: Evaluator, policies: PolicyEnsemble,
                   posterior: PolicyPosterior, run: Progress, logger: Logger, bar: tqdm) -> None:
    """Evaluate every ``eval.every`` agent steps (and, in :func:`train`, at the end)."""
    if run.step % cfg.eval.every == 0:
        evaluate(evaluator, policies, posterior, run, logger,
                 all_members=cfg.eval.all_members)
        bar.set_postfix({"return": round(run.last_return, 1), "eval": round(run.last_eval, 1),
                         "p_max": round(float(posterior.probs.max()), 3)}, refresh=False)


def evaluate(evaluator: Evaluator, policies: PolicyEnsemble, posterior: PolicyPosterior,
             run: Progress, logger: Logger, all_members: bool = False) -> None:
    """Deterministic episodes of the member the posterior finds most likely."""
    best = posterior.most_likely()
    result = evaluator.evaluate(policies, best, run.eval_round, step=run.step)
    metrics = {"eval/return": result["return"], "eval/member": float(best)}
    if "success" in result:
        metrics["eval/success"] = result["success"]
    if all_members:
        for i in range(policies.num_members):
            metrics[f"eval/return_member{i}"] = evaluator.evaluate(policies, i, run.eval_round)["return"]
    run.eval_round += 1
    run.last_eval = result["return"]
    log(logger, metrics, run.step)


def log(logger: Logger, metrics: dict[str, float], step: int) -> None:
    """One call logs a dict of scalars."""
    for key, value in metrics.items():
        logger.log_scalar(key, value, step)


def loss_metrics(losses: TensorDictBase) -> dict[str, float]:
    """Mean losses and temperature, and each member's actor and critic loss."""
    out = {"loss/actor": float(losses["loss_actor"].mean()),
           "loss/qvalue": float(losses["loss_qvalue"].mean()),
           "loss/alpha": float(losses["loss_alpha"].mean()),
           "alpha": float(losses["alpha"].mean()), "entropy": float(losses["entropy"].mean())}
    for key in ("kl_prior", "loss_prior"):
        if key in losses.keys():
            out[f"loss/{key}"] = float(losses[key].mean())
    if losses["loss_actor"].numel() > 1:
        for key in ("actor", "qvalue"):
            for i, v in enumerate(losses[f"loss_{key}"].flatten().tolist()):
                out[f"loss/{key}_member{i}"] = v
    return out


def timing(run: Progress) -> dict[str, float]:
    """Cumulative seconds per phase (``time/<phase>_s``), resumed runs included."""
    totals = timeit.todict(percall=False)
    return {f"time/{p}_s": run.seconds[p] + totals.get(p, 0.0) for p in PHASES}


def check_finite(values: torch.Tensor, what: str, run: Progress) -> None:
    if not torch.isfinite(values).all():
        bad = (~torch.isfinite(values)).nonzero().tolist()
        kept = (f"the last checkpoint {run.checkpoint!r} is left intact" if run.checkpoint
                else "no checkpoint yet")
        raise NonFiniteLossError(
            f"Non-finite {what} at agent step {run.step} (entries {bad[:8]}); stopping, {kept}."
        )


def restore(cfg: Config, run_dir: Path, resume: dict | None,
            stateful: dict[str, Any]) -> tuple[Progress, Logger]:
    """Fresh counters and logger, or everything a checkpoint saved (RNG states last)."""
    run = Progress()
    logger_state = None
    if resume is not None:
        rewind_logs(run_dir, resume.get("log_sizes"))  # rows logged after the checkpoint go
        for name, obj in stateful.items():
            obj.load_state_dict(resume["state"][name])
        run = Progress(**resume["progress"])
        run.checkpoint = str(run_dir / CHECKPOINT_NAME)
        # the logger's counters, unless the resumed run logs with another logger
        logger_state = resume.get("logger") if resume.get("logger_type", "csv") == cfg.run.logger \
            else None
        if logger_state and "log_dir" in logger_state:  # the run dir may have moved
            logger_state = dict(logger_state, log_dir=str(run_dir.resolve()))
    logger = get_logger(cfg.run.logger, logger_name=str(run_dir), state_dict=logger_state,
                        **logger_names(cfg, run_dir))
    for obj in (logger, getattr(logger, "experiment", None)):  # CSV: mp4 would need torchcodec
        if hasattr(obj, "video_format"):
            obj.video_format = "pt"
    if resume is None:
        logger.log_hparams(flatten(asdict(cfg)))
    else:
        set_rng_state(resume["rng"])
    return run, logger


def logger_names(cfg: Config, run_dir: Path) -> dict[str, Any]:
    """``get_logger``'s names: the CSV and TensorBoard logs go to ``<run dir>/logs``; a wandb run
    gets ``run.project``, ``run.group`` and ``run.name`` (default ``<variant>_<task>_seed<k>``)."""
    if cfg.run.logger != "wandb":
        return {"experiment_name": "logs"}
    name = cfg.run.name or f"{cfg.variant}_{cfg.env.task.replace(':', '_')}_seed{cfg.seed}"
    return {"experiment_name": name,
            "wandb_kwargs": {"project": cfg.run.project, "group": cfg.run.group,
                             "save_dir": str(run_dir)}}


def maybe_checkpoint(cfg: Config, run_dir: Path, run: Progress, stateful: dict[str, Any],
                     logger: Logger) -> None:
    """Periodic checkpoints, at the first episode end past each ``run.checkpoint_every``."""
    every = cfg.run.checkpoint_every
    if run.step // every > run.last_checkpoint_step // every:
        checkpoint(cfg, run_dir, run, stateful, logger)


def export_agent(cfg: Config, run_dir: Path, run: Progress, policies: PolicyEnsemble,
                 posterior: PolicyPosterior) -> None:
    """``agent.pt``: every member's actor, the most likely one to act
    (:func:`torchrl_psmbpo.save_agent`); a failed write raises
    :class:`~torchrl_psmbpo.recipes.checkpoint.CheckpointError`, the last checkpoint kept."""
    last_step = run.last_checkpoint_step if run.checkpoint else None
    # building the actors initialises modules: on streams of their own, the run's untouched
    with written_or_kept(run_dir / AGENT_NAME, "agent", last_step), own_random_streams(cfg.seed):
        save_agent(run_dir, policies, posterior.most_likely(), task=cfg.env.task,
                   action_repeat=cfg.env.action_repeat)


def checkpoint(cfg: Config, run_dir: Path, run: Progress, stateful: dict[str, Any],
               logger: Logger) -> None:
    """Write everything a resumed run needs (atomically, the previous one kept until done)."""
    run.seconds = {k[len("time/"):-2]: v for k, v in timing(run).items()}
    timeit.erase()
    last_step = run.last_checkpoint_step if run.checkpoint else None
    run.last_checkpoint_step = run.step
    progress = {k: v for k, v in asdict(run).items() if k != "checkpoint"}
    run.checkpoint = str(save_checkpoint(run_dir, {
        "config": comparable(cfg), "state": {k: v.state_dict() for k, v in stateful.items()},
        "progress": progress, "rng": rng_state(), "logger": logger.state_dict(),
        "logger_type": cfg.run.logger, "log_sizes": log_sizes(run_dir),
    }, last_step))
