"""``MockServer``: an offline Reve Remix API on 127.0.0.1 for tests, like stripe-mock for Stripe.

It answers the spec's remix operation (method and path as ``reve_remix._spec`` reads them) the
way the real API does as far as the spec says: it checks the API key, validates the body
against the spec's ``RemixRequest`` schema (422 naming every violation), and returns a
spec-valid ``RemixResponse`` whose image is a small deterministic PNG. Tests script failures
with :class:`Fault` and assert on what was sent with ``server.requests``.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import hashlib
import http.client
import json
import logging
import re
import socket
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from reve_remix._exceptions import ValidationError
from reve_remix._spec import spec
from reve_remix.testing._data_url import decode_data_url
from reve_remix.testing._png import gradient_png
from reve_remix.testing._schema import violations

if TYPE_CHECKING:
    from reve_remix.testing._transport import MockTransport

__all__ = ["Fault", "MockServer", "RecordedRequest"]

_log = logging.getLogger("reve_remix.testing")

_FILES_PATH = "/files/"
_SHORT_SIDE = 96  # pixels; images are tiny so tests stay fast
_IMG_TAG = re.compile(r"<img>\s*(\d+)\s*</img>")
_ERROR_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}
_CLOSE = {"Connection": "close"}
_POLL_INTERVAL = 0.01  # seconds; the longest stop() waits for the accept loop to notice
_JOIN_TIMEOUT = 2.0  # seconds stop() gives each connection thread after hanging up on it


@dataclass(frozen=True)
class Fault:
    """A scripted answer for one upcoming remix request; see ``MockServer.enqueue``.

    With no ``status`` and no ``body`` the request gets its normal answer, so ``delay``, extra
    ``headers`` and ``truncate`` can also be applied to a success. A ``body`` without a ``status``
    is sent with 200; a ``status`` without a ``body`` gets an error envelope for that status.
    ``body`` bytes are sent as they are, a str as text, a dict or list as JSON.

    Example::

        server.enqueue(
            Fault(status=429, headers={"Retry-After": "2"}),  # first request: rate limited
            Fault(drop=True),  # second: connection closed without an answer
            Fault(truncate=True),  # third: a 200 cut off half-way through its body
            Fault(delay=5),  # fourth: answered normally, but only after 5 seconds
        )
    """

    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | str | dict[str, Any] | list[Any] | None = None
    delay: float = 0.0
    drop: bool = False
    truncate: bool = False

    def __post_init__(self) -> None:
        if self.status is not None and not 200 <= self.status <= 599:
            raise ValidationError(f"Fault status must be between 200 and 599, got {self.status}")
        if self.delay < 0:
            raise ValidationError(f"Fault delay must be >= 0 seconds, got {self.delay}")
        scripted = self.status is not None or self.body is not None or self.headers
        if self.drop and (scripted or self.truncate):
            raise ValidationError(
                "Fault(drop=True) sends no response, "
                "so it takes no status, headers, body or truncate"
            )


@dataclass(frozen=True)
class RecordedRequest:
    """One request the mock received, kept in ``MockServer.requests`` for assertions.

    Example::

        sent = server.requests[-1]
        assert sent.method == "POST" and sent.path == spec().path
        assert sent.headers["authorization"] == "Bearer sk-test"  # case-insensitive lookup
        assert sent.json["prompt"] == "a cat"
    """

    method: str
    path: str
    """The request target as sent, including any query string."""
    headers: httpx.Headers
    body: bytes

    @property
    def json(self) -> Any:  # noqa: ANN401 - any JSON value
        """The body parsed as JSON, or None when it is empty or not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def is_remix(self) -> bool:
        """Whether this is a generation (the spec's remix operation), not a download or a stray."""
        operation = spec()
        return self.method == operation.method and urlsplit(self.path).path == operation.path

    @property
    def prompt(self) -> str | None:
        """The remix request's ``prompt``, or None when the body has none."""
        return _text(self.json, "prompt")

    @property
    def aspect_ratio(self) -> str | None:
        """The remix request's ``aspect_ratio``, or None when it was not sent."""
        return _text(self.json, "aspect_ratio")

    @property
    def output_format(self) -> str | None:
        """The remix request's ``output_format``, or None when it was not sent."""
        return _text(self.json, "output_format")

    @property
    def model(self) -> str | None:
        """The remix request's ``model``, or None when the body has none."""
        return _text(self.json, "model")

    @property
    def images(self) -> list[bytes | str]:
        """The reference images in order: the bytes of each ``data:`` URL, other URLs as sent.

        Example::

            assert reve_remix_mock.requests[0].images == [Path("cat.png").read_bytes()]
        """
        payload = self.json
        urls = payload.get("image_urls") if isinstance(payload, dict) else None
        if not isinstance(urls, list):
            return []
        return [_image(url) for url in urls]


