"""Train with the true simulator as the world model (cartpole): is the model the bottleneck?

Runs the recipe's training loop unchanged except that every imagined step is made by DeepMind
Control's cartpole set to the imagined state (qpos = [x, atan2(sin, cos)], qvel = the
velocities; the action repeated ``env.action_repeat`` times), and model fits are skipped: the
loop gets this world model through ``train(world_model_factory=oracle_world_model)``. If
MBPO / PS-MBPO learn with this oracle as fast as SAC or faster, the learned model is what holds
them back; if not, the rest of the setup (lambda, G, one-step rollouts, start states) is.
A diagnostic, not a feature: not part of the test run. Takes the dmc recipe's ``key=value``
overrides (``hydra.run.dir=`` names the run dir); starts fresh runs only.

Usage:
    python bench/diagnose/oracle_model.py preset=cpu_dmc variant=mbpo hydra.run.dir=bench_runs/oracle/mbpo
"""

from __future__ import annotations

import sys
from pathlib import Path
from functools import partial
from typing import Any

import numpy as np
import torch

from torchrl_psmbpo.world_model import DynamicsEnsemble, DynamicsTrainer
from torchrl_psmbpo.recipes.build import WorldModel, make_world_model
from torchrl_psmbpo.recipes.cli import (
    CONF_DIR,
    UserError,
    compose,
    expand_short_names,
    save_config,
    set_threads,
)
from torchrl_psmbpo.recipes.config import Config
from torchrl_psmbpo.recipes.loop import train
from torchrl_psmbpo.recipes.provenance import record
from torchrl_psmbpo.recipes.rundir import RunDirError, claim_run_dir, release_run_dir


class CartpoleOracle(DynamicsEnsemble):
    """A dynamics ensemble whose ``predict`` is cartpole's simulator, batched over any leading
    dims (its networks are built as the config's model would be, and never used).

    Args:
        *args: :class:`~torchrl_psmbpo.world_model.DynamicsEnsemble`'s arguments.

    Keyword Args:
        task: the ``dmc:cartpole-*`` task.
        repeat: the action repeat (simulator steps per imagined step).
        **kwargs: :class:`~torchrl_psmbpo.world_model.DynamicsEnsemble`'s keyword arguments.
    """

    def __init__(self, *args: Any, task: str, repeat: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from dm_control import suite

        domain, name = task.split(":", 1)[1].split("-", 1)
        self.simulator = suite.load(domain, name, task_kwargs={"random": 0})
        self.simulator.reset()
        self.repeat = repeat

    def predict(self, observation: torch.Tensor, action: torch.Tensor,
                **_: Any) -> tuple[torch.Tensor, torch.Tensor]:
        physics, task = self.simulator.physics, self.simulator.task
        flat_obs = observation.reshape(-1, observation.shape[-1]).cpu().numpy().astype(np.float64)
        flat_act = action.reshape(-1, action.shape[-1]).cpu().numpy().astype(np.float64)
        next_obs = np.empty_like(flat_obs)
        reward = np.zeros((flat_obs.shape[0], 1))
        for i, (o, a) in enumerate(zip(flat_obs, flat_act)):
            with physics.reset_context():
                physics.data.qpos[:] = [o[0], np.arctan2(o[2], o[1])]
                physics.data.qvel[:] = o[3:5]
            for _ in range(self.repeat):
                task.before_step(a, physics)
                physics.step(self.simulator._n_sub_steps)
                reward[i, 0] += task.get_reward(physics)
            ob = task.get_observation(physics)
            next_obs[i] = np.concatenate([ob["position"], ob["velocity"]])
        shape = observation.shape[:-1]
        return (torch.as_tensor(next_obs, dtype=observation.dtype).reshape(*shape, -1),
                torch.as_tensor(reward, dtype=observation.dtype).reshape(*shape, 1))


class NoFit(DynamicsTrainer):
    """A trainer that fits nothing (the oracle needs no fit) and reports zero losses."""

    def train(self, data: Any) -> dict[str, Any]:
        return {"val_nll": 0.0, "val_mse": 0.0, "epochs": 0}


def oracle_world_model(cfg: Config, obs_dim: int, act_dim: int) -> WorldModel | None:
    """The recipe's world model with :class:`CartpoleOracle` as its model and no fits."""
    model_cls = partial(CartpoleOracle, task=cfg.env.task, repeat=cfg.env.action_repeat)
    return make_world_model(cfg, obs_dim, act_dim, model_cls=model_cls, trainer_cls=NoFit)


def planned_run_dir(argv: list[str]) -> Path:
    """The run dir the recipe would use (``hydra.run.dir``, resolved)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        node = hydra_compose(config_name="dmc", overrides=argv, return_hydra_config=True)
    return Path(str(node.hydra.run.dir)).absolute()


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    """Compose the dmc recipe's config from ``argv``, claim a fresh run dir, train there."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return None
    try:
        argv = expand_short_names(argv)  # short names, as the recipe takes them
        cfg = compose("dmc", argv)
        if not cfg.env.task.startswith("dmc:cartpole"):
            raise UserError(f"task {cfg.env.task!r}: the oracle is cartpole's simulator "
                            "(task=dmc:cartpole-*)")
        run_dir = planned_run_dir(argv)
        if claim_run_dir(run_dir, cfg):
            raise UserError(f"{run_dir} holds a checkpoint: the oracle starts fresh runs only")
    except (UserError, RunDirError) as err:
        raise SystemExit(f"error: {err}") from None
    try:
        save_config(run_dir, cfg)
        record(run_dir, step=0)
        print(f"run dir {run_dir} (torch threads: {set_threads(cfg)})", flush=True)
        result = train(cfg, run_dir, world_model_factory=oracle_world_model)
    finally:
        release_run_dir(run_dir)
    print(f"done: {result['step']} agent steps, final eval {result['last_eval']:.1f}, "
          f"logs and checkpoint in {run_dir}", flush=True)
    return result


if __name__ == "__main__":
    main()
