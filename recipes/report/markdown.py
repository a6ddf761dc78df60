"""Markdown: a task's page (runs, values at the marks, steps to threshold, timing) and its runs,
one row each, with the code that made them."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

from torchrl_psmbpo.recipes import provenance
from torchrl_psmbpo.recipes.report.compare import horizon, run_means_and_solved
from torchrl_psmbpo.recipes.report.runs import ANCHOR_NAMES, Run, run_code, unclean
from torchrl_psmbpo.recipes.report.stats import Cell, steps_to_threshold
from torchrl_psmbpo.recipes.report.summary import TaskSummary
from torchrl_psmbpo.recipes.rundir import PHASES


def _row(*cells: object) -> str:
    return "| " + " | ".join(map(str, cells)) + " |"


def _rows_at_marks(head: str, nested: dict[str, dict[str, dict[int, Cell]]],
                   marks: Sequence[int], digits: int) -> list[str]:
    """A table with one row ``"<label>: <name>"`` per ``nested[label][name]`` (mark -> cell)."""
    lines = [_row(head, *(f"{m:,}" for m in marks)), _row(*["---"] * (len(marks) + 1))]
    for label, by_name in nested.items():
        for name, cells in by_name.items():
            lines.append(_row(f"{label}: {name}", *(cells[m].format(digits) for m in marks)))
    return lines


def task_markdown(s: TaskSummary, images: Sequence[str] = ()) -> str:
    """The markdown page of one task: runs, values at the marks, steps to threshold, timing."""
    lines = [f"# {s.task}", ""]
    lines += [f"![{Path(i).stem}]({i})" for i in images] + ([""] if images else [])
    lines += [
        "Values: mean over seeds [95% bootstrap CI of the mean over seeds] "
        f"(scipy.stats.bootstrap, {s.resamples} resamples): BCa, or the percentile interval "
        "where BCa is degenerate (n < 3, or every seed the same value: then a point); "
        "n = seeds with a value. Steps are env steps "
        "(agent steps x action_repeat); a seed's value at a mark is interpolated linearly "
        "between its evaluations around it, and a seed that stopped before the mark does not "
        "count. Curves are drawn only over the steps every seed of the variant reached (up to "
        "the smallest 'last eval' below); a curve with one evaluation is a marker. Every "
        "plot is also saved as SVG beside its PNG (same name, .svg).",
        "",
        _row("variant", "seeds", "last eval (env steps, min-max over seeds)"),
        _row("---", "---", "---"),
    ]
    for label in s.labels:
        seeds, reached = s.seeds[label], s.reached[label]
        span = "-" if reached is None else f"{reached[0]}-{reached[1]}"
        lines.append(_row(label, f"{len(seeds)} ({', '.join(map(str, seeds))})", span))
    for metric, digits in (("eval/return", 1), ("eval/success", 2)):
        if metric not in s.at_marks:
            continue
        lines += ["", f"## {metric} at env steps", ""]
        lines.append(_row("variant", *(f"{m:,}" for m in s.marks)))
        lines.append(_row(*["---"] * (len(s.marks) + 1)))
        for label in s.labels:
            cells = s.at_marks[metric][label]
            lines.append(_row(label, *(cells[m].format(digits) for m in s.marks)))
        anchor_rows = 0
        for algo, by_step in s.anchors[metric].items():
            if not any(m in by_step for m in s.marks):
                continue
            cells = [Cell.of(by_step[m], s.resamples) if m in by_step else Cell() for m in s.marks]
            name = f"anchor: {ANCHOR_NAMES.get(algo, algo)} (TD-MPC2 results)"
            lines.append(_row(name, *(c.format(digits) for c in cells)))
            anchor_rows += 1
        if anchor_rows:
            lines += ["", "Anchor rows: published results shipped with the TD-MPC2 repository "
                      "(their own settings, networks and action repeat), shown only at the marks "
                      "they logged."]
    if s.members:
        lines += ["", "## every member's eval return at env steps", "",
                  "Runs made with `eval.all_members=true`: each seed's worst, mean and best "
                  "member (deterministic episodes of every member at every evaluation), then "
                  "mean [CI] of those over seeds. The `eval/return` table above evaluates one "
                  "member per round, the posterior's most likely.", ""]
        lines += _rows_at_marks("variant: member", s.members, s.marks, 1)
    if s.terms:
        lines += ["", "## Marino & Yue terms at env steps", "",
                  "Shown because a run of this task logged a term (docs/inference_perspective.md). "
                  "`imagined/information`: the unweighted term log p_n - log mixture, mean over one "
                  "step's imagined transitions (at most log of the number of members; its "
                  "expectation is >= 0); `imagined/reward`: the reward the policies learn from, "
                  "which already includes +/- beta x that term (every model-based group, so the "
                  "arm with neither term is there to compare); `loss/kl_prior`: the sampled "
                  "KL(pi || p_a) of the action prior, mean over members. A seed's value at a mark "
                  "is interpolated between its logged values; mean [CI] over seeds.", ""]
        lines += _rows_at_marks("variant: term", s.terms, s.marks, 3)
    lines += ["", f"## env steps to eval return >= {s.threshold:g}", "",
              _row("variant", "mean env steps (seeds that reached it)", "reached"),
              _row("---", "---", "---")]
    for label in s.labels:
        mean, got, n = s.to_threshold[label]
        lines.append(_row(label, "-" if got == 0 else f"{mean:.0f}", f"{got}/{n}"))
    if s.to_success:
        lines += ["", f"## env steps to eval success >= {s.success_threshold:g}", "",
                  _row("variant", "mean env steps (seeds that reached it)", "reached"),
                  _row("---", "---", "---")]
        for label in s.labels:
            mean, got, n = s.to_success.get(label, (math.nan, 0, 0))
            lines.append(_row(label, "-" if got == 0 else f"{mean:.0f}", f"{got}/{n}"))
    if s.versus:
        lines += versus_markdown(s)
    for name in s.along:
        lines += along_markdown(s, name)
    lines += ["", "## wall-clock seconds per 1K agent steps, by phase", "",
              _row("variant", *PHASES, "total"), _row(*["---"] * (len(PHASES) + 2))]
    for label in s.labels:
        lines.append(_row(label, *(s.timing[label][p].format(2) for p in (*PHASES, "total"))))
    return "\n".join(lines) + "\n"


def versus_markdown(s: TaskSummary) -> list[str]:
    """The "against the reference" section: each arm's tests (compare.py) and what they could
    detect."""

    def num(x: float, digits: int = 1) -> str:
        return "-" if math.isnan(x) else f"{x:.{digits}f}"

    def rates(low: float | None, high: float | None) -> str:
        sides = [f"<= {low:.2f}" if low is not None else "", f">= {high:.2f}" if high is not None
                 else ""]
        return " or ".join(x for x in sides if x) or "none"

    lines = ["", f"## against {s.reference}", "",
             "Per seed: the run's mean eval return (over every evaluation up to the furthest "
             "seed's last one; seeds that stopped earlier are left out) and whether it reached "
             f"an eval return of {s.threshold:g} (solved). Difference: the arm's mean minus "
             f"{s.reference}'s, with its 95% bootstrap interval (percentile, the arms resampled "
             "independently), Welch's two-sided t-test and that test's own 95% interval "
             "(wider at few seeds: it allows for spreads larger than the seeds show); "
             "detectable: the smallest difference "
             "that test finds with 80% power at these seed counts and the arms' pooled "
             "spread. Solved: Fisher's exact two-sided test, and the solve rates it finds with "
             f"80% power against {s.reference}'s observed rate (none: no rate can be told "
             "apart with these seeds).", "",
             _row("variant", "seeds (arm, ref)", "run mean (arm, ref)", "difference [95% CI]",
                  "Welch p", "Welch 95% CI", "detectable difference", "solved (arm, ref)",
                  "Fisher p", "detectable solve rates"),
             _row(*["---"] * 10)]
    for label, t in s.versus.items():
        lines.append(_row(
            label, f"{t.n}, {t.ref_n}", f"{t.mean:.1f}, {t.ref_mean:.1f}",
            f"{t.diff:+.1f} [{num(t.diff_low)}, {num(t.diff_high)}]", num(t.welch_p, 3),
            f"[{num(t.welch_low)}, {num(t.welch_high)}]", num(t.mde),
            f"{t.solved}/{t.n}, {t.ref_solved}/{t.ref_n}", f"{t.fisher_p:.3f}",
            rates(t.detect_low, t.detect_high)))
    return lines


def along_markdown(s: TaskSummary, name: str) -> list[str]:
    """The "by <key>" section: every arm's run mean and solve rate at its value of ``name``,
    each with its own interval (compare.along_key)."""
    lines = ["", f"## by {name}", "",
             f"Each arm at its value of {name}, the same two measures as the tests: the mean "
             "over seeds of the run's mean eval return (over every evaluation up to the furthest "
             "seed's last one; seeds that stopped earlier are left out), with its 95% bootstrap "
             f"interval, and the seeds that reached an eval return of {s.threshold:g} (solved), "
             "with the 95% exact (Clopper-Pearson) interval of the solve rate.", "",
             _row("variant", name, "seeds", "run mean [95% CI]", "solved", "solve rate [95% CI]"),
             _row(*["---"] * 6)]
    for p in s.along[name]:
        lines.append(_row(p.label, f"{p.value:g}", p.n, f"{p.mean:.1f} [{p.low:.1f}, {p.high:.1f}]",
                          f"{p.solved}/{p.n}",
                          f"{p.solved / p.n:.2f} [{p.solved_low:.2f}, {p.solved_high:.2f}]"))
    return lines


def runs_markdown(s: TaskSummary, by_label: Mapping[str, Sequence[Run]]) -> str:
    """The "Runs" section of a task page: one row per run (its last and best evaluation, when it
    first reached the threshold, the run mean the tests use, its starts) and the code that made
    it, with one line saying whether the runs agree on that code."""
    until = horizon(by_label)
    rows = []
    for label, runs in by_label.items():
        for run in runs:
            steps, values = run.scalar("eval/return")
            mean, _ = run_means_and_solved([run], s.threshold, until)
            first = steps_to_threshold(steps, values, s.threshold)
            starts = [int(e.get("start_step", 0)) for e in provenance.read(run.path)]
            rows.append((label, run.seed,
                         f"{values[-1]:.1f} ({int(steps[-1]):,})" if len(steps) else "-",
                         f"{values.max():.1f}" if len(steps) else "-",
                         f"{first:,.0f}" if first is not None else "not reached",
                         f"{mean[0]:.1f}" if len(mean) else "- (shorter)",
                         _starts(starts), run_code(run)))
    distinct = sorted({row[-1] for row in rows})
    lines = ["", "## Runs", ""]
    if len(distinct) == 1 and not unclean(distinct[0]):
        lines.append(f"Every run on this page was made by commit {distinct[0]} (its "
                     "`provenance.json`).")
    elif distinct == ["not recorded"]:
        lines.append("**No run on this page recorded the code that made it** (they were made "
                     "before runs wrote `provenance.json`).")
    else:
        lines.append(f"**The runs on this page come from {len(distinct)} code versions** "
                     "(commit per run below, from each run's `provenance.json`; `not recorded`: "
                     "a run made before runs recorded their code). Compare them knowing that.")
    lines += ["", f"Per run, from its `eval/return` (env steps): the last evaluation, the best, "
              f"the first evaluation at or above {s.threshold:g}, and the run mean (the mean "
              "over its evaluations up to the task's furthest one, as the tests count it; a "
              "shorter run, stopped or still running, has none). Starts: the agent step each "
              "process started from (`provenance.json`): a resumed run has two or more.", "",
              _row("variant", "seed", "last eval (env steps)", "best eval",
                   f"first >= {s.threshold:g} (env steps)", "run mean", "starts (agent step)",
                   "commit"),
              _row(*["---"] * 8)]
    lines += [_row(*row) for row in rows]
    return "\n".join(lines) + "\n"


def _starts(starts: Sequence[int]) -> str:
    """``"0"``, ``"0, 9,501"``; ``"not recorded"`` for a run without ``provenance.json``.

    Examples:
        >>> _starts([0, 9501]), _starts([])
        ('0, 9,501', 'not recorded')
    """
    return ", ".join(f"{k:,}" for k in starts) if starts else "not recorded"
