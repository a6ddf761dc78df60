"""What made a run: the code's commit (and its uncommitted diff), the package versions, the host
and the command line, recorded in the run dir at every start and every resume.

``provenance.json`` in a run dir holds a list with one entry per process that trained in it
(the fresh start, then each resume), so a run continued by other code or on another machine
shows it. When the source tree had uncommitted changes to tracked files, the entry is marked
``"dirty": true`` and the diff against the commit is saved beside it as
``provenance-<k>.diff`` (``k`` the entry's index). Nothing here imports the simulators: versions
come from the installed packages' metadata.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

PROVENANCE_NAME = "provenance.json"
PACKAGES = ("torch", "torchrl", "tensordict", "numpy", "mujoco", "dm_control", "metaworld",
            "gymnasium", "hydra-core", "psmbpo-components")
"""The distributions whose versions every run records."""

SOURCE_ROOT = Path(__file__).resolve().parents[1]
"""The checkout this code runs from (the folder holding ``recipes/`` and ``components/``)."""


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(SOURCE_ROOT), *args], capture_output=True,
                             text=True, timeout=20, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout


def git_state() -> dict[str, Any]:
    """``{"commit", "dirty", "diff"}`` of the source checkout; ``commit`` is ``None`` where the
    code does not run from a git checkout (an installed wheel)."""
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None, "diff": ""}
    diff = _git("diff", "HEAD", "--", ".") or ""
    return {"commit": commit.strip(), "dirty": bool(diff.strip()), "diff": diff}


def versions() -> dict[str, str | None]:
    """Installed version of each of :data:`PACKAGES` (``None`` if not installed), and Python's."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host() -> dict[str, Any]:
    """The machine: name, OS, CPU model and count, torch's threads, the GPU if CUDA is up."""
    import torch

    gpu = None
    if torch.cuda.is_available():
        gpu = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {"node": platform.node(), "platform": platform.platform(), "cpu": _cpu_model(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "gpu": gpu}


def collect() -> dict[str, Any]:
    """Everything :func:`record` writes, as a dict (the diff included)."""
    return {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **git_state(), "versions": versions(), "host": host(),
            "command": list(getattr(sys, "orig_argv", sys.argv)), "cwd": os.getcwd()}


def read(run_dir: str | Path) -> list[dict[str, Any]]:
    """The entries of a run dir's ``provenance.json`` (``[]`` for a run made before it existed)."""
    path = Path(run_dir) / PROVENANCE_NAME
    if not path.is_file():
        return []
    return json.loads(path.read_text())


def record(run_dir: str | Path, step: int) -> dict[str, Any]:
    """Append this process's provenance to ``run_dir/provenance.json`` (``step``: the agent step
    it starts from, 0 for a fresh run) and save the diff of a dirty tree beside it.

    Examples:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> entry = record(d, step=0)
        >>> sorted(entry)[:4], read(d)[0]["start_step"]
        (['command', 'commit', 'cwd', 'diff_file'], 0)
    """
    run_dir = Path(run_dir)
    entries = read(run_dir)
    entry = collect()
    diff = entry.pop("diff")
    entry["diff_file"] = None
    if entry["dirty"]:
        entry["diff_file"] = f"provenance-{len(entries)}.diff"
        (run_dir / entry["diff_file"]).write_text(diff)
    entry["start_step"] = int(step)
    entries.append(entry)
    tmp = run_dir / (PROVENANCE_NAME + ".tmp")
    tmp.write_text(json.dumps(entries, indent=1) + "\n")
    os.replace(tmp, run_dir / PROVENANCE_NAME)
    return entry


def commits(run_dir: str | Path) -> list[str | None]:
    """The commits that trained a run, in order, each once (``[]`` where none was recorded); a
    dirty tree's commit is marked ``<commit>+dirty``."""
    seen: list[str | None] = []
    for e in read(run_dir):
        c = e.get("commit")
        label = None if c is None else c[:12] + ("+dirty" if e.get("dirty") else "")
        if label not in seen:
            seen.append(label)
    return seen


__all__ = ["PROVENANCE_NAME", "collect", "record", "read", "commits", "git_state", "versions",
           "host"]
