"""Save and restore a whole run: the stateful pieces, counters, RNG states and the logger.

A checkpoint is written to a temporary file and renamed over the old one (``os.replace`` is
atomic), so the previous checkpoint stays complete until the new one is; a crash, a signal or a
NaN while writing never leaves a broken or missing checkpoint behind.
"""

from __future__ import annotations

import os
import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recipes.config import Config, comparable

CHECKPOINT_NAME = "checkpoint.pt"
_DEFAULTS = comparable(Config())  # every field's default, for checkpoints older than a field


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable or written by another config."""


def rng_state() -> dict[str, Any]:
    """The global RNG states a run consumes (torch's CPU and, once used, CUDA; numpy; Python)."""
    state = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["torch_cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`rng_state`'s states. ``torch.load(map_location=<device>)`` moves the saved
    byte tensors to that device, and torch only takes RNG states as CPU byte tensors: they are
    moved back here. A CUDA state is restored where CUDA is available (a run resumed on a CPU
    has no use for it)."""
    torch.set_rng_state(state["torch"].cpu())
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "torch_cuda" in state and torch.cuda.is_available():
        cuda_states = [s.cpu() for s in state["torch_cuda"]][:torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(cuda_states)


RNG_STATE_KEYS = frozenset({"rng", "rng_state", "generator", "_rng"})
"""Keys under which a checkpoint holds RNG states: ours (:func:`rng_state`, the components'
``rng_state`` / ``generator``) and torchrl's replay buffers' (``_rng``: ``(state, device)``)."""


def rng_states_on_cpu(state: Any, is_rng: bool = False) -> Any:
    """``state`` with every tensor under an :data:`RNG_STATE_KEYS` key moved to the CPU (dicts are
    changed in place).

    ``torch.load(map_location="cuda")`` moves every saved tensor to the GPU, RNG states too, and
    torch takes an RNG state (of a CPU or a CUDA generator) only as a CPU byte tensor: without
    this, resuming a CUDA run fails with "RNG state must be a torch.ByteTensor". Everything else
    (networks, buffers) stays where ``map_location`` put it.

    Examples:
        >>> s = rng_states_on_cpu({"policies": {"w": 1}, "real_buffer": {"_rng": (torch.zeros(2, dtype=torch.uint8), "cpu")}})
        >>> s["real_buffer"]["_rng"][0].device.type, s["policies"]
        ('cpu', {'w': 1})
    """
    if isinstance(state, torch.Tensor):
        return state.cpu() if is_rng else state
    if isinstance(state, dict):  # in place: keeps the mapping's type (and a state_dict's _metadata)
        for k, v in state.items():
            state[k] = rng_states_on_cpu(v, is_rng or k in RNG_STATE_KEYS)
        return state
    if isinstance(state, (tuple, list)) and is_rng:
        return type(state)(rng_states_on_cpu(v, True) for v in state)
    return state


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Atomically write ``payload`` to ``path`` (a file, or a run dir holding checkpoint.pt)."""
    path = Path(path)
    if path.suffix != ".pt":
        path = path / CHECKPOINT_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".pt.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | Path, cfg: Config) -> dict[str, Any]:
    """Load a checkpoint and check that it was written by a run of the same config.

    Raises:
        CheckpointError: no checkpoint at ``path``, an empty or unreadable file (named), or a
            checkpoint of another config (names the fields that differ).
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise CheckpointError(f"No checkpoint at {str(path)!r}.")
    if path.stat().st_size == 0:
        raise CheckpointError(f"Checkpoint {str(path)!r} is empty (0 bytes): unreadable.")
    try:
        payload = torch.load(path, map_location=cfg.run.device, weights_only=False)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError,
            ValueError) as err:
        raise CheckpointError(
            f"Checkpoint {str(path)!r} is unreadable (truncated or not a checkpoint: "
            f"{str(err).splitlines()[0] if str(err) else type(err).__name__})."
        ) from None
    if not isinstance(payload, dict) or "config" not in payload:
        raise CheckpointError(f"Checkpoint {str(path)!r} is not a checkpoint of this project.")
    payload = rng_states_on_cpu(payload)
    saved, now = payload["config"], comparable(cfg)
    # a field added after the checkpoint was written matches while it keeps its default (the
    # behaviour the checkpoint was written with), e.g. model.nll_beta = 0
    added = {k for k, v in now.items() if k not in saved and v == _DEFAULTS.get(k, object())}
    diff = {k: (saved.get(k), now.get(k)) for k in (set(saved) | set(now)) - added
            if saved.get(k) != now.get(k)}
    if diff:
        shown = ", ".join(f"{k}: checkpoint {a!r} vs now {b!r}" for k, (a, b) in sorted(diff.items()))
        raise CheckpointError(f"Checkpoint {str(path)!r} was written by another config ({shown}).")
    return payload
