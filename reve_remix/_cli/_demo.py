"""``reve-remix demo`` and ``reve-remix mock``: the offline mock API, for a first try and tests."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import time
from importlib import resources
from pathlib import Path
from types import ModuleType

from .._client import API_KEY_ENV, BASE_URL_ENV, ReveRemix
from .._progress import spinner_line
from .._spec import spec
from ._console import EXIT_OK, Console, UsageError
from ._options import Commands, SharedOptions, number

DEMO_OUTPUT = "reve-remix-demo.png"
DEMO_PROMPT = "Put {cat} on {sofa}, as a watercolour"


def add_demo(commands: Commands, shared: SharedOptions) -> None:
    """Add the ``demo`` command."""
    summary = "Remix the bundled sample images offline, through the mock server."
    demo = shared.command(commands, "demo", summary, _DEMO_EXAMPLES)
    demo.add_argument("-o", "--output", default=DEMO_OUTPUT, help=f"default: ./{DEMO_OUTPUT}")
    demo.set_defaults(run=demo_run)


def add_mock(commands: Commands, shared: SharedOptions) -> None:
    """Add the ``mock`` command."""
    summary = "Serve the offline mock API on 127.0.0.1 until Ctrl-C."
    mock = shared.command(commands, "mock", summary, _MOCK_EXAMPLES)
    mock.add_argument(
        "--port", type=number(int, 0, 65535), default=0, help="default 0: any free port"
    )
    mock.add_argument(
        "--latency",
        type=number(float, 0),
        default=0.0,
        metavar="SECONDS",
        help="delay each answer",
    )
    mock.set_defaults(run=mock_run)


_DEMO_EXAMPLES = """\
Example:
  pip install 'reve-remix[mock]'
  reve-remix demo && open reve-remix-demo.png
"""

_MOCK_EXAMPLES = """\
Example:
  reve-remix mock --port 8080 --latency 2
  export REVE_REMIX_BASE_URL=http://127.0.0.1:8080 ONEROUTER_API_KEY=sk-any-key
  reve-remix remix "<img>0</img> at night" -i city.jpg
"""


def demo_run(args: argparse.Namespace, console: Console) -> int:
    """Run ``demo``: the bundled samples remixed by the mock, saved."""
    testing = _import_testing()
    output = Path(args.output)
    if output.is_dir():
        output /= DEMO_OUTPUT
    samples = resources.files("reve_remix") / "_samples"
    images = {
        "cat": (samples / "cat.png").read_bytes(),
        "sofa": (samples / "sofa.jpg").read_bytes(),
    }
    with (
        testing.MockServer() as server,
        ReveRemix(
            "demo-key-for-the-mock", base_url=server.base_url, on_retry=console.notices
        ) as client,
    ):
        print(f"Started the offline mock API at {server.base_url} (no key, no network, no cost).")
        print("Remixing the bundled samples cat.png and sofa.jpg, named in the prompt:")
        print(f"  {DEMO_PROMPT}")
        with console.status(lambda elapsed, retry: spinner_line(elapsed, "remixing", retry)):
            result = client.remix(DEMO_PROMPT, images)
            data = result.read()
        sent = next(request.json for request in server.requests if request.method == "POST")
    saved = result.image.write(output, data)  # with its recipe, as every saved image
    print(f"Sent as: {sent['prompt']}  (images as data: URLs, in the order named)")
    print(f"Revised prompt: {result.image.revised_prompt}")
    print(
        f"Saved {saved} ({saved.stat().st_size:,} bytes with its recipe: 'reve-remix info "
        f"{saved}'; request id {result.request_id})."
    )
    print(
        f"Next, with your own images and your key in {API_KEY_ENV}:\n"
        f'  reve-remix remix "{DEMO_PROMPT}" -i cat=cat.png -i sofa=sofa.jpg'
    )
    return EXIT_OK


def mock_run(args: argparse.Namespace, console: Console) -> int:
    """Run ``mock`` until Ctrl-C."""
    testing = _import_testing()
    server = testing.MockServer(port=args.port, latency=args.latency)
    try:
        server.start()
    except OSError as exc:
        raise UsageError(
            f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}; "
            "pick another --port (0 picks a free one)"
        ) from exc
    access_log = logging.getLogger("reve_remix.testing")
    handler = logging.StreamHandler(console.stream)
    level = access_log.level
    access_log.addHandler(handler)
    access_log.setLevel(logging.INFO)
    try:
        url = server.base_url
        print(
            f"Mock Reve Remix API listening on {url} (Ctrl-C to stop); any non-empty key works.\n"
            f"Try:\n"
            f"  curl -s {url}{spec().path} -H 'Authorization: Bearer sk-placeholder' \\\n"
            f"    -H 'Content-Type: application/json' -d '{_CURL_BODY}'\n"
            f"or point the SDK and this command at it:\n"
            f"  export {BASE_URL_ENV}={url} {API_KEY_ENV}=sk-placeholder",
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
    finally:
        access_log.removeHandler(handler)
        access_log.setLevel(level)
        server.stop()
    print("Mock server stopped.", flush=True)
    return EXIT_OK


_CURL_BODY = json.dumps(
    {
        "model": "reve-remix-image-to-image",
        "prompt": "<img>0</img> as a watercolour",
        "image_urls": ["https://example.com/cat.png"],
    }
)


def _import_testing() -> ModuleType:
    """``reve_remix.testing``, or a ``UsageError`` saying how to install its extra."""
    try:
        import reve_remix.testing as testing  # needs the optional jsonschema
    except ImportError as exc:
        raise UsageError(
            "the mock server needs jsonschema, which is not installed: "
            "pip install 'reve-remix[mock]'"
        ) from exc
    return testing
