"""The ``reve-remix`` command: ``remix`` one image, run a ``batch`` file, a ``demo`` and a ``mock``.

Exit codes: 0 success, 1 an API or network error (or, for ``batch``, any job not done), 2 a usage
or validation error (nothing was sent), 130 interrupted. Errors are one line on stderr with a
hint; ``--debug`` adds the traceback and the library's debug log. The API key is read from the
environment only (never from an option, which ``ps`` would show) and never printed.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import logging
import math
import os
import re
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO, TypeAlias

import httpx

from . import _config
from ._batch import run_in_threads
from ._batch_file import (
    Action,
    JobLine,
    LineProblem,
    Manifest,
    ManifestRecord,
    Target,
    file_name_problem,
    read_jobs,
    remove_stale_parts,
    run_job,
    slugify,
    target_problems,
    unwritable,
)
from ._client import (
    API_KEY_ENV,
    BASE_URL_ENV,
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_RETRIES,
    ReveRemix,
    retry_logger,
)
from ._exceptions import (
    APIConnectionError,
    APIResponseValidationError,
    APITimeoutError,
    AuthenticationError,
    ContentPolicyError,
    ImageNotSavedError,
    InternalServerError,
    NotFoundError,
    PayloadTooLargeError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitError,
    ReveRemixError,
    ValidationError,
)
from ._images import image_extension
from ._lifecycle import GENERATED_NOT_SAVED, MAY_HAVE_BEEN_GENERATED, JobState
from ._progress import RetryNotices, StatusLine, bar_line, is_terminal, spinner_line
from ._redact import redact
from ._request import Images, check_model
from ._results import RemixResult, write_atomic
from ._retry import RATE_LIMIT_RETRIES
from ._spec import spec
from ._tags import IMAGE_NAME
from ._version import __version__

PROG = "reve-remix"
EXIT_OK, EXIT_API_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DEMO_OUTPUT = "reve-remix-demo.png"
DEMO_PROMPT = "Put {cat} on {sofa}, as a watercolour"


class UsageError(Exception):
    """A mistake on the command line or in its files: reported, exit code 2, nothing sent."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``reve-remix`` command with ``argv`` (default: ``sys.argv[1:]``); the exit code.

    Example::

        main(["remix", "<img>0</img> as a watercolour", "-i", "cat.png"])  # 0 on success
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error argparse has reported
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if not hasattr(args, "run"):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    console = Console(sys.stderr, debug=args.debug)
    with console.library_logs(), _file_names_printable(sys.stdout):
        try:
            code: int = args.run(args, console)
        except KeyboardInterrupt:
            console.say(f"{PROG}: interrupted")
            return EXIT_INTERRUPTED
        except Exception as exc:  # the command line reports every error itself
            return console.fail(exc, getattr(args, "images", None))
        return code


@contextlib.contextmanager
def _file_names_printable(stream: TextIO) -> Iterator[None]:
    """Print file names on ``stream`` as the bytes they are.

    A name that is not UTF-8 (``-o $'\\xff.png'``) reaches Python with a surrogate in it
    (PEP 383), which a strict UTF-8 stdout refuses: after the paid image was saved, printing its
    path would fail. ``surrogateescape`` writes the original bytes back, as the shell gave them.
    """
    reconfigure = getattr(stream, "reconfigure", None)
    errors = getattr(stream, "errors", None)
    if reconfigure is None or errors is None:
        yield
        return
    reconfigure(errors="surrogateescape")
    try:
        yield
    finally:
        reconfigure(errors=errors)


# --- output on stderr ------------------------------------------------------------------------


