"""Fetching a result image by URL: no API key, a size cap, a timeout.

The URL points at a CDN or storage bucket, not at the API, so the request must not carry the
``Authorization`` header even if the injected ``httpx`` client has one by default.
"""

from __future__ import annotations

import httpx

from ._exceptions import APIResponseValidationError, connection_error, status_error

MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024
DOWNLOAD_TIMEOUT = httpx.Timeout(60.0, connect=10.0)


class Downloader:
    """Downloads result URLs through the owning client's connection pool.

    Example::

        png = Downloader(httpx.Client()).download("https://cdn.example.com/out.png")
    """

    def __init__(self, http: httpx.Client | httpx.AsyncClient) -> None:
        self._http = http

    def download(self, url: str) -> bytes:
        """The bytes at ``url``; raises ``APIError`` subclasses on failure."""
        if not isinstance(self._http, httpx.Client):
            raise TypeError("this result came from AsyncReveRemix: use `await image.aread()`")
        request = _request(self._http, url)
        try:
            response = self._http.send(request, stream=True, auth=None)
            try:
                if not response.is_success:
                    response.read()
                    raise status_error(response)
                buffer = bytearray()
                for chunk in response.iter_bytes():
                    _append_capped(buffer, chunk, response)
                return bytes(buffer)
            finally:
                response.close()
        except httpx.TransportError as exc:
            raise connection_error(exc, request) from exc

    async def adownload(self, url: str) -> bytes:
        """Async twin of :meth:`download`."""
        if not isinstance(self._http, httpx.AsyncClient):
            raise TypeError("this result came from ReveRemix: use `image.read()`")
        request = _request(self._http, url)
        try:
            response = await self._http.send(request, stream=True, auth=None)
            try:
                if not response.is_success:
                    await response.aread()
                    raise status_error(response)
                buffer = bytearray()
                async for chunk in response.aiter_bytes():
                    _append_capped(buffer, chunk, response)
                return bytes(buffer)
            finally:
                await response.aclose()
        except httpx.TransportError as exc:
            raise connection_error(exc, request) from exc


def _request(http: httpx.Client | httpx.AsyncClient, url: str) -> httpx.Request:
    request = http.build_request("GET", url, timeout=DOWNLOAD_TIMEOUT)
    request.headers.pop("authorization", None)
    return request


def _append_capped(buffer: bytearray, chunk: bytes, response: httpx.Response) -> None:
    buffer += chunk
    if len(buffer) > MAX_DOWNLOAD_BYTES:
        raise APIResponseValidationError(
            f"image download exceeds {MAX_DOWNLOAD_BYTES} bytes; stopped",
            response=response,
            body=None,
        )
