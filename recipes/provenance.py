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
import re
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


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def collect() -> dict[str, Any]:
    """Everything :func:`record` writes, as a dict: the time, the source checkout's ``commit``
    (``None`` where the code does not run from a git checkout, e.g. an installed wheel),
    ``dirty`` and ``diff``, the :data:`PACKAGES`' versions (``None`` if not installed), the host
    (name, OS, CPU, torch's threads, the GPUs if CUDA is up), the command line and its folder."""
    import torch

    commit = _git("rev-parse", "HEAD")
    diff = (_git("diff", "HEAD", "--", ".") or "") if commit else ""
    cpuinfo = Path("/proc/cpuinfo")
    cpu = re.search(r"^model name\s*:\s*(.*)$", cpuinfo.read_text() if cpuinfo.is_file() else "",
                    flags=re.M)
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "commit": commit and commit.strip(), "dirty": bool(diff.strip()) if commit else None,
            "diff": diff,
            "versions": {"python": platform.python_version(), **{n: _version(n) for n in PACKAGES}},
            "host": {"node": platform.node(), "platform": platform.platform(),
                     "cpu": cpu[1].strip() if cpu else platform.processor() or platform.machine(),
                     "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                     "gpu": gpus if torch.cuda.is_available() else None},
            "command": list(getattr(sys, "orig_argv", sys.argv)), "cwd": os.getcwd()}


def read(run_dir: str | Path) -> list[dict[str, Any]]:
    """The entries of a run dir's ``provenance.json`` (``[]`` for a run made before it existed)."""
    path = Path(run_dir) / PROVENANCE_NAME
    return json.loads(path.read_text()) if path.is_file() else []


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
    entry["diff_file"] = f"provenance-{len(entries)}.diff" if entry["dirty"] else None
    if entry["dirty"]:
        (run_dir / entry["diff_file"]).write_text(diff)
    entries.append({**entry, "start_step": int(step)})
    tmp = run_dir / (PROVENANCE_NAME + ".tmp")
    tmp.write_text(json.dumps(entries, indent=1) + "\n")
    os.replace(tmp, run_dir / PROVENANCE_NAME)
    return entries[-1]


def commits(run_dir: str | Path) -> list[str | None]:
    """The commits that trained a run, in order, each once (``[]`` where none was recorded); a
    dirty tree's commit is marked ``<commit>+dirty``."""
    labels = []
    for e in read(run_dir):
        c = e.get("commit")
        labels.append(None if c is None else c[:12] + ("+dirty" if e.get("dirty") else ""))
    return list(dict.fromkeys(labels))


__all__ = ["PROVENANCE_NAME", "collect", "record", "read", "commits"]
