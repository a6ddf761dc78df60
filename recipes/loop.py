"""The one training loop of PS-MBPO / OPS-MBPO (and SAC, MBPO, the no-sampling ablation).

It reads as the paper's Algorithm 1; the comments carry its line numbers:

    2      train the N models on D_E (every ``model_train_freq`` env steps, as MBPO does)
    3      pick a policy: done by the PosteriorSamplingTransform at every reset of the real env
    4-7    step the real env with the picked member (a TorchRL Collector); add to D_E
    8      sample start states from D_E
    9-10   roll out every model n with each of its policies (n, m) for R steps -> D_M^{n,m}
    11-12  G SAC updates of every member on lambda real + (1 - lambda) own-model data
    15     update the optimistic distribution: done by the transform when an episode ends
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm
from torchrl.collectors import Collector
from torchrl.record.loggers import get_logger

from agent import EVAL_SEED_OFFSET, TRANSITION_KEYS, Agent, build_agent
from checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from components.world_model.rollout_schedule import rollout_length
from config import Config, comparable
from evaluation import Evaluator



class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite; the run stops and the last checkpoint is kept."""


def default_run_dir(cfg: Config) -> Path:
    return Path("runs") / cfg.task.replace(":", "_") / cfg.variant / f"seed{cfg.seed}"


def _check_finite(values: torch.Tensor, what: str, step: int, ckpt: Path | None) -> None:
    if not torch.isfinite(values).all():
        bad = (~torch.isfinite(values)).nonzero().tolist()
        kept = f"the last checkpoint {str(ckpt)!r} is left intact" if ckpt else "no checkpoint yet"
        raise NonFiniteLossError(
            f"Non-finite {what} at env step {step} (entries {bad[:8]}); stopping, {kept}."
        )


def train_model(agent: Agent, step: int, last_ckpt: Path | None) -> dict[str, float]:
    """Algorithm 1, line 2: maximum likelihood on all real data, early stopping, elites."""
    metrics = agent.model_trainer.train(agent.real_buffer)
    val = torch.as_tensor(metrics["val_nll"], dtype=torch.float32)
    _check_finite(val, "dynamics validation loss", step, last_ckpt)
    return {
        "model/val_nll": float(val.mean()),
        "model/val_mse": float(torch.as_tensor(metrics["val_mse"]).float().mean()),
        "model/epochs": float(metrics["epochs"]),
    }


def imagine(agent: Agent, horizon: int) -> None:
    """Algorithm 1, lines 8-10: start states from D_E, every (n, m) rolls out its own model."""
    cfg = agent.cfg
    start = agent.real_buffer.sample(cfg.rollouts_per_step).select("observation")
    with torch.no_grad():
        rollout = agent.model_env.rollout(
            horizon,
            agent.policies.ensemble_policy,
            auto_reset=False,
            tensordict=agent.model_env.reset(start),
            break_when_any_done=False,
        )
    agent.model_buffer.extend_rollout(rollout)


def update_policies(agent: Agent, step: int, last_ckpt: Path | None) -> dict[str, float]:
    """Algorithm 1, lines 11-12: G SAC updates of every member on its own mixed batch."""
    losses = None
    for _ in range(agent.cfg.updates_per_step):
        batch = agent.batch_sampler.sample()
        losses = agent.policies.update(batch)
    _check_finite(
        torch.stack([losses["loss_actor"], losses["loss_qvalue"]]), "SAC loss", step, last_ckpt
    )
    out = {
        "loss/actor": float(losses["loss_actor"].mean()),
        "loss/qvalue": float(losses["loss_qvalue"].mean()),
        "loss/alpha": float(losses["loss_alpha"].mean()),
        "alpha": float(losses["alpha"].mean()),
        "entropy": float(losses["entropy"].mean()),
    }
    agent.last_losses = losses  # per member; logged at episode ends, see log_member_losses
    return out


def log_member_losses(agent: Agent, logger, step: int) -> None:
    """Each member's last actor and critic loss (flat index n * M + m, as the OPS weights)."""
    losses = agent.last_losses
    if losses is None or agent.policies.num_members == 1:
        return
    for key in ("actor", "qvalue"):
        for i, v in enumerate(losses[f"loss_{key}"].flatten().tolist()):
            logger.log_scalar(f"loss/{key}_member{i}", v, step)


def _write_config(run_dir: Path, cfg: Config) -> None:
    """``config.yaml`` beside the logs, read by ``recipes/report.py``."""
    import yaml

    flat = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}
    flat["env"] = {"task": cfg.task, "action_repeat": cfg.action_repeat}
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(flat, sort_keys=False))


