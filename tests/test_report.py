"""recipes/report/: grouping, exact table values, bootstrap CIs, plots, anchors, CLI errors."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import torchrl_psmbpo.recipes.report as report

ROOT = Path(__file__).resolve().parent.parent
REPORT_MODULES = [importlib.import_module(m.name)
                  for m in pkgutil.iter_modules(report.__path__, f"{report.__name__}.")
                  if not m.name.endswith("__main__")]

TASK = "dmc:cartpole-swingup"
# sac (action_repeat 1): agent steps = env steps.
SAC_STEPS = [0, 10_000, 25_000, 50_000]
SAC = {0: [0, 300, 600, 900], 1: [10, 330, 660, 700], 2: [20, 360, 840, 810]}
# ps-mbpo (action_repeat 2): agent steps 0, 5000, 12500, 25000 = env steps 0, 10K, 25K, 50K;
# seed 2 stops at env step 25K.
PS_STEPS = [0, 5_000, 12_500, 25_000]
PS = {0: [0, 500, 800, 950], 1: [0, 400, 700, 900], 2: [0, 600, 900]}
MARKS = (10_000, 25_000, 50_000, 100_000)


def write_run(path: Path, task: str, variant: str, seed: int, scalars: dict, action_repeat=None,
              extra: str = "") -> Path:
    """A run dir by hand: config.yaml and logs/scalars/<name>.csv with rows 'step,value'."""
    env = f"env:\n  task: {task}\n"
    if action_repeat:
        env += f"  action_repeat: {action_repeat}\n"
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(f"variant: {variant}\nseed: {seed}\n{env}{extra}")
    for name, (steps, values) in scalars.items():
        f = path / "logs" / "scalars" / f"{name}.csv"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("".join(f"{s},{v}\n" for s, v in zip(steps, values)))
    (path / "logs" / "scalars").mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """2 variants x 3 seeds of one DMC task, laid out like a Hydra multirun (job dirs 0..5)."""
    root = tmp_path / "multirun"
    for seed, values in SAC.items():
        write_run(root / str(seed), TASK, "sac", seed, {
            "eval/return": (SAC_STEPS, values),
            "time/env_s": ([10_000, 50_000], [10.0 * (seed + 1), 50.0 * (seed + 1)]),
            "time/update_s": ([10_000, 50_000], [100.0, 500.0]),
        })
    for seed, values in PS.items():
        write_run(root / str(3 + seed), TASK, "ps-mbpo", seed, {
            "eval/return": (PS_STEPS[: len(values)], values),
            "time/model_s": ([5_000, 10_000], [4.0, 8.0]),
        }, action_repeat=2)
    (root / "0" / ".hydra").mkdir()
    (root / "0" / ".hydra" / "config.yaml").write_text("variant: not-a-run\n")
    (tmp_path / "old_run" / "logs" / "scalars").mkdir(parents=True)  # no config.yaml: skipped
    return root


def hand_ci(values, resamples=2000, seed=0, level=0.95):
    """The report's interval of the mean, written out plainly: BCa (Efron & Tibshirani, 14.3)
    from 3 seeds on, the percentile bootstrap for 2 seeds or when every seed agrees."""
    from scipy.special import ndtr, ndtri

    x = np.asarray(values, dtype=float)
    n = len(x)
    idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    means = x[idx].mean(1)
    tail = (1 - level) / 2
    if n < 3 or np.ptp(x) == 0:
        return np.percentile(means, [100 * tail, 100 * (1 - tail)])
    z0 = ndtri(((means < x.mean()).sum() + (means <= x.mean()).sum()) / (2 * resamples))
    jack = np.array([np.delete(x, i).mean() for i in range(n)])
    d = jack.mean() - jack
    a = (d ** 3).sum() / (6 * (d ** 2).sum() ** 1.5)
    alphas = [ndtr(z0 + (z0 + z) / (1 - a * (z0 + z))) for z in (ndtri(tail), -ndtri(tail))]
    return np.percentile(means, [100 * alphas[0], 100 * alphas[1]])


def fmt(values, digits):
    """A table cell of ``values`` (n >= 2) as the report writes it: mean [low, high] (n=k)."""
    lo, hi = hand_ci(values)
    return f"{np.mean(values):.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}] (n={len(values)})"


def summary_of(root: Path, **kw):
    run_dirs, _ = report.find_runs([root])
    groups = report.group_runs([report.load_run(d) for d in run_dirs])
    return report.summarize(TASK, groups[TASK], MARKS, 800.0, **kw)


def test_finds_runs_and_groups_by_task_and_variant(runs: Path):
    run_dirs, no_config = report.find_runs([runs, runs.parent / "old_run"])
    assert len(run_dirs) == 6
    assert no_config == [(runs.parent / "old_run").resolve()]
    groups = report.group_runs([report.load_run(d) for d in run_dirs])
    assert list(groups) == [TASK]
    assert list(groups[TASK]) == ["sac", "ps-mbpo"]  # the variants' canonical order
    assert [r.seed for r in groups[TASK]["ps-mbpo"]] == [0, 1, 2]
    assert {r.action_repeat for r in groups[TASK]["sac"]} == {1}  # missing -> 1
    steps, _ = groups[TASK]["ps-mbpo"][0].scalar("eval/return")
    assert steps.tolist() == [0, 10_000, 25_000, 50_000]  # agent steps * action_repeat 2


def test_table_values_are_exact_means_with_bootstrap_ci(runs: Path):
    s = summary_of(runs)
    cells = s.at_marks["eval/return"]
    sac = np.array(list(SAC.values()), dtype=float)
    for j, mark in enumerate(MARKS[:3]):
        cell = cells["sac"][mark]
        assert cell.n == 3
        assert cell.mean == pytest.approx(sac[:, SAC_STEPS.index(mark)].mean(), abs=1e-12)
        lo, hi = hand_ci(sac[:, SAC_STEPS.index(mark)])
        assert (cell.low, cell.high) == pytest.approx((lo, hi), abs=1e-9)
        assert cell.low <= cell.mean <= cell.high
        assert cell.high > cell.low  # the seeds differ, so the interval is not a point
    assert cells["sac"][10_000].mean == pytest.approx(330.0)
    assert cells["sac"][50_000].mean == pytest.approx(2410 / 3)
    # ps-mbpo: env steps from action_repeat 2; seed 2 stopped at 25K, so 50K has 2 seeds
    assert [cells["ps-mbpo"][m].n for m in MARKS] == [3, 3, 2, 0]
    assert cells["ps-mbpo"][25_000].mean == pytest.approx(800.0)
    assert cells["ps-mbpo"][50_000].mean == pytest.approx(925.0)
    assert cells["ps-mbpo"][50_000].high - cells["ps-mbpo"][50_000].low == pytest.approx(
        np.subtract(*hand_ci([950, 900])[::-1]))

    page = report.task_markdown(s)
    assert f"| sac | {fmt(sac[:, 1], 1)} |" in page
    assert "| ps-mbpo | 500.0 [" in page and "925.0 [900.0, 950.0] (n=2) | - |" in page
    assert "BCa, or the percentile interval where BCa is degenerate" in page
    assert "| sac | 3 (0, 1, 2) | 50000-50000 |" in page
    assert "| ps-mbpo | 3 (0, 1, 2) | 25000-50000 |" in page
    assert "eval/success" not in page and "success >=" not in page  # DMC: no success tables


def test_steps_to_threshold_and_timing(runs: Path):
    s = summary_of(runs)
    # sac: seed 0 first >= 800 at 50K, seed 1 never, seed 2 at 25K
    assert s.to_threshold["sac"] == (37_500.0, 2, 3)
    # ps-mbpo: 25K, 50K, 25K env steps
    assert s.to_threshold["ps-mbpo"][1:] == (3, 3)
    assert s.to_threshold["ps-mbpo"][0] == pytest.approx(100_000 / 3)
    page = report.task_markdown(s)
    assert "| sac | 37500 | 2/3 |" in page and "| ps-mbpo | 33333 | 3/3 |" in page

    t = s.timing["sac"]
    assert t["env"].mean == pytest.approx(2.0)  # (1 + 2 + 3) s per 1K agent steps / 3 seeds
    assert t["update"].mean == pytest.approx(10.0) and t["update"].half_width == 0.0
    assert t["total"].mean == pytest.approx(12.0)
    assert t["model"].n == 0 and s.timing["ps-mbpo"]["env"].n == 0  # not logged: "-"
    assert s.timing["ps-mbpo"]["model"].mean == pytest.approx(0.8)
    assert "| sac | 2.00 [" in page and " | - | - | 10.00 [10.00, 10.00] (n=3) | 12.00 [" in page


def test_seconds_per_1k_counts_a_restarted_timer_as_a_new_segment():
    steps = np.array([1000, 2000, 3000])
    assert report.seconds_per_1k(steps, np.array([1.0, 2.0, 3.0])) == pytest.approx(1.0)
    # resumed at 2000: the timer restarted from 0 and reads 0.5 at 3000
    assert report.seconds_per_1k(steps, np.array([1.0, 2.0, 0.5])) == pytest.approx(2.5 / 3)
    assert report.seconds_per_1k(np.empty(0), np.empty(0)) is None


def test_curves_align_on_steps_all_seeds_reached_and_batched_ci_matches_plain():
    a = (np.array([0, 10, 20, 30]), np.array([0.0, 1.0, 2.0, 3.0]))
    b = (np.array([0, 15, 20]), np.array([0.0, 3.0, 4.0]))
    grid, ys = report.align([a, b])
    assert grid.tolist() == [0, 10, 15, 20]  # union, up to b's last step
    assert ys.tolist() == [[0.0, 1.0, 1.5, 2.0], [0.0, 2.0, 3.0, 4.0]]
    assert report.value_at(*b, 5) == pytest.approx(1.0)
    assert report.value_at(*b, 25) is None
    x = np.random.default_rng(3).normal(size=(5, 7))
    mean, lo, hi = report.bootstrap_ci(x)
    for j in range(7):
        mj, lj, hj = report.bootstrap_ci(x[:, j])
        assert (mean[j], lo[j], hi[j]) == pytest.approx((mj, lj, hj), abs=1e-12)
    with pytest.raises(ValueError, match=r"\[n\] or \[n, T\] with n >= 1, got shape \(0,\)"):
        report.bootstrap_ci(np.empty(0))
    assert all(doctest.testmod(m).failed == 0 for m in REPORT_MODULES)


def test_report_writes_pages_pngs_index_and_prints(runs: Path, tmp_path: Path, capsys):
    out = tmp_path / "out"
    assert report.main([str(runs), "--out", str(out), "--anchors", str(tmp_path / "none")]) == 0
    printed = capsys.readouterr()
    assert "# dmc:cartpole-swingup" in printed.out and "| sac | 330.0 [" in printed.out
    assert "no config.yaml" not in printed.err  # old_run is outside runs/
    png = out / "dmc_cartpole-swingup_return.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert not (out / "dmc_cartpole-swingup_ops.png").exists()  # no ops-mbpo run
    assert not (out / "dmc_cartpole-swingup_success.png").exists()
    page = (out / "dmc_cartpole-swingup.md").read_text()
    assert "![dmc_cartpole-swingup_return](dmc_cartpole-swingup_return.png)" in page
    assert "anchor" not in page  # missing anchors dir: no anchors, no error
    index = (out / "index.md").read_text()
    link = "[dmc_cartpole-swingup.md](dmc_cartpole-swingup.md)"
    assert f"| dmc:cartpole-swingup | sac (3), ps-mbpo (3) | {link} |" in index
    assert "[dmc_cartpole-swingup_return](dmc_cartpole-swingup_return.png)" in index


def test_metaworld_success_table_anchors_and_ops_plot(tmp_path: Path):
    root = tmp_path / "runs"
    task = "metaworld:window-open-v3"
    steps = [0, 10_000, 25_000]
    success = {0: [0.0, 0.5, 1.0], 1: [0.0, 0.25, 1.0], 2: [0.0, 0.75, 0.5]}
    for seed, values in success.items():
        write_run(root / f"s{seed}", task, "ops-mbpo", seed, {
            "eval/return": (steps, [0, 1000 * (seed + 1), 2000]),
            "eval/success": (steps, values),
            "ops/p0": (steps, [0.5, 0.6, 0.9]),
            "ops/p1": (steps, [0.5, 0.4, 0.1]),
        })
    anchors = tmp_path / "anchors" / "tdmpc2_results"
    anchors.mkdir(parents=True)
    (anchors / "sac_mw-window-open.csv").write_text(
        "step,success,seed\n0,0.0,1\n0,0.0,2\n100000,0.8,1\n100000,1.0,2\n")
    (anchors / "sac_cartpole-swingup.csv").write_text("step,reward,seed\n100000,800,1\n")
    (anchors / "tdmpc2_mw-window-open.csv").write_text("step,success,seed\n200000,1.0,1\n")
    out = tmp_path / "out"
    pages = report.write_report([root], out, marks=(10_000, 100_000), anchors=tmp_path / "anchors")
    page = pages[task]
    assert f"| ops-mbpo | {fmt([0.5, 0.25, 0.75], 2)} | - |" in page
    assert f"| anchor: SAC (TD-MPC2 results) | - | {fmt([0.8, 1.0], 2)} |" in page
    assert page.count("anchor: SAC") == 1  # success anchor only; the return table has none
    assert "TD-MPC2 (" not in page  # an anchor with no value at any mark gets no row
    for kind in ("return", "success", "ops"):
        assert (out / f"metaworld_window-open-v3_{kind}.png").stat().st_size > 10_000
    assert "![metaworld_window-open-v3_ops](metaworld_window-open-v3_ops.png)" in page
    # steps to 0.9 success (the default success threshold): seeds 0, 1 at 25K, seed 2 never (best 0.75)
    assert "## env steps to eval success >= 0.9" in page and "| ops-mbpo | 25000 | 2/3 |" in page
    half = report.write_report([root], tmp_path / "half", marks=(10_000,), anchors=None,
                               success_threshold=0.5)[task]
    assert "## env steps to eval success >= 0.5" in half and "| ops-mbpo | 15000 | 3/3 |" in half


def test_ops_plot_draws_the_median_committed_seed_member_by_member(tmp_path: Path, monkeypatch):
    """The right panel shows the seed whose last max_i p_i is the (lower) median, not seed 0."""
    from torchrl_psmbpo.recipes.report import plots

    assert plots.median_committed([0.25, 0.84, 0.45, 0.80]) == 2  # sorted: .25 .45 .80 .84
    assert plots.median_committed([0.9, 0.3, 0.6]) == 2
    assert plots.median_committed([0.5, 0.5]) == 0 and plots.median_committed([0.7]) == 0
    root = tmp_path / "runs"
    steps = [0, 10_000, 20_000]
    for seed, last in {0: 0.5, 1: 0.95, 2: 0.7}.items():  # seed 0 never moves; 2 is the median
        write_run(root / f"s{seed}", TASK, "ops-mbpo", seed, {
            "eval/return": (steps, [0.0, 10.0, 20.0]),
            "ops/p0": (steps, [0.5, 0.6, last]), "ops/p1": (steps, [0.5, 0.4, 1 - last])})
    titles = []
    real_save = plots.save_figure

    def spy(fig, out, dpi=110):
        titles.extend(ax.get_title() for ax in fig.axes)
        return real_save(fig, out, dpi)

    monkeypatch.setattr(plots, "save_figure", spy)
    report.write_report([root], tmp_path / "out", anchors=None)
    assert "ops-mbpo: p_i, seed 2 (median last max_i p_i)" in titles, titles


def test_missing_metrics_are_tolerated(tmp_path: Path):
    root = tmp_path / "runs"
    write_run(root / "a", TASK, "sac", 0, {"train/return": ([100], [5.0])})
    write_run(root / "b", TASK, "mbpo", 0, {"eval/return": ([0, 10_000], [0.0, 100.0])})
    write_run(root / "c", TASK, "ops-mbpo", 0, {"eval/return": ([0, 10_000], [0.0, 200.0])})
    pages = report.write_report([root], tmp_path / "out", anchors=None)
    page = pages[TASK]
    assert "| sac | - | - | - | - |" in page  # no evaluations at all
    assert "| mbpo | 100.0 (n=1) | - | - | - |" in page
    assert "| sac | - | 0/0 |" in page
    assert "| sac | - | - | - | - | - |" in page  # no timers
    assert not (tmp_path / "out" / "dmc_cartpole-swingup_ops.png").exists()  # no ops/p* logged


def test_every_member_table_and_plot_from_all_members_runs(tmp_path: Path, runs: Path):
    # ps-mbpo with eval.all_members=true: 3 members, seeds 0-2; agent steps = env steps here.
    root = tmp_path / "members"
    steps = [0, 10_000, 25_000]
    members = {0: ([0, 100, 700], [0, 300, 900], [0, 200, 800]),
               1: ([0, 50, 600], [0, 150, 650], [0, 250, 500]),
               2: ([0, 400, 950], [0, 500, 900], [0, 0, 850])}
    for seed, curves in members.items():
        write_run(root / f"s{seed}", TASK, "ps-mbpo", seed, {
            "eval/return": (steps, curves[0]),
            **{f"eval/return_member{i}": (steps, c) for i, c in enumerate(curves)},
        })
    write_run(root / "sac", TASK, "sac", 0, {"eval/return": (steps, [0, 10, 20])})
    out = tmp_path / "out"
    page = report.write_report([root], out, marks=(10_000, 25_000), anchors=None)[TASK]
    # seed by seed at 25K: worst 700, 500, 850; mean 800, 583.3, 900; best 900, 650, 950
    for name, values in (("worst", [700, 500, 850]), ("mean", [800, 1750 / 3, 2700 / 3]),
                         ("best", [900, 650, 950])):
        assert f"| ps-mbpo: {name} | " in page
        row = next(line for line in page.splitlines() if line.startswith(f"| ps-mbpo: {name} |"))
        assert row.endswith(f"| {fmt(values, 1)} |"), row
    assert "| sac: worst" not in page  # sac logged one member only
    assert (out / "dmc_cartpole-swingup_members.png").stat().st_size > 10_000
    assert "![dmc_cartpole-swingup_members](dmc_cartpole-swingup_members.png)" in page
    # runs without per-member logs: no section, no plot
    plain = report.write_report([runs], tmp_path / "plain", marks=MARKS, anchors=None)[TASK]
    assert "every member" not in plain
    assert not (tmp_path / "plain" / "dmc_cartpole-swingup_members.png").exists()


def test_duplicate_seed_names_differing_keys_and_label_by_splits(tmp_path: Path):
    root = tmp_path / "runs"
    for i, lr in enumerate((0.001, 0.0003)):
        write_run(root / f"r{i}", TASK, "sac", 0, {"eval/return": ([0], [1.0])},
                  extra=f"optim:\n  lr: {lr}\nrun_dir: r{i}\n")
    with pytest.raises(ValueError, match=r"two runs of dmc:cartpole-swingup sac with seed 0: .*"
                                         r"keys that differ: optim\.lr \(use --label-by\)"):
        report.write_report([root], tmp_path / "out", anchors=None)
    pages = report.write_report([root], tmp_path / "out", label_by=["optim.lr"], anchors=None)
    write_run(root / "r2", TASK, "sac", 0, {}, extra="optim:\n  lr: 0.001\nrun_dir: r2\n")
    with pytest.raises(ValueError, match=r"r0 and .*r2; same config: pass only one of them"):
        report.write_report([root], tmp_path / "out", label_by=["optim.lr"], anchors=None)
    assert "| sac optim.lr=0.0003 | 1 (0) |" in pages[TASK]
    assert "| sac optim.lr=0.001 | 1 (0) |" in pages[TASK]


def test_label_by_dir_splits_runs_that_differ_only_in_code(tmp_path: Path):
    root = tmp_path / "calibration" / "dmc_cartpole-swingup"
    for name, value in (("mbpo", 1.0), ("mbpo-oracle", 2.0)):
        write_run(root / name / "seed0", TASK, "mbpo", 0, {"eval/return": ([0, 10], [value, value])})
    with pytest.raises(ValueError, match="same config: pass only one of them"):
        report.write_report([root], tmp_path / "out", anchors=None)
    pages = report.write_report([root], tmp_path / "out", label_by=["dir"], anchors=None)
    assert "| mbpo dir=mbpo | 1 (0) |" in pages[TASK]
    assert "| mbpo dir=mbpo-oracle | 1 (0) |" in pages[TASK]


def test_label_by_short_name_shows_the_key_under_it(tmp_path: Path):
    root = tmp_path / "runs"
    for m, value in ((1, 1.0), (2, 2.0)):
        write_run(root / f"m{m}", TASK, "ps-mbpo", 0, {"eval/return": ([0, 10], [value, value])},
                  extra=f"posterior:\n  policies_per_model: {m}\n")
    pages = report.write_report([root], tmp_path / "out", label_by=["M=posterior.policies_per_model"],
                                anchors=None, reference="ps-mbpo M=1")
    assert "| ps-mbpo M=1 | 1 (0) |" in pages[TASK]
    assert "| ps-mbpo M=2 | 1 (0) |" in pages[TASK]
    assert "## against ps-mbpo M=1" in pages[TASK]
    for bad in ("M=", "=posterior.policies_per_model", "M=a b", "M N=x"):
        with pytest.raises(ValueError, match=r"--label-by takes dotted config keys .* got \["):
            report.write_report([root], tmp_path / "out", label_by=[bad], anchors=None)


def test_bad_configs_name_the_file(tmp_path: Path):
    bad = tmp_path / "bad"
    write_run(bad, TASK, "sac", 0, {})
    (bad / "config.yaml").write_text("variant: [sac\n")
    with pytest.raises(ValueError, match=rf"cannot read run config {bad / 'config.yaml'}"):
        report.load_run(bad)
    (bad / "config.yaml").write_text("variant: sac\nseed: 0\n")
    with pytest.raises(ValueError, match=r"run config .*config\.yaml lacks env\.task"):
        report.load_run(bad)
    (bad / "config.yaml").write_text("variant: sac\nseed: x\nenv:\n  task: t\n")
    with pytest.raises(ValueError, match=r"seed and env\.action_repeat must be integers"):
        report.load_run(bad)
    with pytest.raises(ValueError, match=r"marks must be positive env steps, got \[0\]"):
        report.write_report([tmp_path], tmp_path / "out", marks=[0])
    f = write_run(tmp_path / "csv", TASK, "sac", 0, {"eval/return": ([0, 1], [1.0, 2.0])})
    csv = f / "logs/scalars/eval/return.csv"
    csv.write_text("0,1.0\n2,3.0\n2,5.0\n4,")  # a step logged twice: last wins; partial last line
    steps, values = report.read_scalar(f, "eval/return")
    assert steps.tolist() == [0, 2] and values.tolist() == [1.0, 5.0]
    csv.write_text("0,1.0\noops\n2,3.0\n")
    with pytest.raises(ValueError, match=r"return\.csv:2: expected 'step,value', got 'oops'"):
        report.read_scalar(f, "eval/return")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "torchrl_psmbpo.recipes.report", *args], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)


def test_cli_errors_are_one_line(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    res = run_cli(str(tmp_path / "empty"), "--out", str(tmp_path / "out"))
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.splitlines() == [
        "error: no run dirs (a dir holding config.yaml and logs/scalars/) under "
        f"{tmp_path / 'empty'}"
    ]
    bad = write_run(tmp_path / "runs" / "bad", TASK, "sac", 0, {})
    (bad / "config.yaml").write_text("variant: [sac\n")
    res = run_cli(str(tmp_path / "runs"), "--out", str(tmp_path / "out"))
    assert res.returncode == 1 and len(res.stderr.splitlines()) == 1  # one line, no traceback
    assert res.stderr.startswith(f"error: cannot read run config {bad / 'config.yaml'}: ")
    res = run_cli(str(tmp_path / "runs"), "--marks", "ten")
    assert res.returncode == 2
    assert res.stderr.splitlines() == [
        "error: argument --marks: invalid int value: 'ten' (see --help)"
    ]


def test_threshold_per_task(runs: Path, tmp_path: Path, capsys):
    """--threshold 800 TASK=300: the sparse task's table counts 300, the others 800."""
    sparse = "dmc:cartpole-swingup_sparse"
    write_run(runs / "9", sparse, "sac", 0, {"eval/return": (SAC_STEPS, [0, 100, 350, 700])})
    out = tmp_path / "out"
    args = [str(runs), "--out", str(out), "--anchors", str(tmp_path / "none")]
    assert report.main(args + ["--threshold", "800", f"{sparse}=300"]) == 0
    dense = (out / "dmc_cartpole-swingup.md").read_text()
    assert "## env steps to eval return >= 800" in dense and "| sac | 37500 | 2/3 |" in dense
    page = (out / "dmc_cartpole-swingup_sparse.md").read_text()
    assert "## env steps to eval return >= 300" in page and "| sac | 25000 | 1/1 |" in page
    capsys.readouterr()

    elsewhere = tmp_path / "not-written"
    bad = [str(runs), "--out", str(elsewhere), "--threshold", "800", "dmc:walker-walk=300"]
    assert report.main(bad) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: --threshold names task(s) ['dmc:walker-walk'] that no run has")
    assert sparse in err and len(err.strip().splitlines()) == 1
    assert not elsewhere.exists()
    for item in ("high", "=300", f"{sparse}=", "nan"):
        assert report.main([str(runs), "--out", str(elsewhere), "--threshold", item]) == 1
        assert capsys.readouterr().err == (
            f"error: --threshold takes a number or TASK=NUMBER, got {item!r}\n")
    assert not elsewhere.exists()


