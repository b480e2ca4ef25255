"""Fault tests over real loopback HTTP, beyond the retry table of ``tests/fault_matrix.py``.

The matrix (``tests/test_fault_matrix.py``) plays every retryable and final status, Retry-After,
refused, dropped, slow and truncated connections under both retry policies. These tests check
what a matrix row does not: error messages and envelopes, schema-breaking bodies, and the
cooldown a 429 puts on every caller of a client. Each counts the requests the mock server saw,
because a request the server saw is a generation that may have been billed. Each test that calls a
client runs twice, on ``ReveRemix`` and on ``AsyncReveRemix`` (the ``twin`` fixtures).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import httpx
import pytest

from reve_remix import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ContentPolicyError,
    InternalServerError,
    NotFoundError,
    PayloadTooLargeError,
    PaymentRequiredError,
    PermissionDeniedError,
    ReveRemix,
    ReveRemixError,
    UnprocessableEntityError,
    ValidationError,
)
from reve_remix._retry import RATE_LIMIT_RETRIES, AdaptiveRate, RetryEvent, SteadyRate
from reve_remix._spec import spec
from reve_remix.testing import Fault, MockServer

from .conftest import API_KEY, IMAGE_URL, WAIT, RefusedPort, Twin

pytestmark = pytest.mark.usefixtures("fast_backoff")


def remix(client: ReveRemix | Twin) -> object:
    return client.remix("<img>0</img> in the rain", [IMAGE_URL])


def posts(server: MockServer) -> int:
    return sum(1 for request in server.requests if request.method == "POST")


# --- connections and Retry-After ----------------------------------------------------------


def test_connection_refused_gives_up_with_a_connection_error(make_twin):
    with RefusedPort() as refused:
        url = f"http://127.0.0.1:{refused.port}"
        client = make_twin(api_key=API_KEY, base_url=url, max_retries=1)
        with pytest.raises(APIConnectionError, match="ConnectError"):
            remix(client)


def test_rate_limit_holds_back_other_callers_of_the_same_client(server, make_twin):
    """One 429 holds the whole client, so concurrent callers do not hammer the API."""
    server.enqueue(Fault(status=429, headers={"Retry-After": "1"}))
    read = threading.Event()  # set once the client has read the 429 (a busy machine is slow)
    twin = make_twin(api_key=API_KEY, base_url=server.base_url, on_retry=lambda _: read.set())
    first = threading.Thread(target=remix, args=(twin,))
    # The cooldown runs a second from when the 429 was read, which is after this: a caller held
    # by it ends a second after this or later, however long the machine takes to get there.
    started = time.monotonic()
    first.start()
    assert read.wait(WAIT)
    assert remix(twin)  # a second caller, sent after the 429: it waits out the cooldown
    assert time.monotonic() - started >= 1
    first.join()
    assert posts(server) == 3


def test_more_429s_in_a_row_than_max_retries_do_not_fail_the_call(server, make_twin):
    """A 429 made nothing, so it spends a budget of its own (``RetryPolicy.limit``)."""
    server.enqueue(*[Fault(status=429, headers={"Retry-After": "0"})] * 3)
    client = make_twin(api_key=API_KEY, base_url=server.base_url, max_retries=2)
    assert remix(client)
    assert posts(server) == 4


# --- broken bodies -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"<html>gateway</html>",
        b"",
        b"[]",
        b'{"created": 1}',
        b'{"data": []}',
        b'{"created": "yesterday", "data": []}',
        b'{"created": 1, "data": {}}',
        b'{"created": 1, "data": ["x"]}',
        b'{"created": 1, "data": [{"url": 3}]}',
        b'{"created": true, "data": []}',
        b'{"created": 1e400, "data": []}',
        b'{"created": 99999999999999999999, "data": []}',
    ],
)
def test_2xx_body_that_breaks_the_schema_is_a_response_validation_error(server, twin, body):
    server.enqueue(Fault(status=200, body=body, headers={"Content-Type": "application/json"}))
    with pytest.raises(APIResponseValidationError) as info:
        remix(twin)
    assert info.value.status_code == 200
    assert info.value.request_id
    assert posts(server) == 1


# --- each status → its exception ----------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "exc_type"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (402, PaymentRequiredError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (413, PayloadTooLargeError),
        (418, APIStatusError),
        (422, UnprocessableEntityError),
        (501, InternalServerError),
    ],
)
def test_each_status_raises_its_class_with_the_envelope(server, twin, status, exc_type):
    envelope = {
        "error": {
            "message": "it went wrong",
            "type": "some_error",
            "param": "prompt",
            "code": status,
        }
    }
    server.enqueue(Fault(status=status, body=envelope))
    with pytest.raises(exc_type) as info:
        remix(twin)
    exc = info.value
    assert type(exc) is exc_type
    assert exc.status_code == status
    assert exc.body == envelope
    assert exc.error_type == "some_error"
    assert exc.param == "prompt"
    assert exc.request_id
    assert exc.request_id in str(exc)
    assert "it went wrong" in str(exc)
    assert posts(server) == 1


def test_403_with_a_moderation_type_is_a_content_policy_error(server, twin):
    server.enqueue(Fault(status=403, body={"error": {"message": "flagged", "type": "moderation"}}))
    with pytest.raises(ContentPolicyError) as info:
        remix(twin)
    assert isinstance(info.value, PermissionDeniedError)


@pytest.mark.parametrize("body", [b"Bad Gateway", b"", b"[1, 2]", b'{"error": "nope"}'])
def test_a_status_without_the_envelope_still_gets_the_right_class(server, twin, body):
    server.enqueue(Fault(status=400, body=body))
    with pytest.raises(BadRequestError) as info:
        remix(twin)
    assert info.value.status_code == 400


def test_invalid_request_reaching_the_mock_is_a_422_naming_the_violation(server):
    """The mock validates like the spec: a request the SDK would refuse, sent raw, is a 422."""
    with httpx.Client() as raw:
        response = raw.post(
            f"{server.base_url}{spec().path}",
            headers={"Authorization": f"Bearer {API_KEY}"},
            json={"model": "m", "prompt": "p", "image_urls": []},
        )
    assert response.status_code == 422
    assert "image_urls" in response.json()["error"]["message"]


def test_a_server_echoing_the_key_does_not_get_it_into_the_exception(server, twin):
    server.enqueue(
        Fault(status=401, body={"error": {"message": f"invalid key {API_KEY}", "type": API_KEY}})
    )
    with pytest.raises(AuthenticationError) as info:
        remix(twin)
    exc = info.value
    assert "invalid key <redacted>" in str(exc)
    assert API_KEY not in str(exc)
    assert API_KEY not in repr(exc.body)
    assert API_KEY not in str(exc.error_type)


# --- a caller's rate limiter ----------------------------------------------------------------


class RecordingLimiter:
    """A ``RateLimiter`` that lets everything through and remembers what it was told."""

    def __init__(self) -> None:
        self.asked = 0
        self.sent: list[float] = []
        self.rate_limited: list[tuple[float, float]] = []

    def next_slot(self) -> float:
        self.asked += 1
        return 0.0

    def on_sent(self) -> float:
        self.sent.append(float(len(self.sent)))  # a moment of its own: it must come back as is
        return self.sent[-1]

    def on_rate_limited(self, seconds: float, sent_at: float) -> None:
        self.rate_limited.append((seconds, sent_at))


def test_a_rate_limiter_is_consulted_before_every_attempt_and_told_of_each_429(server, make_twin):
    server.enqueue(Fault(status=429, headers={"Retry-After": "0.05"}), Fault(status=503))
    limiter = RecordingLimiter()
    client = make_twin(api_key=API_KEY, base_url=server.base_url, rate_limiter=limiter)
    assert remix(client)
    assert posts(server) == 3
    assert limiter.asked == 3  # the first attempt and both retries
    assert len(limiter.sent) == 3
    assert limiter.rate_limited == [(0.05, 0.0)]  # the first attempt's; the 503 is no rate limit


class WaitingLimiter(RecordingLimiter):
    """A limiter that waits on I/O: the sync client asks ``next_slot``, the async one awaits
    ``anext_slot``, which must never be left for ``next_slot`` (it would block the loop)."""

    def __init__(self) -> None:
        super().__init__()
        self.awaited = 0

    def next_slot(self) -> float:
        if _running_loop():
            raise AssertionError("next_slot() called on the event loop: it would block it")
        return super().next_slot()

    async def anext_slot(self) -> float:
        self.awaited += 1
        await asyncio.sleep(0)
        return 0.0 if self.awaited > 1 else 0.01  # one wait, then the slot


def _running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def test_a_limiter_that_waits_on_io_is_awaited_by_the_async_client(server, make_twin):
    limiter = WaitingLimiter()
    client = make_twin(api_key=API_KEY, base_url=server.base_url, rate_limiter=limiter)
    assert remix(client)
    if client.kind == "async":
        assert (limiter.awaited, limiter.asked) == (2, 0)
    else:
        assert (limiter.awaited, limiter.asked) == (0, 1)
    assert len(limiter.sent) == 1


def _refuse(self: object) -> float:
    raise AssertionError("the AdaptiveRate was consulted")


def test_every_client_paces_with_a_fresh_adaptive_rate_unless_given_another_or_none(
    server, make_twin, monkeypatch
):
    first, second = (ReveRemix(API_KEY, base_url=server.base_url) for _ in "ab")
    assert isinstance(first._rate_limiter, AdaptiveRate)
    assert first._rate_limiter is not second._rate_limiter  # one client's 429s slow only it
    monkeypatch.setattr(AdaptiveRate, "next_slot", _refuse)
    monkeypatch.setattr(AdaptiveRate, "on_sent", _refuse)
    # The default is consulted: the error it raised while sending ends the call (wrapped, as
    # anything the SDK did not raise while a request may be out, which may have been billed).
    with pytest.raises(ReveRemixError, match="the AdaptiveRate was consulted") as info:
        remix(first)
    assert isinstance(info.value.__cause__, AssertionError)
    server.enqueue(Fault(status=429, headers={"Retry-After": "0"}))
    for limiter in (None, RecordingLimiter()):  # ...but not once replaced, or turned off
        client = make_twin(api_key=API_KEY, base_url=server.base_url, rate_limiter=limiter)
        assert remix(client)


def test_a_rate_limiter_of_another_interface_is_refused_when_the_client_is_made():
    with pytest.raises(ValidationError, match=r"rate_limiter: object has no next_slot\(\)"):
        ReveRemix(API_KEY, rate_limiter=object())


def test_on_retry_is_told_of_every_retry_and_each_is_logged(server, make_twin, caplog):
    server.enqueue(Fault(status=429, headers={"Retry-After": "0.05"}), Fault(status=503))
    events: list[RetryEvent] = []
    client = make_twin(api_key=API_KEY, base_url=server.base_url, on_retry=events.append)
    with caplog.at_level(logging.INFO, logger="reve_remix.retry"):
        assert remix(client)
    assert [(event.reason, event.retry, event.max_retries) for event in events] == [
        ("429 Too Many Requests", 1, RATE_LIMIT_RETRIES),  # 429s have a budget of their own
        ("503 Service Unavailable", 1, 2),
    ]
    assert events[0].rate_limited
    assert events[0].delay == 0.05
    assert not events[1].rate_limited
    assert [record.getMessage() for record in caplog.records] == [str(event) for event in events]


def test_on_retry_must_be_callable():
    with pytest.raises(ValidationError, match="on_retry: expected a function, got str"):
        ReveRemix(API_KEY, on_retry="print")


def test_a_shared_steady_rate_paces_two_clients_together(server):
    limiter = SteadyRate(requests_per_second=20)
    clients = [ReveRemix(API_KEY, base_url=server.base_url, rate_limiter=limiter) for _ in "ab"]
    started = time.monotonic()
    for client in clients * 2:
        remix(client)
    elapsed = time.monotonic() - started
    for client in clients:
        client.close()
    assert posts(server) == 4
    assert elapsed >= 3 * limiter.interval * 0.9  # four attempts, three gaps, across both clients
