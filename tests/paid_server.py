"""A small loopback API whose result downloads can be made to fail, for the paid-image tests.

The operation (its method and path are the spec's) answers 200 with a URL on the same server (or
a scripted body), and ``GET /files/<name>`` plays the next scripted download fault: a status, a
dropped connection, a body cut short, a slow drip, a redirect, HTML, 0 bytes, or the image. It
counts generations (POSTs answered 200) and GETs, and records each request's headers, so tests
can assert that a paid image is never generated twice and that no download carries the API key.

The reve_remix.testing mock is left alone on purpose: these faults are about a CDN, not the API.

Example::

    with PaidServer(downloads=["503", "ok"]) as server:
        ...  # point a client at server.base_url
        assert server.generations == 1 and server.gets == 2
"""

from __future__ import annotations

import collections
import hashlib
import json
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from reve_remix._spec import spec
from reve_remix.testing._png import gradient_png

EDITS = spec().path  # the operation, as the spec locates it
FAULTS = ("503", "500", "404", "drop", "truncate", "drip", "slow", "redirect", "html", "empty")
"""Every download fault a script may name (``"ok"`` is the image itself)."""
DRIP_SECONDS = 0.3  # a "drip" sends the whole image over this long, in small pieces
SLOW_SECONDS = 3.0  # a "slow" one takes this long: past a short download deadline


class PaidServer:
    """The API and its CDN on one 127.0.0.1 port, from a background thread.

    ``downloads`` scripts the answers to GETs in order (then ``"ok"``), or is a function of a
    ``random.Random`` giving each GET's answer. ``post_body`` replaces the POST's 200 body.
    ``post_latency`` delays each POST answer. ``post_answer(prompt, n)`` (``n``: the how-manieth
    POST of that prompt) may answer other than ``"ok"``: a status (``"503"``), or ``"flagged"``
    (a 422 content-policy refusal, as OneRouter documents it). With ``gate`` set, a POST is
    answered only to a client still connected, under ``gate`` (see the chaos test): a
    generation is a 200 that left.
    """

    def __init__(
        self,
        *,
        downloads: Iterable[str] | Callable[[random.Random], str] = (),
        post_body: bytes | None = None,
        post_latency: float = 0.0,
        revised_prompt: str | None = None,
        gate: threading.Lock | None = None,
        seed: int = 0,
        post_answer: Callable[[str, int], str] | None = None,
    ) -> None:
        self.script: collections.deque[str] | None = None
        self.chooser: Callable[[random.Random], str] | None = None
        if callable(downloads):
            self.chooser = downloads
        else:
            self.script = collections.deque(downloads)
        self.post_body = post_body
        self.post_latency = post_latency
        self.post_answer = post_answer
        self.revised_prompt = revised_prompt
        self.gate = gate
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.generations = 0
        self.gets = 0
        self.answered: collections.Counter[str] = collections.Counter()  # prompt -> 200s
        self.posted: collections.Counter[str] = collections.Counter()  # prompt -> POSTs
        self.headers: list[tuple[str, str, dict[str, str]]] = []  # method, path, headers
        self.files: dict[str, bytes] = {}
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.01,), daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_port}"

    def __enter__(self) -> PaidServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def next_download(self) -> str:
        with self.lock:
            if self.chooser is not None:
                return self.chooser(self.random)
            assert self.script is not None
            return self.script.popleft() if self.script else "ok"

    def image_for(self, prompt: str) -> tuple[str, bytes]:
        digest = hashlib.sha256(prompt.encode()).digest()
        name = f"{digest.hex()[:16]}.png"
        png = gradient_png(24, 24, seed=digest)
        with self.lock:
            self.files[name] = png
        return name, png


def _handler(server: PaidServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            server.headers.append(("POST", self.path, dict(self.headers.items())))
            prompt = json.loads(body)["prompt"]
            with server.lock:
                server.posted[prompt] += 1
                nth = server.posted[prompt]
            name, _ = server.image_for(prompt)
            if server.post_latency:
                time.sleep(server.post_latency)
            answer = "ok" if server.post_answer is None else server.post_answer(prompt, nth)
            if answer == "flagged":
                error = {"code": 422, "type": "content_policy_violation", "message": "flagged"}
                self._reply(422, json.dumps({"error": error}).encode(), "application/json")
                return
            if answer != "ok":
                self._reply(int(answer), b'{"error": "busy"}', "application/json", "0")
                return
            if server.post_body is not None:
                payload = server.post_body
            else:
                item = {"url": f"{server.base_url}/files/{name}"}
                item["revised_prompt"] = server.revised_prompt or f"revised: {prompt}"
                payload = json.dumps({"created": int(time.time()), "data": [item]}).encode()
            if server.gate is None:
                self._count(prompt)
                self._reply(200, payload, "application/json")
                return
            with server.gate:  # the chaos test kills clients only while holding it
                if self._client_gone():
                    self.close_connection = True
                    return
                self._count(prompt)
                self._reply(200, payload, "application/json")

        def do_GET(self) -> None:
            server.headers.append(("GET", self.path, dict(self.headers.items())))
            with server.lock:
                server.gets += 1
            name = self.path.rsplit("/", 1)[-1]
            png = server.files.get(name)
            if png is None:
                self._reply(404, b"no such file", "text/plain")
                return
            if self.path.startswith("/real/"):
                self._reply(200, png, "image/png")
                return
            fault = server.next_download()
            if fault == "ok":
                self._reply(200, png, "image/png")
            elif fault.isdigit():
                self._reply(int(fault), b'{"error": "cdn"}', "application/json", retry_after="0")
            elif fault == "drop":
                self.close_connection = True
            elif fault == "truncate":
                self._head(200, len(png), "image/png")
                self.wfile.write(png[: len(png) // 2])
                self.close_connection = True
            elif fault in ("drip", "slow"):
                self._drip(png, DRIP_SECONDS if fault == "drip" else SLOW_SECONDS)
            elif fault == "redirect":
                self.send_response(302)
                self.send_header("Location", f"{server.base_url}/real/{name}")
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif fault == "html":
                self._reply(200, b"<html><body>Access denied</body></html>", "text/html")
            elif fault == "empty":
                self._reply(200, b"", "image/png")
            else:
                raise AssertionError(f"unknown download fault {fault!r}")

        def _count(self, prompt: str) -> None:
            with server.lock:
                server.generations += 1
                server.answered[prompt] += 1

        def _client_gone(self) -> bool:
            """Whether the client hung up (a peek at a socket with nothing to read says EOF)."""
            try:
                return self.connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
            except BlockingIOError:
                return False
            except OSError:
                return True

        def _head(
            self, status: int, length: int, kind: str, retry_after: str | None = None
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(length))
            self.send_header("x-request-id", f"req-{server.gets}-{server.generations}")
            if retry_after is not None:
                self.send_header("Retry-After", retry_after)
            self.end_headers()

        def _reply(
            self, status: int, body: bytes, kind: str, retry_after: str | None = None
        ) -> None:
            self._head(status, len(body), kind, retry_after)
            self.wfile.write(body)

        def _drip(self, png: bytes, seconds: float) -> None:
            self._head(200, len(png), "image/png")
            pieces = 10
            step = -(-len(png) // pieces)
            try:
                for start in range(0, len(png), step):
                    self.wfile.write(png[start : start + step])
                    self.wfile.flush()
                    time.sleep(seconds / pieces)
            except OSError:
                self.close_connection = True

    return Handler
