"""bench/diagnose/visited_states.py: the coverage number printed beside the visitation figure."""

from __future__ import annotations

import argparse
import doctest
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "diagnose" / "visited_states.py"
sys.path.insert(0, str(SCRIPT.parent))  # as when run: it imports its helpers (run_dirs) by name
spec = importlib.util.spec_from_file_location("visited_states", SCRIPT)
vs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(vs)


def test_coverage_counts_each_visited_cell_once():
    lo, hi = torch.zeros(2), torch.ones(2)
    corners = torch.tensor([[0.0, 0.0], [0.99, 0.99], [0.0, 0.99], [0.99, 0.0]])
    assert vs.coverage(corners, lo, hi, bins=4) == 4 / 16
    repeated = corners.repeat(50, 1)  # visiting a cell again adds nothing
    assert vs.coverage(repeated, lo, hi, bins=4) == 4 / 16


def test_coverage_puts_the_box_edges_in_the_edge_cells():
    lo, hi = torch.zeros(2), torch.ones(2)
    # the upper edge belongs to the last cell, not to one past it
    assert vs.coverage(torch.tensor([[1.0, 1.0], [0.99, 0.99]]), lo, hi, bins=10) == 1 / 100
    grid = torch.cartesian_prod(torch.arange(10.0), torch.arange(10.0)) / 10 + 0.05
    assert vs.coverage(grid, lo, hi, bins=10) == 1.0


def test_projection_argument_names_the_bad_value():
    assert vs.parse_projection("0,4") == (0, 4)
    with pytest.raises(argparse.ArgumentTypeError, match="expected two indices like 0,4, got '0'"):
        vs.parse_projection("0")


def test_run_without_checkpoint_is_one_line_before_any_work(tmp_path):
    with pytest.raises(SystemExit, match=f"no checkpoint.pt in {tmp_path}"):
        vs.main(["--out", str(tmp_path / "fig"), f"a={tmp_path}"])
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_doctest():
    assert doctest.testmod(vs).failed == 0
