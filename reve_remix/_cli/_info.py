"""``reve-remix info IMAGE``: the recipe an image was saved with (prompt, references, request)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from .._recipe import find_recipe
from ._console import EXIT_API_ERROR, EXIT_OK, PROG, Console, UsageError
from ._options import Commands, SharedOptions


def add(commands: Commands, shared: SharedOptions) -> None:
    """Add the ``info`` command."""
    summary = "Print the recipe an image was saved with: prompt, references, request id."
    info = shared.command(commands, "info", summary, _EXAMPLES)
    info.add_argument("image", metavar="IMAGE", help="an image saved by reve-remix")
    info.add_argument("--json", action="store_true", help="print the recipe as a JSON object")
    info.set_defaults(run=run)


_EXAMPLES = """\
Examples:
  reve-remix info cat-watercolour.png
  reve-remix info out/cat.webp --json     # read from out/cat.webp.json, beside it

Images saved by reve-remix (and by RemixImage.save) carry their recipe: in a PNG iTXt chunk, in
a JPEG's XMP, or in a NAME.json file beside other formats.
"""


def run(args: argparse.Namespace, console: Console) -> int:
    """Run ``info``: the recipe as rows, or one JSON object; exit 1 when there is none."""
    path = Path(args.image)
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    found = find_recipe(path)
    if found is None:
        console.say(
            f"{PROG}: {path}: no recipe in it or beside it (saved with --no-metadata, or not "
            "by reve-remix)"
        )
        return EXIT_API_ERROR
    recipe, where = found
    if args.json:
        print(json.dumps(recipe.to_dict()))
        return EXIT_OK
    created = (
        f"{datetime.fromtimestamp(recipe.created, UTC):%Y-%m-%d %H:%M:%S} UTC"
        if recipe.created is not None
        else None
    )
    rows = [
        ("prompt", recipe.prompt),
        ("prompt sent", recipe.prompt_sent),
        ("revised prompt", recipe.revised_prompt),
        ("model", recipe.model),
        ("aspect ratio", recipe.aspect_ratio or "(the API's default)"),
        ("output format", recipe.output_format),
        *((f"image {n}", _describe(ref)) for n, ref in enumerate(recipe.references)),
        ("extra body", json.dumps(recipe.extra_body) if recipe.extra_body else None),
        ("request id", recipe.request_id),
        ("created", created),
        ("sdk version", recipe.sdk_version),
        ("stored in", where),
    ]
    for label, value in rows:
        print(f"{label + ':':<16}{'-' if value is None else value}")
    return EXIT_OK


def _describe(ref: Mapping[str, str]) -> str:
    name = f"{{{ref['name']}}} " if "name" in ref else ""
    if "url" in ref:
        return f"{name}{ref['url']}"
    source = ref.get("file") or ref.get("source", "?")
    return f"{name}{source} (sha256 {ref.get('sha256', '?')})"
