"""The mock server checked against the spec by schemathesis, a tool nobody here wrote.

Runs ``scripts/schemathesis_mock.py`` with a small budget (a few seconds): every schemathesis
check against ``openapi/corrected.openapi.json``, and no finding beyond the ones the script
documents as the mock behaving by design. Skipped where schemathesis is not installed.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "schemathesis_mock.py"

pytestmark = [
    pytest.mark.slow,  # deep: .ci/run runs it after the README command
    pytest.mark.skipif(
        importlib.util.find_spec("schemathesis") is None, reason="schemathesis is not installed"
    ),
]


def test_schemathesis_finds_nothing_unexpected_in_the_mock_server():
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--max-examples", "100", "--seed", "3"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "0 unexpected finding(s)." in completed.stdout
    assert "| response_schema_conformance |" in completed.stdout
    assert "| positive_data_acceptance |" in completed.stdout
