"""bench/speed/bench_update_capture.py (what bench/checks/gpu_session.sh times on a GPU) runs end to end
on a CPU at a tiny shape: every mode from the same state, checked against eager, a table and JSON
written row by row, and a mode that cannot run gets an error row and exit status 1."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "bench_update_capture", Path(__file__).resolve().parents[1] / "bench" / "speed" / "bench_update_capture.py")
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)
main = _module.main

TINY = ["--device", "cpu", "--shape", "1x2", "--hidden", "8", "--batch", "8", "--obs", "3", "--act", "1",
        "--check", "3", "--warmup", "1", "--rounds", "2", "--updates", "2"]


def test_modes_are_checked_against_eager_and_tabled(tmp_path):
    out = tmp_path / "capture.md"
    assert main([*TINY, "--modes", "hand-written", "--out", str(out)]) == 0
    rows = json.loads(out.with_suffix(".json").read_text())["rows"]
    assert [r["mode"] for r in rows] == ["eager", "hand-written"]  # eager first: the reference
    # on a CPU eager is the hand-written update itself: the same numbers
    assert rows[1]["path"] == "hand-written" and rows[1]["loss_diff"] == rows[1]["state_diff"] == 0
    assert all(r["same"] and r["ms_median"] > 0 for r in rows)
    table = out.read_text()
    assert "| eager | hand-written | False | False |" in table and "1x2 = 2 members" in table


def test_a_mode_that_cannot_run_gets_an_error_row(tmp_path):
    out = tmp_path / "capture.md"
    assert main([*TINY, "--modes", "eager,cudagraphs", "--out", str(out)]) == 1
    assert "| cudagraphs | error: RuntimeError: cudagraphs=True is ignored on cpu |" in out.read_text()
