"""Command line of the three suite recipes: Hydra composes, our checks run before any work.

``python recipes/psmbpo_dmc.py [key=value ...]`` is a Hydra app over ``recipes/conf/<suite>.yaml``
(the structured defaults of :mod:`torchrl_psmbpo.recipes.config`, the suite's task, a preset).
Hydra owns the command line: its flags, sweeps (``-m``), launchers and ``--help`` (generated
from every field's help). This module adds only short names (``total_steps=...`` for
``run.total_steps=...``), :class:`PreWorkChecks` (the config checked and the run dir claimed
before Hydra creates it; a sweep's jobs as they start), one ``error:`` line with exit code 1 for
a mistake of the user's (Hydra's own errors included), and ``resume=<run dir>``.

Ctrl-C, SIGTERM and SIGUSR2 (a cluster's preemption) stop at the next step boundary with a
checkpoint; the process exits with 130 (a submitit job is requeued instead).
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import logging
import os
import re
import signal
import sys
from contextlib import suppress
from pathlib import Path
from typing import Any, Callable

from hydra.core.config_store import ConfigStore
from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from torchrl_psmbpo.recipes.config import (FREE, VARIANT_DIR, Config, check, help_text,
                                           leaf_fields, short_names, unknown_field)
from torchrl_psmbpo.recipes.rundir import CHECKPOINT_NAME, RunDirError, claim_run_dir, release_run_dir

CONF_DIR = Path(__file__).resolve().parent / "conf"

for _name, _resolver in (("path_safe", lambda s: re.sub(r"[^A-Za-z0-9_.-]+", "_", s)),
                         ("psmbpo_help", help_text)):
    if not OmegaConf.has_resolver(_name):
        OmegaConf.register_new_resolver(_name, _resolver)


ConfigStore.instance().store(name="base", node=Config)  # recipes/conf/<suite>.yaml: base
# dm_control's import logs its OpenGL backend at INFO (absl, PyOpenGL), and Hydra prints that
# before a run starts (three lines in front of a bad input's one-line error): warnings and up.
for _logger in ("absl", "OpenGL.acceleratesupport"):
    logging.getLogger(_logger).setLevel(logging.WARNING)


class UserError(ValueError):
    """A mistake in the command line: printed as one ``error:`` line, exit code 1."""


# ----------------------------------------------------------------------------------------------
# The command line: short names, Hydra's errors as one line, the typed config
# ----------------------------------------------------------------------------------------------

def expand_short_names(argv: list[str]) -> list[str]:
    """``total_steps=5`` -> ``run.total_steps=5``; every other argument as it is.

    Examples:
        >>> expand_short_names(["-m", "task=gym:Hopper-v5", "+seed=1", "model.hidden=8"])
        ['-m', 'env.task=gym:Hopper-v5', '+seed=1', 'model.hidden=8']
    """
    shorts = short_names()
    out = []
    for arg in argv:
        m = re.fullmatch(r"([+~]*)(\w+)(=.*)", arg, flags=re.S)
        out.append(f"{m[1]}{shorts[m[2]]}{m[3]}" if m and m[2] in shorts else arg)
    return out


def one_line(err: BaseException) -> str:
    """Hydra's / OmegaConf's error as one line: an unknown field with the nearest valid names;
    an unknown preset or variant with those that exist; otherwise its first line, the cause it
    wraps and the offending key."""
    from hydra.errors import MissingConfigException, OverrideParseException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    cause = err.__cause__
    if isinstance(cause, (ConfigAttributeError, ConfigKeyError)) and cause.full_key:
        return unknown_field(cause.full_key)
    if isinstance(err, OverrideParseException):
        return f"Cannot read {err.override!r}: write key=value, e.g. seed=1 (see --help)."
    if isinstance(err, MissingConfigException) and err.options and err.missing_cfg_file:
        group, _, name = err.missing_cfg_file.rpartition("/")
        return (f"Unknown {group} {name!r}. Could not find '{err.missing_cfg_file}'; accepted: "
                f"{', '.join(err.options)}.")
    text = str(err).strip().splitlines()
    first = text[0] if text else type(err).__name__
    if cause is not None and str(cause).strip():
        first += f": {str(cause).strip().splitlines()[0]}"
        text += str(cause).strip().splitlines()[1:]
    for line in text[1:]:
        if line.strip().startswith(("full_key:", "Key '")):
            first += f" ({line.strip()})"
    return first


def to_config(node: Any) -> Config:
    """A composed DictConfig, a saved config.yaml or a dict (Hydra's own node is dropped) -> the
    typed :class:`Config`. A field it lacks takes its variant file's value (a config.yaml older
    than ``posterior.mode``), else the default."""
    if isinstance(node, DictConfig) and "hydra" in node:
        node = OmegaConf.masked_copy(node, [k for k in node.keys() if k != "hydra"])
    own = VARIANT_DIR / f"{node.get('variant', Config.variant)}.yaml"
    layers = [OmegaConf.structured(Config), *([OmegaConf.load(own)] if own.is_file() else []), node]
    try:
        return OmegaConf.to_object(OmegaConf.merge(*layers))
    except Exception as err:  # OmegaConf's type errors
        raise UserError(one_line(err)) from None


def checked(node: Any, overrides: Any) -> Config:
    """Hydra's composition -> a checked :class:`Config` (:func:`config.check`); the
    ``key=value`` overrides that set fields are checked against the variant."""
    pairs = (o.split("=", 1) for o in overrides if "=" in o)
    typed = {k.lstrip("+~"): v for k, v in pairs if k.lstrip("+~") in leaf_fields()}
    try:
        return check(to_config(node), typed)
    except ValueError as err:
        raise UserError(str(err)) from None


def compose(suite: str, overrides: list[str]) -> Config:
    """Compose and check the config as the recipe does (for checks, tests and notebooks).

    Examples:
        >>> cfg = compose("dmc", ["preset=small", "variant=sac"])
        >>> cfg.env.task, cfg.run.total_steps, cfg.policy.real_ratio
        ('dmc:cartpole-swingup', 3000, 1.0)
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    overrides = expand_short_names(overrides)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            node = hydra_compose(config_name=suite, overrides=overrides)
    except Exception as err:  # Hydra's composition and OmegaConf's type errors
        raise UserError(one_line(err)) from None
    return checked(node, overrides)


