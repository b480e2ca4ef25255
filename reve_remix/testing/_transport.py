"""``MockServer`` as an httpx transport: the same answers, scripted faults and recorded requests,
without a socket, for unit tests that want no threads and no ports.

The transport and the HTTP server share one decision per request (``MockAPI.plan``); only how
the answer is delivered differs: here a pause is a sleep and a hang-up is the exception httpx
raises for a real one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import httpx

from reve_remix.testing._api import MockAPI, Plan, RecordedRequest, wire_headers

__all__ = ["MockTransport"]


class MockTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Answers for ``httpx.Client`` and ``httpx.AsyncClient`` from a ``MockServer``'s logic.

    Made by :attr:`MockServer.transport`, which shares the server's requests and faults.

    Any host works: result URLs point back at the host the request was sent to, so a client's
    download of the result goes through the same transport.

    Example::

        mock = MockServer()
        with httpx.Client(transport=mock.transport) as http:
            client = ReveRemix("sk-test", base_url="http://mock.test", http_client=http)
            client.remix("<img>0</img> at dusk", ["https://example.com/cat.png"]).read()
        assert len(mock.requests) == 2  # the remix, then the download
    """

    def __init__(self, api: MockAPI) -> None:
        self._api = api

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        plan = self._plan(request, request.read())
        if plan.pause:
            time.sleep(plan.pause)
        return _deliver(plan, request)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        plan = self._plan(request, await request.aread())
        if plan.pause:
            await asyncio.sleep(plan.pause)
        return _deliver(plan, request)

    def _plan(self, request: httpx.Request, body: bytes) -> Plan:
        url = request.url
        recorded = RecordedRequest(
            request.method, url.raw_path.decode("ascii"), httpx.Headers(request.headers), body
        )
        return self._api.plan(recorded, f"{url.scheme}://{url.netloc.decode('ascii')}")


def _deliver(plan: Plan, request: httpx.Request) -> httpx.Response:
    """The planned response, or the error httpx raises when a server hangs up unanswered."""
    response = plan.response
    if response is None:
        raise httpx.RemoteProtocolError(
            "Server disconnected without sending a response.", request=request
        )
    body = b"" if request.method == "HEAD" else response.body
    stream = (
        _Truncated(body[: len(body) // 2], request) if plan.truncate else httpx.ByteStream(body)
    )
    return httpx.Response(
        response.status, headers=wire_headers(response), stream=stream, request=request
    )


class _Truncated(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body that stops half-way, the way a connection closed mid-response does."""

    def __init__(self, part: bytes, request: httpx.Request) -> None:
        self._part = part
        self._request = request

    def __iter__(self) -> Iterator[bytes]:
        yield self._part
        raise self._error()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self._part
        raise self._error()

    def _error(self) -> httpx.RemoteProtocolError:
        message = "peer closed connection without sending complete message body"
        return httpx.RemoteProtocolError(message, request=self._request)
