"""Fault injection: every mistake or fault of the run-safety guarantees, through the command line.

Trains one tiny run (``gym:Pendulum-v1``, 240 agent steps), then runs each case on a copy of it
(or on an empty workspace) exactly as a user would, with the recipe as a subprocess, and prints
one table: the case, what was expected, the exit code and the first line of stderr (of stdout
for a run that went through), and the files the command changed in its workspace (snapshots
before and after: ``+`` added, ``-`` removed, ``~`` changed; the scalar logs are counted by
folder). A refusal is as expected when it exits with 1, one ``error:`` line, and changes
nothing. Cases that need
what this machine has (pygame missing, no tensorboard/wandb, root's ``chattr``) say so and are
skipped where it differs. docs/algorithm.md, "What is guaranteed", lists the guarantees;
tests/test_run_safety.py tests each one.

Usage:
    python bench/checks/fault_injection.py                  # every case: 5 to 8 minutes on 2 busy cores
    python bench/checks/fault_injection.py --only lock,disk # the cases whose name holds a word
    python bench/checks/fault_injection.py --keep           # keep the workspaces (printed)
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from unittest import SkipTest as Skip  # a case that cannot run on this machine (the reason)

from torchrl_psmbpo.recipes.rundir import CHECKPOINT_NAME, LOCK_NAME

ROOT = Path(__file__).resolve().parents[2]  # the checkout: bench/checks/ is two levels down
RECIPE = ROOT / "recipes" / "psmbpo_gym.py"
RECORD = ROOT / "recipes" / "record.py"
sys.path.insert(0, str(ROOT))  # for tests/helpers.py
from tests.helpers import read_only  # noqa: E402  (raises Skip where it cannot work)

TINY = [
    "preset=small", "task=gym:Pendulum-v1", "init_random_steps=100", "rollout.epoch_length=100",
    "num_models=2", "policies_per_model=2", "model.elites=2", "model.hidden=16", "model.depth=2",
    "model.max_epochs=3", "model.train_freq=50", "rollout.per_step=8", "updates_per_step=1",
    "policy.batch_size=16", "actor_hidden=[16,16]", "critic_hidden=[16,16]", "eval.every=200",
    "checkpoint_every=200", "progress=false", "variant=ps-mbpo",
]
"""The tests' tiny config (tests/test_cli.py): a run of 240 agent steps takes seconds."""


@dataclass
class Outcome:
    code: int
    line: str
    changes: str
    note: str = ""


@dataclass
class Case:
    name: str
    expect: str  # "refused" (exit 1, nothing changed), "runs" (exit 0), "exit 130", or
    # "stops, checkpoint kept" (exit 1; checkpoint.pt as it was, no checkpoint.pt.tmp left)
    run: Callable[[Path, Path], Outcome]


CASES: list[Case] = []


def case(name: str, expect: str = "refused"):
    def register(fn: Callable[[Path, Path], Outcome]) -> Callable[[Path, Path], Outcome]:
        CASES.append(Case(name, expect, fn))
        return fn
    return register


# ----------------------------------------------------------------------------------------------
# Helpers: run a command, snapshot a workspace, the saved run
# ----------------------------------------------------------------------------------------------

