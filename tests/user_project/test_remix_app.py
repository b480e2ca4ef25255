"""The plugin from a user's side: happy path and each scripted fault reaching its exception."""

from pathlib import Path

import httpx
import pytest
from remix_app import watercolour

from reve_remix import (
    APIConnectionError,
    APIError,
    ContentPolicyError,
    PaymentRequiredError,
    RateLimitError,
    ReveRemix,
)

CAT = Path(__file__).with_name("cat.png")


def test_happy_path_saves_a_png_and_sends_the_photo(reve_remix_mock, tmp_path):
    saved = watercolour(CAT, tmp_path / "out.png")
    assert saved.read_bytes().startswith(b"\x89PNG")
    [sent] = reve_remix_mock.requests
    assert sent.prompt == "<img>0</img> as a watercolour"
    assert sent.images == [CAT.read_bytes()]
    assert sent.aspect_ratio == "3:2"
    assert sent.headers["authorization"] == f"Bearer {reve_remix_mock.api_key}"


def test_429_on_every_try_is_a_rate_limit_error_after_the_retries(reve_remix_mock, tmp_path):
    for _ in range(9):  # the first try and the 8 retries the SDK gives a 429
        reve_remix_mock.add_response(status_code=429)
    with pytest.raises(RateLimitError):
        watercolour(CAT, tmp_path / "out.png")
    assert len(reve_remix_mock.requests) == 9


def test_one_429_then_success(reve_remix_mock, tmp_path):
    reve_remix_mock.add_response(status_code=429, headers={"Retry-After": "0"})
    assert watercolour(CAT, tmp_path / "out.png").exists()
    assert len(reve_remix_mock.requests) == 2


def test_402_is_payment_required(reve_remix_mock, tmp_path):
    reve_remix_mock.add_error(402, "Insufficient credits", type="insufficient_quota")
    with pytest.raises(PaymentRequiredError, match="Insufficient credits"):
        watercolour(CAT, tmp_path / "out.png")


def test_content_policy_403(reve_remix_mock, tmp_path):
    reve_remix_mock.add_error(403, "Flagged by moderation", type="content_policy_violation")
    with pytest.raises(ContentPolicyError):
        watercolour(CAT, tmp_path / "out.png")


def test_dropped_connection_is_not_sent_again(reve_remix_mock, tmp_path):
    reve_remix_mock.add_response(drop=True)
    with pytest.raises(APIConnectionError):
        watercolour(CAT, tmp_path / "out.png")
    assert len(reve_remix_mock.requests) == 1  # it may have been generated: no second charge


def test_lost_result_keeps_the_url_and_generates_nothing_again(reve_remix_mock):
    gone = f"{reve_remix_mock.base_url}/files/gone.png"
    reve_remix_mock.add_response(json={"created": 1_700_000_000, "data": [{"url": gone}]})
    with ReveRemix() as client:
        result = client.remix("<img>0</img> as a watercolour", [CAT])
        with pytest.raises(APIError):
            result.read()
    assert result.image.url == gone
    assert len(reve_remix_mock.requests) == 1


def test_transport_form_needs_no_socket(reve_remix_mock):
    reve_remix_mock.add_response(status_code=503)
    with (
        httpx.Client(transport=reve_remix_mock.transport) as http,
        ReveRemix(base_url="http://mock.invalid", http_client=http) as client,
    ):
        png = client.remix("<img>0</img> at night", [CAT]).read()
    assert png.startswith(b"\x89PNG")
    assert [sent.prompt for sent in reve_remix_mock.requests] == ["<img>0</img> at night"] * 2
    assert reve_remix_mock.server.connections == 0
