"""Cross-cutting fuzzing: whatever goes in or comes back, the SDK fails only in promised ways.

(a) any call to ``remix`` either sends one request that validates against the vendor's request
    schema (and the corrected one), or raises ``ValidationError`` having sent nothing;
(b) any 2xx response body (spec-valid ones generated from the response schema, arbitrary JSON,
    arbitrary bytes) yields a ``RemixResult`` or ``APIResponseValidationError``, and any other
    status an ``APIStatusError``, never another exception;
(c) the tag helpers take arbitrary values of any type and raise nothing but ``ValidationError``
    (``tests/test_tags.py`` fuzzes them with well-typed text; this feeds them anything).

The network is an ``httpx.MockTransport``: these are properties of pure request and response
handling, run thousands of times, which a loopback server would only slow down.
"""

from __future__ import annotations

import base64
import contextlib
import json
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from reve_remix import (
    APIResponseValidationError,
    APIStatusError,
    RemixResult,
    ReveRemix,
    ReveRemixError,
    ValidationError,
    bind_images,
    find_tag_problems,
    img,
    referenced_indices,
    reindex,
)
from reve_remix._images import LocalImage, data_url
from reve_remix._request import encode_body
from reve_remix._spec import spec
from reve_remix._tags import check_prompt
from reve_remix.testing._schema import violations

from .conftest import API_KEY

pytestmark = pytest.mark.slow  # deep: .ci/run runs it after the README command

ROOT = Path(__file__).resolve().parent.parent
VENDOR = json.loads((ROOT / "openapi" / "vendor.openapi.json").read_bytes())
OPERATION = VENDOR["paths"][spec().path][spec().method.lower()]
REQUEST_SCHEMA = OPERATION["requestBody"]["content"]["application/json"]["schema"]
RESPONSE_SCHEMA = OPERATION["responses"]["200"]["content"]["application/json"]["schema"]
REQUEST_VALIDATOR = jsonschema.Draft202012Validator(REQUEST_SCHEMA)
VALID_RESPONSE = {"created": 1_700_000_000, "data": [{"url": "https://cdn.example.com/a.png"}]}
PNG = b"\x89PNG\r\n\x1a\n" + bytes(24)
JPEG = b"\xff\xd8\xff\xe0" + bytes(24)

FUZZ = settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def mock_client(handler: Any, *, max_retries: int = 0) -> ReveRemix:
    http = httpx.Client(transport=httpx.MockTransport(handler))
    return ReveRemix(
        API_KEY, base_url="https://api.test", http_client=http, max_retries=max_retries
    )


# --- strategies: a mix of valid and invalid values for every argument -------------------------


def mostly(
    valid: st.SearchStrategy[Any], invalid: st.SearchStrategy[Any]
) -> st.SearchStrategy[Any]:
    """``valid`` nine times in ten, so that a fair share of calls get past every check."""
    return st.sampled_from([valid] * 9 + [invalid]).flatmap(lambda chosen: chosen)


JUNK = st.none() | st.integers() | st.floats() | st.booleans() | st.binary(max_size=8)
PROMPTS = mostly(
    st.lists(
        mostly(st.just(0), st.integers(-1, 5)).map(lambda n: f"<img>{n}</img>")
        | st.sampled_from([" a cat", " at dusk", " {cat}", " <IMG>0</IMG>", " <ref>0</ref>"]),
        min_size=1,
        max_size=5,
    ).map(lambda parts: "Blend " + "".join(parts)),
    st.text(max_size=40) | JUNK,
)
VALID_ITEMS = (
    st.sampled_from(["https://example.com/cat.png", "http://cdn.example.com:8443/a/b.jpg?x=1"])
    | st.sampled_from([("image/png", PNG), ("image/jpeg", JPEG)]).map(
        lambda pair: f"data:{pair[0]};base64,{base64.b64encode(pair[1]).decode()}"
    )
    | st.sampled_from([PNG, JPEG, bytearray(PNG), memoryview(JPEG)])
)
INVALID_ITEMS = (
    st.builds(
        "{}://{}/{}".format,
        st.sampled_from(["https", "ftp", "file", "HTTP"]),
        st.sampled_from(["example.com", "", "exa mple.com", "[::1", "h:99999"]),
        st.text(max_size=10),
    )
    | st.builds(
        "data:{};base64,{}".format,
        st.sampled_from(["image/png", "image/gif", "", "text/plain"]),
        st.sampled_from([JPEG, b"GIF89a", b""]).map(lambda b: base64.b64encode(b).decode())
        | st.text(max_size=12),
    )
    | st.text(max_size=20)
    | st.binary(max_size=32)
    | JUNK
)
ITEMS = mostly(VALID_ITEMS, INVALID_ITEMS)
IMAGES = mostly(
    st.lists(ITEMS, min_size=1, max_size=4)
    | st.dictionaries(st.sampled_from(["cat", "sofa", "x-2"]), ITEMS, min_size=1)
    | ITEMS,
    st.lists(ITEMS, min_size=5, max_size=6)
    | st.just([])
    | st.dictionaries(st.sampled_from(["", "0", "a b", "{"]) | st.integers(), ITEMS, max_size=5),
)
ASPECT = mostly(st.none() | st.sampled_from(spec().aspect_ratios), st.text(max_size=6) | JUNK)
FORMATS = mostly(st.sampled_from(spec().output_formats), st.text(max_size=8) | JUNK)
MODELS = mostly(st.none() | st.just("reve-remix-image-to-image"), st.text(max_size=8) | JUNK)


