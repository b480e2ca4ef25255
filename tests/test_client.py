"""The clients end to end against the mock server: results, configuration, pooling, async."""

from __future__ import annotations

import base64
import logging
import re

import httpx
import pytest

from reve_remix import AspectRatio, AsyncReveRemix, OutputFormat, ReveRemix, ValidationError
from reve_remix._client import USER_AGENT
from reve_remix._spec import spec
from reve_remix.testing import MockServer

from .conftest import API_KEY, CLIENT_KINDS, IMAGE_URL, Twin

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_url_result_downloads_and_saves_a_png(server, client, tmp_path):
    result = client.remix("<img>0</img> as a watercolour", [IMAGE_URL], aspect_ratio="16:9")
    assert result.image.url
    assert result.image.url.startswith(server.base_url)
    assert result.image.b64_json is None
    assert result.created_at.tzinfo is not None
    assert result.created_at.timestamp() == result.created
    saved = result.save(tmp_path / "out" / "cat.png")
    assert saved == tmp_path / "out" / "cat.png"
    assert saved.read_bytes().startswith(PNG_SIGNATURE)
    assert not [p for p in saved.parent.iterdir() if p.name != "cat.png"]  # no temp files left


def test_b64_result_decodes_without_another_request(server, client, tmp_path):
    result = client.remix("<img>0</img> at night", [IMAGE_URL], output_format="b64_json")
    requests_before = len(server.requests)
    data = result.read()
    assert data == base64.b64decode(result.image.b64_json)
    assert data.startswith(PNG_SIGNATURE)
    assert len(server.requests) == requests_before
    assert result.image.revised_prompt


def test_request_carries_bearer_key_model_and_arguments(server, client):
    client.remix("<img>0</img> and <img>1</img>", [IMAGE_URL, IMAGE_URL], aspect_ratio="1:1")
    sent = server.requests[0]
    assert sent.path == spec().path
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    assert sent.headers["user-agent"].startswith("reve-remix-python/")
    assert sent.json == {
        "model": "reve-remix-image-to-image",
        "prompt": "<img>0</img> and <img>1</img>",
        "image_urls": [IMAGE_URL, IMAGE_URL],
        "aspect_ratio": "1:1",
        "output_format": "url",
        "n": 1,
    }


def test_aspect_ratio_and_output_format_take_the_generated_enums_or_their_values(twin, server):
    ratio, fmt = list(AspectRatio)[-1], next(iter(OutputFormat))  # whatever the spec lists
    twin.remix("<img>0</img>", [IMAGE_URL], aspect_ratio=ratio, output_format=fmt)
    twin.remix("<img>0</img>", [IMAGE_URL], aspect_ratio=ratio.value, output_format=fmt.value)
    sent = [(request.aspect_ratio, request.output_format) for request in server.requests]
    assert sent == [(ratio.value, fmt.value)] * 2


def test_bare_auth_scheme_sends_the_key_alone(server):
    with ReveRemix(API_KEY, base_url=server.base_url, auth_scheme="bare") as client:
        client.remix("<img>0</img>", [IMAGE_URL])
    assert server.requests[0].headers["authorization"] == API_KEY


def test_model_is_overridable_per_client_and_per_call(reve_remix_mock):
    with ReveRemix(model="client-model") as client:
        client.remix("<img>0</img>", [IMAGE_URL])
        client.remix("<img>0</img>", [IMAGE_URL], model="call-model")
    assert [r.model for r in reve_remix_mock.requests] == ["client-model", "call-model"]


def test_key_and_base_url_come_from_the_environment(reve_remix_mock):
    with ReveRemix() as client:  # the fixture set ONEROUTER_API_KEY and REVE_REMIX_BASE_URL
        assert client.base_url == reve_remix_mock.base_url
        client.remix("<img>0</img>", [IMAGE_URL])
    assert (
        reve_remix_mock.requests[0].headers["authorization"] == f"Bearer {reve_remix_mock.api_key}"
    )


def test_default_base_url_is_the_spec_server(monkeypatch):
    monkeypatch.delenv("REVE_REMIX_BASE_URL", raising=False)
    assert ReveRemix(API_KEY).base_url == "https://image.onerouter.pro"


def test_missing_key_is_a_validation_error_naming_the_variable(server, monkeypatch):
    monkeypatch.delenv("ONEROUTER_API_KEY", raising=False)
    with ReveRemix(base_url=server.base_url) as client:
        with pytest.raises(ValidationError, match="ONEROUTER_API_KEY"):
            client.remix("<img>0</img>", [IMAGE_URL])
    assert server.requests == []


