"""Multi-seed report: learning curves with 95% bootstrap bands, tables at fixed env steps.

Reads every run under the given dirs (a Hydra multirun dir, a ``runs/`` tree, or run dirs; a
run dir is any directory holding ``config.yaml`` and ``logs/scalars/``), groups the runs by
task and variant (plus any config keys named with ``--label-by``) and writes, per task, to
``--out`` (default ``<first path>/report``, beside the runs): ``<task>.md`` (tables; also
printed), ``<task>_return.png`` (eval return curves, mean and 95% band over seeds, published
anchors as markers), ``<task>_success.png``
(Metaworld), ``<task>_ops.png`` (OPS probabilities of ``ops-mbpo`` runs),
``<task>_by_<NAME>.png`` (each arm's run mean and solve rate against a numeric
``--label-by`` key, when a variant has runs at two or more of its values: the ablation over M),
``<task>_members.png`` (every member's eval return, for runs made with
``eval.all_members=true``), ``<task>_terms.png`` (the Marino & Yue terms against the imagined
reward, for runs that logged them: ``rollout.information_weight > 0`` or
``policy.action_prior=true``); and ``index.md``. Every plot is written as PNG and as SVG
(same name, ``.svg``).

Usage:
    python -m torchrl_psmbpo.recipes.report runs/                           # writes runs/report/
    python -m torchrl_psmbpo.recipes.report runs/ --out docs/results        # rebuild the committed results
    python -m torchrl_psmbpo.recipes.report multirun/2026-01-01/12-00-00 --marks 10000 50000 --threshold 800
    python -m torchrl_psmbpo.recipes.report runs/ --label-by policy.action_prior

Statistics (docs/report.md): the 95% confidence interval of a mean over seeds is a BCa
bootstrap over seeds (``scipy.stats.bootstrap``, 2000 resamples, generator seeded with 0, so a
report is reproducible), the percentile bootstrap where BCa is degenerate (fewer than 3 seeds,
or every seed the same value). rliable (IQM, stratified bootstrap) is not used: ``pip install --dry-run
rliable`` with our pins would add nine packages (pandas, statsmodels, arch, seaborn, patsy,
formulaic, ...) for what is here a per-task mean over a few seeds: its IQM of 3 seeds trims
nothing (it is the plain mean) and its stratification over tasks does not apply. The step axis
is env steps = agent steps * ``env.action_repeat`` (simulator frames).

One job per module: :mod:`~torchrl_psmbpo.recipes.report.runs` reads run dirs (config, scalars, provenance) and
the anchors, :mod:`~torchrl_psmbpo.recipes.report.stats` holds the intervals and curve arithmetic,
:mod:`~torchrl_psmbpo.recipes.report.summary` computes one task's numbers, :mod:`~torchrl_psmbpo.recipes.report.markdown` and
:mod:`~torchrl_psmbpo.recipes.report.plots` draw them, :mod:`~torchrl_psmbpo.recipes.report.write` writes the report and
:mod:`~torchrl_psmbpo.recipes.report.cli` is the command line (also ``psmbpo-report``).
"""

from torchrl_psmbpo.recipes.report.cli import main, parse_thresholds
from torchrl_psmbpo.recipes.report.markdown import runs_markdown, task_markdown
from torchrl_psmbpo.recipes.report.compare import KeyPoint, along_key
from torchrl_psmbpo.recipes.report.plots import X_LABEL, plot_along, plot_members, plot_metric, plot_ops, plot_terms
from torchrl_psmbpo.recipes.report.runs import (
    ANCHOR_NAMES,
    DEFAULT_ANCHORS,
    LABEL_DIR,
    Run,
    check_same_commit,
    find_runs,
    group_runs,
    load_anchors,
    load_run,
    member_curves,
    read_scalar,
    run_code,
)
from torchrl_psmbpo.recipes.report.stats import (
    CI_SEED,
    MIN_BCA_SEEDS,
    RESAMPLES,
    Cell,
    align,
    bootstrap_ci,
    ci_method,
    first_reaching,
    seconds_per_1k,
    steps_to_threshold,
    value_at,
)
from torchrl_psmbpo.recipes.report.summary import DEFAULT_MARKS, MEMBER_STATS, TERM_METRICS, TaskSummary, summarize
from torchrl_psmbpo.recipes.report.write import default_out, write_report

__all__ = [
    "ANCHOR_NAMES", "CI_SEED", "DEFAULT_ANCHORS", "DEFAULT_MARKS", "LABEL_DIR", "MEMBER_STATS",
    "MIN_BCA_SEEDS", "RESAMPLES", "TERM_METRICS", "X_LABEL", "Cell", "KeyPoint", "Run",
    "TaskSummary", "align", "along_key", "bootstrap_ci", "check_same_commit", "ci_method", "runs_markdown", "default_out",
    "find_runs", "first_reaching", "group_runs", "load_anchors", "load_run", "main",
    "member_curves", "parse_thresholds", "plot_along", "plot_members", "plot_metric", "plot_ops", "plot_terms",
    "read_scalar", "run_code", "seconds_per_1k", "steps_to_threshold", "summarize",
    "task_markdown", "value_at", "write_report",
]
