"""A run dir holds one run, trained by one process at a time.

Before a run starts or resumes in a directory, :func:`claim_run_dir` checks, in this order and
before anything is written there:

* the directory (or, when it does not exist yet, the nearest folder above it) is writable;
* no other process trains in it: ``run.lock`` holds the PID and host of the process that does,
  locked with ``fcntl.flock`` for as long as that process lives (a lock left by a process that
  died is taken over: the kernel releases the flock of a dead process);
* it holds no earlier run that the new one would overwrite or mix with: a checkpoint (continue
  it with ``resume=<dir>`` or ``run.resume_if_exists=true``), or the files of a run stopped
  before its first checkpoint (``config.yaml``, ``logs/``, ...), which a fresh run would mix
  with its own. ``run.discard_existing=true`` deletes them and starts afresh.

Each failed check raises :class:`RunDirError`, one line naming the directory and what to do.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import shutil
import socket
from pathlib import Path
from typing import Any

LOCK_NAME = "run.lock"
CHECKPOINT_NAME = "checkpoint.pt"
"""The checkpoint's file name in a run dir."""
EARLIER_RUN = ("config.yaml", "logs", "provenance.json", "videos", "agent.pt",
               f"{CHECKPOINT_NAME}.tmp", "agent.pt.tmp")
"""What a run writes besides its checkpoint: a directory holding any of these holds a run."""
PHASES = ("env", "model", "rollout", "update")
"""The training loop's timed phases: a run logs the cumulative seconds of each as
``logs/scalars/time/<phase>_s.csv``."""


class RunDirError(ValueError):
    """A run dir that cannot take this run: printed as one ``error:`` line, exit code 1."""


# ----------------------------------------------------------------------------------------------
# One process per run dir
# ----------------------------------------------------------------------------------------------

_HELD: dict[Path, "RunLock"] = {}


class RunLock:
    """``run.lock`` in a run dir, flock-ed by this process until :meth:`release` (or its exit).

    The file holds ``pid <PID> host <name>`` of the holder, for the message a second process
    gets. :func:`lock_run_dir` takes it once per process and directory.

    Examples:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> lock = lock_run_dir(d)
        >>> lock_run_dir(d) is lock, (d / LOCK_NAME).read_text().startswith(f"pid {os.getpid()} ")
        (True, True)
        >>> lock.release(); (d / LOCK_NAME).exists()
        False
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self.fd: int | None = None
        self.resume: bool | None = None  # claim_run_dir's answer, once it was given

    def acquire(self) -> "RunLock":
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 200, 0).decode(errors="replace").split()
                os.close(fd)
                who = (f"PID {holder[1]} on {holder[3]}" if len(holder) >= 4 and holder[0] == "pid"
                       else "a process that is starting")
                raise RunDirError(
                    f"Run dir {str(self.run_dir)!r} is in use by another process ({who}, see "
                    f"{self.path}): wait for it to end or stop it; two processes in one run dir "
                    "would mix their logs and checkpoints.") from None
            try:  # the holder we waited for may have removed the file: lock the one that is there
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} host {socket.gethostname()}\n".encode(), 0)
        self.fd = fd
        _HELD[self.run_dir.resolve()] = self
        atexit.register(self.release)
        return self

    def release(self) -> None:
        """Remove ``run.lock`` and drop the lock (a no-op once released)."""
        if self.fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None
        _HELD.pop(self.run_dir.resolve(), None)


def lock_run_dir(run_dir: str | Path) -> RunLock:
    """Take ``run_dir``'s lock (or return the one this process holds).

    Raises:
        RunDirError: another live process holds it (the message names its PID and host).
    """
    held = _HELD.get(Path(run_dir).resolve())
    return held if held is not None else RunLock(Path(run_dir)).acquire()


def release_run_dir(run_dir: str | Path) -> None:
    """Release this process's lock of ``run_dir``, if it holds one."""
    held = _HELD.get(Path(run_dir).resolve())
    if held is not None:
        held.release()


# ----------------------------------------------------------------------------------------------
# Writable, and no earlier run to overwrite or mix with
# ----------------------------------------------------------------------------------------------

