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
behind). Beside the generator's output the package gets ``_provenance.py`` (what it was made
from) and ``_literals.py`` (the enums' values as ``Literal`` types, for the facade's signatures).
The same inputs always give the same bytes.

``--from`` prints what changed (``scripts/change_report.py``: the corrected specs compared,
the vendor's own difference beside it) and exits 0 (no change), 3 (additive) or 4 (breaking) once
regenerated; any failure exits 1 with one line saying why, having written nothing, so the same
command runs again after the edit that line asks for. Besides the facade's reads, regeneration
stops at a dangling ``$ref`` or security scheme and at enum members the generator could not
name (``VALUE_0``…): a silent rename of every member.
"""

from __future__ import annotations

import argparse
import ast
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
from collections.abc import Iterator
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


class Stop(Exception):
    """The regeneration cannot go on; the message is the one line saying what to edit."""


def corrected_spec(vendor: dict[str, Any]) -> str:
    """The vendor spec with the corrections applied, checked, as key-sorted text.

    Checked: the facade can read every limit and name it needs (``reve_remix/_spec.py``), every
    ``$ref`` and security requirement points somewhere, and every ``x-enum-varnames`` names each
    value of its enum (the generator would silently fall back to ``VALUE_0``… otherwise).
    """
    listed = json.loads(CORRECTIONS.read_bytes())
    try:
        corrected, notes = corrections.apply(vendor, listed)
    except corrections.CorrectionError as exc:
        raise Stop(f"openapi/corrections.json: {exc}") from None
    for note in notes:
        print(f"note: openapi/corrections.json: {note}", file=sys.stderr)
    try:
        facade_spec.read(corrected)
    except facade_spec.SpecError as exc:
        raise Stop(f"reve_remix/_spec.py cannot read the corrected spec: {exc}: adapt it") from None
    check_references(corrected)
    check_enum_names(corrected, listed["corrections"])
    return json.dumps(corrected, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def nodes(node: Any, pointer: str = "") -> Iterator[tuple[str, Any]]:  # noqa: ANN401
    """Every value in a JSON document with its JSON pointer, depth first."""
    yield pointer, node
    children = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else ()
    )
    for key, child in children:
        yield from nodes(child, f"{pointer}/{str(key).replace('~', '~0').replace('/', '~1')}")


def check_references(document: dict[str, Any]) -> None:
    """Stop at a ``$ref`` that points nowhere or a security requirement naming no scheme."""
    for pointer, node in nodes(document):
        ref = node.get("$ref") if isinstance(node, dict) else None
        if isinstance(ref, str) and _target(document, ref) is None:
            raise Stop(
                f"corrected spec {pointer}: $ref {ref} points nowhere: "
                "update openapi/corrections.json"
            )
    schemes = document.get("components", {}).get("securitySchemes", {})
    requirements = [("/security", document.get("security") or [])] + [
        (f"{pointer}/security", node["security"])
        for pointer, node in nodes(document.get("paths", {}), "/paths")
        if isinstance(node, dict) and isinstance(node.get("security"), list)
    ]
    for pointer, listed in requirements:
        for name in [name for requirement in listed for name in requirement]:
            if name not in schemes:
                raise Stop(
                    f"corrected spec {pointer}: security names {name!r}, which is not in "
                    f"components/securitySchemes (it has {', '.join(schemes) or 'none'}): "
                    "update openapi/corrections.json"
                )


def check_enum_names(document: dict[str, Any], listed: list[dict[str, Any]]) -> None:
    """Stop at an ``x-enum-varnames`` whose length is not its enum's, naming where it came from."""
    for pointer, node in nodes(document):
        if not isinstance(node, dict) or "x-enum-varnames" not in node:
            continue
        names, values = node["x-enum-varnames"], node.get("enum", [])
        if isinstance(names, list) and len(names) == len(values):
            continue
        origin = next(
            (
                f"correction {number} ({correction['op']} {correction['path']})"
                for number, correction in enumerate(listed, start=1)
                if correction["path"].endswith("/x-enum-varnames")
                and correction.get("value") == names
            ),
            "the vendor's own",
        )
        raise Stop(
            f"{pointer}: x-enum-varnames has {len(names)} names for {len(values)} enum values "
            f"({origin}): give every value a name in openapi/corrections.json"
        )


def check_generated_enums(package: Path) -> None:
    """Stop if the generator fell back to ``VALUE_<index>`` names for a string enum's members.

    It does so, silently and even with ``--fail-on-warning``, for values that are no Python
    name (``16:9``) when the schema has no usable ``x-enum-varnames``: every member is renamed.
    """
    for path in sorted((package / "models").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ClassDef):
                continue
            fallback = [
                target.id
                for statement in node.body
                if isinstance(statement, ast.Assign)
                and isinstance(statement.value, ast.Constant)
                and isinstance(statement.value.value, str)
                for target in statement.targets
                if isinstance(target, ast.Name) and re.fullmatch(r"VALUE_\d+", target.id)
            ]
            if fallback:
                raise Stop(
                    f"the generator named the members of enum {node.name} "
                    f"{', '.join(fallback[:3])}…: add (or update) its x-enum-varnames in "
                    "openapi/corrections.json"
                )


def _target(document: dict[str, Any], ref: str) -> Any:  # noqa: ANN401
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        node = node.get(part) if isinstance(node, dict) else None
    return node


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


def report_new_spec(new: bytes) -> tuple[change_report.Report, str]:
    """Print what changes from the committed spec to ``new``; return it and the corrected text.

    The report compares the corrected specs (what users get), with the vendor's own difference
    beside it where they differ. If the corrections no longer apply, it is the vendor's
    difference alone, printed before the ``Stop`` that says what to edit.
    """
    locator = json.loads(CORRECTIONS.read_bytes())["operation"]
    vendor = change_report.compare(json.loads(VENDOR_SPEC.read_bytes()), json.loads(new), locator)
    try:
        spec_text = corrected_spec(json.loads(new))
    except Stop:
        vendor.header = change_report.VENDOR_ONLY
        sys.stdout.write(vendor.text())
        sys.stdout.flush()
        raise
    committed = json.loads(CORRECTED_SPEC.read_bytes())
    corrected = change_report.compare(committed, json.loads(spec_text), locator)
    report = change_report.side_by_side(corrected, vendor)
    sys.stdout.write(report.text())
    sys.stdout.flush()
    return report, spec_text


def provenance_module(spec_text: str, vendor: bytes, pins: dict[str, str]) -> str:
    """A module recording what the package was generated from, for humans and for --check."""
    vendor_sha = hashlib.sha256(vendor).hexdigest()
    corrected_sha = hashlib.sha256(spec_text.encode()).hexdigest()
    return (
        '"""Provenance of this generated package. Written by scripts/regenerate.py."""\n\n'
        f'VENDOR_SPEC_SHA256 = "{vendor_sha}"\n'
        f'CORRECTED_SPEC_SHA256 = "{corrected_sha}"\n'
        f'GENERATOR = "openapi-python-client=={pins["openapi-python-client"]}"\n'
        f'FORMATTER = "ruff=={pins["ruff"]}"\n'
    )


def literals_module(spec_text: str) -> str:
    """A module of the request's enumerated strings as ``Literal`` types, for type checkers.

    ``remix(aspect_ratio=...)`` takes the enum or its value as a string; typed as these, an IDE
    completes the string and mypy refuses one the spec does not list. A ``Literal`` must be
    written out to be read by a type checker, so it is written here, from what ``_spec`` reads
    (the values the facade checks at run time), and ``--check`` fails when it is stale.
    """
    read = facade_spec.read(json.loads(spec_text))
    aliases = {
        "AspectRatioValue": (read.aspect_ratios, "``aspect_ratio``", "AspectRatio"),
        "OutputFormatValue": (read.output_formats, "``output_format``", "OutputFormat"),
    }
    parts = [
        '"""The values of the request\'s enums as ``Literal`` types. Written by '
        'scripts/regenerate.py\nfrom the spec: do not edit."""\n\n'
        "from typing import Literal, TypeAlias\n"
    ]
    for name, (values, argument, enum) in aliases.items():
        listed = "".join(f"    {json.dumps(value)},\n" for value in values)
        parts.append(
            f"\n{name}: TypeAlias = Literal[\n{listed}]\n"
            f'"""{argument} as a string: a value of ``{enum}``, as the spec lists them."""\n'
        )
    return "".join(parts)


def generate(spec_text: str, vendor: bytes, pins: dict[str, str], workdir: Path) -> Path:
    """Run the generator into ``workdir``, check its enums, return the package folder."""
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
        detail = " ".join((result.stdout + result.stderr).split())
        raise Stop(f"openapi-python-client failed: {detail}")
    check_generated_enums(out)
    # The package ships its own spec: the mock server validates requests against it.
    shutil.copyfile(spec_path, out / "openapi.json")
    (out / "_provenance.py").write_text(
        provenance_module(spec_text, vendor, pins), encoding="utf-8"
    )
    (out / "_literals.py").write_text(literals_module(spec_text), encoding="utf-8")
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
    if args.check and recorded_source().get("sha256") != sha256(VENDOR_SPEC):
        print(f"openapi/vendor.source.json does not record sha256 {sha256(VENDOR_SPEC)}")
        print("\ngenerated/ is stale or was edited by hand: run scripts/regenerate.py")
        return 1
    try:
        return run(args.source, args.check, pins)
    except Stop as stop:
        print(stop, file=sys.stderr)
        return 1


def run(source: str | None, checking: bool, pins: dict[str, str]) -> int:
    """Regenerate from the committed vendor spec, or from ``source``; raise ``Stop`` on failure.

    Nothing in ``openapi/`` or ``generated/`` is written until the new client is generated and
    checked, so a run that stopped leaves the tree as it was: after the edit its last line asks
    for, the same command runs again from the start.
    """
    vendor = VENDOR_SPEC.read_bytes()
    report = None
    if source:
        new = vendor_bytes(fetch(source), source)
        if new == vendor:
            print("No change: the vendor spec is byte-identical to openapi/vendor.openapi.json.")
            return 0
        report, spec_text = report_new_spec(new)
        vendor = new
    else:
        spec_text = corrected_spec(json.loads(vendor))
    with tempfile.TemporaryDirectory(prefix="reve-remix-regen-") as tmp:
        fresh = generate(spec_text, vendor, pins, Path(tmp))
        if checking:
            return check(fresh, spec_text)
        staging = GENERATED.with_name(PACKAGE + ".new")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(fresh, staging)
    shutil.rmtree(GENERATED, ignore_errors=True)
    staging.rename(GENERATED)
    write_atomic(CORRECTED_SPEC, spec_text.encode())
    if source:
        write_atomic(VENDOR_SPEC, vendor)
        record = {**recorded_source(), "sha256": hashlib.sha256(vendor).hexdigest()}
        write_atomic(VENDOR_SOURCE, (json.dumps(record, indent=2) + "\n").encode())
    print(
        f"regenerated {GENERATED.relative_to(ROOT)} and {CORRECTED_SPEC.relative_to(ROOT)}",
        file=sys.stderr,
    )
    return report.exit_code if report else 0


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` through a sibling file and a rename: never half written."""
    part = path.with_name(f".{path.name}.part")
    part.write_bytes(data)
    os.replace(part, path)


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
