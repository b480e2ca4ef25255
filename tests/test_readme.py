"""The examples of the README and of every guide in ``docs/`` run, so the documentation cannot rot.

Two kinds run: every ``>>>`` example (as a doctest, one file at a time), and every ```python
block marked ``<!-- runnable -->`` on the line before it: a self-contained program, usually
against ``MockServer``, executed as written. Unmarked blocks are illustrations that need an API
key or files of your own.
"""

from __future__ import annotations

import doctest
import re
import shutil
from pathlib import Path

import pytest

from reve_remix.testing import MockServer

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKER = re.compile(r"^<!-- runnable -->$", re.MULTILINE)
RUNNABLE = re.compile(r"^<!-- runnable -->\n```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _runnable_blocks() -> list[tuple[Path, int, str]]:
    return [
        (path, number, block)
        for path in DOCUMENTS
        for number, block in enumerate(RUNNABLE.findall(path.read_text(encoding="utf-8")), 1)
    ]


@pytest.mark.parametrize("path", DOCUMENTS, ids=_name)
def test_doctest_examples_pass(path):
    result = doctest.testfile(str(path), module_relative=False, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_the_documents_have_examples():
    """A guard against the parsing above silently finding nothing."""
    parser = doctest.DocTestParser()
    examples = sum(
        len(parser.get_examples(path.read_text(encoding="utf-8"), _name(path)))
        for path in DOCUMENTS
    )
    assert examples >= 20
    markers = sum(len(MARKER.findall(path.read_text(encoding="utf-8"))) for path in DOCUMENTS)
    assert len(BLOCKS) == markers >= 3  # every marker sits right above a ```python block


BLOCKS = _runnable_blocks()


@pytest.mark.parametrize(
    ("path", "number", "block"), BLOCKS, ids=[f"{_name(p)}-{n}" for p, n, _ in BLOCKS]
)
def test_runnable_blocks_run(path, number, block):
    exec(compile(block, f"{path}, runnable block {number}", "exec"), {})


def test_the_mock_server_example_is_runnable():
    """The "testing your error handling" example scripts a fault: it must stay runnable."""
    examples = [block for _, _, block in BLOCKS if "server.enqueue(Fault(" in block]
    assert examples


def test_the_readme_stays_short_and_ci_runs_its_test_command():
    """The README is the pitch, two commands, a tour and links; guides go to ``docs/``."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode()) < 12 * 1024
    command = (
        "python3 -m venv .venv && .venv/bin/pip install -q -e '.[dev]' "
        "&& .venv/bin/python -m pytest"
    )
    assert command in readme
    assert f"\n{command}\n" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_the_remix_many_example_runs_and_saves_every_image(tmp_path, monkeypatch):
    """The ``remix_many`` example, run as written against the mock server, saves all four.

    It saves after its ``with`` block on purpose: results outlive their client.
    """
    blocks = [
        (path, block.split("```", 1)[0])
        for path in DOCUMENTS
        for block in path.read_text(encoding="utf-8").split("```python\n")[1:]
    ]
    [(path, example)] = [(p, block) for p, block in blocks if "client.remix_many(jobs" in block]
    shutil.copy(ROOT / "reve_remix" / "_samples" / "sofa.jpg", tmp_path / "park.jpg")
    monkeypatch.chdir(tmp_path)
    with MockServer() as server:
        monkeypatch.setenv("ONEROUTER_API_KEY", "sk-readme-example")
        monkeypatch.setenv("REVE_REMIX_BASE_URL", server.base_url)
        exec(compile(example, str(path), "exec"), {})
        posts = [request for request in server.requests if request.method == "POST"]
    assert len(posts) == 4
    for season in ("spring", "summer", "autumn", "winter"):
        assert (tmp_path / f"park-{season}.png").read_bytes().startswith(b"\x89PNG")
