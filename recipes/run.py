"""Command-line front end shared by the three suite recipes."""

from __future__ import annotations

import signal
import sys
from typing import Any

from config import help_text, make_config, parse_overrides


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None, **suite_defaults: Any) -> dict[str, Any]:
    """Parse ``key=value`` overrides on top of the suite's defaults and train.

    Args:
        argv: the command-line arguments (default: ``sys.argv[1:]``).
        **suite_defaults: the calling recipe's defaults (task, total_steps, ...).
    """
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help", "help") for a in argv):
        print(help_text())
        return {}
    try:
        cfg = make_config(parse_overrides(argv), **suite_defaults)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    from loop import train  # after validation: bad input fails before torch work starts

    signal.signal(signal.SIGTERM, _interrupt)  # e.g. a cluster's preemption: checkpoint as Ctrl-C
    try:
        result = train(cfg)
    except KeyboardInterrupt:  # train() has written the checkpoint and said where
        raise SystemExit(130) from None
    print(
        f"done: {result['step']} env steps, {result['episodes']} episodes, "
        f"last return {result['last_return']:.1f}, last eval {result['last_eval']:.1f}, "
        f"logs and checkpoint in {result['run_dir']}"
    )
    return result
