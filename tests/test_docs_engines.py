"""docs/engines.md: the engine-free examples run as written against the mock (the Ray and Spark
recipes run in tests/engines/test_docs.py, where those engines are installed)."""

from __future__ import annotations

import re

import pytest

from reve_remix import PaidStore
from tests.conftest import API_KEY, claim_by_a_stopped_process
from tests.docs_examples import python_blocks

GUIDE = "engines.md"


def test_the_engine_free_examples_run_as_written(server, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ONEROUTER_API_KEY", API_KEY)
    monkeypatch.setenv("REVE_REMIX_BASE_URL", server.base_url)
    blocks = [
        b for b in python_blocks(GUIDE) if not re.search(r"^(from|import) (ray|pyspark)", b, re.M)
    ]
    assert len(blocks) == 2

    exec(compile(blocks[0], GUIDE, "exec"), {})  # remix_rows
    assert capsys.readouterr().out == "cat done\nbad failed\n"

    claim_by_a_stopped_process("remix-store", "lost")  # a worker killed mid-request
    exec(compile(blocks[1], GUIDE, "exec"), {})  # list the ambiguous rows, send them again
    assert capsys.readouterr().out.startswith("lost None sent (attempt 1) but no outcome")
    assert PaidStore("remix-store").lookup("lost").status == "pending"


@pytest.mark.parametrize("module", ["ray", "pyspark"])
def test_the_guide_has_a_recipe_for_each_engine(module):
    assert any(
        re.search(rf"^from {module}|^import {module}", b, re.M) for b in python_blocks(GUIDE)
    )