class Console:
    """stderr for one command: messages, the live status line, errors, and never the API key."""

    def __init__(self, stream: TextIO, *, debug: bool) -> None:
        self.stream = stream
        self.debug = debug
        self.live = is_terminal(stream)
        """Whether stderr is a terminal, so that a status line is drawn."""
        self.notices = RetryNotices()
        self.printer = _LogPrinter(self)
        self._status: StatusLine | None = None
        self._secret = os.environ.get(API_KEY_ENV, "")
        self._lock = threading.Lock()  # batch jobs log from worker threads

    def say(self, text: str) -> None:
        """Print ``text`` on stderr as a line of its own, with the API key redacted."""
        text = redact(text, self._secret)
        with self._lock:
            if self._status is not None:
                self._status.message(text)
            else:
                self.stream.write(text + "\n")
                self.stream.flush()

    @contextlib.contextmanager
    def status(self, render: Callable[[float, str | None], str]) -> Iterator[StatusLine]:
        """Show ``render(elapsed, retry_notice)`` as a live line (on a terminal) while in use."""
        line = StatusLine(self.stream, lambda elapsed: render(elapsed, self.notices.describe()))
        with line:
            self._status = line
            try:
                yield line
            finally:
                self._status = None

    @contextlib.contextmanager
    def library_logs(self) -> Iterator[None]:
        """Route the ``reve_remix`` logger here (INFO and up; DEBUG too with ``--debug``)."""
        logger = logging.getLogger("reve_remix")
        saved = logger.level, logger.propagate
        logger.setLevel(logging.DEBUG if self.debug else logging.INFO)
        logger.propagate = False
        logger.addHandler(self.printer)
        try:
            yield
        finally:
            logger.removeHandler(self.printer)
            logger.setLevel(saved[0])
            logger.propagate = saved[1]

    def fail(self, exc: BaseException, images: object = None) -> int:
        """Report ``exc`` as one line with a hint (and the traceback with ``--debug``)."""
        if self.debug:
            self.say("".join(traceback.format_exception(exc)).rstrip())
        code, message, hint = _explain(exc, images)
        self.say(f"{PROG}: error: {message}" + (f" — {hint}" if hint else ""))
        return code


class _LogPrinter(logging.Handler):
    """Prints the library's log records on the console.

    Retry records are drawn in the status line on a terminal and printed elsewhere. ``prefix``
    goes before each message (a batch sets it to the line being checked); ``quiet`` drops all
    but retries and errors (a batch sets it while running: warnings were shown while checking).
    """

    def __init__(self, console: Console) -> None:
        super().__init__(logging.DEBUG)
        self.console = console
        self.prefix = ""
        self.quiet = False

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("reve_remix.testing"):
            return  # the embedded mock server's access log
        retry = record.name == retry_logger.name
        if retry and self.console.live:
            return  # the status line shows it (RetryNotices, fed by the client's on_retry)
        if self.quiet and not retry and record.levelno < logging.ERROR and not self.console.debug:
            return
        level = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
        self.console.say(f"{PROG}: {self.prefix}{level}{record.getMessage()}")


def _explain(exc: BaseException, images: object) -> tuple[int, str, str | None]:
    """Exit code, message and hint for an error."""
    message = str(exc)
    if isinstance(exc, UsageError | ImportError):  # ImportError: an optional extra is missing
        return EXIT_USAGE, message, None
    if isinstance(exc, ValidationError):
        for library, command_line in _CLI_WORDS:
            message = library.sub(command_line, message)
        return EXIT_USAGE, message, None
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        return EXIT_API_ERROR, f"{exc.strerror or exc}{where}", None
    if not isinstance(exc, ReveRemixError):
        return EXIT_API_ERROR, f"unexpected {type(exc).__name__}: {message}", _DEBUG_HINT
    return EXIT_API_ERROR, message, _api_hint(exc, images)


# The library's words for an option, and the command line's.
_CLI_WORDS = [
    (re.compile(r"pass fit=True"), "use --fit"),
    (re.compile(r"^fit=True needs"), "--fit needs"),
    (re.compile(r"^base_url:"), "--base-url:"),
    (
        re.compile(r"pass a mapping of names to images, such as \{'([\w-]+)': \.\.\.\}"),
        r"name the images: -i \1=IMAGE",
    ),
]
# A 401 or 402 fails every later job the same way, so a batch stops at the first one. The
# statuses are read from a failed record's error, which status_error starts with the status.
_ACCOUNT_HINTS = {
    "401": f"the key was refused: check that {API_KEY_ENV} holds a valid, active OneRouter key",
    "402": "the account is out of credits: top it up on OneRouter, then run this again",
}
_ACCOUNT_FAILURE = re.compile(r"(401|402) ")
_DEBUG_HINT = "run again with --debug for the traceback, and please report it"


