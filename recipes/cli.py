"""Command-line front end of the three suite recipes: Hydra composition, checks, then training.

``python recipes/psmbpo_dmc.py [key=value ...]`` composes ``recipes/conf/<suite>.yaml`` (the
structured defaults of :mod:`torchrl_psmbpo.recipes.config`, the suite's task, a preset) with the overrides,
checks everything, and trains in a run directory of its own. Before Hydra starts, this module:

* prints ``--help`` (every field, its default and its source);
* rewrites short field names (``total_steps=...`` -> ``run.total_steps=...``);
* refuses an unknown field with the nearest valid names, and any bad value or a value that
  contradicts the variant with one ``error:`` line, exit code 1, before any directory exists;
* continues a run with ``resume=<run dir>`` from the config saved in that directory;
* checks the run dir (:func:`torchrl_psmbpo.recipes.rundir.claim_run_dir`): writable, no other process in it
  (``run.lock``), no earlier run to overwrite or mix with. A run dir given with
  ``hydra.run.dir=`` is checked before Hydra writes its ``.hydra/`` record there, and one that
  ``run.resume_if_exists=true`` continues is resumed without Hydra, so that its record stays.

Ctrl-C, SIGTERM and SIGUSR2 (a cluster's preemption) stop at the next step boundary with a
checkpoint; the process exits with 130 (a submitit job is requeued instead).
"""

from __future__ import annotations

import dataclasses
import errno
import itertools
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from torchrl_psmbpo.recipes.rundir import RunDirError, check_writable, claim_run_dir, release_run_dir
from torchrl_psmbpo.recipes.config import (
    Config,
    check_overrides,
    help_text,
    leaf_fields,
    resolve,
    short_names,
    suggest,
    validate,
)

CONF_DIR = Path(__file__).resolve().parent / "conf"
FREE_ON_RESUME = ("run.total_steps", "run.progress", "run.device", "run.threads", "eval.every",
                  "eval.episodes", "eval.all_members", "eval.video", "run.checkpoint_every",
                  "run.logger", "run.project", "run.group", "run.name")
"""What ``resume=<dir>`` may change; everything else comes from the saved config."""

if not OmegaConf.has_resolver("path_safe"):
    OmegaConf.register_new_resolver("path_safe", lambda s: re.sub(r"[^A-Za-z0-9_.-]+", "_", s))


class UserError(ValueError):
    """A mistake in the command line: printed as one ``error:`` line, exit code 1."""


def _register() -> None:
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="base", node=Config)


# ----------------------------------------------------------------------------------------------
# Before Hydra: short names, unknown fields, early validation
# ----------------------------------------------------------------------------------------------

_HYDRA_FLAGS_WITH_VALUE = {"--cfg", "-c", "--package", "-p", "--config-name", "-cn",
                           "--config-path", "-cp", "--config-dir", "-cd", "--info", "-i"}


def split_argv(argv: list[str]) -> tuple[list[str], list[str]]:
    """(Hydra's own flags, ``key=value`` overrides)."""
    flags, overrides = [], []
    it = iter(argv)
    for arg in it:
        if arg.startswith("-") and "=" not in arg:
            flags.append(arg)
            if arg in _HYDRA_FLAGS_WITH_VALUE:
                nxt = next(it, None)
                if nxt is not None:
                    flags.append(nxt)
        else:
            overrides.append(arg)
    return flags, overrides


def rewrite_overrides(overrides: list[str]) -> list[str]:
    """Expand short names and refuse unknown fields (with the nearest valid names)."""
    leaves = leaf_fields()
    shorts = short_names()
    out = []
    for arg in overrides:
        if "=" not in arg:
            raise UserError(f"Cannot read {arg!r}: write key=value, e.g. seed=1 (see --help).")
        key, value = arg.split("=", 1)
        prefix = re.match(r"^[+~]*", key).group(0)
        key = key[len(prefix):].lstrip("-").replace("-", "_") if key.startswith("--") else key[
            len(prefix):]
        if key.startswith("hydra") or key == "preset":
            out.append(f"{prefix}{key}={value}")
            continue
        key = shorts.get(key, key)
        if key not in leaves and not key.startswith("hydra"):
            raise UserError(f"Unknown config field {key!r}.{suggest(key)} See --help for all "
                            "fields.")
        out.append(f"{prefix}{key}={value}")
    return out


