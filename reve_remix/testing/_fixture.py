"""``ReveRemixMock``: the offline API as one test sees it (the ``reve_remix_mock`` fixture).

It wraps a :class:`MockServer` with what a test of the user's own code needs: the environment
that points every client at it, ``add_response`` in the words of pytest-httpx, the remix
requests parsed for assertions, and the end-of-test check that every scripted answer was used
and every request followed the spec. Nothing here imports pytest; the plugin does that part.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any

from reve_remix._client import API_KEY_ENV, BASE_URL_ENV
from reve_remix._retry import AMBIGUOUS_STATUSES, RETRYABLE_STATUSES
from reve_remix.testing._schema import validate_request
from reve_remix.testing._server import Fault, MockServer, RecordedRequest
from reve_remix.testing._transport import MockTransport

__all__ = ["API_KEY", "ReveRemixMock"]

API_KEY = "sk-test-reve-remix-mock"
"""The key every client gets through the environment: the mock wants a key, not this one."""


class ReveRemixMock:
    """An offline Reve Remix API for one test; what the ``reve_remix_mock`` fixture yields.

    Example::

        def test_watercolour(reve_remix_mock):
            reve_remix_mock.add_response(status_code=429)  # first try rate limited, then a PNG
            with ReveRemix() as client:  # key and base URL come from the environment
                png = client.remix("<img>0</img> as a watercolour", [CAT]).read()
            assert [sent.prompt for sent in reve_remix_mock.requests] == [
                "<img>0</img> as a watercolour"
            ] * 2
    """

    def __init__(self, *, latency: float = 0.0) -> None:
        """Configure the mock; ``start()`` (or ``with``) makes it listen."""
        self.server = MockServer(latency=latency)
        """The underlying server, for what the fixture does not wrap (``server.requests`` holds
        every request, downloads included)."""

    def start(self) -> ReveRemixMock:
        """Start listening on 127.0.0.1; returns the mock itself."""
        self.server.start()
        return self

    def stop(self) -> None:
        """Stop listening. Idempotent."""
        self.server.stop()

    def __enter__(self) -> ReveRemixMock:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``: where the clients of this test send their requests."""
        return self.server.base_url

    @property
    def api_key(self) -> str:
        """The key the fixture puts in ``ONEROUTER_API_KEY`` (any non-empty key is accepted)."""
        return API_KEY

    @property
    def environment(self) -> dict[str, str]:
        """The variables that point every client at this mock, as the fixture sets them."""
        return {API_KEY_ENV: API_KEY, BASE_URL_ENV: self.base_url}

    @property
    def transport(self) -> MockTransport:
        """The same mock without sockets: ``http_client=httpx.Client(transport=...)``.

        Example::

            http = httpx.Client(transport=reve_remix_mock.transport)
            with ReveRemix(http_client=http) as client:
                client.remix("<img>0</img> at night", [CAT])
        """
        return self.server.transport

    def add_response(
        self,
        status_code: int = 200,
        json: Any = None,  # noqa: ANN401 - any JSON value, as in httpx and pytest-httpx
        headers: Mapping[str, str] | None = None,
        *,
        content: bytes | str | None = None,
        delay: float = 0.0,
        drop: bool = False,
        truncate: bool = False,
    ) -> None:
        """Queue the answer to the next remix request; unqueued requests get a normal answer.

        With no arguments the answer is the normal one: a spec-valid result with a real PNG.
        A non-200 ``status_code`` alone gets the provider's error envelope for that status;
        ``json`` or ``content`` replace the body. ``delay`` waits that many seconds first,
        ``drop`` hangs up without answering, ``truncate`` cuts the body off half-way.
        A status the SDK retries gets ``Retry-After: 0`` unless ``headers`` say otherwise, so a
        test of retries does not wait out real backoff.

        Example::

            reve_remix_mock.add_response(status_code=503)  # one failure...
            reve_remix_mock.add_response()  # ...then the normal answer
            reve_remix_mock.add_response(drop=True)  # the connection dies before an answer
        """
        body = content if json is None else json
        status = None if status_code == 200 and body is None else status_code
        sent_headers = dict(headers or {})
        retried = status in RETRYABLE_STATUSES | AMBIGUOUS_STATUSES
        if retried and not any(name.lower() == "retry-after" for name in sent_headers):
            sent_headers["Retry-After"] = "0"
        fault = Fault(status, sent_headers, body, delay=delay, drop=drop, truncate=truncate)
        self.server.enqueue(fault)

    def add_error(
        self,
        status_code: int,
        message: str | None = None,
        *,
        type: str | None = None,
        code: str | int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Queue an error in the provider's envelope, with the ``type`` and ``code`` you choose.

        Example::

            reve_remix_mock.add_error(403, "Flagged by moderation", type="content_policy_violation")
            reve_remix_mock.add_error(402, "Insufficient credits", type="insufficient_quota")
        """
        envelope = {
            "error": {
                "message": message or f"Error {status_code}",
                "type": type or "invalid_request_error",
                "param": None,
                "code": status_code if code is None else code,
            }
        }
        self.add_response(status_code, json=envelope, headers=headers)

    @property
    def requests(self) -> list[RecordedRequest]:
        """The remix requests the code under test sent, oldest first (downloads left out).

        Each has ``.prompt``, ``.images`` (bytes for inline images, else the URL), ``.json``,
        ``.headers``, ``.aspect_ratio``, ``.output_format`` and ``.model``.
        """
        return [request for request in self.server.requests if request.is_remix]

    def problems(
        self,
        *,
        assert_all_responses_were_requested: bool = True,
        assert_all_requests_were_valid: bool = True,
    ) -> list[str]:
        """What the end-of-test check reports: unused answers, requests that break the spec."""
        found = []
        unused = self.server.queued
        if assert_all_responses_were_requested and unused:
            found.append(
                f"{unused} queued response(s) were never requested: the code under test sent "
                f"{len(self.requests)} remix request(s). If that is expected, mark the test "
                "@pytest.mark.reve_remix_mock(assert_all_responses_were_requested=False)"
            )
        if assert_all_requests_were_valid:
            requests = self.requests
            for number, request in enumerate(requests, start=1):
                violations = validate_request(request.body)
                if violations:
                    listed = "".join(f"\n  {violation}" for violation in violations)
                    found.append(
                        f"remix request {number} of {len(requests)} breaks the API spec:{listed}"
                    )
        return found