def _api_hint(exc: ReveRemixError, images: object) -> str | None:
    if isinstance(exc, ImageNotSavedError):
        return "it is paid for: fetch it from the url (no key needed) rather than remixing again"
    if isinstance(exc, AuthenticationError):
        return _ACCOUNT_HINTS["401"]
    if isinstance(exc, PaymentRequiredError):
        return _ACCOUNT_HINTS["402"]
    if isinstance(exc, PayloadTooLargeError):
        return _size_hint(images)
    if isinstance(exc, ContentPolicyError):
        return "the prompt or an image was flagged by moderation: change it and try again"
    if isinstance(exc, PermissionDeniedError):
        return "this key may not do this: check its permissions and the --model"
    if isinstance(exc, NotFoundError):
        return f"check --base-url (or {BASE_URL_ENV}) and --model"
    if isinstance(exc, RateLimitError):
        return "still rate limited after retrying: wait a minute, or raise --max-retries"
    if isinstance(exc, InternalServerError):
        return "the service failed: try again in a moment"
    if isinstance(exc, APITimeoutError):
        return "no answer in time: raise --timeout, or try again"
    if isinstance(exc, APIConnectionError):
        return "could not talk to the API: check the network and --base-url"
    if isinstance(exc, APIResponseValidationError):
        return "the API's answer does not match its spec: please report it with the request id"
    return None


def _size_hint(images: object) -> str:
    limit = spec().max_image_bytes
    hint = f"each image must be less than {limit / 1e6:g} MB ({limit:,} bytes)"
    sizes = [
        (path.stat().st_size, path)
        for path in (Path(value) for value in _image_values(images))
        if path.is_file()
    ]
    if sizes:
        size, path = max(sizes)
        hint += f"; the largest here is {path} ({size:,} bytes)"
    return hint + "; add --fit to shrink images (needs Pillow)"


def _image_values(images: object) -> list[str]:
    """The images of raw ``-i`` values, with or without a ``NAME=`` in front."""
    if not isinstance(images, list):
        return []
    return [part for value in images for part in {value, value.partition("=")[2]} if part]


# --- the parser ----------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    """The ``reve-remix`` parser: one sub-parser per command, each built by its own function."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=f"Remix images with the Reve Remix API ({spec().method} {spec().path}).",
        epilog=_TOP_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(
        title="commands", metavar="COMMAND", parser_class=_CommandParser
    )
    shared = _SharedOptions()
    _add_remix(commands, shared)
    _add_batch(commands, shared)
    _add_demo(commands, shared)
    _add_mock(commands, shared)
    return parser


_Commands: TypeAlias = "argparse._SubParsersAction[_CommandParser]"


class _SharedOptions:
    """The option groups several commands share, each defined once: ``connection`` (where and
    how to call the API), ``generation`` (what to ask for) and ``--debug`` (every command)."""

    def __init__(self) -> None:
        self.connection = _CommandParser(add_help=False)
        group = self.connection.add_argument_group("connection")
        group.add_argument(
            "--base-url",
            metavar="URL",
            help=f"API base URL (default: ${BASE_URL_ENV} or OneRouter)",
        )
        group.add_argument(
            "--timeout",
            type=_checked(_config.timeout, float),
            metavar="SECONDS",
            help="wait this long for a result",
        )
        group.add_argument(
            "--max-retries",
            type=_number(int, 0),
            metavar="N",
            default=DEFAULT_MAX_RETRIES,
            help="retries of failures that cannot have been billed "
            f"(default: {DEFAULT_MAX_RETRIES}); a 429 has {RATE_LIMIT_RETRIES} of its own, "
            "or N if more (0: no retries at all)",
        )
        self.generation = _CommandParser(add_help=False)
        group = self.generation.add_argument_group("generation")
        ratios = spec().aspect_ratios
        group.add_argument(
            "--aspect-ratio", choices=ratios, metavar="W:H", help=f"one of {', '.join(ratios)}"
        )
        group.add_argument(
            "--format",
            dest="output_format",
            choices=spec().output_formats,
            metavar="|".join(sorted(spec().output_formats, reverse=True)),
            help=_FMT_HELP.format(", ".join(spec().output_formats), spec().default_output_format),
        )
        group.add_argument(
            "--model",
            type=_checked(check_model),
            help="model name (default: reve-remix-image-to-image)",
        )
        group.add_argument(
            "--fit",
            action="store_true",
            help="re-encode local images that are too large or in an unsupported format "
            "(needs Pillow)",
        )
        self.debug = _CommandParser(add_help=False)
        self.debug.add_argument(
            "--debug", action="store_true", help="show tracebacks and the debug log"
        )

    def command(
        self,
        commands: _Commands,
        name: str,
        summary: str,
        examples: str,
        *parents: _CommandParser,
    ) -> argparse.ArgumentParser:
        """Add the command ``name``, with ``parents``' options and ``--debug``."""
        return commands.add_parser(
            name,
            help=summary,
            description=summary,
            epilog=examples,
            parents=[*parents, self.debug],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )


