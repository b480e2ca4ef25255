"""Fetching a paid result image by URL: retried, redirected, bounded in time and size, checked.

The image behind a URL is already paid for, and a GET of it is free and idempotent, so a download
tries harder than a generation: every transient failure (a connection error or drop, 408, 429,
any 5xx, a timeout, a body cut short, bytes that are not an image) is retried with the client's
backoff and ``Retry-After`` (``_retry``), up to ``max_retries`` times and within one overall
``deadline`` that covers every attempt and every read (a body dripping a few bytes a second ends
there, not never). Redirects are followed to any host. The URL points at a CDN or a storage
bucket, not at the API, so no request carries the ``Authorization`` header, even if the injected
``httpx`` client has one by default. Success means bytes of a format the API produces.

A result outlives its client: when the owning connection pool is closed (the ``with`` block has
ended), is of the other kind (``read()`` of an ``AsyncReveRemix`` result), or was left behind by
pickling, the download goes through a short-lived client of its own.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Iterator

import httpx

from ._exceptions import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    connection_error,
    status_error,
)
from ._images import is_known_image, supported_formats_text
from ._retry import backoff, parse_retry_after

MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024
DOWNLOAD_DEADLINE = 120.0  # seconds for the whole download: every attempt, read and wait
DOWNLOAD_TIMEOUT = httpx.Timeout(30.0, connect=10.0)  # per operation, within the deadline
DOWNLOAD_MAX_RETRIES = 3  # a GET is free: retried even where a generation would not be
_RETRYABLE_STATUSES = frozenset({408, 429})  # and every 5xx
_PREVIEW_BYTES = 200


class Downloader:
    """Downloads result URLs, through the owning client's connection pool while it is open.

    Example::

        png = Downloader(httpx.Client()).download("https://cdn.example.com/out.png")
    """

    def __init__(
        self,
        http: httpx.Client | httpx.AsyncClient | None,
        *,
        max_retries: int = DOWNLOAD_MAX_RETRIES,
        deadline: float = DOWNLOAD_DEADLINE,
    ) -> None:
        self._http = http
        self.max_retries = max_retries
        self.deadline = deadline

    def __getstate__(self) -> dict[str, object]:
        """Pickled without the connection pool (locks, sockets, the client's headers): an
        unpickled result downloads through a short-lived client of its own."""
        return {**self.__dict__, "_http": None}

    def download(self, url: str) -> bytes:
        """The image at ``url``; the last attempt's ``APIError`` if every attempt failed.

        Example::

            png = downloader.download("https://cdn.example.com/out.png")
        """
        attempts = _Attempts(url, self.max_retries, self.deadline)
        with self._sync_http() as http:
            while True:
                try:
                    return _get(http, attempts)
                except APIError as error:
                    time.sleep(attempts.delay_or_raise(error))

    async def adownload(self, url: str) -> bytes:
        """Async twin of :meth:`download`."""
        import asyncio  # imported on first use, like everything async (see _client)

        attempts = _Attempts(url, self.max_retries, self.deadline)
        async with self._async_http() as http:
            while True:
                try:
                    return await _aget(http, attempts)
                except APIError as error:
                    await asyncio.sleep(attempts.delay_or_raise(error))

    @contextlib.contextmanager
    def _sync_http(self) -> Iterator[httpx.Client]:
        if isinstance(self._http, httpx.Client) and not self._http.is_closed:
            yield self._http
        else:
            with httpx.Client(timeout=DOWNLOAD_TIMEOUT) as http:
                yield http

    @contextlib.asynccontextmanager
    async def _async_http(self) -> AsyncIterator[httpx.AsyncClient]:
        if isinstance(self._http, httpx.AsyncClient) and not self._http.is_closed:
            yield self._http
        else:
            async with httpx.AsyncClient(timeout=DOWNLOAD_TIMEOUT) as http:
                yield http


def _get(http: httpx.Client, attempts: _Attempts) -> bytes:
    """One attempt: a GET, redirects followed, the body read within the deadline and checked."""
    request = attempts.request(http)
    try:
        response = http.send(request, stream=True, auth=None, follow_redirects=True)
        try:
            if not response.is_success:
                response.read()
                raise status_error(response)
            buffer = bytearray()
            for chunk in response.iter_bytes():
                attempts.receive(buffer, chunk, response)
        finally:
            response.close()
    except httpx.RequestError as exc:  # transport errors, and too many redirects
        raise connection_error(exc, request) from exc
    return attempts.image(buffer, response)


async def _aget(http: httpx.AsyncClient, attempts: _Attempts) -> bytes:
    """Async twin of :func:`_get`."""
    request = attempts.request(http)
    try:
        response = await http.send(request, stream=True, auth=None, follow_redirects=True)
        try:
            if not response.is_success:
                await response.aread()
                raise status_error(response)
            buffer = bytearray()
            async for chunk in response.aiter_bytes():
                attempts.receive(buffer, chunk, response)
        finally:
            await response.aclose()
    except httpx.RequestError as exc:  # transport errors, and too many redirects
        raise connection_error(exc, request) from exc
    return attempts.image(buffer, response)


class _Attempts:
    """The policy of one download, shared by the sync and async loops: requests, limits, retries."""

    def __init__(self, url: str, max_retries: int, deadline: float) -> None:
        self.url = url
        self.max_retries = max_retries
        self.deadline = deadline
        self.ends = time.monotonic() + deadline
        self.retries = 0
        self.final = False  # set by an error that no retry can cure (a body over the cap)

    def remaining(self) -> float:
        return self.ends - time.monotonic()

    def request(self, http: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        """A GET of the URL without the API key, its timeouts cut to the time left."""
        left = max(self.remaining(), 0.001)
        read, connect = DOWNLOAD_TIMEOUT.read or left, DOWNLOAD_TIMEOUT.connect or left
        timeout = httpx.Timeout(min(read, left), connect=min(connect, left))
        try:
            request = http.build_request("GET", self.url, timeout=timeout)
        except httpx.InvalidURL as exc:
            self.final = True
            raise APIConnectionError(f"the image URL cannot be fetched: {exc}") from exc
        request.headers.pop("authorization", None)
        return request

    def receive(self, buffer: bytearray, chunk: bytes, response: httpx.Response) -> None:
        """Add ``chunk``; stop when the body passes the size cap or the deadline passes."""
        buffer += chunk
        if len(buffer) > MAX_DOWNLOAD_BYTES:
            self.final = True
            raise APIResponseValidationError(
                f"image download exceeds {MAX_DOWNLOAD_BYTES} bytes; stopped",
                response=response,
                body=None,
            )
        if self.remaining() <= 0:
            raise APITimeoutError(
                f"the download did not finish within its {self.deadline:g} s deadline "
                f"({len(buffer):,} bytes received)",
                request=response.request,
            )

    def image(self, buffer: bytearray, response: httpx.Response) -> bytes:
        """The body, if it is an image of a format the API produces."""
        data = bytes(buffer)
        kind = response.headers.get("content-type") or "no content type"
        problem = not_an_image(data, f"the URL answered {len(data):,} bytes ({kind})")
        if problem:
            raise APIResponseValidationError(
                problem,
                response=response,
                body=data[:_PREVIEW_BYTES].decode("utf-8", errors="replace"),
            )
        return data

    def delay_or_raise(self, error: APIError) -> float:
        """Seconds to wait before the next attempt; raises ``error`` when there is none."""
        if self.final or self.retries >= self.max_retries or not _transient(error):
            raise error
        hinted = None
        if isinstance(error, APIStatusError):
            hinted = parse_retry_after(error.response.headers.get("retry-after"))
        self.retries += 1
        delay = backoff(self.retries) if hinted is None else hinted
        if delay >= self.remaining():
            raise error
        return delay


def not_an_image(data: bytes, what: str) -> str | None:
    """Why ``data`` does not count as a saved image (``what`` names it), or ``None`` if it does.

    Example::

        >>> not_an_image(b"<html>", "the body")
        'the body is not a PNG, JPEG, WebP, AVIF or HEIF image'
    """
    if is_known_image(data):
        return None
    return f"{what} is not a {supported_formats_text()} image"


def _transient(error: APIError) -> bool:
    """Whether another attempt may succeed: anything but a definite refusal (4xx)."""
    if isinstance(error, APIStatusError):
        return error.status_code in _RETRYABLE_STATUSES or error.status_code >= 500
    return True
