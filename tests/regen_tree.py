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


# What a whole-project copy leaves out: environments, caches and build output.
_NOT_PROJECT = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis",
    "site", "*.egg-info", "*.new", ".coverage*",
)  # fmt: skip


def copy_tree(destination: Path) -> Path:
    for name in PARTS:
        shutil.copytree(
            ROOT / name, destination / name, ignore=shutil.ignore_patterns("__pycache__")
        )
    for name in ("pyproject.toml", "conftest.py"):  # the test settings travel with the tree
        shutil.copy(ROOT / name, destination / name)
    return destination


def copy_project(destination: Path) -> Path:
    """The whole project (tests, docs, CI files included) in ``destination``, for its own suite."""
    shutil.copytree(ROOT, destination, ignore=_NOT_PROJECT)
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


def operation(spec: dict[str, Any], path: str | None = None) -> dict[str, Any]:
    """The operation the SDK wraps in a vendor-shaped spec (``path``: where it moved to)."""
    locator = json.loads((ROOT / "openapi" / "corrections.json").read_bytes())["operation"]
    return spec["paths"][path or locator["path"]][locator["method"]]


def request_schema(spec: dict[str, Any]) -> dict[str, Any]:
    return operation(spec)["requestBody"]["content"]["application/json"]["schema"]


def response_schema(spec: dict[str, Any]) -> dict[str, Any]:
    return operation(spec)["responses"]["200"]["content"]["application/json"]["schema"]


def unused(taken: Any, base: str) -> str:
    """``base``, or ``base_2``, ``base_3``…: a name not in ``taken``.

    The drills add names the vendor does not use yet, so that they stay drills of an addition
    after the vendor has made it (the suite then runs on a tree that has ``seed`` already).
    """
    return next(
        name for n in range(1, 99) if (name := base if n == 1 else f"{base}_{n}") not in taken
    )


def with_response_fields(spec: dict[str, Any]) -> dict[str, Any]:
    """Drill a: an optional integer on each image (``seed``) and an object (``usage``)."""
    changed = copy.deepcopy(spec)
    response = response_schema(changed)
    response["properties"][NEW_RESPONSE_FIELD] = {"type": "object", "description": "The cost."}
    response["properties"]["data"]["items"]["properties"][NEW_IMAGE_FIELD] = {"type": "integer"}
    return changed


def write_spec(path: Path, spec: dict[str, Any]) -> Path:
    """Write ``spec`` compactly, as the vendor publishes it."""
    path.write_text(json.dumps(spec, ensure_ascii=False, separators=(",", ":")) + "\n")
    return path


# --- the drills of issue 20: one vendor change each, as the vendor would publish it ------------
# Each takes the vendor spec and returns a changed copy; docs/spec-changes.md tabulates what the
# one command and the tests make of each.


def with_more_images(spec: dict[str, Any]) -> dict[str, Any]:
    """Drill c: ``maxItems`` up by 2 (4 → 6 today), and the prose that states it."""
    changed = copy.deepcopy(spec)
    images = request_schema(changed)["properties"]["image_urls"]
    old = images["maxItems"]
    images["maxItems"] = old + 2
    images["description"] = images["description"].replace(
        f"and {old} images", f"and {old + 2} images"
    )
    return changed


def with_request_fields(spec: dict[str, Any]) -> dict[str, Any]:
    """Drill d: optional request fields ``seed`` (integer) and ``negative_prompt`` (string)."""
    changed = copy.deepcopy(spec)
    properties = request_schema(changed)["properties"]
    seed, negative = NEW_REQUEST_FIELDS
    properties[seed] = {"type": "integer", "description": "A seed, for repeatable results."}
    properties[negative] = {"type": "string", "description": "What to leave out."}
    return changed


def with_output_format(spec: dict[str, Any]) -> dict[str, Any]:
    """Half of drill h: a new ``output_format`` value (``webp_url``), the default unchanged."""
    changed = copy.deepcopy(spec)
    request_schema(changed)["properties"]["output_format"]["enum"].append(NEW_FORMAT)
    return changed


def additive(spec: dict[str, Any]) -> dict[str, Any]:
    """Drills a, c and d and a new output format: a change that breaks no user's code."""
    return with_output_format(with_request_fields(with_more_images(with_response_fields(spec))))