def _add_remix(commands: _Commands, shared: _SharedOptions) -> None:
    summary = f"Remix {spec().images_text()} images with a prompt and save the result."
    remix = shared.command(
        commands, "remix", summary, _REMIX_EXAMPLES, shared.generation, shared.connection
    )
    remix.add_argument("prompt", help="what to make; refer to images as <img>N</img> or {name}")
    remix.add_argument(
        "-i",
        "--image",
        dest="images",
        action="append",
        required=True,
        metavar="IMAGE",
        help="a path or http(s) URL; NAME=IMAGE names it for {NAME} in the prompt "
        f"(repeat {spec().images_text()} times)",
    )
    remix.add_argument(
        "-o", "--output", help="file or folder to save to (default: ./<prompt>-<time>.<ext>)"
    )
    remix.add_argument("--force", action="store_true", help="overwrite an existing -o file")
    remix.add_argument("--json", action="store_true", help="print a JSON object, not the path")
    remix.set_defaults(run=_remix)


def _add_batch(commands: _Commands, shared: _SharedOptions) -> None:
    summary = "Run every job of a JSONL file; resumable, never paying twice."
    batch = shared.command(
        commands, "batch", summary, _BATCH_EXAMPLES, shared.generation, shared.connection
    )
    batch.add_argument("jobs", metavar="JOBS.jsonl", help="one JSON job per line")
    batch.add_argument("--out", required=True, metavar="DIR", help="folder for images and manifest")
    batch.add_argument(
        "--concurrency",
        type=_number(int, 1),
        metavar="N",
        default=DEFAULT_CONCURRENCY,
        help=f"jobs in flight at once (default: {DEFAULT_CONCURRENCY})",
    )
    flags = {
        "--strict": "stop before sending anything if any line is invalid",
        "--force": "overwrite files in DIR that no finished job wrote",
        "--resend-ambiguous": "send again the jobs whose last run may have been billed without "
        "an answer",
        "--regenerate-paid": "generate again (pay again) paid jobs whose image cannot be "
        "downloaded",
    }
    for flag, text in flags.items():
        batch.add_argument(flag, action="store_true", help=text)
    batch.set_defaults(run=_batch)


def _add_demo(commands: _Commands, shared: _SharedOptions) -> None:
    summary = "Remix the bundled sample images offline, through the mock server."
    demo = shared.command(commands, "demo", summary, _DEMO_EXAMPLES)
    demo.add_argument("-o", "--output", default=DEMO_OUTPUT, help=f"default: ./{DEMO_OUTPUT}")
    demo.set_defaults(run=_demo)


def _add_mock(commands: _Commands, shared: _SharedOptions) -> None:
    summary = "Serve the offline mock API on 127.0.0.1 until Ctrl-C."
    mock = shared.command(commands, "mock", summary, _MOCK_EXAMPLES)
    mock.add_argument(
        "--port", type=_number(int, 0, 65535), default=0, help="default 0: any free port"
    )
    mock.add_argument(
        "--latency",
        type=_number(float, 0),
        default=0.0,
        metavar="SECONDS",
        help="delay each answer",
    )
    mock.set_defaults(run=_mock)


class _CommandParser(argparse.ArgumentParser):
    """A command's parser: an argument it does not know is reported with its own usage.

    (argparse hands a command's leftovers to the top-level parser, whose usage says nothing
    about the command's options.)
    """

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras


def _checked(
    check: Callable[[Any], object], convert: Callable[[str], object] = str
) -> Callable[[str], Any]:
    """An argparse ``type`` that applies the library's own ``check``, so both say the same."""

    def parse(text: str) -> object:
        try:
            return check(convert(text))
        except ValueError as exc:  # ValidationError is one; float("x") raises another
            message = str(exc).partition(": ")[2] if isinstance(exc, ValidationError) else ""
            raise argparse.ArgumentTypeError(message or f"not a number: {text!r}") from None

    parse.__name__ = getattr(check, "__name__", "value")
    return parse