def test_success_threshold_out_of_range_is_one_line(runs: Path, tmp_path: Path, capsys):
    """--success-threshold 90 (a percentage, not a rate): one line, nothing written."""
    out = tmp_path / "not-written"
    assert report.main([str(runs), "--out", str(out), "--success-threshold", "90"]) == 1
    assert capsys.readouterr().err == (
        "error: --success-threshold is a success rate in [0, 1], got 90\n")
    assert not out.exists()


def test_terms_table_and_plot_only_when_a_run_logged_a_term(tmp_path: Path):
    """The Marino & Yue terms: exact means at the marks, the neither arm's imagined reward
    beside them, and nothing at all on a task where no run logged a term."""
    root = tmp_path / "inference" / "dmc_cartpole-swingup"
    steps = [0, 10_000, 25_000]
    info = {0: [0.5, 0.2, 0.1], 1: [0.4, 0.3, 0.05]}
    for seed, values in info.items():
        write_run(root / "ps-mbpo+info" / f"seed{seed}", TASK, "ps-mbpo", seed, {
            "eval/return": (steps, [0, 100, 200]),
            "imagined/reward": (steps, [0.1, 0.2, 0.3 + seed]),
            "imagined/information": (steps, values),
        })
        write_run(root / "ps-mbpo+prior" / f"seed{seed}", TASK, "ps-mbpo", seed, {
            "eval/return": (steps, [0, 100, 200]),
            "loss/kl_prior": ([10_000, 25_000], [2.0 + seed, 1.0]),  # nothing logged at step 0
        })
        write_run(root / "ps-mbpo" / f"seed{seed}", TASK, "ps-mbpo", seed, {
            "eval/return": (steps, [0, 100, 200]),
            "imagined/reward": (steps, [0.4, 0.5, 0.6]),
        })
    write_run(root / "sac" / "seed0", TASK, "sac", 0, {"eval/return": (steps, [0, 1, 2])})
    out = tmp_path / "out"
    page = report.write_report([root], out, marks=(10_000, 25_000), label_by=["dir"],
                               anchors=None)[TASK]
    assert "## Marino & Yue terms at env steps" in page

    def ci(values):
        return fmt(values, 3)

    assert (f"| ps-mbpo dir=ps-mbpo+info: imagined/information | {ci([0.2, 0.3])} | "
            f"{ci([0.1, 0.05])} |") in page
    assert (f"| ps-mbpo dir=ps-mbpo+info: imagined/reward | 0.200 [0.200, 0.200] (n=2) | "
            f"{ci([0.3, 1.3])} |") in page
    assert f"| ps-mbpo dir=ps-mbpo+prior: loss/kl_prior | {ci([2.0, 3.0])} | 1.000 [1.000, 1.000] (n=2) |" in page
    assert "| ps-mbpo dir=ps-mbpo: imagined/reward | 0.500 [0.500, 0.500] (n=2) | 0.600 [0.600, 0.600] (n=2) |" in page
    assert "dir=sac:" not in page and "dir=ps-mbpo: imagined/information" not in page
    assert (out / "dmc_cartpole-swingup_terms.png").stat().st_size > 10_000
    assert "![dmc_cartpole-swingup_terms](dmc_cartpole-swingup_terms.png)" in page
    # no run logged a term: neither the table nor the plot, even with imagined rewards logged
    plain = report.write_report([root / "ps-mbpo", root / "sac"], tmp_path / "plain",
                                marks=(10_000,), label_by=["dir"], anchors=None)[TASK]
    assert "Marino & Yue" not in plain
    assert not (tmp_path / "plain" / "dmc_cartpole-swingup_terms.png").exists()


