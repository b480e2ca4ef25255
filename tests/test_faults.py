"""Fault tests over real loopback HTTP: every row of the retry table, every status → exception.

Each test counts the requests the mock server saw, because the retry policy is about money: a
request the server saw is a generation that may have been billed.
"""

from __future__ import annotations

import email.utils
import socket
import threading
import time

import httpx
import pytest

from reve_remix import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ContentPolicyError,
    InternalServerError,
    NotFoundError,
    PayloadTooLargeError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitError,
    RequestTimeoutError,
    ReveRemix,
    UnprocessableEntityError,
)
from reve_remix.testing import Fault, MockServer

from .conftest import API_KEY, IMAGE_URL

pytestmark = pytest.mark.usefixtures("fast_backoff")


def remix(client: ReveRemix) -> object:
    return client.remix("<img>0</img> in the rain", [IMAGE_URL])


def posts(server: MockServer) -> int:
    return sum(1 for request in server.requests if request.method == "POST")


# --- the retry table: one test per row ------------------------------------------------------


@pytest.mark.parametrize("status", [408, 429, 502, 503, 504])
def test_retryable_status_is_retried_then_succeeds(server, client, status):
    server.enqueue(Fault(status=status))
    result = remix(client)
    assert result.images
    assert posts(server) == 2


@pytest.mark.parametrize(
    ("status", "exc_type"),
    [
        (408, RequestTimeoutError),
        (429, RateLimitError),
        (502, InternalServerError),
        (503, InternalServerError),
        (504, InternalServerError),
    ],
)
def test_retryable_status_gives_up_after_max_retries(server, status, exc_type):
    server.enqueue(*[Fault(status=status)] * 4)
    with ReveRemix(API_KEY, base_url=server.base_url, max_retries=2) as client:
        with pytest.raises(exc_type) as info:
            remix(client)
    assert info.value.status_code == status
    assert posts(server) == 3


def test_500_is_ambiguous_and_not_retried_by_default(server, client):
    server.enqueue(Fault(status=500))
    with pytest.raises(InternalServerError):
        remix(client)
    assert posts(server) == 1


def test_500_is_retried_when_ambiguous_retries_are_allowed(server):
    server.enqueue(Fault(status=500))
    with ReveRemix(API_KEY, base_url=server.base_url, retry_on_ambiguous=True) as client:
        assert remix(client)
    assert posts(server) == 2


def test_read_timeout_is_ambiguous_and_not_retried_by_default(server):
    server.enqueue(Fault(delay=2.0))
    with ReveRemix(API_KEY, base_url=server.base_url, timeout=0.3) as client:
        with pytest.raises(APITimeoutError):
            remix(client)
    assert posts(server) == 1


def test_read_timeout_is_retried_when_ambiguous_retries_are_allowed(server):
    server.enqueue(Fault(delay=2.0))
    with ReveRemix(
        API_KEY, base_url=server.base_url, timeout=0.3, retry_on_ambiguous=True
    ) as client:
        assert remix(client)
    assert posts(server) == 2


def test_dropped_connection_after_the_request_is_ambiguous(server, client):
    server.enqueue(Fault(drop=True))
    with pytest.raises(APIConnectionError) as info:
        remix(client)
    assert not isinstance(info.value, APITimeoutError)
    assert posts(server) == 1


def test_dropped_connection_is_retried_when_ambiguous_retries_are_allowed(server):
    server.enqueue(Fault(drop=True))
    with ReveRemix(API_KEY, base_url=server.base_url, retry_on_ambiguous=True) as client:
        assert remix(client)
    assert posts(server) == 2


def test_connection_refused_before_sending_is_retried():
    """Nothing listens at first; the server comes up during the client's backoff."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    late = MockServer(port=port)
    timer = threading.Timer(0.15, late.start)
    timer.start()
    try:
        with ReveRemix(API_KEY, base_url=f"http://127.0.0.1:{port}", max_retries=50) as client:
            assert remix(client)
        assert posts(late) == 1
    finally:
        timer.join()
        late.stop()


def test_connection_refused_gives_up_with_a_connection_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with ReveRemix(API_KEY, base_url=f"http://127.0.0.1:{port}", max_retries=1) as client:
        with pytest.raises(APIConnectionError, match="ConnectError"):
            remix(client)


# --- Retry-After ---------------------------------------------------------------------------


def test_retry_after_seconds_is_honoured(server, client):
    server.enqueue(Fault(status=429, headers={"Retry-After": "1"}))
    started = time.monotonic()
    assert remix(client)
    assert time.monotonic() - started >= 0.95
    assert posts(server) == 2


def test_retry_after_http_date_is_honoured(server, client):
    when = email.utils.formatdate(time.time() + 2, usegmt=True)  # whole seconds: wait 1-2 s
    server.enqueue(Fault(status=503, headers={"Retry-After": when}))
    started = time.monotonic()
    assert remix(client)
    assert time.monotonic() - started >= 0.9
    assert posts(server) == 2


def test_rate_limit_holds_back_other_callers_of_the_same_client(server, client):
    """One 429 holds the whole client, so concurrent callers do not hammer the API."""
    server.enqueue(Fault(status=429, headers={"Retry-After": "1"}))
    first = threading.Thread(target=remix, args=(client,))
    first.start()
    deadline = time.monotonic() + 5
    while posts(server) < 1 and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(0.05)  # the 429 has been answered and read by now
    started = time.monotonic()
    assert remix(client)  # a second caller, sent after the 429: it waits out the cooldown
    assert time.monotonic() - started >= 0.8
    first.join()
    assert posts(server) == 3


# --- broken bodies -----------------------------------------------------------------------


def test_truncated_body_is_a_connection_error_not_a_json_error(server, client):
    server.enqueue(
        Fault(
            status=200, body=b'{"created": 1, "data": [{"url": "http://x/y.png"}]}', truncate=True
        )
    )
    with pytest.raises(APIConnectionError):
        remix(client)
    assert posts(server) == 1


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
def test_2xx_body_that_breaks_the_schema_is_a_response_validation_error(server, client, body):
    server.enqueue(Fault(status=200, body=body, headers={"Content-Type": "application/json"}))
    with pytest.raises(APIResponseValidationError) as info:
        remix(client)
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
def test_each_status_raises_its_class_with_the_envelope(server, client, status, exc_type):
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
        remix(client)
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


def test_403_with_a_moderation_type_is_a_content_policy_error(server, client):
    server.enqueue(Fault(status=403, body={"error": {"message": "flagged", "type": "moderation"}}))
    with pytest.raises(ContentPolicyError) as info:
        remix(client)
    assert isinstance(info.value, PermissionDeniedError)


@pytest.mark.parametrize("body", [b"Bad Gateway", b"", b"[1, 2]", b'{"error": "nope"}'])
def test_a_status_without_the_envelope_still_gets_the_right_class(server, client, body):
    server.enqueue(Fault(status=400, body=body))
    with pytest.raises(BadRequestError) as info:
        remix(client)
    assert info.value.status_code == 400


def test_invalid_request_reaching_the_mock_is_a_422_naming_the_violation(server):
    """The mock validates like the spec: a request the SDK would refuse, sent raw, is a 422."""
    with httpx.Client() as raw:
        response = raw.post(
            f"{server.base_url}/v1/images/edits",
            headers={"Authorization": f"Bearer {API_KEY}"},
            json={"model": "m", "prompt": "p", "image_urls": []},
        )
    assert response.status_code == 422
    assert "image_urls" in response.json()["error"]["message"]