def user_overrides(overrides: list[str]) -> dict[str, str]:
    """dotted field -> value of the overrides that set config fields (not hydra/preset)."""
    out = {}
    for arg in overrides:
        key, value = arg.split("=", 1)
        key = key.lstrip("+~")
        if key in leaf_fields():
            out[key] = value
    return out


def to_config(node: Any) -> Config:
    """A composed DictConfig (or dict) -> the typed :class:`Config`."""
    merged = OmegaConf.merge(OmegaConf.structured(Config), node)
    return OmegaConf.to_object(merged)


def prepare(cfg: Config, overrides: dict[str, str]) -> Config:
    """Check the variant against the overrides, fill the variant's fields, validate."""
    check_overrides(cfg.variant, overrides)
    cfg = resolve(cfg)
    validate(cfg)
    return cfg


def compose(suite: str, overrides: list[str]) -> Config:
    """Compose the config exactly as the recipe does (for checks, tests and notebooks).

    Examples:
        >>> cfg = compose("dmc", ["preset=small", "variant=sac"])
        >>> cfg.env.task, cfg.run.total_steps, cfg.policy.real_ratio
        ('dmc:cartpole-swingup', 3000, 1.0)
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    _register()
    overrides = rewrite_overrides(overrides)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            node = hydra_compose(config_name=suite, overrides=[
                o for o in overrides if not o.lstrip("+~").startswith("hydra")])
    except Exception as err:  # Hydra's composition and OmegaConf's type errors
        raise UserError(_one_line(err)) from None
    node = OmegaConf.masked_copy(node, [k for k in node.keys() if k != "hydra"]) \
        if "hydra" in node else node
    try:
        cfg = to_config(node)
    except Exception as err:
        raise UserError(_one_line(err)) from None
    try:
        return prepare(cfg, user_overrides(overrides))
    except ValueError as err:
        raise UserError(str(err)) from None


def planned_run_dir(suite: str, overrides: list[str]) -> Path:
    """The run dir Hydra will create for a single run (``hydra.run.dir``, resolved; the default
    one's timestamp is that of now)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    _register()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            node = hydra_compose(config_name=suite, return_hydra_config=True, overrides=[
                o for o in overrides if not o.lstrip("+~").startswith("hydra")
                or _key(o) == "hydra.run.dir"])
        return Path(str(node.hydra.run.dir)).absolute()
    except Exception as err:
        raise UserError(_one_line(err)) from None


def _key(override: str) -> str:
    """``++hydra.run.dir=x`` -> ``hydra.run.dir``."""
    return override.split("=", 1)[0].lstrip("+~")


def _one_line(err: BaseException) -> str:
    """Hydra's / OmegaConf's error as one line: its first line, the cause it wraps (e.g. why an
    override could not be merged), the offending key and, for a missing config group option,
    the options that exist."""
    text = str(err).strip().splitlines()
    first = text[0] if text else type(err).__name__
    cause = err.__cause__
    if cause is not None and str(cause).strip():
        first += f": {str(cause).strip().splitlines()[0]}"
        text += str(cause).strip().splitlines()[1:]
    options: list[str] = []
    for i, line in enumerate(text[1:], 1):
        if line.strip().startswith(("full_key:", "Key '")):
            first += f" ({line.strip()})"
        if line.startswith("Available options in"):
            options = list(itertools.takewhile(lambda o: o.startswith("\t"), text[i + 1:]))
    if options:
        first += f"; accepted: {', '.join(o.strip() for o in options)}"
    return first


# ----------------------------------------------------------------------------------------------
# Signals: stop at the next step boundary with a checkpoint
# ----------------------------------------------------------------------------------------------

