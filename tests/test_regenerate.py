"""``scripts/regenerate.py``: deterministic, and ``--check`` catches hand edits and stale output.

Each test works on a copy of the repository's inputs in a temporary folder, so the real
``generated/`` is never touched.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    copy = tmp_path_factory.mktemp("repo")
    for name in ("openapi", "generated", "scripts"):
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    return copy


def run(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(repo / "scripts" / "regenerate.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_check_passes_on_the_committed_tree(repo):
    result = run(repo, "--check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_fails_with_a_diff_on_a_hand_edit_then_regenerate_restores(repo):
    model = repo / "generated" / "reve_remix_api" / "models" / "remix_request.py"
    original = model.read_text()
    model.write_text(original.replace("prompt: str", "prompt: str  # edited by hand", 1))
    stray = repo / "generated" / "reve_remix_api" / "stray.py"
    stray.write_text("x = 1\n")
    result = run(repo, "--check")
    assert result.returncode == 1
    assert "edited by hand" in result.stdout
    assert "stray.py" in result.stdout
    assert run(repo).returncode == 0
    assert model.read_text() == original
    assert not stray.exists()
    assert run(repo, "--check").returncode == 0


def test_a_vendor_change_flows_through_one_command(repo):
    """Add an output format and a response field upstream: one command updates everything."""
    vendor_path = repo / "openapi" / "vendor.openapi.json"
    vendor_bytes = vendor_path.read_bytes()
    vendor = json.loads(vendor_bytes)
    operation = vendor["paths"]["/v1/images/edits"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    schema["properties"]["output_format"]["enum"].append("png_bytes")
    response = operation["responses"]["200"]["content"]["application/json"]["schema"]
    response["properties"]["usage"] = {"type": "integer"}
    vendor_path.write_text(json.dumps(vendor))
    try:
        assert run(repo, "--check").returncode == 1
        assert run(repo).returncode == 0
        generated = repo / "generated" / "reve_remix_api" / "models"
        assert 'PNG_BYTES = "png_bytes"' in (generated / "output_format.py").read_text()
        assert "usage" in (generated / "remix_response.py").read_text()
        corrected = json.loads((repo / "openapi" / "corrected.openapi.json").read_text())
        assert "png_bytes" in corrected["components"]["schemas"]["OutputFormat"]["enum"]
    finally:
        vendor_path.write_bytes(vendor_bytes)
        assert run(repo).returncode == 0


def test_a_vendor_change_a_correction_relies_on_fails_loudly(repo):
    vendor_path = repo / "openapi" / "vendor.openapi.json"
    vendor_bytes = vendor_path.read_bytes()
    vendor_path.write_bytes(vendor_bytes.replace(b"`3:4,` `1:1`", b"`3:4`, `1:1`, `21:9`"))
    try:
        result = run(repo)
        assert result.returncode != 0
        assert "corrections.json no longer applies" in result.stderr
    finally:
        vendor_path.write_bytes(vendor_bytes)


def test_generated_package_records_its_provenance():
    import hashlib

    from reve_remix_api import _provenance

    vendor = (ROOT / "openapi" / "vendor.openapi.json").read_bytes()
    assert hashlib.sha256(vendor).hexdigest() == _provenance.VENDOR_SPEC_SHA256
    corrected = (ROOT / "openapi" / "corrected.openapi.json").read_bytes()
    assert hashlib.sha256(corrected).hexdigest() == _provenance.CORRECTED_SPEC_SHA256
    assert _provenance.GENERATOR == "openapi-python-client==0.29.1"
