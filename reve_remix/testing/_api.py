"""The mock API's decisions: what each request gets, shared by the HTTP server and the transport.

``MockAPI`` records every request, plays the scripted :class:`Fault` s in order and otherwise
answers the way the real API does as far as the spec says: it checks the API key, validates the
body against the spec's ``RemixRequest`` schema (422 naming every violation), and returns a
spec-valid ``RemixResponse`` whose image is a small deterministic PNG. How the answer travels is
not decided here: ``MockServer`` writes it to a socket, ``MockTransport`` hands it to httpx.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import http.client
import json
import re
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from reve_remix._exceptions import ValidationError
from reve_remix._spec import spec
from reve_remix.testing._data_url import decode_data_url
from reve_remix.testing._png import gradient_png
from reve_remix.testing._schema import violations

__all__ = ["Answer", "Fault", "MockAPI", "Plan", "RecordedRequest", "error_answer", "wire_headers"]

_FILES_PATH = "/files/"
_SHORT_SIDE = 96  # pixels; images are tiny so tests stay fast
_IMG_TAG = re.compile(r"<img>\s*(\d+)\s*</img>")
_ERROR_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}


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
class Answer:
    """A response to send: status, body and the headers it adds to ``wire_headers``."""

    status: int
    body: bytes
    headers: Mapping[str, str]


@dataclass(frozen=True)
class Plan:
    """What happens to one request: a pause, then ``response`` (None: hang up without one)."""

    pause: float
    response: Answer | None
    truncate: bool = False
    """Send half the body, then hang up."""


class MockAPI:
    """The requests received, the faults still scripted and the files served, and the answers.

    Thread-safe: the HTTP server answers each connection on a thread of its own.

    Example::

        api = MockAPI()
        api.enqueue(Fault(status=503))
        plan = api.plan(RecordedRequest("POST", spec().path, httpx.Headers(), b"{}"), "http://x")
        assert plan.response is not None and plan.response.status == 503
    """

    def __init__(self, latency: float = 0.0) -> None:
        if latency < 0:
            raise ValidationError(f"latency must be >= 0 seconds, got {latency}")
        self.latency = latency
        """Seconds added before every answer that no :class:`Fault` scripts."""
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._faults: collections.deque[Fault] = collections.deque()
        self._files: dict[str, bytes] = {}

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, oldest first (faulted ones included)."""
        with self._lock:
            return list(self._requests)

    def enqueue(self, *faults: Fault) -> None:
        """Script the answers to the next remix requests, one fault each, in order."""
        for fault in faults:
            if not isinstance(fault, Fault):
                raise ValidationError(f"enqueue() takes Fault objects, got {fault!r}")
        with self._lock:
            self._faults.extend(faults)

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

    def plan(self, request: RecordedRequest, base_url: str) -> Plan:
        """Record ``request`` and decide its fate: the scripted fault, else the normal answer."""
        fault = self._admit(request)
        if fault is None:
            return Plan(self.latency, self._answer(request, base_url))
        if fault.drop:
            return Plan(fault.delay, None)
        response = _scripted(fault) or self._answer(request, base_url)
        headers = httpx.Headers(response.headers)
        headers.update(fault.headers)
        return Plan(fault.delay, Answer(response.status, response.body, headers), fault.truncate)

    def _answer(self, request: RecordedRequest, base_url: str) -> Answer:
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
        return error_answer(404, f"Unknown path: {request.method} {path}")

    def _edit(self, request: RecordedRequest, base_url: str) -> Answer:
        if not _has_api_key(request.headers.get("Authorization", "")):
            return error_answer(
                401, "No API key provided: send it as 'Authorization: Bearer <key>'"
            )
        try:
            payload = json.loads(request.body)
        except ValueError as exc:
            return error_answer(422, f"The request body is not valid JSON: {exc}")
        problems = violations("RemixRequest", payload)
        if problems:
            listed = "; ".join(str(problem) for problem in problems)
            message = f"{len(problems)} invalid value(s) in the request body: {listed}"
            return error_answer(422, message, param=problems[0].field)
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

    def _file(self, name: str) -> Answer:
        with self._lock:
            png = self._files.get(name)
        if png is None:
            return error_answer(404, f"No such file: {name}")
        return Answer(200, png, {"Content-Type": "image/png"})


def wire_headers(response: Answer) -> httpx.Headers:
    """The headers ``response`` goes out with: its own plus a length and a fresh request id."""
    headers = httpx.Headers(
        {"Content-Length": str(len(response.body)), "x-request-id": f"req_{uuid.uuid4().hex}"}
    )
    headers.update(response.headers)
    return headers


def _scripted(fault: Fault) -> Answer | None:
    """The response a fault dictates, or None when the request should get its normal answer."""
    if fault.status is None and fault.body is None:
        return None
    status = 200 if fault.status is None else fault.status
    body = fault.body
    if body is None:
        return error_answer(status, reason(status))
    if isinstance(body, bytes):
        return Answer(status, body, {"Content-Type": "application/octet-stream"})
    if isinstance(body, str):
        return Answer(status, body.encode(), {"Content-Type": "text/plain; charset=utf-8"})
    return _json(status, body)


def _json(status: int, payload: object, headers: Mapping[str, str] | None = None) -> Answer:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return Answer(status, body, {"Content-Type": "application/json", **(headers or {})})


def error_answer(
    status: int,
    message: str,
    *,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    """An answer in the provider's error envelope."""
    kind = "server_error" if status >= 500 else _ERROR_TYPES.get(status, "invalid_request_error")
    envelope = {"error": {"message": message, "type": kind, "param": param, "code": status}}
    return _json(status, envelope, headers)


def _not_allowed(allowed: str) -> Answer:
    message = f"Method not allowed; this path accepts {allowed}"
    return error_answer(405, message, headers={"Allow": allowed})


def reason(status: int) -> str:
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