def test_intervals_are_bca_and_percentile_where_bca_is_degenerate():
    skewed = np.array([0.0, 10.0, 20.0, 30.0, 200.0])
    m, lo, hi = report.bootstrap_ci(skewed)
    assert (lo, hi) == pytest.approx(tuple(hand_ci(skewed)), abs=1e-9)
    idx = np.random.default_rng(0).integers(0, 5, size=(2000, 5))
    percentile = np.percentile(skewed[idx].mean(1), [2.5, 97.5])
    assert hi > percentile[1] + 10  # BCa follows the skew: not the percentile interval
    assert report.ci_method(skewed) == "BCa"
    # degenerate: two seeds (percentile), every seed equal (a point), one seed (the value)
    two = np.array([950.0, 900.0])
    assert report.bootstrap_ci(two)[1:] == pytest.approx(tuple(hand_ci(two)), abs=1e-9)
    assert report.ci_method(two) == "percentile"
    assert report.bootstrap_ci(np.full(4, 7.0)) == (7.0, 7.0, 7.0)
    assert report.ci_method(np.full(4, 7.0)) == "percentile"
    assert report.bootstrap_ci(np.array([3.0])) == (3.0, 3.0, 3.0)
    # columns of one call get each its own method, as if computed one by one
    x = np.stack([skewed, np.full(5, 1.0), np.arange(5.0)], axis=1)
    mean, lo, hi = report.bootstrap_ci(x)
    for j in range(3):
        assert (mean[j], lo[j], hi[j]) == pytest.approx(report.bootstrap_ci(x[:, j]), abs=1e-12)
    assert (lo[1], hi[1]) == (1.0, 1.0)
    # symmetric seeds whose float sums differ in the last bit by summation order: the
    # permutations of the seeds still tie with the observed mean, so the interval is symmetric
    seeds = np.array([4.0 * (1 + 0.1 * k) for k in range(3)])  # 4.0, 4.4, 4.800000000000001
    assert report.bootstrap_ci(seeds)[1:] == pytest.approx((4.0, 4.8), abs=1e-9)


