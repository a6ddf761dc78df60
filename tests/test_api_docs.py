"""The pdoc API reference (docs/api.md) builds from the docstrings with no warning."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BUILD_SCRIPT = Path(__file__).resolve().parent.parent / "docs" / "build_api.py"


def test_api_reference_builds_with_every_public_module(tmp_path):
    pytest.importorskip("pdoc", reason="pdoc is not installed (pip install -e '.[docs]')")
    spec = importlib.util.spec_from_file_location("build_api", BUILD_SCRIPT)
    build_api = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_api)
    index = build_api.build(tmp_path)  # raises on any pdoc warning
    assert index == tmp_path / "index.html" and index.exists()
    pages = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.html")}
    for module in ("torchrl_psmbpo", "torchrl_psmbpo/world_model/imagined_env", "torchrl_psmbpo/policy/ensemble",
                   "torchrl_psmbpo/sampling", "torchrl_psmbpo/replay/buffers", "torchrl_psmbpo/theory/tabular/psrl"):
        assert f"{module}.html" in pages, module
    assert not any("/_" in page for page in pages)  # private modules stay out
    ensemble = (tmp_path / "torchrl_psmbpo/policy/ensemble.html").read_text(encoding="utf-8")
    assert "member_index" in ensemble and "flat_index" in ensemble
    env = (tmp_path / "torchrl_psmbpo/world_model/imagined_env.html").read_text(encoding="utf-8")
    assert "start_states" in env