def test_one_connection_is_reused_across_calls(server, client):
    for _ in range(5):
        client.remix("<img>0</img>", [IMAGE_URL])
    assert server.connections == 1


def test_download_of_the_result_never_carries_the_key(server):
    headers = {"Authorization": f"Bearer {API_KEY}"}  # even a client with a default auth header
    with (
        httpx.Client(headers=headers) as http,
        ReveRemix(API_KEY, base_url=server.base_url, http_client=http) as client,
    ):
        client.remix("<img>0</img>", [IMAGE_URL]).read()
    download = [r for r in server.requests if r.method == "GET"]
    assert len(download) == 1
    assert "authorization" not in download[0].headers


@pytest.mark.parametrize("kind", CLIENT_KINDS)
def test_an_injected_clients_headers_cookies_and_params_reach_the_api(kind, server):
    """What the injected httpx client adds to its own requests, it adds to the API's too, as it
    is at each call (the client's headers are merged once, then again when they change); this
    client's own headers replace the injected client's of the same name."""
    http_class = httpx.Client if kind == "sync" else httpx.AsyncClient
    http = http_class(headers={"X-Trace": "one", "User-Agent": "theirs/1.0"})
    with Twin(kind, api_key=API_KEY, base_url=server.base_url, http_client=http) as twin:
        twin.remix("<img>0</img>", [IMAGE_URL])
        http.headers["X-Trace"] = "two"
        twin.remix("<img>0</img>", [IMAGE_URL], extra_headers={"X-Trace": "call"})
        twin.remix("<img>0</img>", [IMAGE_URL])
        http.cookies.set("session", "s1", domain=httpx.URL(server.base_url).host)
        http.params = httpx.QueryParams({"tenant": "t1"})
        twin.remix("<img>0</img>", [IMAGE_URL])
        if isinstance(http, httpx.AsyncClient):
            twin._run(http.aclose())
        else:
            http.close()
    posts = [request for request in server.requests if request.method == "POST"]
    assert [post.headers["x-trace"] for post in posts] == ["one", "call", "two", "two"]
    assert {post.headers["user-agent"] for post in posts} == {USER_AGENT}
    assert {post.headers["authorization"] for post in posts} == {f"Bearer {API_KEY}"}
    assert "cookie" not in posts[2].headers
    assert posts[3].headers["cookie"] == "session=s1"
    assert [post.path for post in posts] == [spec().path] * 3 + [f"{spec().path}?tenant=t1"]


@pytest.mark.parametrize("http_class", [httpx.Client, httpx.AsyncClient])
@pytest.mark.parametrize(
    ("client_headers", "extra_headers"),
    [({}, None), ({"X-Trace": "t", "User-Agent": "theirs/1.0"}, {"X-Call": "c"})],
)
def test_the_request_is_what_httpx_build_request_makes(http_class, client_headers, extra_headers):
    """The facade builds its request from headers merged once; the result must be the request
    httpx's own ``build_request`` makes of the same parts, header for header, body for body."""
    from reve_remix._runner import Call

    http = http_class(headers=client_headers)
    client_class = ReveRemix if http_class is httpx.Client else AsyncReveRemix
    client = client_class(API_KEY, base_url="https://api.example.test", http_client=http)
    prepared = client._prepare(Call("<img>0</img>", [IMAGE_URL], extra_headers=extra_headers))
    for _ in range(2):  # the merged headers are made on the first call and reused
        request = client._build_request(prepared, list(prepared.images))
        expected = http.build_request(
            "POST",
            f"https://api.example.test{spec().path}",
            content=request.content,
            headers={**client._own_headers(), **(extra_headers or {})},
            timeout=http.timeout,
        )
        assert request.headers.raw == expected.headers.raw
        assert (request.method, request.url, request.content) == (
            expected.method,
            expected.url,
            expected.content,
        )
        assert request.extensions["timeout"] == expected.extensions["timeout"]


def test_injected_http_client_is_used_and_left_open(reve_remix_mock):
    with httpx.Client(transport=reve_remix_mock.transport) as http:
        client = ReveRemix(http_client=http)
        client.remix("<img>0</img>", [IMAGE_URL])
        client.close()
        assert not http.is_closed
    assert len(reve_remix_mock.requests) == 1  # through the injected client's transport


def test_repr_shows_configuration_but_never_the_key(server):
    client = ReveRemix(API_KEY, base_url=server.base_url)
    text = repr(client)
    assert API_KEY not in text
    assert "api_key=<set>" in text
    assert server.base_url in text


