"""The testing kit in-process: the fixture's pieces, the transport, spec checks and cassettes.

``test_user_project.py`` shows the kit from a user's side; these tests pin each piece down.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import vcr.errors

import pytest_reve_remix
from reve_remix import (
    APIConnectionError,
    AsyncReveRemix,
    ContentPolicyError,
    InternalServerError,
    PaymentRequiredError,
    ReveRemix,
    ValidationError,
)
from reve_remix._spec import spec
from reve_remix.testing import (
    MockServer,
    RecordedRequest,
    ReveRemixMock,
    validate_request,
    validate_response,
)
from reve_remix.testing.cassettes import use_cassette

from .conftest import IMAGE_URL

CAT = Path(__file__).resolve().parent.parent / "reve_remix" / "_samples" / "cat.png"
EDITS = spec().path  # the operation, as the spec locates it
VALID = {"model": "m", "prompt": "<img>0</img>", "image_urls": [IMAGE_URL]}


def transport_client(mock: ReveRemixMock, **options) -> ReveRemix:
    http = httpx.Client(transport=mock.transport)
    return ReveRemix(base_url="http://mock.invalid", http_client=http, **options)


# The fixture


def test_the_fixture_points_clients_at_a_fresh_mock_through_the_environment(reve_remix_mock):
    with ReveRemix() as client:
        assert client.base_url == reve_remix_mock.base_url
        client.remix("<img>0</img> in snow", [CAT], aspect_ratio="16:9", output_format="b64_json")
    [sent] = reve_remix_mock.requests
    assert sent.headers["authorization"] == f"Bearer {reve_remix_mock.api_key}"
    assert (sent.prompt, sent.aspect_ratio, sent.output_format) == (
        "<img>0</img> in snow",
        "16:9",
        "b64_json",
    )
    assert sent.model == "reve-remix-image-to-image"
    assert sent.images == [CAT.read_bytes()]


def test_requests_leave_out_downloads(reve_remix_mock):
    with transport_client(reve_remix_mock) as client:
        client.remix("<img>0</img>", [IMAGE_URL]).read()
    assert [r.method for r in reve_remix_mock.server.requests] == ["POST", "GET"]
    assert [r.images for r in reve_remix_mock.requests] == [[IMAGE_URL]]


@pytest.mark.parametrize(
    ("queue", "error"),
    [
        ({"status_code": 402}, PaymentRequiredError),
        ({"status_code": 500}, InternalServerError),
        ({"drop": True}, APIConnectionError),
        ({"truncate": True}, APIConnectionError),
    ],
)
def test_scripted_answers_reach_their_exception(reve_remix_mock, queue, error):
    reve_remix_mock.add_response(**queue)
    with transport_client(reve_remix_mock) as client, pytest.raises(error):
        client.remix("<img>0</img>", [IMAGE_URL])
    assert len(reve_remix_mock.requests) == 1  # none of these is retried by default


def test_a_retried_status_gets_retry_after_zero_unless_told_otherwise(reve_remix_mock):
    reve_remix_mock.add_response(status_code=503)
    reve_remix_mock.add_response(status_code=429, headers={"retry-after": "7"})
    reve_remix_mock.add_response(status_code=400)
    with httpx.Client(transport=reve_remix_mock.transport, base_url="http://m") as http:
        answers = [http.post(EDITS, json=VALID) for _ in range(3)]
    assert [(a.status_code, a.headers.get("retry-after")) for a in answers] == [
        (503, "0"),
        (429, "7"),
        (400, None),
    ]


def test_add_response_bodies_and_add_error_envelopes(reve_remix_mock):
    reve_remix_mock.add_response(json={"created": 1, "data": []}, headers={"X-Mock": "1"})
    reve_remix_mock.add_response(201, content=b"raw")
    reve_remix_mock.add_error(403, "Flagged", type="content_policy_violation", code="flagged")
    with httpx.Client(transport=reve_remix_mock.transport, base_url="http://m") as http:
        first, second, third = (http.post(EDITS, json=VALID) for _ in range(3))
    assert (first.json(), first.headers["x-mock"]) == ({"created": 1, "data": []}, "1")
    assert (second.status_code, second.content) == (201, b"raw")
    assert third.json() == {
        "error": {
            "message": "Flagged",
            "type": "content_policy_violation",
            "param": None,
            "code": "flagged",
        }
    }


def test_an_add_error_content_policy_is_a_content_policy_error(reve_remix_mock):
    reve_remix_mock.add_error(403, "Flagged by moderation", type="content_policy_violation")
    with transport_client(reve_remix_mock) as client, pytest.raises(ContentPolicyError):
        client.remix("<img>0</img>", [IMAGE_URL])


def test_a_drop_with_a_status_is_refused():
    with pytest.raises(ValidationError, match="sends no response"):
        ReveRemixMock().add_response(status_code=429, drop=True)


def test_problems_list_unused_answers_and_each_spec_violation():
    mock = ReveRemixMock()
    for _ in range(3):
        mock.add_response()
    with httpx.Client(transport=mock.transport, base_url="http://m") as http:
        http.post(EDITS, json={"model": "m", "prompt": "p", "image_urls": []})
        http.post(EDITS, json={"model": "m", "prompt": "p", "image_urls": [IMAGE_URL]})
    unused, invalid = mock.problems()
    assert unused.startswith("1 queued response(s) were never requested")
    assert (
        invalid
        == "remix request 1 of 2 breaks the API spec:\n  $.image_urls: [] should be non-empty"
    )
    assert mock.problems(assert_all_requests_were_valid=False) == [unused]
    assert mock.problems(assert_all_responses_were_requested=False) == [invalid]


@pytest.mark.reve_remix_mock(latency=0.05, assert_all_responses_were_requested=False)
def test_the_marker_configures_the_fixture(reve_remix_mock):
    reve_remix_mock.add_response()  # never used: the marker allows it
    assert reve_remix_mock.server.latency == 0.05


def test_an_unknown_marker_option_fails_the_test_naming_the_options(pytester_free_node):
    with pytest.raises(pytest.fail.Exception, match=r"unknown option.*assert_all_responses"):
        pytest_reve_remix._marker_options(
            pytester_free_node, "reve_remix_mock", ("assert_all_responses_were_requested",)
        )


@pytest.fixture
def pytester_free_node(request):
    """This test's node, carrying a marker with a misspelt option."""
    request.node.add_marker(pytest.mark.reve_remix_mock(assert_all_responses=False))
    return request.node