def _number(
    kind: type[int] | type[float], minimum: float, maximum: float | None = None
) -> Callable[[str], int | float]:
    """An argparse ``type`` that parses ``kind`` and checks its range."""

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if value < minimum or (maximum is not None and value > maximum):
            upper = f" and at most {maximum:g}" if maximum is not None else ""
            raise argparse.ArgumentTypeError(f"must be at least {minimum:g}{upper}, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


# The values and the default are the spec's: a format the vendor adds is listed with no edit here.
_FMT_HELP = "one of {} (default: {}); url: downloaded, b64_json: inline; the same image"

_TOP_EXAMPLES = """\
Examples:
  reve-remix demo                     # offline: no key, no network, writes reve-remix-demo.png
  reve-remix remix "Put {cat} on {sofa}" -i cat=cat.jpg -i sofa=sofa.png
  reve-remix batch jobs.jsonl --out results/

The API key is read from ONEROUTER_API_KEY. Run 'reve-remix COMMAND --help' for details.
Exit codes: 0 success, 1 API or network error, 2 usage or validation error, 130 interrupted.
"""

_REMIX_EXAMPLES = """\
Examples:
  export ONEROUTER_API_KEY=sk-...
  reve-remix remix "<img>0</img> as a watercolour" -i cat.jpg
  reve-remix remix "Put {cat} on {sofa}" -i cat=cat.jpg -i sofa=https://example.com/sofa.png \\
      --aspect-ratio 16:9 -o out/cat-on-sofa.png
  reve-remix remix "<img>0</img> at night" -i city.jpg --json

The image is saved as ./<prompt>-<UTC time>.<ext> (or in/as -o); an existing -o file is kept
unless --force. A value NAME=IMAGE names an image; write ./a=b.png for a file called a=b.png.
"""

_BATCH_EXAMPLES = """\
Examples:
  reve-remix batch jobs.jsonl --out results/ --concurrency 8

jobs.jsonl holds one job per line; image paths are relative to the file's folder:
  {"prompt": "<img>0</img> as a watercolour", "images": ["cat.jpg"], "id": "cat"}
  {"prompt": "Put {cat} on {sofa}", "images": {"cat": "cat.jpg", "sofa": "sofa.png"}}
  {"prompt": "<img>0</img> at dusk", "images": ["city.jpg"], "aspect_ratio": "16:9"}

Each job is recorded in DIR/manifest.jsonl when sent, when paid (a 2xx, before the download)
and when saved. Run the same command again after a failure, a crash or Ctrl-C: done jobs are
skipped, paid ones downloaded again (never generated again), unsent or failed ones sent. Jobs
that may have been billed without an answer are held: --resend-ambiguous sends them.
Exit code 0 when every job is done, 1 when some are not or some lines are invalid.
"""

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


# --- remix ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Output:
    """Where ``remix`` saves: a ``Target``; ``unique`` names get ``-2``, ``-3``... on a clash."""

    target: Target
    unique: bool

    def path_for(self, data: bytes) -> Path:
        path = self.target.path_for(data)
        number = 1
        while self.unique and path.exists():
            number += 1
            path = self.target.path_for(data).with_stem(f"{self.target.path.name}-{number}")
        return path


def _remix(args: argparse.Namespace, console: Console) -> int:
    images = _parse_images(args.images)
    output = _remix_output(args.output, args.prompt, force=args.force)
    with _client(args, console) as client:
        result, data = _generate(
            client,
            console,
            args.prompt,
            images,
            aspect_ratio=args.aspect_ratio,
            output_format=args.output_format,
            fit=args.fit,
        )
    image = result.image
    path = image.write(output.path_for(data), data)
    _warn_extension(console, path, data)
    if args.json:
        summary = {
            "path": str(path),
            "url": image.url,
            "revised_prompt": image.revised_prompt,
            "created": result.created,
            "request_id": result.request_id,
        }
        print(json.dumps(summary))  # ASCII: a server's lone surrogate cannot break stdout
    else:
        print(path)
    return EXIT_OK


def _parse_images(values: list[str]) -> list[str] | dict[str, str]:
    """``-i`` values: all plain (a list), or all ``NAME=IMAGE`` (a mapping)."""
    named: dict[str, str] = {}
    plain: list[str] = []
    for value in values:
        name, equals, image = value.partition("=")
        if equals and IMAGE_NAME.fullmatch(name):
            if not image:
                raise UsageError(f"-i {value}: no image after '='; write -i {name}=IMAGE")
            if name in named:
                raise UsageError(f"-i {name}=...: the name {name!r} is used twice")
            named[name] = image
        else:
            plain.append(value)
    if named and plain:
        raise UsageError(
            f"-i: name every image (NAME=IMAGE) or none of them; unnamed: {', '.join(plain)}"
        )
    return named or plain


def _remix_output(option: str | None, prompt: str, *, force: bool) -> _Output:
    """The save location, checked before anything is sent: writable, and no existing ``-o``
    file unless ``force``."""
    stem = f"{slugify(prompt)}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    if option is None:
        output = _Output(Target(Path(stem), add_extension=True), unique=True)
    else:
        problem = file_name_problem(option)
        if problem:
            raise UsageError(f"-o {option!r} {problem}")
        path = Path(option)
        if path.is_dir() or option.endswith(("/", os.sep)):
            output = _Output(Target(path / stem, add_extension=True), unique=True)
        else:
            output = _Output(Target(path, add_extension=not path.suffix), unique=False)
            existing = output.target.existing()
            if existing is not None and not force:
                raise UsageError(f"{existing} already exists; pass --force to overwrite it")
    problem = unwritable(output.target.path.parent)
    if problem:
        raise UsageError(f"-o {option or '.'}: {problem}; nothing was sent")
    return output


def _warn_extension(console: Console, path: Path, data: bytes) -> None:
    actual = image_extension(data)
    suffix = path.suffix.lower().replace(".jpeg", ".jpg")
    if suffix != actual:
        console.say(f"{PROG}: warning: {path} holds {actual[1:].upper()} data")


def _client(args: argparse.Namespace, console: Console) -> ReveRemix:
    """The client for the connection options, once the key is known to be set; its retries
    are shown on ``console``."""
    if _config.api_key(None) is None:  # also refuses a malformed key, before anything is read
        raise _config.missing_api_key()
    options: dict[str, Any] = {
        "base_url": args.base_url,
        "max_retries": args.max_retries,
        "on_retry": console.notices,
    }
    if args.model:
        options["model"] = args.model
    if args.timeout is not None:
        options["timeout"] = httpx.Timeout(args.timeout, connect=min(args.timeout, 10.0))
    return ReveRemix(**options)


def _generate(
    client: ReveRemix,
    console: Console,
    prompt: str,
    images: Images,
    *,
    aspect_ratio: str | None = None,
    output_format: str | None = None,
    fit: bool = False,
) -> tuple[RemixResult, bytes]:
    """One remix with a live indicator; the result and the image's bytes."""
    with console.status(lambda elapsed, retry: spinner_line(elapsed, "remixing", retry)):
        result = client.remix(
            prompt,
            images,
            aspect_ratio=aspect_ratio,
            output_format=output_format or spec().default_output_format,
            fit=fit,
        )
        return result, result.read()


# --- batch ---------------------------------------------------------------------------------------


def _batch(args: argparse.Namespace, console: Console) -> int:
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir}: not a folder")
    blocked = unwritable(out_dir)
    if blocked:
        raise UsageError(f"--out {out_dir}: {blocked}; nothing was sent")
    jobs_file = Path(args.jobs)
    jobs, problems = read_jobs(jobs_file)
    client = _client(args, console)
    with client, Manifest(out_dir) as manifest:
        try:  # before anything is sent; this also cuts off a record a crash left half-written
            manifest.open()
        except OSError as exc:
            raise UsageError(
                f"cannot write the manifest {manifest.path}: {exc.strerror or exc}; "
                "nothing was sent"
            ) from exc
        latest, unreadable = manifest.latest()
        for number in unreadable:
            console.say(f"{PROG}: warning: {manifest.path}: line {number} is cut short; ignored")
        jobs = [
            job.with_defaults(
                aspect_ratio=args.aspect_ratio, output_format=args.output_format, model=args.model
            )
            for job in jobs
        ]
        actions: dict[str, Action] = {
            job.id: latest[job.id].action(
                out_dir,
                resend_ambiguous=args.resend_ambiguous,
                regenerate_paid=args.regenerate_paid,
            )
            if job.id in latest
            else "send"
            for job in jobs
        }
        done_before = [job for job in jobs if actions[job.id] == "skip"]
        held = [job for job in jobs if actions[job.id] == "hold"]
        pending = [job for job in jobs if actions[job.id] in ("send", "fetch")]
        pending = _checked_jobs(pending, problems, client.model, out_dir, args, console, actions)
        for problem in sorted(problems, key=lambda problem: problem.number):
            console.say(f"{PROG}: {jobs_file}: {problem}")
        if problems and args.strict:
            console.say(f"{PROG}: --strict: {len(problems)} invalid line(s); nothing was sent")
            return EXIT_USAGE
        remove_stale_parts(out_dir)
        for job in held:
            console.say(f"{PROG}: {_held_reason(job, latest[job.id])}")
        run = _BatchRun(console, out_dir, total=len(pending))
        console.printer.quiet = True
        interrupted = False
        try:
            with console.status(run.render), _graceful_interrupts(console) as on_interrupt:
                run_in_threads(
                    lambda job: run_job(
                        client,
                        job,
                        out_dir,
                        manifest,
                        fit=args.fit,
                        previous=latest.get(job.id),
                        regenerate_paid=args.regenerate_paid,
                    ),
                    pending,
                    concurrency=args.concurrency,
                    on_outcome=run.finished,
                    on_interrupt=on_interrupt,
                )
        except KeyboardInterrupt:
            interrupted = True
        except _BatchStopped as stop:
            console.say(f"{PROG}: stopped: {stop}")
    print(run.summary(len(done_before), len(held), len(problems), interrupted, manifest.path))
    if interrupted:
        return EXIT_INTERRUPTED
    complete = run.done == run.total and not held and not problems
    return EXIT_OK if complete else EXIT_API_ERROR