class StopFlag:
    """Set by SIGINT/SIGTERM/SIGUSR2; the loop checks it once per agent step.

    The first signal says on stderr that the run stops after the agent step in progress (at
    paper scale the step that holds a model fit can take minutes) and writes a checkpoint
    then; a second Ctrl-C stops at once with exit code 130, keeping the last checkpoint.

    Args:
        run_dir: the run's directory, named in the messages (optional).

    Examples:
        >>> flag = StopFlag()
        >>> bool(flag)
        False
    """

    def __init__(self, run_dir: Path | str | None = None) -> None:
        self.signum: int | None = None
        self.previous: dict[int, Any] = {}
        self.run_dir = run_dir

    def __bool__(self) -> bool:
        return self.signum is not None

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGUSR2", None)):
            if sig is None:
                continue
            try:
                self.previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. a joblib thread backend)
                pass

    def uninstall(self) -> None:
        """Put back the handlers that were there before :meth:`install`."""
        for sig, prev in self.previous.items():
            signal.signal(sig, prev)
        self.previous = {}

    def _handle(self, signum: int, frame: Any) -> None:
        where = f" in {self.run_dir}" if self.run_dir is not None else ""
        if self.signum is not None and signum == signal.SIGINT:
            from torchrl_psmbpo.recipes.checkpoint import CHECKPOINT_NAME

            if self.run_dir is not None and not (Path(self.run_dir) / CHECKPOINT_NAME).is_file():
                kept = f"no checkpoint{where} yet (the first is written at run.checkpoint_every)"
            else:
                kept = f"no new checkpoint; the last one{where} is kept"
            print(f"Stopped at once (second Ctrl-C): {kept}.", file=sys.stderr, flush=True)
            raise SystemExit(130)
        if self.signum is None:
            again = "; Ctrl-C again stops at once" if signum == signal.SIGINT else ""
            print(f"{signal.Signals(signum).name}: stopping after the agent step in progress, "
                  f"then writing a checkpoint{where}{again}.", file=sys.stderr, flush=True)
        self.signum = signum

    def after_checkpoint(self) -> None:
        """Hand the signal on (submitit requeues on SIGUSR2), else exit with 130."""
        prev = self.previous.get(self.signum)
        if callable(prev) and prev not in (signal.default_int_handler,):
            prev(self.signum, None)
        raise SystemExit(130)


# ----------------------------------------------------------------------------------------------
# Running
# ----------------------------------------------------------------------------------------------

def set_threads(cfg: Config) -> int:
    """Apply ``run.threads`` (or cores / jobs under the joblib launcher) before any torch work."""
    import torch

    threads = cfg.run.threads
    if threads is None:
        try:
            from hydra.core.hydra_config import HydraConfig
            from hydra.types import RunMode

            hc = HydraConfig.get()
            n_jobs = hc.launcher.get("n_jobs") if hc.mode == RunMode.MULTIRUN else None
            if n_jobs:
                cores = os.cpu_count() or 1
                threads = 1 if n_jobs < 0 else max(1, cores // int(n_jobs))
        except Exception:  # not under Hydra
            threads = None
    if threads is not None:
        torch.set_num_threads(int(threads))
    return torch.get_num_threads()


_WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}
"""A disk that is full, over quota, over a file size limit, or remounted read-only."""


def run_in(run_dir: Path, cfg: Config, resume: bool) -> dict[str, Any]:
    """Train ``cfg`` in ``run_dir``, print the summary line.

    The run dir is claimed first (:func:`torchrl_psmbpo.recipes.rundir.claim_run_dir`: writable, locked for
    this process, no earlier run overwritten); ``resume=True``, or ``run.resume_if_exists`` with
    a checkpoint there, continues its checkpoint, refused when the run has already reached
    ``run.total_steps``. Everything is checked before anything is written.

    Raises:
        UserError: any of those checks, an unreadable, corrupted or other config's checkpoint,
            a checkpoint or log that cannot be written (a full disk: the last checkpoint kept),
            or a non-finite loss (the last checkpoint kept).
    """
    from torchrl_psmbpo.recipes.checkpoint import CHECKPOINT_NAME, CheckpointError, load_checkpoint
    from torchrl_psmbpo.recipes.loop import NonFiniteLossError

    ckpt = run_dir / CHECKPOINT_NAME
    try:
        resume = claim_run_dir(run_dir, cfg, resuming=resume)  # this process's, if it was taken
    except RunDirError as err:
        raise UserError(str(err)) from None
    try:
        return _train_in(run_dir, cfg, load_checkpoint(ckpt, cfg) if resume else None)
    except (CheckpointError, NonFiniteLossError) as err:  # a bad checkpoint, a failed write
        raise UserError(str(err)) from None
    finally:
        release_run_dir(run_dir)


