"""A client's configuration is checked when the client is built (``reve_remix/_config.py``).

A mistake in the key, the base URL or the timeout is a ``ValidationError`` naming the option at
``ReveRemix(...)``: not a network error, a raw httpx or Python exception, a silent fallback or a
request to the wrong place at the first (paid) call. No message holds the key.
"""

from __future__ import annotations

import doctest
import math
from fractions import Fraction

import httpx
import pytest

from reve_remix import AsyncReveRemix, ReveRemix, ValidationError, _config, _redact
from reve_remix._spec import spec
from reve_remix.testing import MockServer

from .conftest import API_KEY, IMAGE_URL

PROMPT = "<img>0</img> at dusk"
CLIENTS = [ReveRemix, AsyncReveRemix]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ONEROUTER_API_KEY", raising=False)
    monkeypatch.delenv("REVE_REMIX_BASE_URL", raising=False)


def refused(client_class: type, *args: object, **options: object) -> str:
    """The message of the ``ValidationError`` that building the client raises."""
    with pytest.raises(ValidationError) as info:
        client_class(*args, **options)
    message = str(info.value)
    assert API_KEY not in message
    assert API_KEY not in repr(info.value.args)
    return message


def test_the_rules_examples_pass():
    for module in (_config, _redact):
        result = doctest.testmod(module)
        assert result.attempted >= 2, module.__name__
        assert result.failed == 0, module.__name__


# --- the key -------------------------------------------------------------------------------------


@pytest.mark.parametrize("decoration", ["\n", "\r\n", " ", "\t", "  \n\n"])
def test_surrounding_whitespace_is_stripped_from_the_key(server: MockServer, decoration: str):
    """The issue: ``export KEY=$(cat key.txt)`` of a file with a newline leaked the key."""
    with ReveRemix(decoration + API_KEY + decoration, base_url=server.base_url) as client:
        client.remix(PROMPT, [IMAGE_URL])
    assert server.requests[0].headers["authorization"] == f"Bearer {API_KEY}"


def test_a_key_from_the_environment_is_stripped_too(
    server: MockServer, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("ONEROUTER_API_KEY", API_KEY + "\n")
    with ReveRemix(base_url=server.base_url) as client:
        client.remix(PROMPT, [IMAGE_URL])
    assert server.requests[0].headers["authorization"] == f"Bearer {API_KEY}"


@pytest.mark.anyio
async def test_the_async_client_strips_the_key(server: MockServer):
    async with AsyncReveRemix(f" {API_KEY}\r\n", base_url=server.base_url) as client:
        await client.remix(PROMPT, [IMAGE_URL])
    assert server.requests[0].headers["authorization"] == f"Bearer {API_KEY}"


@pytest.mark.parametrize("blank", ["", " ", "\n", " \t\r\n "])
def test_a_blank_key_is_a_missing_key_naming_the_variable(server: MockServer, blank: str):
    client = ReveRemix(blank, base_url=server.base_url)
    with pytest.raises(ValidationError, match="ONEROUTER_API_KEY"):
        client.remix(PROMPT, [IMAGE_URL])
    assert server.requests == []


@pytest.mark.parametrize("client_class", CLIENTS)
@pytest.mark.parametrize(
    ("key", "what"),
    [
        (API_KEY[:10] + " " + API_KEY[10:], "character 11 of 35 is a space"),
        (API_KEY[:10] + "\n" + API_KEY[10:], "is a line break"),
        (API_KEY + "\x00", "is a control character"),
        (API_KEY + "é", "is a non-ASCII character"),
        (API_KEY + "\u00a0x", "is whitespace"),
        (API_KEY + "\ud800", "is a lone surrogate"),
    ],
)
def test_a_key_a_header_cannot_carry_is_refused_when_the_client_is_built(
    client_class: type, key: str, what: str
):
    message = refused(client_class, key, base_url="http://127.0.0.1:9")
    assert message.startswith("api_key: ")
    assert what in message


def test_a_bad_key_in_the_environment_names_the_variable(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ONEROUTER_API_KEY", f"{API_KEY} {API_KEY}")
    assert refused(ReveRemix).startswith("$ONEROUTER_API_KEY: ")


@pytest.mark.parametrize("key", [123, b"sk-bytes-key-123", ["sk"]])
def test_a_key_that_is_not_a_string_is_refused(key: object):
    assert refused(ReveRemix, key).startswith("api_key: expected a str")


# --- the base URL --------------------------------------------------------------------------------


@pytest.mark.parametrize("client_class", CLIENTS)
@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("127.0.0.1:8080", "is not an http(s) URL; write it with its scheme, e.g. 'http://127."),
        ("ftp://example.com", "is not an http(s) URL"),
        ("file:///tmp/x", "is not an http(s) URL"),
        ("http://a\r\nb", "contains whitespace, control characters"),
        ("http://exa mple.com", "contains whitespace"),
        ("http://example.com/\x00", "control characters"),
        ("", "is empty"),
        ("http://example.com?x=1", "has a query or fragment"),
        ("http://example.com/v1#top", "has a query or fragment"),
        ("http://user:pass@example.com", "holds credentials"),
        ("http://", "has no host"),
        ("http://example.com:99999", "is not a valid URL"),
        ("http://[::1", "is not a valid URL"),
        ("http://example.com/\ud800", "lone surrogates"),
    ],
)
def test_a_bad_base_url_is_refused_when_the_client_is_built(
    client_class: type, url: str, problem: str
):
    message = refused(client_class, API_KEY, base_url=url)
    assert message.startswith("base_url: ")
    assert problem in message