class PreWorkChecks(Callback):
    """Hydra callback (``hydra.callbacks`` of ``recipes/conf/<suite>.yaml``): a single run's
    config is checked and its run dir claimed before Hydra creates it or writes ``.hydra/``.

    A run dir that ``run.resume_if_exists=true`` continues keeps the ``.hydra/`` record of its
    first start (Hydra does not rewrite it)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            cfg = checked(config, config.hydra.overrides.task)
            if claim_run_dir(Path(config.hydra.run.dir).absolute(), cfg):
                config.hydra.output_subdir = None
        except (UserError, RunDirError) as err:
            raise SystemExit(f"error: {err}") from None


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
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2):
            with suppress(ValueError):  # not the main thread (e.g. a joblib thread backend)
                self.previous[sig] = signal.signal(sig, self._handle)

    def uninstall(self) -> None:
        """Put back the handlers that were there before :meth:`install`."""
        for sig, prev in self.previous.items():
            signal.signal(sig, prev)
        self.previous = {}

    def _handle(self, signum: int, frame: Any) -> None:
        where = f" in {self.run_dir}" if self.run_dir is not None else ""
        if self.signum is not None and signum == signal.SIGINT:
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
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    threads = cfg.run.threads
    if threads is None and HydraConfig.initialized():  # else not under Hydra
        hc = HydraConfig.get()
        n_jobs = hc.launcher.get("n_jobs") if hc.mode == RunMode.MULTIRUN else None
        if n_jobs:
            threads = 1 if n_jobs < 0 else max(1, (os.cpu_count() or 1) // int(n_jobs))
    if threads is not None:
        torch.set_num_threads(int(threads))
    return torch.get_num_threads()


_WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}
"""A disk that is full, over quota, over a file size limit, or remounted read-only."""


def run_in(run_dir: Path, cfg: Config, resume: bool) -> dict[str, Any]:
    """Train ``cfg`` in ``run_dir``, print the summary line.

    The run dir is claimed first (:func:`torchrl_psmbpo.recipes.rundir.claim_run_dir`: writable,
    locked for this process, no earlier run overwritten); ``resume=True``, or
    ``run.resume_if_exists`` with a checkpoint there, continues its checkpoint, refused when the
    run has already reached ``run.total_steps``. Everything is checked before anything is written.

    Raises:
        UserError: any of those checks, an unreadable, corrupted or other config's checkpoint,
            a checkpoint or log that cannot be written (a full disk: the last checkpoint kept),
            or a non-finite loss (the last checkpoint kept).
    """
    from torchrl_psmbpo.recipes.checkpoint import CheckpointError, load_checkpoint
    from torchrl_psmbpo.recipes.loop import NonFiniteLossError, train
    from torchrl_psmbpo.recipes.provenance import record

    stop = StopFlag(run_dir)
    try:
        payload = None
        if claim_run_dir(run_dir, cfg, resuming=resume):  # this process's, if it was taken
            payload = load_checkpoint(run_dir / CHECKPOINT_NAME, cfg)
        done = payload["progress"]["step"] if payload else 0
        if payload is not None and done >= cfg.run.total_steps:
            raise UserError(
                f"Run dir {str(run_dir)!r} already reached {done} agent steps (run.total_steps="
                f"{cfg.run.total_steps}): nothing to continue. To extend it, resume with more "
                f"steps: resume={run_dir} total_steps=<more than {done}>.")
        threads = set_threads(cfg)
        entry = record(run_dir, step=done)
        code = (f"code {entry['commit'][:12]}{' + uncommitted changes' if entry['dirty'] else ''}"
                if entry["commit"] else "code not from a git checkout")
        print(f"run dir {run_dir} (torch threads: {threads}; {code})", flush=True)
        stop.install()
        result = train(cfg, run_dir, resume=payload, stop=stop)
    except (RunDirError, CheckpointError, NonFiniteLossError) as err:
        raise UserError(str(err)) from None
    except OSError as err:  # a full disk or a dir made read-only mid-run, writing logs
        if err.errno not in _WRITE_ERRORS:
            raise
        raise UserError(f"Could not write {err.filename or 'to the run dir'} ({err.strerror}): "
                        f"resume={run_dir} continues from the last checkpoint once it can be "
                        "written.") from None
    finally:
        release_run_dir(run_dir)
    if result["stopped"]:
        print(f"Stopped at agent step {result['step']}: checkpoint written to "
              f"{result['checkpoint']}", flush=True)
        stop.after_checkpoint()
    print(f"done: {result['step']} agent steps, {result['episodes']} episodes, "
          f"last return {result['last_return']:.1f}, final eval {result['last_eval']:.1f}, "
          f"logs and checkpoint in {result['run_dir']}", flush=True)
    return result


def _resume(run_dir: str, overrides: list[str]) -> dict[str, Any]:
    """``resume=<run dir> [free field=value ...]``: the saved config, then the run's checkpoint."""
    path = Path(run_dir)
    path = path.parent if path.suffix == ".pt" else path
    saved = path / "config.yaml"
    if not path.is_dir():
        raise UserError(f"resume={run_dir}: no such run directory.")
    if not saved.is_file():
        raise UserError(f"resume={run_dir}: {saved} is missing; a run dir holds config.yaml "
                        f"and {CHECKPOINT_NAME}.")
    changes = [arg.lstrip("+~") for arg in expand_short_names(overrides)]
    for key in (arg.split("=", 1)[0] for arg in changes):
        if key not in leaf_fields():
            raise UserError(unknown_field(key))
        if key not in FREE:
            raise UserError(f"resume: {key} cannot change when resuming (it shapes the run); "
                            f"only {', '.join(sorted(FREE))} can.")
    if not (path / CHECKPOINT_NAME).exists():
        raise UserError(
            f"resume={run_dir}: no {CHECKPOINT_NAME} there (the run stopped before its first "
            f"checkpoint): start it again with hydra.run.dir={path} run.discard_existing=true "
            "(deletes its files), or in another dir.")
    try:
        node = OmegaConf.load(saved)
    except Exception as err:
        raise UserError(f"resume={run_dir}: {saved} is unreadable ({one_line(err)}).") from None
    try:
        node = OmegaConf.merge(node, OmegaConf.from_dotlist(changes))
    except Exception as err:
        raise UserError(one_line(err)) from None
    return run_in(path, checked(node, []), resume=True)