def _held_reason(job: JobLine, record: ManifestRecord) -> str:
    """Why a job is not sent this run, and the flag that would send it."""
    where = f"held {job.id} (line {job.number}): "
    rid = f"request id {record.request_id}" if record.request_id else "no request id"
    if record.status == JobState.PAID:
        return (
            f"{where}generated ({rid}), but its response had no image (raw body in the "
            "manifest); --regenerate-paid generates it again (billed again)"
        )
    return (
        f"{where}{MAY_HAVE_BEEN_GENERATED} ({rid}): its last run ended without an answer; "
        "--resend-ambiguous sends it again (possibly billed twice)"
    )


def _checked_jobs(
    jobs: list[JobLine],
    problems: list[LineProblem],
    model: str,
    out_dir: Path,
    args: argparse.Namespace,
    console: Console,
    actions: Mapping[str, Action],
) -> list[JobLine]:
    """The jobs that pass local checks; the others go to ``problems``. Sends nothing.

    Jobs to send are validated as ``remix`` would, and may not overwrite a file no finished job
    wrote; every job's target must be writable, inside ``out_dir`` and its own (a clash names
    both lines). A paid job's own target may be overwritten: a killed run may have saved it.
    """
    targets = target_problems(jobs, out_dir)
    valid: list[JobLine] = []
    for job in jobs:
        console.printer.prefix = f"{args.jobs}: line {job.number}: "
        try:
            if job.number in targets:
                raise UsageError(targets[job.number])
            if actions[job.id] == "send":
                job.check(model, fit=args.fit)
                existing = job.target(out_dir).existing()
                if existing is not None and not args.force:
                    raise UsageError(
                        f"{existing} exists but no finished job of this batch wrote it; "
                        'remove it, set another "output", or pass --force to overwrite it'
                    )
        except (ValidationError, UsageError, OSError) as exc:  # OSError: e.g. an unreadable --out
            problems.append(LineProblem(job.number, str(exc)))
        else:
            valid.append(job)
        finally:
            console.printer.prefix = ""
    return valid


