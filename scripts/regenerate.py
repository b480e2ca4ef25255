#!/usr/bin/env python3
"""Regenerate ``generated/reve_remix_api`` from the vendor's OpenAPI spec.

    python scripts/regenerate.py                  # rewrite generated/ and the corrected spec
    python scripts/regenerate.py --check          # exit 1, with a diff, if stale or hand-edited
    python scripts/regenerate.py --from NEW_SPEC  # take a new spec (file/URL), report, regenerate

Pipeline: ``openapi/vendor.openapi.json`` (byte-for-byte as published; its source URL and hash
are in ``openapi/vendor.source.json``) → the declared corrections ``openapi/corrections.json``
(see ``scripts/corrections.py``: they never overwrite the vendor silently) → a check that the
facade can read every limit and name it needs (``reve_remix/_spec.py``) → the corrected spec,
key-sorted so that a reordering changes nothing downstream, in ``openapi/corrected.openapi.json``
(committed, so a vendor change is a readable diff) → openapi-python-client, at the exact version
pinned in pyproject.toml's ``dev`` extra, configured by ``openapi/generator-config.yaml`` and
formatted by the pinned ruff → a temporary folder, which then replaces
``generated/reve_remix_api`` whole (the generator's own ``--overwrite`` leaves stray files
behind). The same inputs always give the same bytes.

``--from`` prints what changed (``scripts/change_report.py``) and exits 0 (no change), 3
(additive) or 4 (breaking) once regenerated; any failure exits 1 with one line saying why.
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
import urllib.request
from importlib import metadata
from pathlib import Path
from typing import Any

import change_report
import corrections
from facade_spec import spec as facade_spec

ROOT = Path(__file__).resolve().parent.parent
OPENAPI = ROOT / "openapi"
VENDOR_SPEC = OPENAPI / "vendor.openapi.json"
VENDOR_SOURCE = OPENAPI / "vendor.source.json"
CORRECTIONS = OPENAPI / "corrections.json"
CORRECTED_SPEC = OPENAPI / "corrected.openapi.json"
GENERATOR_CONFIG = OPENAPI / "generator-config.yaml"
PACKAGE = "reve_remix_api"
GENERATED = ROOT / "generated" / PACKAGE
PINNED_TOOLS = ("openapi-python-client", "ruff")
# The vendor publishes the spec inside a documentation page, as its one ```json block.
_JSON_BLOCK = re.compile(rb"^```json\n(.*?\n)```", re.MULTILINE | re.DOTALL)


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
    """The vendor spec with the corrections applied, checked readable by the facade, key-sorted."""
    vendor = json.loads(VENDOR_SPEC.read_bytes())
    try:
        corrected, notes = corrections.apply(vendor, json.loads(CORRECTIONS.read_bytes()))
    except corrections.CorrectionError as exc:
        sys.exit(f"openapi/corrections.json: {exc}")
    for note in notes:
        print(f"note: openapi/corrections.json: {note}", file=sys.stderr)
    try:
        facade_spec.read(corrected)
    except facade_spec.SpecError as exc:
        sys.exit(f"reve_remix/_spec.py cannot read the corrected spec: {exc}: adapt it")
    return json.dumps(corrected, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def vendor_bytes(raw: bytes, source: str) -> bytes:
    """The spec's bytes: ``raw`` itself if it is JSON, else the ```json block of a docs page."""
    block = _JSON_BLOCK.search(raw)
    text = raw if raw.lstrip().startswith(b"{") or block is None else block.group(1)
    try:
        document = json.loads(text)
    except ValueError as exc:
        sys.exit(f"{source}: not JSON, nor a page with a ```json block ({exc})")
    if not isinstance(document, dict) or "openapi" not in document or "paths" not in document:
        sys.exit(f"{source}: not an OpenAPI document (no 'openapi' and 'paths')")
    return text


def fetch(source: str) -> bytes:
    """The bytes at ``source``, an http(s) URL or a file path."""
    if re.match(r"https?://", source):
        with urllib.request.urlopen(source, timeout=60) as response:  # noqa: S310 - http(s) only
            return bytes(response.read())
    return Path(source).read_bytes()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def recorded_source() -> dict[str, Any]:
    """``openapi/vendor.source.json``: where the vendor publishes the spec, and its hash."""
    source: dict[str, Any] = json.loads(VENDOR_SOURCE.read_bytes())
    return source


def take_new_spec(source: str) -> change_report.Report | None:
    """Replace the vendor spec with the one at ``source``, printing the change report.

    Returns ``None`` when the new spec is byte-identical (nothing to do).
    """
    new = vendor_bytes(fetch(source), source)
    old = VENDOR_SPEC.read_bytes()
    if new == old:
        print("No change: the vendor spec is byte-identical to openapi/vendor.openapi.json.")
        return None
    locator = json.loads(CORRECTIONS.read_bytes())["operation"]
    report = change_report.compare(json.loads(old), json.loads(new), locator)
    sys.stdout.write(report.text())
    sys.stdout.flush()
    VENDOR_SPEC.write_bytes(new)
    record = {**recorded_source(), "sha256": hashlib.sha256(new).hexdigest()}
    VENDOR_SOURCE.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return report


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
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--check", action="store_true", help="fail with a diff if generated/ is stale"
    )
    mode.add_argument(
        "--from",
        dest="source",
        metavar="NEW_SPEC",
        help="take this vendor spec (a file or an http(s) URL), report the changes, regenerate",
    )
    args = parser.parse_args()

    pins = pinned_versions()
    check_tool_versions(pins)
    report = None
    if args.check and recorded_source().get("sha256") != sha256(VENDOR_SPEC):
        print(f"openapi/vendor.source.json does not record sha256 {sha256(VENDOR_SPEC)}")
        print("\ngenerated/ is stale or was edited by hand: run scripts/regenerate.py")
        return 1
    if args.source:
        report = take_new_spec(args.source)
        if report is None:
            return 0
    spec_text = corrected_spec_text()
    with tempfile.TemporaryDirectory(prefix="reve-remix-regen-") as tmp:
        fresh = generate(spec_text, pins, Path(tmp))
        if args.check:
            return check(fresh, spec_text)
        staging = GENERATED.with_name(PACKAGE + ".new")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(fresh, staging)
    shutil.rmtree(GENERATED, ignore_errors=True)
    staging.rename(GENERATED)
    CORRECTED_SPEC.write_text(spec_text, encoding="utf-8")
    print(
        f"regenerated {GENERATED.relative_to(ROOT)} and {CORRECTED_SPEC.relative_to(ROOT)}",
        file=sys.stderr,
    )
    return report.exit_code if report else 0


def check(fresh: Path, spec_text: str) -> int:
    """0 if ``generated/`` and the corrected spec match a fresh run, else 1 with a diff."""
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


if __name__ == "__main__":
    sys.exit(main())