def _train_in(run_dir: Path, cfg: Config, payload: dict[str, Any] | None) -> dict[str, Any]:
    from torchrl_psmbpo.recipes.loop import train

    if payload is not None and payload["progress"]["step"] >= cfg.run.total_steps:
        done = payload["progress"]["step"]
        raise UserError(
            f"Run dir {str(run_dir)!r} already reached {done} agent steps (run.total_steps="
            f"{cfg.run.total_steps}): nothing to continue. To extend it, resume with more steps: "
            f"resume={run_dir} total_steps=<more than {done}>.")
    threads = set_threads(cfg)
    from torchrl_psmbpo.recipes.provenance import record

    entry = record(run_dir, step=payload["progress"]["step"] if payload else 0)
    code = (f"code {entry['commit'][:12]}{' + uncommitted changes' if entry['dirty'] else ''}"
            if entry["commit"] else "code not from a git checkout")
    print(f"run dir {run_dir} (torch threads: {threads}; {code})", flush=True)
    stop = StopFlag(run_dir)
    stop.install()
    try:
        result = train(cfg, run_dir, resume=payload, stop=stop)
    except OSError as err:  # a full disk or a dir made read-only mid-run, writing logs
        if err.errno not in _WRITE_ERRORS:
            raise
        raise UserError(f"Could not write {err.filename or 'to the run dir'} ({err.strerror}): "
                        f"resume={run_dir} continues from the last checkpoint once it can be "
                        "written.") from None
    if result["stopped"]:
        print(f"Stopped at agent step {result['step']}: checkpoint written to "
              f"{result['checkpoint']}", flush=True)
        stop.after_checkpoint()
    print(
        f"done: {result['step']} agent steps, {result['episodes']} episodes, "
        f"last return {result['last_return']:.1f}, final eval {result['last_eval']:.1f}, "
        f"logs and checkpoint in {result['run_dir']}",
        flush=True,
    )
    return result


def _resume(run_dir: str, overrides: list[str]) -> dict[str, Any]:
    path = Path(run_dir)
    if path.suffix == ".pt":
        path = path.parent
    saved = path / "config.yaml"
    if not path.is_dir():
        raise UserError(f"resume={run_dir}: no such run directory.")
    if not saved.is_file():
        raise UserError(f"resume={run_dir}: {saved} is missing; a run dir holds config.yaml "
                        "and checkpoint.pt.")
    changes = user_overrides(rewrite_overrides(overrides))
    fixed = [k for k in changes if k not in FREE_ON_RESUME]
    if fixed:
        raise UserError(f"resume: {', '.join(fixed)} cannot change when resuming (it shapes the "
                        f"run); only {', '.join(FREE_ON_RESUME)} can.")
    try:
        node = OmegaConf.load(saved)
        cfg = to_config(node)
    except Exception as err:
        raise UserError(f"resume={run_dir}: {saved} is unreadable ({_one_line(err)}).") from None
    try:
        cfg = to_config(OmegaConf.merge(
            OmegaConf.structured(cfg), OmegaConf.from_dotlist([f"{k}={v}" for k, v in changes.items()])))
    except Exception as err:
        raise UserError(_one_line(err)) from None
    try:
        validate(cfg)
    except ValueError as err:
        raise UserError(str(err)) from None
    claim_run_dir(path, cfg, resuming=True)  # writable, and no other process in it
    if not (path / "checkpoint.pt").exists():
        raise UserError(
            f"resume={run_dir}: no checkpoint.pt there (the run stopped before its first "
            f"checkpoint): start it again with hydra.run.dir={path} run.discard_existing=true "
            "(deletes its files), or in another dir.")
    return run_in(path, cfg, resume=True)


