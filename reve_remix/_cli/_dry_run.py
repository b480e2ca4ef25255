"""``reve-remix remix --dry-run``: every check a real run makes, then the request, printed.

Nothing is sent and no key is needed or printed; ``data:`` URLs are shortened to their head and
their size, so the body stays readable.
"""

from __future__ import annotations

import argparse
import json

from .. import _config
from .._client import DEFAULT_MODEL
from .._images import LocalImage
from .._recipe import data_url_bytes
from .._request import Images, prepare_remix
from .._spec import spec
from ._console import EXIT_OK
from ._options import request_fields


def dry_run(args: argparse.Namespace, images: Images) -> int:
    """Print the endpoint and the JSON body ``remix`` would send (``--json``: one object)."""
    prepared = prepare_remix(
        args.prompt,
        images,
        model=args.model or DEFAULT_MODEL,
        aspect_ratio=args.aspect_ratio,
        output_format=args.output_format,
        fit=args.fit,
        extra_body=request_fields(args),
    )
    shown = prepared.body([_shortened(image) for image in prepared.images])
    body = json.loads(shown if isinstance(shown, bytes) else b"".join(shown))
    endpoint = f"{spec().method} {_config.base_url(args.base_url)}{spec().path}"
    if args.json:
        print(json.dumps({"endpoint": endpoint, "body": body}))
    else:
        print(f"{endpoint}\n{json.dumps(body, indent=2, ensure_ascii=False)}")
    return EXIT_OK


def _shortened(image: str | LocalImage) -> str:
    """An image as the dry run shows it: a URL, or a ``data:`` URL's head and size."""
    if isinstance(image, LocalImage):
        return f"data:{image.mime};base64,… ({len(image.data):,} bytes)"
    if image[:5].lower() != "data:":
        return image
    return f"{image.partition(',')[0]},… ({len(data_url_bytes(image)):,} bytes)"