def test_without_the_extra_the_fixture_fails_with_the_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "jsonschema", None)
    for name in [name for name in sys.modules if name.startswith("reve_remix.testing")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(
        pytest.fail.Exception, match=r"jsonschema.*pip install 'reve-remix\[testing\]'"
    ):
        pytest_reve_remix._testing_module("reve_remix.testing")


def test_loading_the_plugin_imports_nothing_but_itself():
    """pytest loads the plugin in every project that has reve-remix installed: it must be free."""
    code = (
        "import sys, pytest; before = set(sys.modules); import pytest_reve_remix; "
        "print(sorted(set(sys.modules) - before))"
    )
    added = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert added.stdout.strip() == "['pytest_reve_remix']"


# The transport


def test_the_transport_serves_a_result_url_on_the_host_it_was_called_on():
    mock = MockServer()
    with httpx.Client(transport=mock.transport, base_url="https://api.example") as http:
        body = {"model": "m", "prompt": "<img>0</img>", "image_urls": [IMAGE_URL]}
        url = http.post(EDITS, json=body, headers={"Authorization": "Bearer k"}).json()
        png = http.get(url["data"][0]["url"])
    assert url["data"][0]["url"].startswith("https://api.example/files/")
    assert png.content.startswith(b"\x89PNG")
    assert png.headers["x-request-id"].startswith("req_")


@pytest.mark.anyio
async def test_the_transport_serves_the_async_client_too(reve_remix_mock):
    reve_remix_mock.add_response(status_code=502)
    http = httpx.AsyncClient(transport=reve_remix_mock.transport)
    async with http, AsyncReveRemix(base_url="http://mock.invalid", http_client=http) as client:
        result = await client.remix("<img>0</img> at night", [IMAGE_URL])
        assert (await result.aread()).startswith(b"\x89PNG")
    assert len(reve_remix_mock.requests) == 2


@pytest.mark.anyio
async def test_async_drop_and_truncate_raise_what_a_real_hang_up_raises():
    mock = MockServer()
    mock.enqueue(*mock_faults())
    async with httpx.AsyncClient(transport=mock.transport, base_url="http://m") as http:
        for _ in range(2):
            with pytest.raises(httpx.RemoteProtocolError):
                await http.post(EDITS, json={})


def mock_faults():
    from reve_remix.testing import Fault

    return Fault(drop=True), Fault(status=500, truncate=True)


# The parsed request


@pytest.mark.parametrize(
    ("body", "images", "prompt"),
    [
        (b"not json", [], None),
        (b"[1]", [], None),
        (b'{"prompt": 7, "image_urls": "x"}', [], None),
        (b'{"prompt": "p", "image_urls": ["data:,a%20b", "data:;base64,!!", "u"]}', None, "p"),
    ],
)
def test_a_recorded_request_parses_what_it_can(body, images, prompt):
    request = RecordedRequest("POST", EDITS, httpx.Headers(), body)
    assert request.prompt == prompt
    assert request.images == (images if images is not None else [b"a b", "data:;base64,!!", "u"])
    assert request.aspect_ratio is None


# Spec checks


def test_validate_request_and_response_take_json_text_bytes_or_data():
    valid = {"model": "m", "prompt": "<img>0</img>", "image_urls": [IMAGE_URL]}
    assert validate_request(valid) == validate_request(json.dumps(valid)) == []
    assert validate_request(json.dumps(valid).encode()) == []
    [violation] = validate_request({**valid, "aspect_ratio": "5:4"})
    assert (violation.field, violation.location) == ("aspect_ratio", "$.aspect_ratio")
    [broken] = validate_response(b"{")
    assert (broken.location, broken.message.startswith("not valid JSON")) == ("$", True)
    assert validate_response({"created": 1, "data": [{"url": IMAGE_URL}]}) == []
    assert validate_response({"data": []})[0].message == "'created' is a required property"


# Cassettes


def test_a_cassette_replays_by_meaning_with_the_server_gone(tmp_path):
    cassette = tmp_path / "c.yaml"
    photo = base64.b64encode(CAT.read_bytes()).decode()
    body = {
        "model": "m",
        "prompt": "<img>0</img>",
        "image_urls": [f"data:image/png;base64,{photo}"],
    }
    headers = {"Authorization": "Bearer sk-or-SECRET-recording"}
    with MockServer() as server, use_cassette(cassette, record_mode="once"):
        recorded = httpx.post(f"{server.base_url}{EDITS}", json=body, headers=headers).json()
    # Replayed: keys in another order, other spacing, another host, no key.
    reordered = json.dumps(dict(reversed(body.items())), indent=2)
    with use_cassette(cassette) as replay:
        answer = httpx.post(
            "http://elsewhere.test" + EDITS,
            content=reordered,
            headers={"Content-Type": "application/json"},
        )
        assert answer.json() == recorded
        assert replay.all_played
        with pytest.raises(vcr.errors.CannotOverwriteExistingCassetteException):
            httpx.post("http://elsewhere.test" + EDITS, json={**body, "prompt": "other"})
    text = cassette.read_text()
    assert "SECRET" not in text
    assert "authorization" not in text.lower()
    assert hashlib.sha256(CAT.read_bytes()).hexdigest() in text
    assert photo[:40] not in text


def test_a_large_inline_image_and_the_result_stay_out_of_the_cassette(tmp_path):
    big = b"\x89PNG\r\n\x1a\n" + bytes(8 * 1024 * 1024)
    cassette = tmp_path / "big.yaml"
    with MockServer() as server, use_cassette(cassette, record_mode="once"):
        with ReveRemix("sk-test", base_url=server.base_url) as client:
            inline = client.remix("<img>0</img>", [IMAGE_URL], output_format="b64_json")
            client.remix("<img>0</img>", [IMAGE_URL]).read()
        body = {
            "model": "m",
            "prompt": "<img>0</img>",
            "image_urls": ["data:image/png;base64," + base64.b64encode(big).decode()],
        }
        httpx.post(f"{server.base_url}{EDITS}", json=body, headers={"Authorization": "k"})
    assert cassette.stat().st_size < 8_000
    with use_cassette(cassette), ReveRemix("sk-test", base_url="http://gone.test") as client:
        replayed = client.remix("<img>0</img>", [IMAGE_URL], output_format="b64_json").read()
        downloaded = client.remix("<img>0</img>", [IMAGE_URL]).read()
    assert replayed.startswith(b"\x89PNG")
    assert downloaded.startswith(b"\x89PNG")
    assert len(replayed) < 200 < len(inline.read())


def test_keep_images_keeps_the_generated_image(tmp_path):
    cassette = tmp_path / "kept.yaml"
    with MockServer() as server, use_cassette(cassette, record_mode="once", keep_images=True):
        with ReveRemix("sk-test", base_url=server.base_url) as client:
            original = client.remix("<img>0</img>", [IMAGE_URL], output_format="b64_json").read()
    kept = use_cassette(cassette, keep_images=True)  # vcrpy filters what it loads, too
    with kept, ReveRemix("sk-test", base_url="http://gone.test") as client:
        assert (
            client.remix("<img>0</img>", [IMAGE_URL], output_format="b64_json").read() == original
        )


def test_an_unknown_record_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match="record_mode"):
        use_cassette(tmp_path / "x.yaml", record_mode="sometimes")
