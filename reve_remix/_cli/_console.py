"""stderr for one command: messages, the live status line, errors with hints, never the API key.

Also the command line's words: its name, exit codes, and how each error is explained.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

from .._client import BASE_URL_ENV, retry_logger
from .._config import API_KEY_ENV
from .._exceptions import (
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
from .._progress import RetryNotices, StatusLine, is_terminal
from .._redact import redact
from .._spec import spec

PROG = "reve-remix"
EXIT_OK, EXIT_API_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """A mistake on the command line or in its files: reported, exit code 2, nothing sent."""


class Console:
    """stderr for one command: messages, the live status line, errors, and never the API key.

    Example::

        console = Console(sys.stderr, debug=False)
        console.say("reve-remix: hello")
    """

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

    @contextlib.contextmanager
    def prefixed(self, prefix: str) -> Iterator[None]:
        """Put ``prefix`` before the library's log lines while in use (a batch: the line)."""
        self.printer.prefix = prefix
        try:
            yield
        finally:
            self.printer.prefix = ""

    @contextlib.contextmanager
    def quiet(self) -> Iterator[None]:
        """Show only retries and errors of the library's log while in use (a running batch)."""
        self.printer.quiet = True
        try:
            yield
        finally:
            self.printer.quiet = False

    def fail(self, exc: BaseException, images: object = None) -> int:
        """Report ``exc`` as one line with a hint (and the traceback with ``--debug``)."""
        if self.debug:
            self.say("".join(traceback.format_exception(exc)).rstrip())
        code, message, hint = explain(exc, images)
        self.say(f"{PROG}: error: {message}" + (f" — {hint}" if hint else ""))
        return code


class _LogPrinter(logging.Handler):
    """Prints the library's log records on the console.

    Retry records are drawn in the status line on a terminal and printed elsewhere.
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
        # Quiet (a running batch): warnings were shown while its lines were checked.
        loud = retry or record.levelno >= logging.ERROR or self.console.debug
        if self.quiet and not loud:
            return
        level = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
        self.console.say(f"{PROG}: {self.prefix}{level}{record.getMessage()}")


def explain(exc: BaseException, images: object) -> tuple[int, str, str | None]:
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
        return EXIT_API_ERROR, f"unexpected {type(exc).__name__}: {message}", DEBUG_HINT
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
ACCOUNT_HINTS = {
    401: f"the key was refused: check that {API_KEY_ENV} holds a valid, active OneRouter key",
    402: "the account is out of credits: top it up on OneRouter, then run this again",
}
"""A 401 or 402 fails every later job the same way: what to do about it."""
DEBUG_HINT = "run again with --debug for the traceback, and please report it"


def fetch_command(url: str, output: str | os.PathLike[str]) -> str:
    """The command that fetches a paid image again without paying for it."""
    return f"{PROG} fetch '{url}' -o '{os.fspath(output)}'"


def _api_hint(exc: ReveRemixError, images: object) -> str | None:
    if isinstance(exc, ImageNotSavedError):
        if exc.url:
            return f"it is paid for: fetch it without paying: {fetch_command(exc.url, 'FILE')}"
        return "it is paid for: do not remix again to get it"
    if isinstance(exc, AuthenticationError):
        return ACCOUNT_HINTS[401]
    if isinstance(exc, PaymentRequiredError):
        return ACCOUNT_HINTS[402]
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