def snapshot(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def changes(before: dict[str, str], after: dict[str, str]) -> str:
    marks = [("+", k) for k in after if k not in before] + \
            [("-", k) for k in before if k not in after] + \
            [("~", k) for k in after if k in before and after[k] != before[k]]
    if not marks:
        return "none"
    grouped: Counter = Counter()
    for mark, path in marks:
        parts = path.split("/")
        i = parts.index("scalars") if "scalars" in parts else -1
        key = "/".join(parts[:i + 1]) + "/*.csv" if i >= 0 else path
        grouped[(mark, key)] += 1
    return ", ".join(f"{m}{k}" + (f" ({n})" if n > 1 else "")
                     for (m, k), n in sorted(grouped.items(), key=lambda x: x[0][1]))


def command(script: Path, *args: str, cwd: Path, preexec: Callable | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, preexec_fn=preexec)


def first_line(out: subprocess.CompletedProcess) -> str:
    lines = [l for l in out.stderr.splitlines() if l.strip() and "[torchrl][INFO]" not in l]
    if out.returncode == 0 or not lines:
        lines = [l for l in out.stdout.splitlines() if l.startswith(("done:", "wrote"))] or lines
    line = lines[0] if lines else ""
    return line if len(lines) <= 1 or out.returncode == 0 else f"{line} [+{len(lines) - 1} lines]"


def attempt(ws: Path, *args: str, script: Path = RECIPE, preexec: Callable | None = None,
            note: str = "") -> Outcome:
    before = snapshot(ws)
    out = command(script, *args, cwd=ws, preexec=preexec)
    return Outcome(out.returncode, first_line(out), changes(before, snapshot(ws)), note)


def saved_copy(ws: Path, base: Path, name: str = "run") -> Path:
    target = ws / name
    shutil.copytree(base, target)
    return target


@contextlib.contextmanager
def training(ws: Path, run_dir: Path, stop: bool = True):
    """A real run training in ``run_dir`` (from scratch), held frozen (SIGSTOP) after its first
    checkpoint while the body runs, so that the body's snapshots see only the body's changes."""
    proc = subprocess.Popen([sys.executable, str(RECIPE), *TINY, "total_steps=100000",
                             f"hydra.run.dir={run_dir}"], cwd=ws, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while not ((run_dir / CHECKPOINT_NAME).is_file() and (run_dir / LOCK_NAME).is_file()):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the background run did not reach its first checkpoint")
            time.sleep(0.2)
        time.sleep(0.5)  # past the rename: the checkpoint is whole
        if stop:
            proc.send_signal(signal.SIGSTOP)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.kill()
            proc.wait()


def flip_middle(path: Path, n: int = 4000) -> None:
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid:mid + n] = bytes(b ^ 0xFF for b in data[mid:mid + n])
    path.write_bytes(bytes(data))


# ----------------------------------------------------------------------------------------------
# The cases
# ----------------------------------------------------------------------------------------------

@case("bad value (gamma=1.5), fresh run")
def _(ws, base):
    return attempt(ws, *TINY, "gamma=1.5", f"hydra.run.dir={ws / 'run'}")


def _into_saved_run(prefix: str) -> None:
    """The case of a fresh run into a saved run's dir, given as ``{prefix}hydra.run.dir=``."""

    @case(f"fresh run into a saved run's dir ({prefix}hydra.run.dir=)")
    def _(ws, base):
        run = saved_copy(ws, base)
        return attempt(ws, *TINY, "total_steps=240", f"{prefix}hydra.run.dir={run}")


for _prefix in ("", "++", "+"):  # Hydra's three ways to set it
    _into_saved_run(_prefix)


@case("lock: second process, hydra.run.dir= + run.resume_if_exists=true")
def _(ws, base):
    run = ws / "run"
    with training(ws, run) as proc:
        out = attempt(ws, *TINY, "total_steps=100000", f"hydra.run.dir={run}",
                      "run.resume_if_exists=true")
        out.note = f"first process PID {proc.pid}"
    return out


@case("lock: second process, resume=<dir> while it trains")
def _(ws, base):
    run = ws / "run"
    with training(ws, run) as proc:
        out = attempt(ws, f"resume={run}", "total_steps=100000")
        out.note = f"first process PID {proc.pid}"
    return out


@case("lock: stale run.lock of a dead process, resume=", expect="runs")
def _(ws, base):
    run = saved_copy(ws, base)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (run / LOCK_NAME).write_text(f"pid {dead.pid} host elsewhere\n")
    return attempt(ws, f"resume={run}", "total_steps=260")


@case("earlier run without checkpoint, fresh run into it")
def _(ws, base):
    run = saved_copy(ws, base)
    (run / CHECKPOINT_NAME).unlink()
    return attempt(ws, *TINY, "total_steps=110", f"hydra.run.dir={run}")


@case("earlier run without checkpoint + run.discard_existing=true", expect="runs")
def _(ws, base):
    run = saved_copy(ws, base)
    (run / CHECKPOINT_NAME).unlink()
    return attempt(ws, *TINY, "total_steps=110", f"hydra.run.dir={run}",
                   "run.discard_existing=true")


@case("resume=<dir> without checkpoint (killed before the first)")
def _(ws, base):
    run = saved_copy(ws, base)
    (run / CHECKPOINT_NAME).unlink()
    return attempt(ws, f"resume={run}", "total_steps=440")


@case("finished run resumed to its own total_steps (resume=)")
def _(ws, base):
    run = saved_copy(ws, base)
    return attempt(ws, f"resume={run}")


@case("finished run, hydra.run.dir= + run.resume_if_exists=true, same total_steps")
def _(ws, base):
    run = saved_copy(ws, base)
    return attempt(ws, *TINY, "total_steps=240", f"hydra.run.dir={run}",
                   "run.resume_if_exists=true")


@case("run.resume_if_exists=True (capital T), more steps", expect="runs")
def _(ws, base):
    run = saved_copy(ws, base)
    return attempt(ws, *TINY, "total_steps=260", f"hydra.run.dir={run}",
                   "run.resume_if_exists=True", note="the saved run's .hydra/ unchanged")


@case("checkpoint with 4000 bytes flipped in the middle, resume=")
def _(ws, base):
    run = saved_copy(ws, base)
    flip_middle(run / CHECKPOINT_NAME)
    return attempt(ws, f"resume={run}", "total_steps=440")


@case("checkpoint truncated to 1000 bytes, resume=")
def _(ws, base):
    run = saved_copy(ws, base)
    ckpt = run / CHECKPOINT_NAME
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    return attempt(ws, f"resume={run}", "total_steps=440")


@case("empty checkpoint, resume=")
def _(ws, base):
    run = saved_copy(ws, base)
    (run / CHECKPOINT_NAME).write_bytes(b"")
    return attempt(ws, f"resume={run}", "total_steps=440")


@case("resume= changing a field that shapes the run (policy.batch_size)")
def _(ws, base):
    run = saved_copy(ws, base)
    return attempt(ws, f"resume={run}", "total_steps=440", "policy.batch_size=32")


@case("resume= of a missing dir")
def _(ws, base):
    return attempt(ws, f"resume={ws / 'nowhere'}")


def _package_missing(name: str) -> None:
    if importlib.util.find_spec(name) is not None:
        raise Skip(f"{name} is installed here")


def _without(package: str, setting: str, what: str, resume: bool = True) -> None:
    """The cases of ``setting`` where ``package`` is not installed: a fresh run (and a resume=)."""

    @case(f"{what}, fresh run")
    def _(ws, base):
        _package_missing(package)
        return attempt(ws, *TINY, setting, f"hydra.run.dir={ws / 'run'}")

    if resume:
        @case(f"{what}, resume=")
        def _(ws, base):
            _package_missing(package)
            run = saved_copy(ws, base)
            return attempt(ws, f"resume={run}", "total_steps=440", setting)


_without("wandb", "run.logger=wandb", "run.logger=wandb without wandb", resume=False)
_without("tensorboard", "run.logger=tensorboard", "run.logger=tensorboard without tensorboard")
_without("pygame", "eval.video=true", "eval.video=true where gym:Pendulum-v1 cannot render (no pygame)")


@case("read-only parent of a new run dir")
def _(ws, base):
    parent = ws / "ro"
    parent.mkdir()
    with read_only(parent):
        return attempt(ws, *TINY, f"hydra.run.dir={parent / 'run'}")


@case("read-only run dir, resume=")
def _(ws, base):
    run = saved_copy(ws, base)
    with read_only(run):
        return attempt(ws, f"resume={run}", "total_steps=440")


@case("full disk while writing a checkpoint (file size limit), resume=",
      expect="stops, checkpoint kept")
def _(ws, base):
    run = saved_copy(ws, base)
    limit = (run / CHECKPOINT_NAME).stat().st_size // 4

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    out = attempt(ws, f"resume={run}", "total_steps=440", preexec=small_files,
                  note="a failed write after training started: the logs' new rows stay, cut "
                       "back on resume")
    return out


@case("kill -9 after a checkpoint, then resume=", expect="runs")
def _(ws, base):
    run = ws / "run"
    with training(ws, run, stop=False) as proc:
        time.sleep(1.0)
        proc.kill()
        proc.wait()
    import torch

    step = torch.load(run / CHECKPOINT_NAME, weights_only=False)["progress"]["step"]
    return attempt(ws, f"resume={run}", f"total_steps={step + 100}",
                   note=f"killed after the checkpoint of step {step}: stale lock taken over, "
                        "rows past the checkpoint cut")


@case("SIGTERM mid-run", expect="exit 130")
def _(ws, base):
    run = ws / "run"
    with training(ws, run, stop=False) as proc:
        before = snapshot(ws)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=120)
    return Outcome(code, "stopped with a checkpoint", changes(before, snapshot(ws)),
                   "a mid-episode stop: the episode restarts on resume")


