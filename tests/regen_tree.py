"""A copy of the project in a temporary folder, for drills that change the vendor's spec.

The copy holds what regeneration reads and writes (``openapi/``, ``generated/``, ``scripts/``,
``pyproject.toml``) and the facade (``reve_remix/``), so that code run in it with
:func:`run_python` imports the copy's facade and its freshly generated client, never the
project's own.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PARTS = ("openapi", "generated", "scripts", "reve_remix")


def copy_tree(destination: Path) -> Path:
    for name in PARTS:
        shutil.copytree(
            ROOT / name, destination / name, ignore=shutil.ignore_patterns("__pycache__")
        )
    for name in ("pyproject.toml", "conftest.py"):  # conftest.py: the doctest collection rules
        shutil.copy(ROOT / name, destination / name)
    return destination


def regenerate(tree: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``scripts/regenerate.py`` of ``tree``, run as a maintainer runs it."""
    return subprocess.run(
        [sys.executable, str(tree / "scripts" / "regenerate.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def run_python(tree: Path, code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with the tree's facade and generated client first on the import path."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), str(tree / "generated")])}
    env.pop("ONEROUTER_API_KEY", None)
    env.pop("REVE_REMIX_BASE_URL", None)
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tree,
        env=env,
        check=False,
    )


def vendor() -> dict[str, Any]:
    """The project's vendor spec, parsed (a fresh copy each time)."""
    return json.loads((ROOT / "openapi" / "vendor.openapi.json").read_bytes())


def operation(spec: dict[str, Any], path: str = "/v1/images/edits") -> dict[str, Any]:
    return spec["paths"][path]["post"]


def request_schema(spec: dict[str, Any]) -> dict[str, Any]:
    return operation(spec)["requestBody"]["content"]["application/json"]["schema"]


def response_schema(spec: dict[str, Any]) -> dict[str, Any]:
    return operation(spec)["responses"]["200"]["content"]["application/json"]["schema"]


def with_response_fields(spec: dict[str, Any]) -> dict[str, Any]:
    """Drill a: optional ``data[].seed`` (integer) and top-level ``usage`` (object)."""
    changed = copy.deepcopy(spec)
    response = response_schema(changed)
    response["properties"]["usage"] = {"type": "object", "description": "What the call cost."}
    response["properties"]["data"]["items"]["properties"]["seed"] = {"type": "integer"}
    return changed


def write_spec(path: Path, spec: dict[str, Any]) -> Path:
    """Write ``spec`` compactly, as the vendor publishes it."""
    path.write_text(json.dumps(spec, ensure_ascii=False, separators=(",", ":")) + "\n")
    return path
