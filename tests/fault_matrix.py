"""The fault matrix: every failure a remix must survive, as data, and one runner for all of it.

Each :class:`Row` scripts the mock server (or leaves nothing listening), makes one remix over real
loopback HTTP and states what must come of it: an exception class, or success, and the exact
number of requests the server saw. That number is the point: every request the server saw is a
generation that may have been billed, so a retry policy is judged by it.

:class:`DownloadRow` does the same for the download of a paid image (``DOWNLOAD_ROWS``, played
by :func:`run_download`): a GET is free, so every transient fault is retried, and the number that
matters is how many GETs it took, with exactly one POST (one generation) in every row.

Shared by ``tests/test_fault_matrix.py`` (one test per row) and ``scripts/fault_matrix.py`` (the
rows as Markdown tables for ``docs/robustness.md``). :func:`run` shortens the retry backoff to
milliseconds while a row runs, so the whole matrix takes a few seconds; ``Retry-After`` is obeyed
as sent.

Example::

    for row in ROWS:
        outcome = run(row)
        assert outcome.matches, outcome.mismatch
"""

from __future__ import annotations

import contextlib
import email.utils
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Literal

import reve_remix._retry as retry
from reve_remix import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ImageNotSavedError,
    InternalServerError,
    NotFoundError,
    PayloadTooLargeError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitError,
    RequestTimeoutError,
    ReveRemixError,
    UnprocessableEntityError,
)
from reve_remix._download import DOWNLOAD_MAX_RETRIES, Downloader
from reve_remix._results import paid_image
from reve_remix.testing import Fault, MockServer

from .conftest import API_KEY, IMAGE_URL, RefusedPort, Twin
from .paid_server import DRIP_SECONDS, SLOW_SECONDS, PaidServer

MAX_RETRIES = 2
FAST_BACKOFF = (0.01, 0.02)  # INITIAL_BACKOFF, MAX_BACKOFF while a row runs, in seconds
SLOW_TIMEOUT = 0.2  # the client's timeout in the "slow response" rows that get no answer at all
# The timeout of the row whose retry must get a normal answer in time: the mock answers in
# milliseconds, but a machine busy with other work may hold a thread back far longer than 0.2 s.
ANSWER_TIMEOUT = 2.0
# How long the server sits on a "slow" request: longer than any row, so that however slowly a
# busy machine runs the client, its timeout comes first (the server drops them when it stops).
SLOW_DELAY = 3600.0
RETRY_AFTER = 1  # seconds; delta-seconds are whole numbers in HTTP
VALID_BODY = b'{"created": 1700000000, "data": [{"url": "http://127.0.0.1:9/out.png"}]}'


@dataclass(frozen=True)
class Row:
    """One fault and its expected outcome under one retry policy.

    ``faults`` are the scripted answers to the first requests, in order (later requests get
    normal answers). ``refused`` leaves the port closed: ``"never"`` opened, or ``"once"``, the
    server starting when the client decides to retry (``None``: the server is up from the start).
    ``retry_after_date`` gives the first fault a ``Retry-After`` HTTP date that many seconds after
    the row starts; the call must not end before that date. ``expected`` is the exception class
    the call must raise, exactly, or ``None`` for success.
    """

    fault: str
    faults: tuple[Fault, ...]
    expected: type[ReveRemixError] | None
    requests: int
    retry_on_ambiguous: bool = False
    max_retries: int = MAX_RETRIES
    timeout: float = 5.0
    refused: Literal["never", "once"] | None = None
    retry_after_date: float | None = None
    min_elapsed: float = 0.0

    @property
    def policy(self) -> str:
        return f"retry_on_ambiguous={self.retry_on_ambiguous}"

    @property
    def id(self) -> str:
        return f"{self.fault} [{self.policy}]"

    @property
    def expected_name(self) -> str:
        return "success" if self.expected is None else self.expected.__name__