def train(cfg: Config) -> dict[str, Any]:
    """Run Algorithm 1 for ``cfg.total_steps`` real env steps; return the final figures.

    Args:
        cfg: a validated :class:`config.Config` (see ``config.make_config``).

    Returns:
        ``{"step", "episodes", "last_return", "last_eval", "run_dir", "checkpoint"}``.
    """
    run_dir = Path(cfg.run_dir) if cfg.run_dir else default_run_dir(cfg)
    resume = load_checkpoint(cfg.resume, cfg) if cfg.resume else None  # fails before any work
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed % 2**32)
    random.seed(cfg.seed)

    agent = build_agent(cfg)
    evaluator = Evaluator(
        cfg.task, cfg.seed + EVAL_SEED_OFFSET, cfg.eval_episodes, cfg.device, cfg.action_repeat
    )
    step, episodes, eval_round = 0, 0, 0
    logger_state = None
    if resume is not None:
        agent.load_state_dict(resume["agent"])
        step, episodes, eval_round = resume["step"], resume["episodes"], resume["eval_round"]
        logger_state = resume.get("logger")
    logger = get_logger(
        cfg.logger, logger_name=str(run_dir), experiment_name="logs", state_dict=logger_state
    )
    if resume is None:
        logger.log_hparams(dataclasses.asdict(cfg))
        _write_config(run_dir, cfg)

    ckpt_path: Path | None = Path(cfg.resume) if cfg.resume else None
    next_ckpt = (step // cfg.checkpoint_every + 1) * cfg.checkpoint_every
    next_eval = (step // cfg.eval_every + 1) * cfg.eval_every
    learning_starts = max(cfg.init_random_steps, 1)

    def checkpoint() -> Path:
        return save_checkpoint(
            run_dir,
            {
                "config": comparable(cfg),
                "agent": agent.state_dict(),
                "step": step,
                "episodes": episodes,
                "eval_round": eval_round,
                "rng": rng_state(),
                "logger": logger.state_dict(),
            },
        )

    # Lines 4-7: the collector steps the real env with the member picked at each reset (line 3).
    collector = Collector(
        agent.env,
        agent.policies.indexed_policy,
        frames_per_batch=1,
        total_frames=max(cfg.total_steps - step, 1),
        init_random_frames=max(cfg.init_random_steps - step, 0),
        track_traj_ids=False,
        auto_register_policy_transforms=False,
    )
    if resume is not None:
        # after the collector is built: building it runs the policy once on a dummy input
        set_rng_state(resume["rng"])
    bar = tqdm(total=cfg.total_steps, initial=step, disable=not cfg.progress, desc=cfg.variant)
    shown: dict[str, float] = {}
    last: dict[str, float] = {}
    timers = {"env": 0.0, "model": 0.0, "rollout": 0.0, "update": 0.0}
    tick = time.perf_counter()
    try:
        for data in collector:
            if step >= cfg.total_steps:
                break
            timers["env"] += time.perf_counter() - tick
            step += 1
            agent.real_buffer.extend(data.select(*TRANSITION_KEYS))  # line 7

            if step >= learning_starts:
                if agent.model_based:
                    if (step - learning_starts) % cfg.model_train_freq == 0:  # line 2
                        t = time.perf_counter()
                        last.update(train_model(agent, step, ckpt_path))
                        timers["model"] += time.perf_counter() - t
                        for k in ("model/val_nll", "model/val_mse", "model/epochs"):
                            logger.log_scalar(k, last[k], step)
                    t = time.perf_counter()
                    horizon = rollout_length(step / cfg.epoch_length, cfg.rollout_schedule)
                    imagine(agent, horizon)  # lines 8-10
                    last["rollout_length"] = float(horizon)
                    timers["rollout"] += time.perf_counter() - t
                t = time.perf_counter()
                last.update(update_policies(agent, step, ckpt_path))  # lines 11-12
                timers["update"] += time.perf_counter() - t

            if data["next", "done"].any():  # line 15 happened in the transform
                episodes += 1
                finished = agent.sampler_transform.last_episode
                shown["return"] = float(finished["return"])
                logger.log_scalar("train/return", shown["return"], step)
                logger.log_scalar("train/policy_index", float(finished["index"]), step)
                probs = agent.sampler_transform.probs
                logger.log_scalar("ops/max_prob", float(probs.max()), step)
                for i, p in enumerate(probs.tolist()):
                    logger.log_scalar(f"ops/p{i}", p, step)
                for k, v in last.items():
                    logger.log_scalar(k, v, step)
                log_member_losses(agent, logger, step)
                for k, v in timers.items():
                    logger.log_scalar(f"time/{k}_s", v, step)
                shown["p_max"] = float(probs.max())
                if step >= next_eval:
                    next_eval = (step // cfg.eval_every + 1) * cfg.eval_every
                    shown.update(evaluate(agent, evaluator, eval_round, logger, step))
                    eval_round += 1
                if step >= next_ckpt:
                    next_ckpt = (step // cfg.checkpoint_every + 1) * cfg.checkpoint_every
                    ckpt_path = checkpoint()
            if "loss/qvalue" in last:
                shown["q_loss"] = last["loss/qvalue"]
            bar.update(1)
            if step % 10 == 0 or step == cfg.total_steps:
                bar.set_postfix({k: round(v, 3) for k, v in shown.items()}, refresh=False)
            tick = time.perf_counter()
    except KeyboardInterrupt:
        ckpt_path = checkpoint()
        bar.write(f"Interrupted at env step {step}: checkpoint written to {ckpt_path}")
        raise
    finally:
        bar.close()
        collector.shutdown()
    ckpt_path = checkpoint()
    return {
        "step": step,
        "episodes": episodes,
        "last_return": shown.get("return", math.nan),
        "last_eval": shown.get("eval_return", math.nan),
        "run_dir": str(run_dir),
        "checkpoint": str(ckpt_path),
    }


def evaluate(agent: Agent, evaluator: Evaluator, round_index: int, logger, step: int) -> dict:
    """Deterministic episodes of the member most likely under OPS (ranked by real returns)."""
    cum = agent.sampler_transform.cumulative_returns
    best = int(torch.argmax(cum)) if agent.sampler_transform.mode != "fixed" else int(
        agent.sampler_transform.fixed_index
    )
    result = evaluator.evaluate(agent.policies, best, round_index)
    logger.log_scalar("eval/return", result["return"], step)
    logger.log_scalar("eval/member", float(best), step)
    if "success" in result:
        logger.log_scalar("eval/success", result["success"], step)
    if agent.cfg.eval_all_members:
        for i in range(agent.policies.num_members):
            r = evaluator.evaluate(agent.policies, i, round_index)
            logger.log_scalar(f"eval/return_member{i}", r["return"], step)
    return {"eval_return": result["return"]}
