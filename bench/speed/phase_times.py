"""Wall-clock per phase of one or more runs, from their ``time/*_s`` logs, as a markdown table.

The loop logs the cumulative seconds of each phase (env, model fit, rollouts, updates) at every
episode end. This prints, per run, the seconds per 1K *learning* agent steps of each phase
between two logged steps (default: from the first logged step at or after
``run.init_random_steps`` to the last logged step), so that runs of different lengths, devices
or machines can be compared by the steady cost of a step rather than by the random-action
warm-up. It is what ``bench/checks/cuda_check.sh`` reports; it works on any run dir.

Usage:
    python bench/speed/phase_times.py RUN_DIR [RUN_DIR ...] [--from STEP] [--to STEP]

Examples:
    >>> import tempfile, pathlib
    >>> run = pathlib.Path(tempfile.mkdtemp())
    >>> (run / "logs" / "scalars" / "time").mkdir(parents=True)
    >>> for p, s in {"env": 2.0, "model": 4.0, "rollout": 1.0, "update": 10.0}.items():
    ...     _ = (run / "logs" / "scalars" / "time" / f"{p}_s.csv").write_text(f"0,0\\n1000,{s}\\n")
    >>> row = phase_seconds_per_1k(run, start=0)
    >>> row["update"], row["total"], row["steps"]
    (10.0, 17.0, 1000)
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from torchrl_psmbpo.recipes.rundir import PHASES


def _read(path: Path) -> list[tuple[int, float]]:
    with open(path, newline="") as f:
        return [(int(float(r[0])), float(r[1])) for r in csv.reader(f) if r and r[0][0].isdigit()]


def phase_seconds_per_1k(run_dir: Path, start: int | None = None,
                         end: int | None = None) -> dict[str, float]:
    """Seconds per 1K agent steps of each phase between two logged steps of one run.

    Args:
        run_dir: a run dir (holds ``logs/scalars/time/<phase>_s.csv``).
        start: first step of the window (the first logged step at or after it); default the
            first logged step at or after the run's ``run.init_random_steps`` when
            ``config.yaml`` is there, else the first logged step.
        end: last step of the window (the last logged step at or before it); default the last.

    Returns:
        ``{phase: seconds per 1K steps, ..., "total": ..., "steps": window length}``.

    Raises:
        ValueError: the run has no time logs, or the window holds fewer than two logged steps.
    """
    run_dir = Path(run_dir)
    series = {}
    for phase in PHASES:
        path = run_dir / "logs" / "scalars" / "time" / f"{phase}_s.csv"
        if not path.exists():
            raise ValueError(f"{run_dir}: no time logs ({path} is missing)")
        series[phase] = dict(_read(path))
    if start is None:
        start = _init_random_steps(run_dir)
    steps = sorted(s for s in series["update"] if s >= start and (end is None or s <= end))
    if len(steps) < 2:
        raise ValueError(f"{run_dir}: fewer than two logged steps in the window "
                         f"[{start}, {end if end is not None else 'end'}]")
    lo, hi = steps[0], steps[-1]
    out = {p: 1000.0 * (series[p][hi] - series[p][lo]) / (hi - lo) for p in PHASES}
    out["total"] = sum(out[p] for p in PHASES)
    out["steps"] = hi - lo
    return out


def _init_random_steps(run_dir: Path) -> int:
    cfg = run_dir / "config.yaml"
    if cfg.exists():
        for line in cfg.read_text().splitlines():
            if line.strip().startswith("init_random_steps:"):
                return int(line.split(":", 1)[1])
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run dirs")
    parser.add_argument("--from", dest="start", type=int, default=None, help="window start step")
    parser.add_argument("--to", dest="end", type=int, default=None, help="window end step")
    args = parser.parse_args(argv)
    print("| run | steps | env | model fit | rollouts | updates | total (s per 1K agent steps) |")
    print("|---|---|---|---|---|---|---|")
    failed = 0
    for run in args.runs:
        try:
            r = phase_seconds_per_1k(Path(run), args.start, args.end)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            failed += 1
            continue
        print(f"| {run} | {r['steps']} | {r['env']:.1f} | {r['model']:.1f} | {r['rollout']:.1f} "
              f"| {r['update']:.1f} | {r['total']:.1f} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
