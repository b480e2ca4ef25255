"""``reve-remix fetch URL -o FILE``: save an image that was paid for, without paying again.

What ``remix`` prints when it is interrupted after the 2xx: the result URL stays valid for a
while, and downloading it is free. The download is the SDK's (retried, checked to be an image,
saved atomically) and never carries the API key, so none is needed.
"""

from __future__ import annotations

import argparse

from .._client import ReveRemix
from .._config import api_key
from . import _signals
from ._console import EXIT_OK, Console
from ._options import Commands, SharedOptions
from ._remix import output_for, warn_extension

_NO_KEY = "sk-fetch-sends-no-key"  # a client needs one; a download never sends it


def add(commands: Commands, shared: SharedOptions) -> None:
    """Add the ``fetch`` command."""
    summary = "Save a paid image from its result URL, without paying again."
    fetch = shared.command(commands, "fetch", summary, _EXAMPLES)
    fetch.add_argument("url", metavar="URL", help="the result URL a remix gave")
    fetch.add_argument(
        "-o", "--output", required=True, help="file (the extension is added if missing) or folder"
    )
    fetch.add_argument("--force", action="store_true", help="overwrite an existing -o file")
    fetch.set_defaults(run=run)


_EXAMPLES = """\
Example:
  reve-remix fetch 'https://cdn.example.com/result.png' -o cat-watercolour.png

No API key is needed: the download is free and never carries one.
"""


def run(args: argparse.Namespace, console: Console) -> int:
    """Run ``fetch``: the saved path on stdout."""
    output = output_for(args.output, "fetched", force=args.force)
    with ReveRemix(api_key(None) or _NO_KEY) as client, _signals.raising():
        image = client.paid_image(args.url)
        data = image.read()
    path = image.write(output.path_for(data), data)
    warn_extension(console, path)
    print(path)
    return EXIT_OK