def test_a_bad_base_url_from_the_environment_names_the_variable(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("REVE_REMIX_BASE_URL", "localhost:8080")
    assert refused(ReveRemix, API_KEY).startswith("$REVE_REMIX_BASE_URL: 'localhost:8080' is not")


def test_an_empty_base_url_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("REVE_REMIX_BASE_URL", "")
    assert ReveRemix(API_KEY).base_url == "https://image.onerouter.pro"


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("https://api.example.com/", "https://api.example.com"),
        ("HTTP://127.0.0.1:8080/proxy/", "HTTP://127.0.0.1:8080/proxy"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("https://exämple.com", "https://exämple.com"),
    ],
)
def test_good_base_urls_are_kept_without_the_trailing_slash(url: str, kept: str):
    assert ReveRemix(API_KEY, base_url=url).base_url == kept


def test_a_base_url_with_a_path_prefix_is_posted_under_it():
    seen: list[httpx.URL] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return httpx.Response(200, json={"created": 1, "data": [{"url": IMAGE_URL}]})

    http = httpx.Client(transport=httpx.MockTransport(handler))
    client = ReveRemix(API_KEY, base_url="https://gateway.test/reve/", http_client=http)
    client.remix(PROMPT, [IMAGE_URL])
    assert str(seen[0]) == f"https://gateway.test/reve{spec().path}"


# --- the timeout ---------------------------------------------------------------------------------


@pytest.mark.parametrize("client_class", CLIENTS)
@pytest.mark.parametrize(
    "timeout",
    [
        -1,
        0,
        "10",
        math.nan,
        math.inf,
        1e300,
        86_401,
        True,
        None,
        [10],
        httpx.Timeout(10, read=-1),
        httpx.Timeout(math.nan),
        httpx.Timeout(10, connect=math.inf),
    ],
    ids=repr,
)
def test_a_bad_timeout_is_refused_when_the_client_is_built(client_class: type, timeout: object):
    message = refused(client_class, API_KEY, timeout=timeout)
    assert message.startswith("timeout")
    assert "expected seconds above 0 and at most 86400" in message


@pytest.mark.parametrize(
    "timeout",
    [
        0.5,
        30,
        86_400,
        Fraction(1, 2),
        httpx.Timeout(5),
        httpx.Timeout(None),
        httpx.Timeout(60, connect=None),
    ],
    ids=repr,
)
def test_good_timeouts_are_accepted(timeout: object):
    ReveRemix(API_KEY, timeout=timeout).close()  # type: ignore[arg-type]


def test_the_timeout_is_the_one_the_pool_uses():
    with ReveRemix(API_KEY, timeout=7) as client:
        assert client._http.timeout == httpx.Timeout(7.0)


# --- the other options ---------------------------------------------------------------------------


@pytest.mark.parametrize("client_class", CLIENTS)
@pytest.mark.parametrize("model", ["", "  ", None, 7, "model\ud800"])
def test_a_bad_default_model_is_refused_when_the_client_is_built(client_class: type, model: object):
    assert refused(client_class, API_KEY, model=model).startswith("model: ")


@pytest.mark.parametrize("client_class", CLIENTS)
def test_an_uploader_that_is_not_a_function_is_refused(client_class: type):
    assert refused(client_class, API_KEY, uploader="s3").startswith("uploader: expected a function")


def test_an_http_client_of_the_wrong_kind_is_refused():
    async_http = httpx.AsyncClient()
    assert "needs an httpx.Client, got AsyncClient" in refused(
        ReveRemix, API_KEY, http_client=async_http
    )
    sync_http = httpx.Client()
    assert "needs an httpx.AsyncClient, got Client" in refused(
        AsyncReveRemix, API_KEY, http_client=sync_http
    )
    sync_http.close()