@dataclass(frozen=True)
class Outcome:
    """What :func:`run` observed for a row."""

    row: Row
    error: ReveRemixError | None
    requests: int
    elapsed: float
    ended_at: float  # wall clock (time.time()), for a Retry-After date
    not_before: float | None = None  # the row's Retry-After date, wall clock

    @property
    def name(self) -> str:
        return "success" if self.error is None else type(self.error).__name__

    @property
    def mismatch(self) -> str | None:
        """How the outcome differs from the row's expectation; ``None`` when it matches."""
        row = self.row
        problems = []
        if self.name != row.expected_name:
            problems.append(f"raised {self.error!r}, expected {row.expected_name}")
        elif isinstance(self.error, APIStatusError) and row.faults:
            status = row.faults[-1].status
            if self.error.status_code != status:
                problems.append(f"status {self.error.status_code}, expected {status}")
        if self.requests != row.requests:
            problems.append(f"the server saw {self.requests} requests, expected {row.requests}")
        if self.elapsed < row.min_elapsed:
            problems.append(f"took {self.elapsed:.2f} s, expected at least {row.min_elapsed} s")
        # The 0.05 s is for the clocks (the wait is timed on the monotonic clock, the date is
        # wall time); a client that ignored the date would end one to two seconds early.
        if self.not_before is not None and self.ended_at < self.not_before - 0.05:
            early = self.not_before - self.ended_at
            problems.append(f"ended {early:.2f} s before its Retry-After date")
        return "; ".join(problems) or None

    @property
    def matches(self) -> bool:
        return self.mismatch is None


def _both_policies(
    fault: str, faults: tuple[Fault, ...], expected: type[ReveRemixError] | None, requests: int
) -> list[Row]:
    """The same row under both policies, for faults the ambiguity setting must not change."""
    return [
        Row(fault, faults, expected, requests, retry_on_ambiguous=flag) for flag in (False, True)
    ]