def test_default_out_is_beside_the_runs_and_docs_results_only_when_asked(
        runs: Path, tmp_path: Path, monkeypatch, capsys):
    work = tmp_path / "repo"
    work.mkdir()
    monkeypatch.chdir(work)
    assert report.main([str(runs), "--anchors", str(tmp_path / "none")]) == 0
    assert (runs / "report" / "index.md").is_file()
    assert (runs / "report" / "dmc_cartpole-swingup_return.png").is_file()
    assert not (work / "docs").exists()
    assert f"wrote {runs / 'report' / 'index.md'}" in capsys.readouterr().out
    # the report dir beside the runs is not taken for a run the next time
    assert len(report.find_runs([runs])[0]) == 6
    assert report.main([str(runs), "--out", "docs/results", "--anchors", "none"]) == 0
    assert (work / "docs" / "results" / "index.md").is_file()
    assert report.default_out(["a/b", "c"]) == Path("a/b/report")


def test_plots_are_also_svg_and_a_one_evaluation_curve_is_a_marker(tmp_path: Path, monkeypatch):
    root = tmp_path / "runs"
    write_run(root / "one", TASK, "sac", 0, {"eval/return": ([0], [5.0])})
    for seed in range(2):
        write_run(root / f"two{seed}", TASK, "mbpo", seed, {"eval/return": ([0], [5.0 + seed])})
    for seed in range(2):
        write_run(root / f"many{seed}", TASK, "ps-mbpo", seed,
                  {"eval/return": ([0, 10, 20], [1.0, 2.0 + seed, 3.0])})
    out = tmp_path / "out"
    report.write_report([root], out, anchors=None)
    svg = (out / "dmc_cartpole-swingup_return.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    index = (out / "index.md").read_text()
    assert "([svg](dmc_cartpole-swingup_return.svg))" in index
    again = tmp_path / "again"
    report.write_report([root], again, anchors=None)
    assert (again / "dmc_cartpole-swingup_return.svg").read_text() == svg  # reproducible file

    figures = []
    saved = report.plots.save_figure
    monkeypatch.setattr(report.plots, "save_figure",
                        lambda fig, path: figures.append(fig) or saved(fig, path))
    run_dirs, _ = report.find_runs([root])
    groups = report.group_runs([report.load_run(d) for d in run_dirs])
    s = report.summarize(TASK, groups[TASK], (10,), 800.0)
    report.plot_metric(s, "eval/return", tmp_path / "p.png")
    ax = figures[0].axes[0]
    markers = {line.get_label().split(" (")[0]: line.get_marker() for line in ax.lines}
    assert markers == {"sac": "o", "mbpo": "o", "ps-mbpo": "None"}
    assert len(ax.collections) == 2  # mbpo's 2 seeds: an error bar; ps-mbpo's: a band


def test_default_anchors_ship_with_the_package_with_their_licence():
    folder = report.DEFAULT_ANCHORS / "tdmpc2_results"
    assert report.DEFAULT_ANCHORS == ROOT / "recipes" / "anchors"
    assert "MIT License" in (folder / "LICENSE").read_text()
    found = report.load_anchors(report.DEFAULT_ANCHORS, "dmc:cartpole-swingup", "reward")
    assert set(found) == {"sac", "tdmpc2", "dreamerv3"}
    assert found["sac"][100_000].mean() == pytest.approx(835.0, abs=0.05)
    # TD-MPC2 writes dm_control's underscores as hyphens: cartpole-swingup-sparse
    sparse = report.load_anchors(report.DEFAULT_ANCHORS, "dmc:cartpole-swingup_sparse", "reward")
    assert set(sparse) == {"sac", "tdmpc2", "dreamerv3"}
    assert sparse["dreamerv3"][100_000].mean() == pytest.approx(315.3, abs=0.05)
    mw = report.load_anchors(report.DEFAULT_ANCHORS, "metaworld:window-open-v3", "success")
    assert mw["sac"][100_000].mean() == pytest.approx(0.9, abs=0.05)


def row(page: str, variant: str, seed: int) -> str:
    """The page's "Runs" row of one run."""
    found = [line for line in page.splitlines() if line.startswith(f"| {variant} | {seed} | ")]
    assert len(found) == 1, page
    return found[0]


def test_runs_table_gives_each_runs_last_best_first_reaching_run_mean_and_starts(runs: Path,
                                                                                  tmp_path: Path):
    import json

    (runs / "3" / "provenance.json").write_text(json.dumps(  # ps-mbpo seed 0, resumed once
        [{"commit": "a" * 40, "dirty": False, "start_step": s} for s in (0, 9501)]))
    page = report.write_report([runs], tmp_path / "out", MARKS)[TASK]
    assert "| variant | seed | last eval (env steps) | best eval | first >= 800 (env steps) | " \
           "run mean | starts (agent step) | commit |" in page
    # sac seed 0: 0, 300, 600, 900 at env steps 0, 10K, 25K, 50K; run mean (0+300+600+900)/4
    assert row(page, "sac", 0) == "| sac | 0 | 900.0 (50,000) | 900.0 | 50,000 | 450.0 | " \
                                  "not recorded | not recorded |"
    # sac seed 1 (10, 330, 660, 700) never reaches 800
    assert row(page, "sac", 1).startswith("| sac | 1 | 700.0 (50,000) | 700.0 | not reached | 425.0 |")
    # ps-mbpo (action repeat 2) seed 0: 800 first at agent step 12,500 = env step 25K
    assert row(page, "ps-mbpo", 0) == f"| ps-mbpo | 0 | 950.0 (50,000) | 950.0 | 25,000 | " \
                                      f"562.5 | 0, 9,501 | {'a' * 12} |"
    # seed 2 stopped at env step 25K: not in the tests' run means
    assert row(page, "ps-mbpo", 2).startswith("| ps-mbpo | 2 | 900.0 (25,000) | 900.0 | 25,000 | "
                                              "- (shorter) |")


def test_pages_name_the_code_of_every_run_and_same_commit_refuses_a_mix(runs: Path, tmp_path: Path):
    import json

    def stamp(run_dir: Path, *entries: tuple[str, bool]) -> None:
        (run_dir / "provenance.json").write_text(json.dumps(
            [{"commit": c, "dirty": d, "start_step": 0} for c, d in entries]))

    for job in range(6):
        stamp(runs / str(job), ("a" * 40, False))
    pages = report.write_report([runs], tmp_path / "one", MARKS, same_commit=True)
    assert f"Every run on this page was made by commit {'a' * 12}" in pages[TASK]
    stamp(runs / "4", ("b" * 40, False))          # ps-mbpo seed 1 from other code
    stamp(runs / "5", ("a" * 40, False), ("a" * 40, True))  # seed 2 resumed by a dirty tree
    (runs / "0" / "provenance.json").unlink()     # sac seed 0 made before provenance
    page = report.write_report([runs], tmp_path / "mixed", MARKS)[TASK]
    assert "**The runs on this page come from 4 code versions**" in page
    assert f"| {'b' * 12} |" in row(page, "ps-mbpo", 1) and "| not recorded |" in row(page, "sac", 0)
    assert f"| {'a' * 12} then {'a' * 12}+dirty |" in row(page, "ps-mbpo", 2)
    with pytest.raises(ValueError, match=r"--same-commit: the runs of dmc:cartpole-swingup do not "
                                         r"come from one commit of clean code \(.*not recorded: 1 run"):
        report.write_report([runs], tmp_path / "refused", MARKS, same_commit=True)
    assert not (tmp_path / "refused").exists()  # refused before anything is written
    for job in range(6):
        (runs / str(job) / "provenance.json").unlink(missing_ok=True)
    page = report.write_report([runs], tmp_path / "none", MARKS)[TASK]
    assert "**No run on this page recorded the code that made it**" in page
    out = run_cli(str(runs), "--out", str(tmp_path / "cli"), "--same-commit")
    assert out.returncode == 1 and out.stderr.startswith("error: --same-commit: the runs of")
    assert len(out.stderr.strip().splitlines()) == 1


def welch_by_hand(a, b):
    """Welch's two-sided p-value and 95% interval of mean(a) - mean(b), written out
    (Welch-Satterthwaite degrees of freedom)."""
    from scipy.stats import t as student

    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    diff, se = np.mean(a) - np.mean(b), np.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = student.ppf(0.975, df) * se
    return 2 * student.sf(abs(diff / se), df), (diff - half, diff + half)


def test_arms_against_a_reference_exact_tests(runs: Path):
    """ps-mbpo against sac: run means, solved counts, Welch and Fisher p, the detectable effect;
    ps-mbpo's seed 2 stopped at 25K env steps, short of the task's 50K, so it does not count."""
    from scipy.stats import t as student

    s = summary_of(runs, reference="sac")
    assert s.reference == "sac" and list(s.versus) == ["ps-mbpo"]
    t = s.versus["ps-mbpo"]
    sac = [np.mean(v) for v in SAC.values()]  # 450, 425, 507.5
    ps = [np.mean(PS[0]), np.mean(PS[1])]  # 562.5, 500
    assert (t.n, t.ref_n) == (2, 3)
    assert (t.mean, t.ref_mean) == pytest.approx((np.mean(ps), np.mean(sac)))
    assert t.diff == pytest.approx(np.mean(ps) - np.mean(sac))
    p, (low, high) = welch_by_hand(ps, sac)
    assert t.welch_p == pytest.approx(p, rel=1e-9)
    assert (t.welch_low, t.welch_high) == pytest.approx((low, high), rel=1e-9)
    # every resample's difference lies between the extreme pairings of seeds
    assert min(ps) - max(sac) <= t.diff_low < t.diff < t.diff_high <= max(ps) - min(sac)
    sd = np.sqrt((np.var(ps, ddof=1) * 1 + np.var(sac, ddof=1) * 2) / 3)
    mde = (student.ppf(0.975, 3) + student.ppf(0.8, 3)) * sd * np.sqrt(1 / 2 + 1 / 3)
    assert t.mde == pytest.approx(mde, rel=1e-9)
    # solved = reached 800: sac seeds 0 (900) and 2 (840), not 1 (700); ps-mbpo both
    assert (t.solved, t.ref_solved) == (2, 2)
    assert t.fisher_p == pytest.approx(1.0)  # [[2, 0], [2, 1]]
    assert t.detect_low is None and t.detect_high is None  # 2 and 3 seeds detect nothing
    page = report.task_markdown(s)
    assert "## against sac" in page
    assert (f"| ps-mbpo | 2, 3 | {np.mean(ps):.1f}, {np.mean(sac):.1f} | "
            f"{np.mean(ps) - np.mean(sac):+.1f} [") in page
    assert f"| [{low:.1f}, {high:.1f}] |" in page and "| 2/2, 2/3 | 1.000 | none |" in page


def test_power_of_fisher_and_welch_match_their_definitions():
    from torchrl_psmbpo.recipes.report.compare import detectable_rates, fisher_power, welch_mde

    # 1 seed per arm: only 0 of 1 against 1 of 1 could differ, and Fisher's p is then 1
    assert fisher_power(1, 1, 0.0, 1.0) == 0.0
    # 8 against 8 at p0 = 0: p < 0.05 needs b >= 5 of 8 (b = 4 gives p = 0.077)
    from scipy.stats import binom

    assert fisher_power(8, 8, 0.0, 0.6) == pytest.approx(binom.sf(4, 8, 0.6), abs=1e-12)
    low, high = detectable_rates(8, 8, 0.25)
    assert low is None and high == 0.96  # bench/power.py's published reading
    assert welch_mde(4, 4, 1.0) > welch_mde(8, 8, 1.0) > welch_mde(16, 16, 1.0)


def test_reference_that_no_task_has_is_one_line(runs: Path, tmp_path: Path, capsys):
    out = tmp_path / "not-written"
    assert report.main([str(runs), "--out", str(out), "--reference", "mbpo"]) == 1
    assert capsys.readouterr().err == (
        "error: --reference 'mbpo' is not a variant of these runs; accepted: ['ps-mbpo', 'sac']\n")
    assert not out.exists()


def test_arms_by_a_label_key_run_means_and_exact_solve_intervals(tmp_path: Path):
    """--label-by M=...: each arm at its M, run mean with the report's interval and solve rate
    with the Clopper-Pearson interval; a section and a plot only where a variant has two Ms."""
    from scipy.stats import beta

    root = tmp_path / "runs"
    curves = {("ps-mbpo", 1): [[0, 300, 500], [0, 200, 900], [0, 100, 400]],
              ("ps-mbpo", 2): [[0, 600, 850], [0, 500, 820], [0, 700, 810], [0, 400, 700]],
              ("mbpo", 1): [[0, 500, 900], [0, 450, 600]]}
    for (variant, m), seeds in curves.items():
        for seed, values in enumerate(seeds):
            write_run(root / f"{variant}-M{m}" / f"seed{seed}", TASK, variant, seed,
                      {"eval/return": ([0, 10, 20], values)},
                      extra=f"posterior:\n  policies_per_model: {m}\n")
    write_run(root / "short" / "seed9", TASK, "ps-mbpo", 9, {"eval/return": ([0, 10], [0, 990])},
              extra="posterior:\n  policies_per_model: 2\n")  # stops short of 20: left out
    pages = report.write_report([root], tmp_path / "out", label_by=["M=posterior.policies_per_model"],
                                anchors=None)
    points = {p.label: p for p in report.summarize(
        TASK, report.group_runs([report.load_run(d, ["M=posterior.policies_per_model"])
                                 for d in report.find_runs([root])[0]])[TASK],
        MARKS, 800.0, keys=["M"]).along["M"]}
    assert list(points) == ["mbpo M=1", "ps-mbpo M=1", "ps-mbpo M=2"]  # by variant, then M
    for (variant, m), seeds in curves.items():
        p = points[f"{variant} M={m}"]
        means = [np.mean(v) for v in seeds]
        k = sum(max(v) >= 800 for v in seeds)
        n = len(seeds)
        assert (p.variant, p.value, p.n, p.solved) == (variant, m, n, k)
        assert p.mean == pytest.approx(np.mean(means))
        assert [p.low, p.high] == pytest.approx(list(hand_ci(means)))
        low = beta.ppf(0.025, k, n - k + 1) if k > 0 else 0.0
        high = beta.ppf(0.975, k + 1, n - k) if k < n else 1.0
        assert (p.solved_low, p.solved_high) == pytest.approx((low, high))
    page = pages[TASK]
    assert "## by M" in page and "![dmc_cartpole-swingup_by_M](dmc_cartpole-swingup_by_M.png)" in page
    assert "| ps-mbpo M=2 | 2 | 4 | " in page and "| 3/4 | 0.75 [0.19, 0.99] |" in page
    assert (tmp_path / "out" / "dmc_cartpole-swingup_by_M.png").is_file()
    assert (tmp_path / "out" / "dmc_cartpole-swingup_by_M.svg").is_file()
    # one M per variant: nothing to lay out
    other = tmp_path / "out2"
    pages = report.write_report([root / "ps-mbpo-M1", root / "mbpo-M1"], other, anchors=None,
                                label_by=["M=posterior.policies_per_model"])
    assert "## by M" not in pages[TASK] and not list(other.glob("*_by_M.*"))