class _BatchStopped(Exception):
    """A batch job failed in a way every other job would: stop starting them, and say why."""


class _BatchRun:
    """Counts a running batch, reports each finished job, draws the bar, writes the summary."""

    def __init__(self, console: Console, out_dir: Path, *, total: int) -> None:
        self.console = console
        self.out_dir = out_dir
        self.total = total
        self.done = 0
        self.ended: collections.Counter[JobState] = collections.Counter()
        self.started = time.monotonic()
        self.stopped: str | None = None
        """Why the batch stopped before its end, if it did (a 401 or 402)."""

    @property
    def failed(self) -> int:
        """Jobs of this run that ended other than done."""
        return sum(self.ended.values())

    def render(self, elapsed: float, retry: str | None) -> str:
        return bar_line(self.done, self.failed, self.total, elapsed, retry)

    def finished(self, _index: int, record: ManifestRecord | ReveRemixError) -> None:
        if isinstance(record, ReveRemixError):  # run_job records failures itself
            raise TypeError(f"run_job raised {record!r}")
        counter = f"[{self.done + self.failed + 1}/{self.total}]"
        where = f"{record.id} (line {record.line})"
        if record.status == JobState.DONE:
            self.done += 1
            if not self.console.live:
                self.console.say(
                    f"{PROG}: {counter} done {where} -> {self.out_dir / str(record.file)}"
                )
            return
        self.ended[record.status] += 1
        label = {
            JobState.PAID: GENERATED_NOT_SAVED,
            JobState.AMBIGUOUS: MAY_HAVE_BEEN_GENERATED,
        }.get(record.status, "failed")
        advice = {
            JobState.PAID: "; run again to download it (not generated again)",
            JobState.AMBIGUOUS: "; not sent again unless you pass --resend-ambiguous",
        }.get(record.status, "")
        self.console.say(f"{PROG}: {counter} {label} {where}: {record.error}{advice}")
        account = _ACCOUNT_FAILURE.match(record.error or "")
        if account and record.status == JobState.FAILED:
            self.stopped = f"{account[1]} on line {record.line}"
            raise _BatchStopped(
                f"{_ACCOUNT_HINTS[account[1]]}; every other job would fail the same way, "
                "so those not started yet are left pending"
            )

    def summary(
        self, before: int, held: int, invalid: int, interrupted: bool, manifest: Path
    ) -> str:
        parts = [f"{self.done + before} done" + (f" ({before} in earlier runs)" if before else "")]
        parts.append(f"{self.ended[JobState.FAILED]} failed")
        if self.ended[JobState.PAID]:
            parts.append(f"{self.ended[JobState.PAID]} {GENERATED_NOT_SAVED} (run again)")
        ambiguous = self.ended[JobState.AMBIGUOUS] + held
        if ambiguous:
            parts.append(f"{ambiguous} held ({MAY_HAVE_BEEN_GENERATED} or unreadable)")
        if invalid:
            parts.append(f"{invalid} invalid line(s) skipped")
        not_started = self.total - self.done - self.failed
        if (interrupted or self.stopped) and not_started:
            why = "interrupted" if interrupted else f"stopped after the {self.stopped}"
            parts.append(f"{not_started} not started ({why}; run again to resume)")
        seconds = time.monotonic() - self.started
        return f"{', '.join(parts)} in {seconds:.1f} s; manifest: {manifest}"