@dataclass(frozen=True)
class _Response:
    status: int
    body: bytes
    headers: Mapping[str, str]


@dataclass(frozen=True)
class Plan:
    """What happens to one request: a pause, then ``response`` (None: hang up without one)."""

    pause: float
    response: _Response | None
    truncate: bool = False
    """Send half the body, then hang up."""


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
        if latency < 0:
            raise ValidationError(f"latency must be >= 0 seconds, got {latency}")
        self.latency = latency
        self._port = port
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._faults: collections.deque[Fault] = collections.deque()
        self._files: dict[str, bytes] = {}
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
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, oldest first (faulted ones included)."""
        with self._lock:
            return list(self._requests)

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
        for fault in faults:
            if not isinstance(fault, Fault):
                raise ValidationError(f"enqueue() takes Fault objects, got {fault!r}")
        with self._lock:
            self._faults.extend(faults)

    def _accepted(self) -> None:
        with self._lock:
            self._connections += 1

    @property
    def queued(self) -> int:
        """How many enqueued faults are still waiting for a request."""
        with self._lock:
            return len(self._faults)

    def _admit(self, request: RecordedRequest) -> Fault | None:
        """Record ``request`` and take the fault scripted for it, if any."""
        with self._lock:
            self._requests.append(request)
            return self._faults.popleft() if request.is_remix and self._faults else None

    @property
    def transport(self) -> MockTransport:
        """This mock as an httpx transport, for tests without sockets (no need to ``start()``).

        The same scripted faults, validation and recorded requests as over HTTP; a ``drop`` or
        ``truncate`` raises the ``httpx.RemoteProtocolError`` a real hang-up would.

        Example::

            http = httpx.Client(transport=server.transport)
            client = ReveRemix("sk-test", base_url="http://mock.test", http_client=http)
        """
        from reve_remix.testing._transport import MockTransport

        return MockTransport(self)

    def _plan(self, request: RecordedRequest, base_url: str) -> Plan:
        """Record ``request`` and decide its fate: the scripted fault, else the normal answer."""
        fault = self._admit(request)
        if fault is None:
            return Plan(self.latency, self._answer(request, base_url))
        if fault.drop:
            return Plan(fault.delay, None)
        response = _scripted(fault) or self._answer(request, base_url)
        headers = httpx.Headers(response.headers)
        headers.update(fault.headers)
        return Plan(fault.delay, _Response(response.status, response.body, headers), fault.truncate)

    def _answer(self, request: RecordedRequest, base_url: str) -> _Response:
        """The normal answer to ``request``: routing, then the endpoint."""
        path = urlsplit(request.path).path
        operation = spec()
        if path == operation.path:
            if request.method != operation.method:
                return _not_allowed(operation.method)
            return self._edit(request, base_url)
        if path.startswith(_FILES_PATH):
            if request.method != "GET":
                return _not_allowed("GET")
            return self._file(path.removeprefix(_FILES_PATH))
        return _error(404, f"Unknown path: {request.method} {path}")

    def _edit(self, request: RecordedRequest, base_url: str) -> _Response:
        if not _has_api_key(request.headers.get("Authorization", "")):
            return _error(401, "No API key provided: send it as 'Authorization: Bearer <key>'")
        try:
            payload = json.loads(request.body)
        except ValueError as exc:
            return _error(422, f"The request body is not valid JSON: {exc}")
        problems = violations("RemixRequest", payload)
        if problems:
            listed = "; ".join(str(problem) for problem in problems)
            message = f"{len(problems)} invalid value(s) in the request body: {listed}"
            return _error(422, message, param=problems[0].field)
        return _json(200, self._remix(payload, base_url))

    def _remix(self, payload: dict[str, Any], base_url: str) -> dict[str, Any]:
        """A ``RemixResponse`` for a valid request; the same request always gets the same image."""
        # The picture ignores output_format, so url and b64_json deliver the same image.
        picture = {name: value for name, value in payload.items() if name != "output_format"}
        canonical = json.dumps(picture, sort_keys=True, separators=(",", ":")).encode()
        digest = hashlib.sha256(canonical).digest()
        png = gradient_png(*_size(payload.get("aspect_ratio")), seed=digest)
        item = {"revised_prompt": _IMG_TAG.sub(r"image \1", payload["prompt"])}
        if payload.get("output_format") == "b64_json":  # anything else: a url (the default)
            item["b64_json"] = base64.b64encode(png).decode("ascii")
        else:
            name = f"{digest.hex()}.png"
            with self._lock:
                self._files[name] = png
            item["url"] = f"{base_url}{_FILES_PATH}{name}"
        return {"created": int(time.time()), "data": [item]}

    def _file(self, name: str) -> _Response:
        with self._lock:
            png = self._files.get(name)
        if png is None:
            return _error(404, f"No such file: {name}")
        return _Response(200, png, {"Content-Type": "image/png"})


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
        plan = mock._plan(request, self.server.base_url)
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
            self._send(_error(411, "Send the body with a Content-Length header", headers=_CLOSE))
            return None
        length = self.headers.get("Content-Length", "0")
        if not length.isdecimal():
            self._send(_error(400, f"Invalid Content-Length: {length!r}", headers=_CLOSE))
            return None
        return self.rfile.read(int(length))

    def _send(self, response: _Response, *, truncate: bool = False) -> None:
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
        self._send(_error(code, message or _reason(code), headers=_CLOSE))

    def log_message(self, format: str, *args: object) -> None:
        """Log to the ``reve_remix.testing`` logger (at INFO) instead of stderr."""
        _log.info("%s %s", self.address_string(), format % args)


def wire_headers(response: _Response) -> httpx.Headers:
    """The headers ``response`` goes out with: its own plus a length and a fresh request id."""
    headers = httpx.Headers(
        {"Content-Length": str(len(response.body)), "x-request-id": f"req_{uuid.uuid4().hex}"}
    )
    headers.update(response.headers)
    return headers


def _scripted(fault: Fault) -> _Response | None:
    """The response a fault dictates, or None when the request should get its normal answer."""
    if fault.status is None and fault.body is None:
        return None
    status = 200 if fault.status is None else fault.status
    body = fault.body
    if body is None:
        return _error(status, _reason(status))
    if isinstance(body, bytes):
        return _Response(status, body, {"Content-Type": "application/octet-stream"})
    if isinstance(body, str):
        return _Response(status, body.encode(), {"Content-Type": "text/plain; charset=utf-8"})
    return _json(status, body)


def _json(status: int, payload: object, headers: Mapping[str, str] | None = None) -> _Response:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return _Response(status, body, {"Content-Type": "application/json", **(headers or {})})


def _error(
    status: int,
    message: str,
    *,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> _Response:
    """An answer in the provider's error envelope."""
    kind = "server_error" if status >= 500 else _ERROR_TYPES.get(status, "invalid_request_error")
    envelope = {"error": {"message": message, "type": kind, "param": param, "code": status}}
    return _json(status, envelope, headers)


