"""Save and restore a whole run: the stateful pieces, counters, RNG states and the logger.

A checkpoint is written to a temporary file and renamed over the old one (``os.replace`` is
atomic), so the previous checkpoint stays complete until the new one is; a crash, a signal or a
NaN while writing never leaves a broken or missing checkpoint behind, and a failed write (a full
disk) removes the temporary file and keeps the previous checkpoint. ``torch.save`` writes a zip
archive whose records carry CRC32 checksums: a checkpoint changed on disk after it was written
fails them and is refused (:func:`verify_checksum`).
"""

from __future__ import annotations

import errno
import os
import pickle
import random
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import numpy as np
import torch

from torchrl_psmbpo.recipes.config import Config, comparable
from torchrl_psmbpo.recipes.rundir import CHECKPOINT_NAME

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


def seed_all(seed: int) -> None:
    """Seed torch's, numpy's and Python's global generators."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


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


SCALAR_LOGS = Path("logs") / "scalars"
"""Where the CSV logger writes a run's scalars, relative to the run dir (one CSV per name)."""


def log_sizes(run_dir: str | Path) -> dict[str, int]:
    """The byte size of every scalar log of a run (``logs/scalars/**.csv``), by path relative to
    ``run_dir``: what a checkpoint has logged, saved with it for :func:`rewind_logs`."""
    run_dir = Path(run_dir)
    root = run_dir / SCALAR_LOGS
    if not root.is_dir():
        return {}
    return {p.relative_to(run_dir).as_posix(): p.stat().st_size for p in sorted(root.rglob("*.csv"))}


def rewind_logs(run_dir: str | Path, sizes: dict[str, int] | None) -> list[str]:
    """Cut a run's scalar logs back to what they held when the checkpoint was written.

    A run killed after its last checkpoint has logged rows the resumed run will log again;
    each CSV is truncated to its saved size and a CSV written only after the checkpoint is
    removed, so that the resumed run's logs hold every step once, as the uninterrupted run's
    do. ``sizes=None`` (a checkpoint older than this rule) leaves the logs alone.

    Returns:
        the relative paths that were cut or removed.

    Examples:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp()); (d / SCALAR_LOGS).mkdir(parents=True)
        >>> _ = (d / SCALAR_LOGS / "a.csv").write_text("1,0.5\\n")
        >>> saved = log_sizes(d)
        >>> _ = (d / SCALAR_LOGS / "a.csv").write_text("1,0.5\\n2,0.7\\n")
        >>> _ = (d / SCALAR_LOGS / "b.csv").write_text("2,1.0\\n")
        >>> rewind_logs(d, saved), (d / SCALAR_LOGS / "a.csv").read_text()
        (['logs/scalars/a.csv', 'logs/scalars/b.csv'], '1,0.5\\n')
    """
    if sizes is None:
        return []
    changed = []
    for rel, size in log_sizes(run_dir).items():
        path = Path(run_dir) / rel
        if rel not in sizes:
            path.unlink()
            changed.append(rel)
        elif size > sizes[rel]:
            os.truncate(path, sizes[rel])
            changed.append(rel)
    return changed


def os_cause(err: BaseException) -> OSError | None:
    """The OSError behind ``err`` (torch.save wraps a failed write in a RuntimeError)."""
    while err is not None:
        if isinstance(err, OSError):
            return err
        err = err.__cause__ or err.__context__
    return None


@contextmanager
def written_or_kept(path: Path, what: str, last_step: int | None) -> Iterator[None]:
    """Around an atomic write of ``path`` through ``<path>.tmp``: a write that fails (a full
    disk, a file size limit, a read-only dir) removes the partial file and raises
    :class:`CheckpointError` saying what is kept and how to go on.

    Args:
        path: the file written.
        what: its name in the message (``"checkpoint"``, ``"agent"``).
        last_step: the agent step of the run's last checkpoint (``None``: there is none yet).
    """
    try:
        yield
    except (OSError, RuntimeError) as err:
        cause = os_cause(err)
        with suppress(OSError):
            path.with_suffix(path.suffix + ".tmp").unlink(missing_ok=True)
        if cause is None:
            raise
        why = cause.strerror or errno.errorcode.get(cause.errno, str(cause))
        kept = ("there was no checkpoint before it: start the run again once there is room"
                if last_step is None else f"the last checkpoint (agent step {last_step}) kept: "
                f"resume={path.parent} continues from it once there is room")
        raise CheckpointError(f"Could not write {what} {str(path)!r} ({why}); the partial file "
                              f"was removed, {kept}.") from None


def save_checkpoint(run_dir: str | Path, payload: dict[str, Any], last_step: int | None) -> Path:
    """Atomically write ``payload`` to ``run_dir``'s :data:`CHECKPOINT_NAME`.

    Raises:
        CheckpointError: the write failed (:func:`written_or_kept`; ``last_step`` is the step of
            the previous checkpoint, left as it was).
    """
    path = Path(run_dir) / CHECKPOINT_NAME
    tmp = path.with_suffix(".pt.tmp")
    with written_or_kept(path, "checkpoint", last_step):
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    return path


def verify_checksum(path: str | Path) -> bool:
    """Check a checkpoint's records against the CRC32 checksums saved with them.

    Returns:
        ``True`` when they match, ``False`` for a file that is not a zip archive (left to
        ``torch.load`` to judge).

    Raises:
        CheckpointError: the content changed after it was written (names the file).
    """
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        bad = str(err)
    if bad is not None:
        raise CheckpointError(
            f"Checkpoint {str(path)!r} is corrupted: its content does not match the checksums "
            f"saved with it ({bad}; the file changed after it was written); restore it from a "
            "copy, or start a fresh run in another dir.")
    return True


def load_checkpoint(path: str | Path, cfg: Config) -> dict[str, Any]:
    """Load a checkpoint and check that it was written by a run of the same config.

    Raises:
        CheckpointError: no checkpoint at ``path``, an empty, unreadable or corrupted file
            (named; corrupted: its content does not match its checksums), or a checkpoint of
            another config (names the fields that differ).
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise CheckpointError(f"No checkpoint at {str(path)!r}.")
    if path.stat().st_size == 0:
        raise CheckpointError(f"Checkpoint {str(path)!r} is empty (0 bytes): unreadable.")
    verify_checksum(path)
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