def test_retries_and_warnings_are_logged_without_the_key(reve_remix_mock, caplog):
    reve_remix_mock.add_response(status_code=503)
    with caplog.at_level(logging.DEBUG, logger="reve_remix"), ReveRemix() as client:
        client.remix("<img>0</img> <IMG>0</IMG>", [IMAGE_URL])
    messages = [record.getMessage() for record in caplog.records]
    assert any(re.search(r"503 Service Unavailable; retrying in \d", m) for m in messages)
    assert all(reve_remix_mock.api_key not in m for m in messages)


def test_a_result_reads_from_either_kind_of_code(server, client):
    import asyncio

    result = client.remix("<img>0</img>", [IMAGE_URL])
    # aread() of a sync client's result downloads through a short-lived async client.
    assert asyncio.run(result.aread()).startswith(PNG_SIGNATURE)
    assert result.read().startswith(PNG_SIGNATURE)


@pytest.mark.anyio
async def test_async_client_remixes_and_saves(server, aclient, tmp_path):
    result = await aclient.remix("<img>0</img> in autumn", [IMAGE_URL])
    saved = await result.asave(tmp_path / "autumn.png")
    assert saved.read_bytes().startswith(PNG_SIGNATURE)
    b64 = await aclient.remix("<img>0</img>", [IMAGE_URL], output_format="b64_json")
    assert (await b64.aread()).startswith(PNG_SIGNATURE)
    assert server.connections == 1


@pytest.mark.anyio
async def test_async_client_uploads_local_images_with_an_async_uploader(reve_remix_mock, tmp_path):
    png = _tiny_png(tmp_path)
    uploaded: list[tuple[int, str]] = []

    async def upload(data: bytes, mime: str) -> str:
        uploaded.append((len(data), mime))
        return f"https://bucket.example.com/{len(uploaded)}.png"

    async with AsyncReveRemix(uploader=upload) as client:
        await client.remix("<img>0</img> with <img>1</img>", [png, IMAGE_URL])
    assert uploaded == [(png.stat().st_size, "image/png")]
    assert reve_remix_mock.requests[0].images == ["https://bucket.example.com/1.png", IMAGE_URL]


def test_sync_client_rejects_an_async_uploader_before_sending(reve_remix_mock, tmp_path):
    async def upload(data: bytes, mime: str) -> str:
        return "https://bucket.example.com/x.png"

    with ReveRemix(uploader=upload) as client:  # type: ignore[arg-type]
        with pytest.raises(ValidationError, match="async"):
            client.remix("<img>0</img>", [_tiny_png(tmp_path)])
    assert reve_remix_mock.server.requests == []


def test_local_image_becomes_a_data_url_by_default(reve_remix_mock, tmp_path):
    with ReveRemix() as client:
        client.remix("<img>0</img>", [png := _tiny_png(tmp_path)])
    [sent] = reve_remix_mock.requests
    assert sent.json["image_urls"][0].startswith("data:image/png;base64,")
    assert sent.images == [png.read_bytes()]


def _tiny_png(folder):
    from PIL import Image

    path = folder / "tiny.png"
    Image.new("RGB", (4, 4), "red").save(path)
    return path


def test_mock_server_fixture_is_isolated_per_test(server: MockServer):
    assert server.requests == []


def test_saved_files_follow_the_umask_like_any_new_file(server, client, tmp_path):
    import os

    umask = os.umask(0o022)
    try:
        saved = client.remix("<img>0</img>", [IMAGE_URL]).save(tmp_path / "x.png")
    finally:
        os.umask(umask)
    assert saved.stat().st_mode & 0o777 == 0o644


def test_local_png_local_jpeg_and_url_reach_the_mock_as_spec_valid_requests(
    reve_remix_mock, tmp_path
):
    """List form and mapping form alike; the plugin checks each body against the spec."""
    from PIL import Image

    png, jpeg = tmp_path / "cat.png", tmp_path / "sofa.jpg"
    Image.new("RGB", (8, 8), "orange").save(png)
    Image.new("RGB", (8, 8), "blue").save(jpeg, format="JPEG")

    with ReveRemix() as client:
        client.remix("<img>0</img> on <img>1</img> in <img>2</img>", [png, jpeg, IMAGE_URL])
        client.remix("{cat} on {sofa} in {room}", {"room": IMAGE_URL, "cat": png, "sofa": jpeg})

    listed, named = reve_remix_mock.requests  # and neither call raised: the mock refused nothing
    assert listed.json == named.json
    assert listed.prompt == "<img>0</img> on <img>1</img> in <img>2</img>"
    assert listed.images == [png.read_bytes(), jpeg.read_bytes(), IMAGE_URL]
    media_types = [url.split(",")[0] for url in listed.json["image_urls"][:2]]
    assert media_types == ["data:image/png;base64", "data:image/jpeg;base64"]