def without_revised_prompt(spec: dict[str, Any]) -> dict[str, Any]:
    """Drill b: ``data[].revised_prompt`` removed from the response."""
    changed = copy.deepcopy(spec)
    del response_schema(changed)["properties"]["data"]["items"]["properties"]["revised_prompt"]
    return changed


def with_required_field(spec: dict[str, Any]) -> dict[str, Any]:
    """Drill e: a new required request field (``quality``)."""
    changed = copy.deepcopy(spec)
    schema = request_schema(changed)
    schema["properties"][NEW_REQUIRED_FIELD] = {"type": "string", "enum": ["standard", "high"]}
    schema["required"].append(NEW_REQUIRED_FIELD)
    return changed


def moved(spec: dict[str, Any]) -> dict[str, Any]:
    """Drill f: the operation moves to another path (``/v1`` → ``/v2`` today)."""
    changed = copy.deepcopy(spec)
    changed["paths"] = {MOVED_PATH: changed["paths"].pop(PATH), **changed["paths"]}
    return changed


def with_ratio_enum(spec: dict[str, Any], new: str = "21:9") -> dict[str, Any]:
    """Drill g: the ``aspect_ratio`` prose becomes a real enum, with a new ratio ``new``."""
    changed = copy.deepcopy(spec)
    aspect = request_schema(changed)["properties"]["aspect_ratio"]
    listed = aspect["description"].split("Possible enum values:")[1]
    ratios = [value.strip(" ,") for value in listed.split("`") if value.strip(" ,")]
    aspect["enum"] = [*ratios, new]
    aspect["description"] = aspect["description"].split("\n\n")[0]
    return changed


def with_new_default_format(spec: dict[str, Any]) -> dict[str, Any]:
    """Drill h: ``output_format``'s default changes (to ``b64_json``), and ``webp_url`` is new."""
    changed = with_output_format(spec)
    fmt = request_schema(changed)["properties"]["output_format"]
    old, new = fmt["default"], next(value for value in fmt["enum"] if value != fmt["default"])
    fmt["default"] = new
    fmt["description"] = fmt["description"].replace(f"`{old}`", f"`{new}`")
    return changed


def with_second_operation(spec: dict[str, Any]) -> dict[str, Any]:
    """Drill i: a second operation, ``/v1/images/generations``, with inline schemas."""
    changed = copy.deepcopy(spec)
    generation = copy.deepcopy(operation(changed))
    generation["summary"] = "reve-text-to-image"
    body = generation["requestBody"]["content"]["application/json"]["schema"]
    del body["properties"]["image_urls"]
    body["required"] = ["model", "prompt"]
    changed["paths"][SECOND_PATH] = {"post": generation}
    return changed


def with_bearer_scheme(spec: dict[str, Any]) -> dict[str, Any]:
    """Drill j: a bearer security scheme replaces the ``Authorization`` header parameter."""
    changed = copy.deepcopy(spec)
    del operation(changed)["parameters"]
    changed["components"] = {
        "securitySchemes": {"BearerAuth": {"type": "http", "scheme": "bearer"}}
    }
    changed["security"] = [{"BearerAuth": []}]
    return changed


def reformatted(spec: dict[str, Any]) -> dict[str, Any]:
    """Drill k: the same spec with every object's keys in reverse order."""

    def reverse(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: reverse(node[key]) for key in reversed(node)}
        if isinstance(node, list):
            return [reverse(item) for item in node]
        return node

    return reverse(copy.deepcopy(spec))


# The names the drills add, chosen (see ``unused``) from what the vendor's spec has now.
_VENDOR = vendor()
PATH = json.loads((ROOT / "openapi" / "corrections.json").read_bytes())["operation"]["path"]
MOVED_PATH = unused(_VENDOR["paths"], PATH.replace("/v1/", "/v2/"))
SECOND_PATH = unused(_VENDOR["paths"], PATH.rsplit("/", 1)[0] + "/generations")
NEW_RESPONSE_FIELD = unused(response_schema(_VENDOR)["properties"], "usage")
NEW_IMAGE_FIELD = unused(
    response_schema(_VENDOR)["properties"]["data"]["items"]["properties"], "seed"
)
_REQUEST = request_schema(_VENDOR)["properties"]
NEW_REQUEST_FIELDS = (unused(_REQUEST, "seed"), unused(_REQUEST, "negative_prompt"))
NEW_REQUIRED_FIELD = unused(_REQUEST, "quality")
NEW_FORMAT = unused(_REQUEST["output_format"]["enum"], "webp_url")