def _not_allowed(allowed: str) -> _Response:
    message = f"Method not allowed; this path accepts {allowed}"
    return _error(405, message, headers={"Allow": allowed})


def _reason(status: int) -> str:
    return http.client.responses.get(status, "Error")


def _size(aspect_ratio: str | None) -> tuple[int, int]:
    """Width and height for ``"W:H"``: the largest multiple of W x H whose short side fits 96 px.

    ``"16:9"`` gives 160 x 90, ``"3:2"`` 144 x 96, and no ratio a 96 x 96 square.
    """
    if aspect_ratio is None:
        return _SHORT_SIDE, _SHORT_SIDE
    width, height = (int(part) for part in aspect_ratio.split(":"))
    scale = _SHORT_SIDE // min(width, height)
    return width * scale, height * scale


def _text(payload: object, name: str) -> str | None:
    """``payload[name]`` when the payload is a JSON object holding a string there, else None."""
    value = payload.get(name) if isinstance(payload, dict) else None
    return value if isinstance(value, str) else None


def _image(url: object) -> bytes | str:
    """A sent image as a test wants to compare it: a data URL's bytes, any other URL as sent."""
    data = decode_data_url(url)
    return data if data is not None else str(url)


def _has_api_key(authorization: str) -> bool:
    """``Bearer <key>``, or the bare key that the provider's curl examples send."""
    scheme, _, key = authorization.strip().partition(" ")
    if key:
        return scheme.lower() == "bearer" and bool(key.strip())
    return bool(scheme) and scheme.lower() != "bearer"
