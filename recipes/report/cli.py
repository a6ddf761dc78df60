"""Multi-seed report: learning curves with 95% bootstrap bands, tables at fixed env steps.

The command line of :func:`torchrl_psmbpo.recipes.report.write_report` (``python -m torchrl_psmbpo.recipes.report``,
``psmbpo-report``): prints every task's tables and writes the report.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Sequence

from torchrl_psmbpo.recipes.report.runs import DEFAULT_ANCHORS
from torchrl_psmbpo.recipes.report.summary import DEFAULT_MARKS
from torchrl_psmbpo.recipes.report.write import default_out, write_report


def parse_thresholds(items: Sequence[str]) -> dict[str, float]:
    """``["800", "dmc:cartpole-swingup_sparse=300"]`` -> ``{"": 800.0, "dmc:...": 300.0}``.

    Examples:
        >>> parse_thresholds(["800", "dmc:cartpole-swingup_sparse=300"])
        {'': 800.0, 'dmc:cartpole-swingup_sparse': 300.0}
    """
    out: dict[str, float] = {}
    for item in items:
        task, _, value = item.rpartition("=")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number) or (not task and "=" in item):
            raise ValueError(f"--threshold takes a number or TASK=NUMBER, got {item!r}")
        out[task] = number
    return out


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage block
        self.exit(2, f"error: {message} (see --help)\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: print every task's tables and write the report; 0 on success, 1 on error."""
    # "python -m torchrl_psmbpo.recipes.report" rather than "__main__.py"; psmbpo-report names itself
    prog = "python -m torchrl_psmbpo.recipes.report" if Path(sys.argv[0]).name == "__main__.py" else None
    parser = _Parser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="run dirs or dirs containing them")
    parser.add_argument("--out", default=None,
                        help="output dir (default: <first path>/report, beside the runs; "
                             "--out docs/results rebuilds the committed results)")
    parser.add_argument("--marks", type=int, nargs="+", default=list(DEFAULT_MARKS),
                        help="env steps at which the tables report (default 10K 25K 50K 100K)")
    parser.add_argument("--threshold", nargs="+", default=["800"], metavar="[TASK=]RETURN",
                        help="eval return of the steps-to-threshold table: one number for every "
                             "task and/or TASK=NUMBER per task, e.g. --threshold 800 "
                             "dmc:cartpole-swingup_sparse=300 (default 800)")
    parser.add_argument("--success-threshold", type=float, default=0.9, metavar="RATE",
                        help="eval success rate of the steps-to-success table of Metaworld "
                             "tasks, in [0, 1] (default 0.9)")
    parser.add_argument("--label-by", default="",
                        help="comma-separated dotted config keys appended to the variant name "
                             "as key=value, or NAME=key to show NAME=value (e.g. "
                             "M=posterior.policies_per_model); 'dir': the name of the dir "
                             "holding each run dir")
    parser.add_argument("--same-commit", action="store_true",
                        help="refuse a task whose runs were not all made by one commit of clean "
                             "code (each run's provenance.json)")
    parser.add_argument("--reference", default=None, metavar="VARIANT",
                        help="test every other variant of a task against this one: difference "
                             "of the runs' mean eval return (95%% bootstrap interval, Welch), "
                             "seeds that reached the threshold (Fisher), and what each test "
                             "could detect with 80%% power")
    parser.add_argument("--anchors", default=None,
                        help=f"published anchors dir (default {DEFAULT_ANCHORS})")
    args = parser.parse_args(argv)
    anchors = Path(args.anchors) if args.anchors else DEFAULT_ANCHORS
    if args.anchors and not anchors.is_dir():
        print(f"note: anchors dir {anchors} not found; no anchors drawn", file=sys.stderr)
    label_by = [k.strip() for k in args.label_by.split(",") if k.strip()]
    try:
        thresholds = parse_thresholds(args.threshold)
        pages = write_report(args.paths, args.out, args.marks, thresholds, label_by, anchors,
                             success_threshold=args.success_threshold,
                             same_commit=args.same_commit, reference=args.reference)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for page in pages.values():
        print(page)
    out = Path(args.out) if args.out else default_out(args.paths)
    print(f"wrote {out / 'index.md'} and {len(pages)} task page(s)")
    return 0