def check_writable(path: str | Path, what: str = "run dir") -> None:
    """``path`` (or the nearest folder above it that exists) can be written; for an existing
    run dir, so can its logs.

    Raises:
        RunDirError: naming the folder that cannot be written.
    """
    path = Path(path).absolute()
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise RunDirError(f"Cannot use {what} {str(path)!r}: {str(existing)!r} is a file, not a "
                          "folder; choose another path.")
    blocked = [existing] if not os.access(existing, os.W_OK | os.X_OK) else []
    if not blocked and existing == path and (path / "logs").is_dir():
        blocked = [p for p in (path / "logs").rglob("*") if not os.access(p, os.W_OK)][:1]
    if blocked:
        bad = blocked[0]
        where = "" if bad == path else f" (for {what} {str(path)!r})"
        raise RunDirError(f"Cannot write to {str(bad)!r}{where}: it is read-only here; make it "
                          f"writable or choose another {what}.")


def discard(run_dir: str | Path, keep_hydra: bool = False) -> list[str]:
    """Delete every file an earlier run left in ``run_dir`` (checkpoint, config, logs, videos,
    provenance, and Hydra's record and log unless ``keep_hydra``); other files stay."""
    run_dir = Path(run_dir)
    names = [CHECKPOINT_NAME, *EARLIER_RUN, "provenance.json.tmp"]
    gone = [p for n in names if (p := run_dir / n).exists()]
    gone += sorted(run_dir.glob("provenance-*.diff"))
    if not keep_hydra:
        gone += sorted(run_dir.glob("*.log")) + sorted(run_dir.glob(".hydra"))  # Hydra's
    for p in gone:
        shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    return [p.name for p in gone]


def claim_run_dir(run_dir: str | Path, cfg: Any, resuming: bool = False,
                  hydra_wrote: bool = False) -> bool:
    """Check that ``run_dir`` can take this run, lock it, and return whether its checkpoint is
    to be resumed.

    A second call in the same process returns the first one's answer (the CLI claims a run
    dir given with ``hydra.run.dir=`` before Hydra starts, the Hydra job then again).

    Args:
        run_dir: the run's directory (created if missing).
        cfg: the run's config (``run.resume_if_exists``, ``run.discard_existing``).
        resuming: ``resume=<dir>``: the dir's run is continued (only writability and the lock
            are checked).
        hydra_wrote: Hydra has already written its ``.hydra/`` record and log for this job
            (under a multirun): they are not an earlier run's and are kept.

    Raises:
        RunDirError: unwritable, in use by another process, or holding an earlier run that a
            fresh run would overwrite or mix with (naming ``run.discard_existing=true``).
    """
    run_dir = Path(run_dir)
    held = _HELD.get(run_dir.resolve())
    if held is not None and held.resume is not None:
        return held.resume  # claimed by this process already (before Hydra started)
    check_writable(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = lock_run_dir(run_dir)
    lock.resume = _check_earlier(run_dir, cfg, resuming, hydra_wrote)
    return lock.resume


def _check_earlier(run_dir: Path, cfg: Any, resuming: bool, hydra_wrote: bool) -> bool:
    if resuming:
        return True
    has_checkpoint = (run_dir / CHECKPOINT_NAME).is_file()
    if has_checkpoint and cfg.run.resume_if_exists:
        return True
    if cfg.run.discard_existing:
        gone = discard(run_dir, keep_hydra=hydra_wrote)
        if gone:
            print(f"run.discard_existing=true: deleted {', '.join(gone)} of the earlier run in "
                  f"{run_dir}", flush=True)
        return False
    if has_checkpoint:
        raise RunDirError(
            f"Run dir {str(run_dir)!r} already holds a checkpoint: continue it with "
            f"resume={run_dir}, start over in it with run.discard_existing=true (deletes it), or "
            "choose another run dir (hydra.run.dir=...).")
    found = [name for name in EARLIER_RUN if (run_dir / name).exists()]
    if found:
        raise RunDirError(
            f"Run dir {str(run_dir)!r} holds an earlier run's files ({', '.join(found)}) but no "
            "checkpoint (a run stopped before its first checkpoint, or whose checkpoint was "
            "removed): a new run would mix with them. Add run.discard_existing=true to delete them and start afresh, or choose "
            "another run dir (hydra.run.dir=...).")
    return False


__all__ = ["RunDirError", "RunLock", "lock_run_dir", "release_run_dir", "check_writable",
           "discard", "claim_run_dir", "LOCK_NAME"]