@FUZZ
@given(PROMPTS, IMAGES, ASPECT, FORMATS, MODELS)
def test_remix_sends_a_valid_request_or_raises_validation_error_having_sent_nothing(
    prompt: object, images: object, aspect_ratio: object, output_format: object, model: object
):
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json=VALID_RESPONSE)

    client = mock_client(handler)
    try:
        client.remix(
            prompt,  # type: ignore[arg-type]
            images,  # type: ignore[arg-type]
            aspect_ratio=aspect_ratio,  # type: ignore[arg-type]
            output_format=output_format,  # type: ignore[arg-type]
            model=model,  # type: ignore[arg-type]
        )
    except ValidationError:
        assert sent == []
        return
    assert len(sent) == 1
    body = json.loads(sent[0].content)
    assert [error.message for error in REQUEST_VALIDATOR.iter_errors(body)] == []
    assert violations("RemixRequest", body) == []
    assert sent[0].headers["authorization"] == f"Bearer {API_KEY}"


# --- (b) responses ------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["created", "data", "url", "b64_json", "revised_prompt", "error"])
            | st.text(max_size=6),
            children,
            max_size=4,
        )
    ),
    max_leaves=12,
)
SUCCESS = st.integers(200, 299)
REQUEST_IDS = st.none() | st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=12)


def respond(status: int, content: bytes, request_id: str | None) -> RemixResult:
    headers = {"content-type": "application/json"}
    if request_id is not None:
        headers["x-request-id"] = request_id
    client = mock_client(lambda request: httpx.Response(status, content=content, headers=headers))
    return client.remix("<img>0</img> at dusk", ["https://example.com/a.png"])


def check_success_outcome(status: int, content: bytes, request_id: str | None) -> None:
    """A 2xx gives a usable result or APIResponseValidationError, nothing else."""
    outcome: RemixResult | APIResponseValidationError
    try:
        outcome = respond(status, content, request_id)
    except APIResponseValidationError as exc:
        outcome = exc
    if isinstance(outcome, APIResponseValidationError):
        assert outcome.status_code == status
        assert str(outcome)
        return
    result = outcome
    assert isinstance(result, RemixResult)
    assert result.created_at.year >= 1
    repr(result)
    for image in result.images:
        if image.b64_json is not None:
            with contextlib.suppress(ReveRemixError):
                image.read()


@FUZZ
@given(SUCCESS, from_schema(RESPONSE_SCHEMA), REQUEST_IDS)
def test_any_spec_valid_body_yields_a_result_or_a_response_validation_error(
    status: int, body: object, request_id: str | None
):
    check_success_outcome(status, json.dumps(body).encode(), request_id)


@FUZZ
@given(SUCCESS, JSON_VALUES, REQUEST_IDS)
def test_any_json_body_yields_a_result_or_a_response_validation_error(
    status: int, body: object, request_id: str | None
):
    check_success_outcome(status, json.dumps(body).encode(), request_id)


@FUZZ
@given(SUCCESS, st.binary(max_size=64) | st.text(max_size=30).map(str.encode), REQUEST_IDS)
def test_any_bytes_yield_a_result_or_a_response_validation_error(
    status: int, content: bytes, request_id: str | None
):
    check_success_outcome(status, content, request_id)


@FUZZ
@given(
    st.integers(300, 599),
    JSON_VALUES.map(lambda body: json.dumps(body).encode()) | st.binary(max_size=64),
    REQUEST_IDS,
)
def test_any_other_status_with_any_body_is_an_api_status_error(
    status: int, content: bytes, request_id: str | None
):
    with pytest.raises(APIStatusError) as info:
        respond(status, content, request_id)
    assert info.value.status_code == status
    assert str(info.value)


# --- (c) the tag helpers ------------------------------------------------------------------------

ANYTHING = st.recursive(
    JUNK | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(max_size=5) | st.integers(), children, max_size=3)
    ),
    max_leaves=6,
)


@settings(max_examples=600, deadline=None)
@given(ANYTHING, ANYTHING, ANYTHING, st.booleans())
def test_the_tag_helpers_raise_nothing_but_validation_error_whatever_they_are_given(
    first: object, second: object, third: object, drop: bool
):
    for call in (
        lambda: img(first),  # type: ignore[arg-type]
        lambda: referenced_indices(first),  # type: ignore[arg-type]
        lambda: find_tag_problems(first, second),  # type: ignore[arg-type]
        lambda: check_prompt(first, second),  # type: ignore[arg-type]
        lambda: bind_images(first, second),  # type: ignore[arg-type]
        lambda: reindex(first, second, drop_references=drop),  # type: ignore[arg-type]
        lambda: reindex(first, third),  # type: ignore[arg-type]
    ):
        with contextlib.suppress(ValidationError):
            call()


# --- the request body encoder -------------------------------------------------------------------

IMAGE_URLS = st.lists(
    st.text(max_size=20)
    | st.integers(0, 40_000).map(lambda n: "data:image/png;base64," + "A" * n)
    | st.binary(max_size=3_000).map(lambda data: LocalImage("x", data, "image/png", "png")),
    max_size=4,
)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=4),
    IMAGE_URLS,
)
def test_the_body_is_byte_for_byte_what_httpx_json_would_send(
    fields: dict[str, object], image_urls: list[str | LocalImage]
):
    """One ``json`` call, or JSON text around inline images, as ``data:`` URLs would make it."""
    sent = {
        **fields,
        "image_urls": [
            data_url(url.data, url.mime) if isinstance(url, LocalImage) else url
            for url in image_urls
        ],
    }
    body = encode_body(fields, image_urls)
    content = body if isinstance(body, bytes) else b"".join(body)
    assert content == httpx.Request("POST", "https://x.test", json=sent).content