def main(suite: str, argv: list[str] | None = None) -> dict[str, Any] | None:
    """Entry point of ``recipes/psmbpo_<suite>.py``.

    Args:
        suite: ``"dmc"``, ``"gym"`` or ``"metaworld"`` (the primary config in recipes/conf/).
        argv: the command-line arguments (default: ``sys.argv[1:]``).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if any(a in ("-h", "--help") for a in argv):
            print(help_text())
            return None
        flags, overrides = split_argv(argv)
        resume = [o for o in overrides if o.split("=", 1)[0] in ("resume", "+resume")]
        if resume:
            rest = [o for o in overrides if o not in resume]
            return _resume(resume[-1].split("=", 1)[1], rest)
        overrides = rewrite_overrides(overrides)
        multirun = any(f in ("-m", "--multirun") for f in flags)
        inspecting = any(f in ("--cfg", "-c", "--info", "-i", "--hydra-help") for f in flags)
        if not multirun and not inspecting:
            cfg = compose(suite, overrides)  # every check, before Hydra creates the run dir
            run_dir = planned_run_dir(suite, overrides)
            if any(_key(o) == "hydra.run.dir" for o in overrides):
                # before Hydra writes its .hydra/ record there: writable, no other process in
                # it, no earlier run overwritten or mixed with (or discarded, if asked)
                if claim_run_dir(run_dir, cfg):  # run.resume_if_exists and a checkpoint there
                    return run_in(run_dir, cfg, resume=True)  # without Hydra: .hydra/ stays
            else:
                check_writable(run_dir)  # a new dir: the folder it goes in
    except (UserError, RunDirError) as err:
        raise SystemExit(f"error: {err}") from None
    return _hydra_main(suite, flags + overrides)


def _hydra_main(suite: str, argv: list[str]) -> dict[str, Any] | None:
    import hydra

    _register()
    results: dict[str, Any] = {}

    @hydra.main(config_path=str(CONF_DIR), config_name=suite, version_base="1.3")
    def _app(node) -> float:
        results.update(hydra_task(node))
        return results.get("last_eval", float("nan"))

    saved = sys.argv
    sys.argv = [saved[0]] + argv
    try:
        _app()
    except SystemExit:
        raise
    except Exception as err:  # Hydra's own checks of its flags and launcher settings
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        raise SystemExit(f"error: {_one_line(err)}") from None
    finally:
        sys.argv = saved
    return results


def hydra_task(node) -> dict[str, Any]:
    """One Hydra job: the composed config -> a checked config -> training in Hydra's run dir."""
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    try:
        cfg = prepare(to_config(OmegaConf.masked_copy(node, [k for k in node.keys()])),
                      user_overrides(list(hc.overrides.task)))
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    run_dir = Path(hc.runtime.output_dir)
    try:
        resume = claim_run_dir(run_dir, cfg, hydra_wrote=True)  # its .hydra/ is this job's
        if not resume:
            save_config(run_dir, cfg)
        return run_in(run_dir, cfg, resume=resume)
    except (UserError, RunDirError) as err:
        raise SystemExit(f"error: {err}") from None
    finally:
        release_run_dir(run_dir)


def save_config(run_dir: Path, cfg: Config) -> None:
    """``config.yaml``: the resolved config of the run (read by ``resume=`` and the report)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    target = run_dir / "config.yaml"
    if (run_dir / "checkpoint.pt").is_file() and target.is_file():
        return  # a run being resumed keeps the config it started with
    OmegaConf.save(OmegaConf.structured(dataclasses.asdict(cfg)), target)


__all__ = ["main", "compose", "prepare", "to_config", "UserError", "StopFlag", "run_in",
           "save_config", "set_threads"]
