"""The README's ``>>>`` examples run as doctests, so the documentation cannot rot."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_examples_pass():
    result = doctest.testfile(str(README), module_relative=False, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 8
    assert result.failed == 0


def test_readme_mock_server_example_runs():
    """The "Testing your own code" example is self-contained: it runs as written."""
    text = README.read_text(encoding="utf-8")
    blocks = [block.split("```", 1)[0] for block in text.split("```python\n")[1:]]
    examples = [block for block in blocks if "MockServer()" in block]
    assert len(examples) == 1
    exec(compile(examples[0], str(README), "exec"), {})


DOCS = sorted((README.parent / "docs").glob("*.md"))


@pytest.mark.parametrize("guide", DOCS, ids=lambda path: path.name)
def test_docs_examples_pass(guide):
    """Every guide under docs/ keeps its ``>>>`` examples runnable."""
    result = doctest.testfile(str(guide), module_relative=False, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
