"""bench/speed/phase_times.py: seconds per 1K agent steps by phase, over the learning steps."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "bench_phase_times", Path(__file__).resolve().parents[1] / "bench" / "speed" / "phase_times.py")
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)
main, phase_seconds_per_1k = _module.main, _module.phase_seconds_per_1k


def _run(root: Path, rows: dict[str, list[tuple[int, float]]], init: int | None = None) -> Path:
    (root / "logs" / "scalars" / "time").mkdir(parents=True)
    for phase, pts in rows.items():
        text = "".join(f"{s},{v}\n" for s, v in pts)
        (root / "logs" / "scalars" / "time" / f"{phase}_s.csv").write_text(text)
    if init is not None:
        (root / "config.yaml").write_text(f"run:\n  total_steps: 3000\n  init_random_steps: {init}\n")
    return root


def test_the_window_starts_after_the_random_steps_of_the_runs_config(tmp_path):
    cum = {"env": [(500, 1.0), (1000, 2.0), (3000, 6.0)],
           "model": [(500, 0.0), (1000, 0.0), (3000, 8.0)],
           "rollout": [(500, 0.0), (1000, 0.0), (3000, 2.0)],
           "update": [(500, 0.0), (1000, 0.0), (3000, 100.0)]}
    run = _run(tmp_path / "a", cum, init=1000)
    out = phase_seconds_per_1k(run)
    assert out == {"env": 2.0, "model": 4.0, "rollout": 1.0, "update": 50.0, "total": 57.0,
                   "steps": 2000}
    # an explicit window: the random-action steps alone
    assert phase_seconds_per_1k(run, start=0, end=1000)["env"] == 2.0


def test_bad_runs_are_one_line_each(tmp_path, capsys):
    short = _run(tmp_path / "short", {p: [(100, 1.0)] for p in ("env", "model", "rollout", "update")})
    with pytest.raises(ValueError, match="fewer than two logged steps"):
        phase_seconds_per_1k(short)
    assert main([str(short), str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "no time logs" in err[1] and "Traceback" not in "".join(err)