@case("record.py --out into a read-only folder")
def _(ws, base):
    run = saved_copy(ws, base)
    target = ws / "ro"
    target.mkdir()
    with read_only(target):
        return attempt(ws, str(run), "--out", str(target / "x.gif"), script=RECORD)


@case("record.py on gym:Pendulum-v1 without pygame")
def _(ws, base):
    _package_missing("pygame")
    run = saved_copy(ws, base)
    return attempt(ws, str(run), "--out", str(ws / "x.gif"), script=RECORD)


# ----------------------------------------------------------------------------------------------
# Running and the table
# ----------------------------------------------------------------------------------------------

def as_expected(expect: str, out: Outcome) -> bool:
    if expect == "refused":
        return out.code == 1 and out.changes == "none" and out.line.startswith("error: ") \
            and "[+" not in out.line
    if expect == "runs":
        return out.code == 0
    if expect == "stops, checkpoint kept":  # the previous checkpoint as it was, no partial file
        return out.code == 1 and out.line.startswith("error: ") and CHECKPOINT_NAME not in \
            out.changes
    return out.code == int(expect.split()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated words: run the cases whose "
                                                   "name holds one of them")
    parser.add_argument("--keep", action="store_true", help="keep the workspaces")
    args = parser.parse_args(argv)
    words = [w for w in args.only.split(",") if w]
    chosen = [c for c in CASES if not words or any(w in c.name for w in words)]
    if not chosen:
        parser.error(f"no case matches {args.only!r}")
    root = Path(tempfile.mkdtemp(prefix="fault_injection_"))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    started = time.monotonic()
    base = root / "saved"
    out = command(RECIPE, *TINY, "total_steps=240", f"hydra.run.dir={base}", cwd=root)
    if out.returncode != 0:
        print(out.stderr, file=sys.stderr)
        return 1
    rows, ok = [], True
    for i, c in enumerate(chosen):
        ws = root / f"case{i:02d}"
        ws.mkdir()
        try:
            result = c.run(ws, base)
            good = as_expected(c.expect, result)
            verdict = "as expected" if good else "UNEXPECTED"
        except Skip as why:
            result, good, verdict = Outcome(-1, "", "", str(why)), True, "skipped"
        ok &= good
        line = result.line.replace("|", "\\|")
        rows.append(f"| {c.name} | {c.expect} | {result.code} | {line} | {result.changes} | "
                     f"{verdict}{': ' + result.note if result.note else ''} |")
        print(f"{verdict:12} {c.name}", file=sys.stderr, flush=True)
    print("| case | expected | exit | first line | files changed | verdict |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"\n{len(chosen)} cases in {time.monotonic() - started:.0f} s"
          + (f"; workspaces in {root}" if args.keep else ""))
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
