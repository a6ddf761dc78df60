"""Every ```python block of docs/*.md runs: one test per (file, block), so a failure names both.

The blocks of one page share a namespace and run in order, as a reader would paste them. A
block preceded by an HTML comment ``<!-- skip: reason -->`` is not run (keep those rare, and say
why in the comment). Blocks run with one torch thread, in a temporary working directory.
"""

from __future__ import annotations

import re
import traceback
import warnings
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
_SKIP = re.compile(r"<!--\s*skip:\s*(.+?)\s*-->\s*$")


def doc_blocks(path: Path) -> list[tuple[int, str, str | None]]:
    """``(line, code, skip_reason)`` of every python block of a markdown file, in order."""
    text = path.read_text(encoding="utf-8")
    blocks = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").splitlines()
        previous = before[-1] if before else ""
        skip = _SKIP.search(previous)
        line = text.count("\n", 0, match.start()) + 1
        blocks.append((line, match.group(1), skip.group(1) if skip else None))
    return blocks


PAGES = sorted(DOCS.glob("*.md"))
CASES = [
    pytest.param(page.name, i, id=f"{page.name}:block{i}@line{line}")
    for page in PAGES
    for i, (line, _, _) in enumerate(doc_blocks(page))
]
_namespaces: dict[str, tuple[dict, int]] = {}  # page -> (namespace, blocks run so far)


def _run(page: str, code: str, namespace: dict, line: int) -> None:
    # pad so that tracebacks give the line in the markdown file
    exec(compile("\n" * line + code, f"docs/{page}", "exec"), namespace)


def test_the_block_parser_finds_blocks_and_skip_markers(tmp_path):
    page = tmp_path / "x.md"
    page.write_text(
        "text\n```python\na = 1\n```\n\n<!-- skip: needs a GPU -->\n```python\nb = 2\n```\n"
        "```bash\nls\n```\n"
    )
    assert doc_blocks(page) == [(2, "a = 1\n", None), (7, "b = 2\n", "needs a GPU")]


@pytest.mark.parametrize(("page", "index"), CASES)
def test_doc_block_runs(page, index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # blocks may save files (torch.save, ...)
    blocks = doc_blocks(DOCS / page)
    namespace, done = _namespaces.get(page, ({"__name__": f"docs_{page}"}, 0))
    # earlier blocks of the page first (they may run in another worker under pytest-xdist)
    for j in range(done, index):
        line, code, skip = blocks[j]
        if skip is None:
            try:
                _run(page, code, namespace, line)
            except Exception:
                pytest.fail(f"an earlier block of docs/{page} (line {line}) failed:\n{traceback.format_exc()}")
    _namespaces[page] = (namespace, index + 1)
    line, code, skip = blocks[index]
    if skip is not None:
        pytest.skip(f"docs/{page} line {line}: {skip}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _run(page, code, namespace, line)
    # a reader pasting the block should see no warning from TorchRL about how it is used
    noisy = [str(w.message) for w in caught if _TORCHRL_USAGE_WARNING.search(str(w.message))]
    assert not noisy, f"docs/{page} line {line} makes TorchRL warn: {noisy[0][:300]}"
    for w in caught:  # the others as pytest would have shown them
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


_TORCHRL_USAGE_WARNING = re.compile(r"auto_register_policy_transforms|missing transforms required")
