"""Build the HTML API reference of ``torchrl_psmbpo`` from its docstrings with pdoc (docs/api.md).

Usage (from the repository root)::

    .venv/bin/python docs/build_api.py            # writes docs/api/index.html (ignored by git)
    .venv/bin/python docs/build_api.py OUT_DIR    # anywhere else

Every public module under ``components/`` gets a page (``pdoc torchrl_psmbpo`` alone would stop at
the package's ``__all__``, which lists classes, not modules). Docstrings are read as Google
style. Any warning fails the build, except pdoc's notes that it cannot resolve a few
annotations of members that our classes *inherit from TorchRL* (names TorchRL imports only
under ``TYPE_CHECKING``): those are filtered by their exact text below.
"""

from __future__ import annotations

import os
import pkgutil
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# TorchRL's inherited members (Transform.collector, EnvBase._collector) annotate with names it
# imports only for type checkers; pdoc cannot evaluate them. Nothing of ours is filtered.
_TORCHRL_ANNOTATIONS = (
    r"Error parsing type annotation (BaseCollector|weakref\.ReferenceType\[LLMCollector\]) \| None "
    r"for [\w.]+\.(collector|_collector)\. Import of (BaseCollector|LLMCollector) failed"
)


def public_modules() -> list[str]:
    """``torchrl_psmbpo`` and every module under it whose dotted name has no ``_``-prefixed part,
    the recipes (``torchrl_psmbpo.recipes``, the folder ``recipes/``) left out."""
    import importlib

    import torchrl_psmbpo

    names = [torchrl_psmbpo.__name__]
    for info in pkgutil.walk_packages(torchrl_psmbpo.__path__, prefix="torchrl_psmbpo."):
        parts = info.name.split(".")
        # a wheel has recipes/ inside the package's folder, an editable install does not
        if parts[1] != "recipes" and not any(part.startswith("_") for part in parts):
            names.append(info.name)
    # pdoc walks a package without __all__ itself: name only what it would not reach
    def reached(name: str) -> bool:
        parent = name.rpartition(".")[0]
        return parent in names and not hasattr(importlib.import_module(parent), "__all__")

    return [name for name in names if not reached(name)]


def build(output_directory: str | Path = ROOT / "docs" / "api") -> Path:
    """Writes the reference to ``output_directory`` and returns the path of its index.html.

    Raises:
        RuntimeError: when pdoc warns (other than the TorchRL annotations above).
    """
    # dm_control's import probes GLFW in a subprocess; pdoc blocks subprocesses unless allowed
    os.environ.setdefault("PDOC_ALLOW_EXEC", "1")
    import pdoc
    import pdoc.render

    pdoc.render.configure(docformat="google", footer_text="psmbpo-components")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", message=_TORCHRL_ANNOTATIONS)
        pdoc.pdoc(*public_modules(), output_directory=Path(output_directory))
    problems = [str(w.message) for w in caught]
    if problems:
        raise RuntimeError("pdoc warned:\n" + "\n".join(problems))
    return Path(output_directory) / "index.html"


if __name__ == "__main__":
    print(build(*sys.argv[1:2]))