def _rows() -> list[Row]:
    rows: list[Row] = []
    final: list[tuple[int, type[ReveRemixError]]] = [
        (400, BadRequestError),
        (401, AuthenticationError),
        (402, PaymentRequiredError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (413, PayloadTooLargeError),
        (422, UnprocessableEntityError),
    ]
    for status, error in final:
        rows += _both_policies(f"{status}", (Fault(status=status),), error, 1)
    retryable: list[tuple[int, type[ReveRemixError]]] = [
        (408, RequestTimeoutError),
        (429, RateLimitError),
        (502, InternalServerError),
        (503, InternalServerError),
    ]
    for status, error in retryable:
        rows += _both_policies(f"{status} once", (Fault(status=status),), None, 2)
        budget = retry.RATE_LIMIT_RETRIES if status == 429 else MAX_RETRIES  # a 429's own budget
        persistent = (Fault(status=status),) * (budget + 1)
        rows += _both_policies(f"{status} every time", persistent, error, budget + 1)
    # A 500, and a gateway's 504 or 524, may have generated (and billed) the image.
    for status in (500, 504, 524):
        rows += [
            Row(f"{status} once", (Fault(status=status),), InternalServerError, 1),
            Row(f"{status} once", (Fault(status=status),), None, 2, retry_on_ambiguous=True),
            Row(
                f"{status} every time",
                (Fault(status=status),) * (MAX_RETRIES + 1),
                InternalServerError,
                MAX_RETRIES + 1,
                retry_on_ambiguous=True,
            ),
        ]
    rows += [
        Row(
            f"429 with Retry-After: {RETRY_AFTER} (seconds)",
            (Fault(status=429, headers={"Retry-After": str(RETRY_AFTER)}),),
            None,
            2,
            min_elapsed=RETRY_AFTER - 0.05,
        ),
        # An HTTP date has whole seconds: one 2 s ahead is between 1 and 2 s away when sent.
        # Checked against the date itself, not a duration: a busy machine may read the 503 late.
        Row(
            "503 with Retry-After: an HTTP date 2 s ahead",
            (Fault(status=503),),
            None,
            2,
            retry_after_date=2.0,
        ),
    ]
    rows += [
        Row(
            "connection refused (nothing listening)",
            (),
            APIConnectionError,
            0,
            retry_on_ambiguous=flag,
            refused="never",
        )
        for flag in (False, True)
    ]
    rows += [
        Row(
            "connection refused, then up for the retry",
            (),
            None,
            1,
            retry_on_ambiguous=flag,
            refused="once",
        )
        for flag in (False, True)
    ]
    drop = (Fault(drop=True),)
    slow = (Fault(delay=SLOW_DELAY),)
    truncated = (Fault(status=200, body=VALID_BODY, truncate=True),)
    for fault, faults, error in [
        ("connection dropped after the request was sent", drop, APIConnectionError),
        ("no response within the client's timeout", slow, APITimeoutError),
        ("200 with its body cut short", truncated, APIConnectionError),
    ]:
        timeout = SLOW_TIMEOUT if faults is slow else 5.0
        rows += [
            Row(fault, faults, error, 1, timeout=timeout),
            Row(
                fault,
                faults,
                None,
                2,
                retry_on_ambiguous=True,
                timeout=ANSWER_TIMEOUT if faults is slow else timeout,
            ),
            Row(
                f"{fault}, every time",
                faults * (MAX_RETRIES + 1),
                error,
                MAX_RETRIES + 1,
                retry_on_ambiguous=True,
                timeout=timeout,
            ),
        ]
    non_json = (Fault(status=200, body=b"<html>gateway</html>"),)
    rows += _both_policies(
        "200 with a body that is not JSON", non_json, APIResponseValidationError, 1
    )
    return rows


ROWS: list[Row] = _rows()


@contextlib.contextmanager
def fast_backoff() -> Iterator[None]:
    """Backoff in milliseconds while the block runs, so rows measure behaviour, not patience."""
    saved = retry.INITIAL_BACKOFF, retry.MAX_BACKOFF
    retry.INITIAL_BACKOFF, retry.MAX_BACKOFF = FAST_BACKOFF
    try:
        yield
    finally:
        retry.INITIAL_BACKOFF, retry.MAX_BACKOFF = saved


def run(row: Row, kind: str = "sync") -> Outcome:
    """Play ``row`` against a fresh mock server over loopback and report what happened.

    ``kind`` is the client: ``"sync"`` (``ReveRemix``) or ``"async"`` (``AsyncReveRemix``).
    """
    with contextlib.ExitStack() as stack:
        on_retry = None
        if row.refused is None:
            server = stack.enter_context(MockServer())
            base_url = server.base_url
        else:
            refused = stack.enter_context(RefusedPort())
            server = MockServer(port=refused.port)
            stack.callback(server.stop)
            base_url = f"http://127.0.0.1:{refused.port}"
            if row.refused == "once":
                on_retry = _opening(refused, server)
        faults, not_before = _scripted(row)
        server.enqueue(*faults)
        error: ReveRemixError | None = None
        with (
            fast_backoff(),
            Twin(
                kind,
                api_key=API_KEY,
                base_url=base_url,
                max_retries=row.max_retries,
                retry_on_ambiguous=row.retry_on_ambiguous,
                timeout=row.timeout,
                on_retry=on_retry,
            ) as client,
        ):
            started = time.monotonic()
            try:
                client.remix("<img>0</img> in the rain", [IMAGE_URL])
            except ReveRemixError as exc:
                error = exc
            elapsed = time.monotonic() - started
            ended_at = time.time()
    posts = sum(1 for request in server.requests if request.method == "POST")
    return Outcome(row, error, posts, elapsed, ended_at, not_before)


def _opening(refused: RefusedPort, server: MockServer) -> Callable[[object], None]:
    """An ``on_retry`` that releases ``refused`` and starts ``server`` on its port, once.

    The server is up for the retry because the client decided to retry, not because a timer
    happened to fire before the client ran out of retries.
    """
    opened: list[bool] = []

    def open_port(_event: object) -> None:
        if not opened:
            opened.append(True)
            refused.release()
            server.start()

    return open_port


def _scripted(row: Row) -> tuple[list[Fault], float | None]:
    """The row's faults, the first one dated if the row asks for a Retry-After date; the date."""
    faults = list(row.faults)
    if row.retry_after_date is None:
        return faults, None
    date = int(time.time() + row.retry_after_date)  # an HTTP date has whole seconds
    when = email.utils.formatdate(date, usegmt=True)
    faults[0] = replace(faults[0], headers={"Retry-After": when})
    return faults, date


# --- downloads of a paid image -------------------------------------------------------------------

DOWNLOAD_DEADLINE = 1.0  # seconds: the "drip past the deadline" row's whole download
_EVERY_TIME = DOWNLOAD_MAX_RETRIES + 1


@dataclass(frozen=True)
class DownloadRow:
    """One fault of a result download: the CDN's answers, in order, and what must come of it.

    ``script`` names each GET's answer (see ``tests/paid_server.py``; later GETs get the image).
    ``expected`` is the class of the ``ImageNotSavedError``'s cause, or ``None`` for success.
    """

    fault: str
    script: tuple[str, ...]
    expected: type[ReveRemixError] | None
    gets: int
    deadline: float = 30.0

    @property
    def id(self) -> str:
        return self.fault

    @property
    def expected_name(self) -> str:
        if self.expected is None:
            return "saved"
        return f"ImageNotSavedError ({self.expected.__name__})"


@dataclass(frozen=True)
class DownloadOutcome:
    """What :func:`run_download` observed for a row."""

    row: DownloadRow
    error: ImageNotSavedError | None
    posts: int
    gets: int
    elapsed: float

    @property
    def name(self) -> str:
        if self.error is None:
            return "saved"
        return f"ImageNotSavedError ({type(self.error.cause).__name__})"

    @property
    def mismatch(self) -> str | None:
        problems = []
        if self.name != self.row.expected_name:
            problems.append(f"got {self.name} ({self.error}), expected {self.row.expected_name}")
        if self.gets != self.row.gets:
            problems.append(f"the CDN saw {self.gets} GETs, expected {self.row.gets}")
        if self.posts != 1:
            problems.append(f"the API saw {self.posts} POSTs: a generation was paid for twice")
        return "; ".join(problems) or None

    @property
    def matches(self) -> bool:
        return self.mismatch is None


def _download_rows() -> list[DownloadRow]:
    rows = [
        DownloadRow("503 once", ("503",), None, 2),
        DownloadRow("503 every time", ("503",) * _EVERY_TIME, InternalServerError, _EVERY_TIME),
        DownloadRow("500 once", ("500",), None, 2),
        DownloadRow("404", ("404",), NotFoundError, 1),
        DownloadRow("connection dropped once", ("drop",), None, 2),
        DownloadRow(
            "connection dropped every time", ("drop",) * _EVERY_TIME, APIConnectionError, 4
        ),
        DownloadRow("body cut short once", ("truncate",), None, 2),
        DownloadRow(f"slow drip ({DRIP_SECONDS} s), within the deadline", ("drip",), None, 1),
        DownloadRow(
            f"slow drip ({SLOW_SECONDS} s), past a {DOWNLOAD_DEADLINE} s deadline",
            ("slow",),
            APITimeoutError,
            1,
            deadline=DOWNLOAD_DEADLINE,
        ),
        DownloadRow("302 redirect to the file", ("redirect",), None, 2),
        DownloadRow("200 with an HTML page once", ("html",), None, 2),
        DownloadRow(
            "200 with an HTML page every time",
            ("html",) * _EVERY_TIME,
            APIResponseValidationError,
            _EVERY_TIME,
        ),
        DownloadRow("200 with 0 bytes once", ("empty",), None, 2),
        DownloadRow(
            "200 with 0 bytes every time",
            ("empty",) * _EVERY_TIME,
            APIResponseValidationError,
            _EVERY_TIME,
        ),
    ]
    return rows


DOWNLOAD_ROWS: list[DownloadRow] = _download_rows()


def run_download(row: DownloadRow, kind: str = "sync") -> DownloadOutcome:
    """Remix once against a :class:`PaidServer` playing ``row``, then save the paid image.

    ``kind`` is the client, ``"sync"`` or ``"async"``, and the downloader's httpx client with it.
    """
    error: ImageNotSavedError | None = None
    with (
        fast_backoff(),
        PaidServer(downloads=row.script) as server,
        Twin(kind, api_key=API_KEY, base_url=server.base_url) as client,
    ):
        result = client.remix("<img>0</img> in the rain", [IMAGE_URL])
        downloader = Downloader(client.http_client(), deadline=row.deadline)
        image = paid_image(downloader, str(result.image.url), None)
        started = time.monotonic()
        try:
            client.read(image)
        except ImageNotSavedError as exc:
            error = exc
        elapsed = time.monotonic() - started
        return DownloadOutcome(row, error, sum(server.posted.values()), server.gets, elapsed)
