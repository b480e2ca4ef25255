"""``MockServer``: an offline Reve Remix API on 127.0.0.1 for tests, like stripe-mock for Stripe.

The answers are ``MockAPI``'s (``_api``): the spec's remix operation checked and answered as the
real API does as far as the spec says, scripted failures played in order. This module serves
them over HTTP/1.1: the socket, a thread per connection, keep-alive, hang-ups and a clean stop.
Tests script failures with :class:`Fault` and assert on what was sent with ``server.requests``.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

import httpx

from reve_remix.testing._api import (
    Answer,
    Fault,
    MockAPI,
    RecordedRequest,
    error_answer,
    reason,
    wire_headers,
)
from reve_remix.testing._transport import MockTransport

__all__ = ["Fault", "MockServer", "RecordedRequest"]

_log = logging.getLogger("reve_remix.testing")

_CLOSE = {"Connection": "close"}
_POLL_INTERVAL = 0.01  # seconds; the longest stop() waits for the accept loop to notice
_JOIN_TIMEOUT = 2.0  # seconds stop() gives each connection thread after hanging up on it


class MockServer:
    """An HTTP/1.1 Reve Remix API on 127.0.0.1, served from a background thread.

    Requests are answered in parallel (one thread per connection) and connections are kept
    alive. ``latency`` seconds are added before every answer that no :class:`Fault` scripts.

    Example::

        with MockServer() as server:
            client = httpx.Client(base_url=server.base_url, headers={"Authorization": "Bearer k"})
            body = {"model": "reve-remix", "prompt": "<img>0</img> in snow", "image_urls": ["x"]}
            answer = client.post(spec().path, json=body).json()
            png = client.get(answer["data"][0]["url"]).content
            assert server.requests[0].json == body
    """

    def __init__(self, *, port: int = 0, latency: float = 0.0) -> None:
        """Configure the server; nothing listens until ``start()`` (port 0 picks a free port)."""
        self._api = MockAPI(latency)
        self._port = port
        self._lock = threading.Lock()
        self._connections = 0
        self._stopping = threading.Event()
        self._lifecycle = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> MockServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> MockServer:
        """Bind the port and start serving in a daemon thread; returns the server itself.

        Example::

            server = MockServer().start()
            try:
                ...
            finally:
                server.stop()
        """
        with self._lifecycle:
            if self._httpd is not None:
                raise RuntimeError("MockServer is already running")
            self._stopping.clear()
            self._httpd = _HTTPServer(self._port, self)
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                args=(_POLL_INTERVAL,),
                name=f"reve-remix-mock:{self._httpd.server_port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, hang up on every open connection and release the port. Idempotent.

        Requests still waiting out a ``delay`` or ``latency`` are dropped without an answer.
        """
        with self._lifecycle:
            httpd, thread = self._httpd, self._thread
            if httpd is None or thread is None:
                return
            self._stopping.set()
            httpd.shutdown()
            httpd.hang_up()
            httpd.server_close()
            thread.join()
            self._httpd = self._thread = None

    def serve_forever(self) -> None:
        """Start, then block until Ctrl-C (or ``stop()`` from another thread), then stop.

        This is what the standalone ``reve-remix mock --port N`` command runs.

        Example::

            MockServer(port=8080).serve_forever()
        """
        try:
            self.start()
            self._stopping.wait()
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``, to use as the client's base URL while the server runs."""
        httpd = self._httpd
        if httpd is None:
            raise RuntimeError("MockServer is not running: call start() or use `with MockServer()`")
        return httpd.base_url

    @property
    def latency(self) -> float:
        """Seconds added before every answer that no :class:`Fault` scripts."""
        return self._api.latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        self._api.latency = seconds

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, oldest first (faulted ones included)."""
        return self._api.requests

    @property
    def connections(self) -> int:
        """How many TCP connections were accepted; 1 after any number of requests on one
        keep-alive connection."""
        with self._lock:
            return self._connections

    def enqueue(self, *faults: Fault) -> None:
        """Script the answers to the next remix requests (to ``spec().path``), one fault each, in
        order; once the queue is empty, requests are answered normally again.

        Example::

            server.enqueue(Fault(status=503), Fault(status=503))  # two failures, then success
        """
        self._api.enqueue(*faults)

    def _accepted(self) -> None:
        with self._lock:
            self._connections += 1

    @property
    def queued(self) -> int:
        """How many enqueued faults are still waiting for a request."""
        return self._api.queued

    @property
    def transport(self) -> MockTransport:
        """This mock as an httpx transport, for tests without sockets (no need to ``start()``).

        The same scripted faults, validation and recorded requests as over HTTP; a ``drop`` or
        ``truncate`` raises the ``httpx.RemoteProtocolError`` a real hang-up would.

        Example::

            http = httpx.Client(transport=server.transport)
            client = ReveRemix("sk-test", base_url="http://mock.test", http_client=http)
        """
        return MockTransport(self._api)


class _HTTPServer(ThreadingHTTPServer):
    """The listening socket; one daemon thread per connection, all tracked so stop() is clean."""

    daemon_threads = True
    request_queue_size = 128  # a burst of concurrent clients must not overflow the backlog

    def __init__(self, port: int, mock: MockServer) -> None:
        self.mock = mock
        self._open: dict[threading.Thread, socket.socket] = {}
        self._open_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _Handler)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"

    def process_request(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: object
    ) -> None:
        self.mock._accepted()
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"{threading.current_thread().name}:connection",
            daemon=True,
        )
        with self._open_lock:
            self._open[thread] = request if isinstance(request, socket.socket) else request[1]
        thread.start()

    def shutdown_request(self, request: socket.socket | tuple[bytes, socket.socket]) -> None:
        with self._open_lock:
            self._open.pop(threading.current_thread(), None)
        super().shutdown_request(request)

    def hang_up(self) -> None:
        """Cut every open connection, then wait for its thread to finish."""
        with self._open_lock:
            open_connections = dict(self._open)
        for connection in open_connections.values():
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        for thread in open_connections:
            thread.join(_JOIN_TIMEOUT)

    def handle_error(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: object
    ) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # the client went away (or stop() hung up); nothing to report
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """Reads one request at a time off a keep-alive connection and plays the fault or answer."""

    server: _HTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "reve-remix-mock"
    sys_version = ""
    disable_nagle_algorithm = True  # headers and body are separate writes

    def _dispatch(self) -> None:
        mock = self.server.mock
        body = self._read_body()
        if body is None:
            return
        headers = httpx.Headers(self.headers.items())
        request = RecordedRequest(self.command, self.path, headers, body)
        plan = mock._api.plan(request, self.server.base_url)
        if (plan.pause and mock._stopping.wait(plan.pause)) or plan.response is None:
            self.close_connection = True  # stopping, or scripted to drop: hang up unanswered
            return
        self._send(plan.response, truncate=plan.truncate)

    # Every standard method (QUERY included) gets a 404/405 envelope; others, 501 from http.server.
    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch
    do_TRACE = do_QUERY = _dispatch

    def _read_body(self) -> bytes | None:
        """The request body; None after answering a request whose body cannot be delimited."""
        if "Transfer-Encoding" in self.headers:
            self._send(
                error_answer(411, "Send the body with a Content-Length header", headers=_CLOSE)
            )
            return None
        length = self.headers.get("Content-Length", "0")
        if not length.isdecimal():
            self._send(error_answer(400, f"Invalid Content-Length: {length!r}", headers=_CLOSE))
            return None
        return self.rfile.read(int(length))

    def _send(self, response: Answer, *, truncate: bool = False) -> None:
        """Write ``response``; ``truncate`` sends half the body, then hangs up."""
        self.send_response(response.status)
        for name, value in wire_headers(response).multi_items():
            self.send_header(name, value)
        self.end_headers()
        body = b"" if self.command == "HEAD" else response.body
        if truncate:
            self.close_connection = True
            body = body[: len(body) // 2]
        self.wfile.write(body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Answer what ``http.server`` rejects by itself (malformed requests) in the envelope."""
        self._send(error_answer(code, message or reason(code), headers=_CLOSE))

    def log_message(self, format: str, *args: object) -> None:
        """Log to the ``reve_remix.testing`` logger (at INFO) instead of stderr."""
        _log.info("%s %s", self.address_string(), format % args)
