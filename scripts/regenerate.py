#!/usr/bin/env python3
"""Regenerate ``generated/reve_remix_api`` from the vendor's OpenAPI spec.

    python scripts/regenerate.py          # rewrite generated/ and openapi/corrected.openapi.json
    python scripts/regenerate.py --check  # exit 1, with a diff, if either is stale or hand-edited

Pipeline: ``openapi/vendor.openapi.json`` (byte-for-byte as published) → the RFC 6902 JSON
Patch ``openapi/corrections.json`` → ``openapi/corrected.openapi.json`` (committed, so a vendor
change is a readable diff) → openapi-python-client, at the exact version pinned in
pyproject.toml's ``dev`` extra, configured by ``openapi/generator-config.yaml`` and formatted by
the pinned ruff → a temporary folder, which then replaces ``generated/reve_remix_api`` whole
(the generator's own ``--overwrite`` leaves stray files behind). The same inputs always give
the same bytes.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OPENAPI = ROOT / "openapi"
VENDOR_SPEC = OPENAPI / "vendor.openapi.json"
CORRECTIONS = OPENAPI / "corrections.json"
CORRECTED_SPEC = OPENAPI / "corrected.openapi.json"
GENERATOR_CONFIG = OPENAPI / "generator-config.yaml"
PACKAGE = "reve_remix_api"
GENERATED = ROOT / "generated" / PACKAGE
PINNED_TOOLS = ("openapi-python-client", "ruff")


def pinned_versions() -> dict[str, str]:
    """The exact ``==`` pins of the generator and formatter in pyproject.toml's ``dev`` extra."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    pins = {}
    for requirement in pyproject["project"]["optional-dependencies"]["dev"]:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)==([^\s;]+)", requirement.strip())
        if match and match.group(1) in PINNED_TOOLS:
            pins[match.group(1)] = match.group(2)
    missing = set(PINNED_TOOLS) - pins.keys()
    if missing:
        sys.exit(f"pyproject.toml's dev extra must pin {sorted(missing)} with '=='")
    return pins


def check_tool_versions(pins: dict[str, str]) -> None:
    """Refuse to generate with unpinned tools: their output differs between versions."""
    for tool, wanted in pins.items():
        try:
            found = metadata.version(tool)
        except metadata.PackageNotFoundError:
            found = "not installed"
        if found != wanted:
            sys.exit(f"{tool} {wanted} is pinned but {found} is installed: pip install -e '.[dev]'")


def corrected_spec_text() -> str:
    """Apply the declared corrections to the vendor spec; fail loudly if they no longer fit."""
    import jsonpatch

    vendor = json.loads(VENDOR_SPEC.read_bytes())
    patch = jsonpatch.JsonPatch(json.loads(CORRECTIONS.read_bytes()))
    try:
        corrected = patch.apply(vendor)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        sys.exit(
            f"openapi/corrections.json no longer applies to the vendor spec ({exc}).\n"
            "The vendor changed something a correction relies on: review the change and update "
            "the corrections."
        )
    return json.dumps(corrected, indent=2, ensure_ascii=False) + "\n"


def provenance_module(spec_text: str, pins: dict[str, str]) -> str:
    """A module recording what the package was generated from, for humans and for --check."""
    vendor_sha = hashlib.sha256(VENDOR_SPEC.read_bytes()).hexdigest()
    corrected_sha = hashlib.sha256(spec_text.encode()).hexdigest()
    return (
        '"""Provenance of this generated package. Written by scripts/regenerate.py."""\n\n'
        f'VENDOR_SPEC_SHA256 = "{vendor_sha}"\n'
        f'CORRECTED_SPEC_SHA256 = "{corrected_sha}"\n'
        f'GENERATOR = "openapi-python-client=={pins["openapi-python-client"]}"\n'
        f'FORMATTER = "ruff=={pins["ruff"]}"\n'
    )


def generate(spec_text: str, pins: dict[str, str], workdir: Path) -> Path:
    """Run the generator into ``workdir`` and return the package folder it produced."""
    spec_path = workdir / "openapi.json"
    spec_path.write_text(spec_text, encoding="utf-8")
    out = workdir / PACKAGE
    bin_dir = str(Path(sys.executable).parent)  # the pinned ruff used by the post-hooks
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    env.pop("RUFF_CACHE_DIR", None)
    command = [
        sys.executable, "-m", "openapi_python_client", "generate",
        "--path", str(spec_path),
        "--config", str(GENERATOR_CONFIG),
        "--meta", "none",
        "--output-path", str(out),
        "--fail-on-warning",
    ]  # fmt: skip
    result = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True)
    if result.returncode != 0 or not out.is_dir():
        sys.exit(f"openapi-python-client failed:\n{result.stdout}\n{result.stderr}")
    # The package ships its own spec: the mock server validates requests against it.
    shutil.copyfile(spec_path, out / "openapi.json")
    (out / "_provenance.py").write_text(provenance_module(spec_text, pins), encoding="utf-8")
    (out / "py.typed").write_text("# Marker file for PEP 561\n", encoding="utf-8")
    return out


def tree(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` by relative path (caches excluded)."""
    if not folder.is_dir():
        return {}
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def diff(expected: dict[str, bytes], actual: dict[str, bytes], label: str) -> list[str]:
    """A unified diff of two file trees, from what is committed to what regeneration produces."""
    lines: list[str] = []
    for name in sorted(expected.keys() | actual.keys()):
        old, new = actual.get(name), expected.get(name)
        if old == new:
            continue
        lines.extend(
            difflib.unified_diff(
                (old or b"").decode(errors="replace").splitlines(keepends=True),
                (new or b"").decode(errors="replace").splitlines(keepends=True),
                fromfile=f"{label}/{name}" if old is not None else "/dev/null",
                tofile=f"{label}/{name} (regenerated)" if new is not None else "/dev/null",
            )
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="fail with a diff if generated/ is stale"
    )
    args = parser.parse_args()

    pins = pinned_versions()
    check_tool_versions(pins)
    spec_text = corrected_spec_text()
    with tempfile.TemporaryDirectory(prefix="reve-remix-regen-") as tmp:
        fresh = generate(spec_text, pins, Path(tmp))
        if args.check:
            stale = diff(tree(fresh), tree(GENERATED), "generated/" + PACKAGE)
            committed_spec = CORRECTED_SPEC.read_text("utf-8") if CORRECTED_SPEC.exists() else ""
            stale += difflib.unified_diff(
                committed_spec.splitlines(keepends=True),
                spec_text.splitlines(keepends=True),
                fromfile="openapi/corrected.openapi.json",
                tofile="openapi/corrected.openapi.json (regenerated)",
            )
            if stale:
                sys.stdout.writelines(stale)
                print("\ngenerated/ is stale or was edited by hand: run scripts/regenerate.py")
                return 1
            print("generated/ is up to date with openapi/")
            return 0
        staging = GENERATED.with_name(PACKAGE + ".new")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(fresh, staging)
    shutil.rmtree(GENERATED, ignore_errors=True)
    staging.rename(GENERATED)
    CORRECTED_SPEC.write_text(spec_text, encoding="utf-8")
    print(f"regenerated {GENERATED.relative_to(ROOT)} and {CORRECTED_SPEC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
