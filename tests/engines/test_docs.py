"""docs/engines.md: the Ray and Spark recipes run as written, each in its own process (as a user
would run them), against the mock through ``REVE_REMIX_BASE_URL``."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from reve_remix.testing import MockServer
from tests.conftest import API_KEY
from tests.docs_examples import block_importing


@pytest.mark.parametrize(
    ("module", "expected"),
    [("ray", "20 ['done']"), ("pyspark", "[Row(status='done', count=20)]")],
)
def test_the_engine_recipes_run_as_written(tmp_path, module, expected):
    code = block_importing("engines.md", module)
    with MockServer() as server:
        env = {
            **os.environ,
            "ONEROUTER_API_KEY": API_KEY,
            "REVE_REMIX_BASE_URL": server.base_url,
            "PYSPARK_PYTHON": sys.executable,
        }
        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == expected
    assert len(list((tmp_path / "remix-store").glob("sku-*.png"))) == 20