def entry_point(suite: str) -> Callable[[], dict[str, Any] | None]:
    """``run()`` of ``recipes/psmbpo_<suite>.py`` and of the console script ``psmbpo-<suite>``."""
    return functools.partial(main, suite)


def main(suite: str, argv: list[str] | None = None) -> dict[str, Any] | None:
    """Entry point of ``recipes/psmbpo_<suite>.py``.

    Args:
        suite: ``"dmc"``, ``"gym"`` or ``"metaworld"`` (the primary config in recipes/conf/).
        argv: the command-line arguments (default: ``sys.argv[1:]``).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    resume = [a for a in argv if a.split("=", 1)[0].lstrip("+") == "resume" and "=" in a]
    try:
        if resume:
            return _resume(resume[-1].split("=", 1)[1], [a for a in argv if a not in resume])
        return _hydra_main(suite, expand_short_names(argv))
    except (UserError, RunDirError) as err:
        raise SystemExit(f"error: {err}") from None


def _hydra_main(suite: str, argv: list[str]) -> dict[str, Any]:
    """Hydra's own app over ``argv``; its errors (with ``HYDRA_FULL_ERROR`` unset) as one line."""
    import hydra

    results: dict[str, Any] = {}

    @hydra.main(config_path=str(CONF_DIR), config_name=suite, version_base="1.3")
    def _app(node: DictConfig) -> float:
        results.update(hydra_task(node))
        return results.get("last_eval", float("nan"))

    full_error = os.environ.get("HYDRA_FULL_ERROR") == "1"
    saved_argv, os.environ["HYDRA_FULL_ERROR"] = sys.argv, "1"  # raise, not print, its errors
    sys.argv = [saved_argv[0]] + argv
    try:
        _app()
    except (HydraException, OmegaConfBaseException) as err:  # a bug's error keeps its traceback
        if full_error:
            raise
        raise UserError(one_line(err)) from None
    finally:
        sys.argv = saved_argv
        if not full_error:
            del os.environ["HYDRA_FULL_ERROR"]
    return results


def hydra_task(node: DictConfig) -> dict[str, Any]:
    """One Hydra job: its config, checked (a single run's was, by :class:`PreWorkChecks`, before
    Hydra made its dir), trained in its run dir."""
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    try:
        cfg = checked(node, hc.overrides.task)
        resume = claim_run_dir(run_dir, cfg, hydra_wrote=True)  # its .hydra/ is this job's
        if not resume:
            save_config(run_dir, cfg)
        return run_in(run_dir, cfg, resume=resume)
    except (UserError, RunDirError) as err:
        raise SystemExit(f"error: {err}") from None
    finally:
        release_run_dir(run_dir)


def save_config(run_dir: Path, cfg: Config) -> None:
    """``config.yaml``: every field of the run's config (read by ``resume=`` and the report)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(OmegaConf.structured(dataclasses.asdict(cfg)), run_dir / "config.yaml")


__all__ = ["main", "entry_point", "compose", "checked", "to_config", "expand_short_names", "UserError",
           "PreWorkChecks", "StopFlag", "run_in", "save_config", "set_threads"]