@contextlib.contextmanager
def _graceful_interrupts(console: Console) -> Iterator[Callable[[int], None]]:
    """The callback for a batch's first Ctrl-C: say so, and make a second one quit at once.

    Jobs already sent are paid for, so the first Ctrl-C lets them finish and be saved.
    """
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGINT)

    def interrupted(running: int) -> None:
        console.say(
            f"{PROG}: interrupted; finishing {running} running job(s) so that they are saved "
            "(Ctrl-C again to quit now: they would be held as possibly billed next run)"
        )
        if in_main_thread:
            signal.signal(signal.SIGINT, _quit_now)

    try:
        yield interrupted
    finally:
        if in_main_thread and previous is not None:
            signal.signal(signal.SIGINT, previous)


def _quit_now(_signal: int, _frame: object) -> None:
    sys.stderr.write(f"{PROG}: quit\n")
    sys.stderr.flush()
    os._exit(EXIT_INTERRUPTED)


# --- demo and mock -------------------------------------------------------------------------------


def _demo(args: argparse.Namespace, console: Console) -> int:
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
        result, data = _generate(client, console, DEMO_PROMPT, images)
        sent = next(request.json for request in server.requests if request.method == "POST")
    write_atomic(output, data)
    print(f"Sent as: {sent['prompt']}  (images as data: URLs, in the order named)")
    print(f"Revised prompt: {result.image.revised_prompt}")
    print(f"Saved {output} ({len(data):,} bytes, request id {result.request_id}).")
    print(
        f"Next, with your own images and your key in {API_KEY_ENV}:\n"
        f'  reve-remix remix "{DEMO_PROMPT}" -i cat=cat.png -i sofa=sofa.jpg'
    )
    return EXIT_OK


def _mock(args: argparse.Namespace, console: Console) -> int:
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
