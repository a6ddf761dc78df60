"""What the diagnostics share: their command line and reading a saved run dir.

A run dir holds ``config.yaml`` and ``checkpoint.pt`` (the recipes write both). The scripts of
this folder run from the repository root with the package installed
(``python bench/diagnose/<script>.py``); Python puts this folder on ``sys.path``, so they import
this module by name (``from run_dirs import ...``). Not part of the test run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from omegaconf import OmegaConf
from tensordict import TensorDictBase

from torchrl_psmbpo.policy import PolicyEnsemble
from torchrl_psmbpo.recipes.build import WorldModel, make_buffers, make_policies, make_posterior, make_world_model
from torchrl_psmbpo.recipes.cli import to_config
from torchrl_psmbpo.recipes.config import Config
from torchrl_psmbpo.recipes.rundir import CHECKPOINT_NAME


def parser(doc: str, *, one_run: bool = False, members: str | None = None,
           episodes: int = 1, out: bool = False) -> argparse.ArgumentParser:
    """The diagnostics' command line, described by the first line of the script's docstring.

    Args:
        doc: the script's ``__doc__``.
        one_run: one positional ``run_dir``; otherwise ``run_dirs`` (one or more).
        members: add ``--members {best,all}`` with this default, and ``--episodes``.
        episodes: the default of ``--episodes``.
        out: add ``--out`` (also write the table there).
    """
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    if one_run:
        p.add_argument("run_dir", type=Path, help="a run dir (config.yaml and checkpoint.pt)")
    else:
        p.add_argument("run_dirs", type=Path, nargs="+",
                       help="run dirs (each with config.yaml and checkpoint.pt)")
    if members is not None:
        p.add_argument("--members", choices=["best", "all"], default=members,
                       help="every member or the posterior's most likely one "
                            "(default: %(default)s)")
        p.add_argument("--episodes", type=int, default=episodes,
                       help="episodes per member (default: %(default)s)")
    if out:
        p.add_argument("--out", type=Path, default=None, help="also write the table(s) here")
    return p


def read_config(run_dir: Path, overrides: Sequence[str] = ()) -> Config:
    """The run's ``config.yaml`` as a :class:`~torchrl_psmbpo.recipes.config.Config`, with ``key=value``
    overrides applied."""
    node = OmegaConf.load(run_dir / "config.yaml")
    if overrides:
        node = OmegaConf.merge(node, OmegaConf.from_dotlist(list(overrides)))
    return to_config(node)


def require_checkpoints(run_dirs: Sequence[Path]) -> None:
    """Exit with one line naming every run dir without a ``checkpoint.pt`` (before any work)."""
    missing = [str(d) for d in run_dirs if not (d / CHECKPOINT_NAME).is_file()]
    if missing:
        raise SystemExit(f"error: no {CHECKPOINT_NAME} in {', '.join(missing)}")


def read_checkpoint(run_dir: Path) -> dict[str, Any]:
    """The run's ``checkpoint.pt`` as saved (no check against the config: a diagnostic may
    replay it under other settings)."""
    return torch.load(run_dir / CHECKPOINT_NAME, weights_only=False)


def load_real_data(run_dir: Path) -> tuple[Config, TensorDictBase, int, dict[str, Any]]:
    """The run's config, its real transitions (oldest first), its agent step and checkpoint."""
    cfg = read_config(run_dir)
    state = read_checkpoint(run_dir)
    model_real_ratio = cfg.policy.real_ratio
    cfg.policy.real_ratio = 1.0  # D_E alone (any variant): no model replay to mix with
    real, _ = make_buffers(cfg, None)
    cfg.policy.real_ratio = model_real_ratio
    real.load_state_dict(state["state"]["real_buffer"])
    data = real.storage[: len(real)]
    return cfg, data, state["progress"]["step"], state


def trained_world_model(cfg: Config, state: dict[str, Any], obs_dim: int,
                        act_dim: int) -> WorldModel:
    """The run's world model with the checkpoint's weights."""
    world = make_world_model(cfg, obs_dim, act_dim)
    world.model.load_state_dict(state["state"]["model"])
    return world


def trained_policies(cfg: Config, state: dict[str, Any], obs_dim: int,
                     act_dim: int) -> PolicyEnsemble:
    """The run's N*M policies with the checkpoint's weights."""
    policies = make_policies(cfg, obs_dim, act_dim)
    policies.load_state_dict(state["state"]["policies"])
    return policies


def chosen_members(cfg: Config, state: dict[str, Any], members: str) -> list[int]:
    """Every member (``"all"``), or the posterior's most likely one (``"best"``: the member the
    run's evaluations act with)."""
    if members == "all":
        return list(range(cfg.num_policies))
    posterior = make_posterior(cfg)
    posterior.load_state_dict(state["state"]["posterior"])
    return [posterior.most_likely()]


def print_table(header: str, row: str, run_dirs: Sequence[Path],
                rows_of: Callable[[Path], list[dict[str, Any]]],
                errors: tuple[type[Exception], ...] = (ValueError,)) -> int:
    """Prints one markdown table of the rows of every run dir, in order, each row as it comes.

    Args:
        header: the column names, ``"| run | member | ... |"``.
        row: a row's format over its keys, ``"| {run} | {member} | {return:.0f} | ... |"``.
        run_dirs: the run dirs.
        rows_of: a run dir's rows (dicts).
        errors: what ``rows_of`` raises for a run dir it cannot read: printed as one ``error:``
            line on stderr, and the table stops there.

    Returns:
        The exit code: 0, or 1 after an error.
    """
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for run_dir in run_dirs:
        try:
            rows = rows_of(run_dir)
        except errors as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        for r in rows:
            print(row.format(**r), flush=True)
    return 0
