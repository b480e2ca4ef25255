"""The offline mock server, exercised over real HTTP with httpx."""

import base64
import importlib
import io
import os
import signal
import socket
import struct
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from PIL import Image

from reve_remix._exceptions import ValidationError
from reve_remix._spec import spec
from reve_remix.testing import Fault, MockServer
from reve_remix.testing._schema import violations

from .conftest import WAIT

EDITS = spec().path  # the operation, as the spec locates it
AUTH = {"Authorization": "Bearer sk-test"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def remix_body(**overrides):
    body = {
        "model": "reve-remix",
        "prompt": "put <img>0</img> on <img>1</img>",
        "image_urls": ["https://example.com/a.png", "https://example.com/b.png"],
    }
    body.update(overrides)
    return body


@pytest.fixture
def server():
    with MockServer() as mock:
        yield mock


@pytest.fixture(params=["socket", "transport"])
def client(server, request):
    """A client of the mock over HTTP, and of the same mock as a transport: same answers."""
    transport = server.transport if request.param == "transport" else None
    with httpx.Client(
        base_url=server.base_url, headers=AUTH, timeout=5, transport=transport
    ) as http:
        yield http


@pytest.fixture
def socket_client(server):
    """For what only a socket has: connections, hang-ups, the access log."""
    with httpx.Client(base_url=server.base_url, headers=AUTH, timeout=5) as http:
        yield http


def assert_error(response, status, error_type):
    """The response is the provider's error envelope for ``status``; returns its ``error``."""
    assert response.status_code == status
    assert violations("ErrorResponse", response.json()) == []
    error = response.json()["error"]
    assert (error["type"], error["code"]) == (error_type, status)
    return error


def assert_remix_response(response):
    """A spec-valid 200; returns its single image item."""
    assert response.status_code == 200, response.text
    assert violations("RemixResponse", response.json()) == []
    assert abs(response.json()["created"] - time.time()) < 60
    [item] = response.json()["data"]
    return item


def png_size(png):
    """Width and height from the IHDR chunk, after checking the signature."""
    assert png[:8] == PNG_SIGNATURE
    assert png[12:16] == b"IHDR"
    return struct.unpack(">II", png[16:24])


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic dXNlcjpwdw=="},
        {"Authorization": "Bearer"},
    ],
    ids=["missing", "not-bearer", "empty-key"],
)
def test_a_request_without_an_api_key_is_401(server, headers):
    response = httpx.post(f"{server.base_url}{EDITS}", json=remix_body(), headers=headers)
    error = assert_error(response, 401, "authentication_error")
    assert "Authorization: Bearer" in error["message"]


def test_a_bare_key_is_accepted_as_in_the_providers_curl_examples(server):
    response = httpx.post(
        f"{server.base_url}{EDITS}", json=remix_body(), headers={"Authorization": "sk-bare"}
    )
    assert response.status_code == 200


def test_a_body_that_is_not_json_is_422(client):
    response = client.post(
        EDITS, content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert "not valid JSON" in assert_error(response, 422, "invalid_request_error")["message"]


def test_a_422_names_every_violation(client):
    response = client.post(EDITS, json=remix_body(image_urls=[], aspect_ratio="5:4"))
    error = assert_error(response, 422, "invalid_request_error")
    assert "$.image_urls: [] should be non-empty" in error["message"]
    assert "$.aspect_ratio: '5:4' is not one of" in error["message"]
    assert error["param"] == "aspect_ratio"


def test_a_422_names_missing_and_mistyped_fields(client):
    body = remix_body(prompt=7, n=2)
    del body["model"]
    message = assert_error(client.post(EDITS, json=body), 422, "invalid_request_error")["message"]
    assert "'model' is a required property" in message
    assert "$.prompt: 7 is not of type 'string'" in message
    assert "$.n: 2 is not one of [1]" in message


@pytest.mark.parametrize(
    ("aspect_ratio", "size"),
    [
        ("1:1", (96, 96)),
        ("16:9", (160, 90)),
        ("9:16", (90, 160)),
        ("3:2", (144, 96)),
        ("2:3", (96, 144)),
        (None, (96, 96)),
    ],
)
def test_b64_json_is_a_valid_png_shaped_by_the_aspect_ratio(client, aspect_ratio, size):
    body = remix_body(output_format="b64_json")
    if aspect_ratio is not None:
        body["aspect_ratio"] = aspect_ratio
    item = assert_remix_response(client.post(EDITS, json=body))
    assert item["revised_prompt"] == "put image 0 on image 1"
    png = base64.b64decode(item["b64_json"], validate=True)
    assert png_size(png) == size
    Image.open(io.BytesIO(png)).verify()
    with Image.open(io.BytesIO(png)) as image:
        assert image.size == size
        assert image.mode == "RGB"


def test_the_image_is_deterministic_per_request(client):
    def image(body):
        return assert_remix_response(client.post(EDITS, json=body))["b64_json"]

    first = image(remix_body(output_format="b64_json"))
    assert image(remix_body(output_format="b64_json")) == first
    assert image(remix_body(output_format="b64_json", prompt="something else")) != first


def test_url_mode_is_the_default_and_serves_the_same_png(server, client):
    item = assert_remix_response(client.post(EDITS, json=remix_body(aspect_ratio="16:9")))
    assert item["url"].startswith(f"{server.base_url}/files/")
    downloaded = client.get(item["url"])
    assert downloaded.status_code == 200
    assert downloaded.headers["content-type"] == "image/png"
    as_b64 = client.post(EDITS, json=remix_body(aspect_ratio="16:9", output_format="b64_json"))
    assert downloaded.content == base64.b64decode(assert_remix_response(as_b64)["b64_json"])


def test_unknown_paths_files_and_methods(client):
    assert_error(client.get("/files/missing.png"), 404, "not_found_error")
    assert_error(client.post("/v1/images/generations", json={}), 404, "not_found_error")
    wrong_method = client.get(EDITS)
    assert_error(wrong_method, 405, "invalid_request_error")
    assert wrong_method.headers["allow"] == "POST"
    head = client.head(EDITS)
    assert (head.status_code, head.content) == (405, b"")
    assert_error(client.put("/files/missing.png"), 405, "invalid_request_error")


def test_every_response_has_a_unique_request_id_and_a_content_length(server, client):
    responses = [
        client.post(EDITS, json=remix_body()),
        client.post(EDITS, json=remix_body()),
        client.post(EDITS, json={}),
        httpx.post(f"{server.base_url}{EDITS}", json=remix_body()),
        client.get("/nowhere"),
    ]
    server.enqueue(Fault(status=500))
    responses.append(client.post(EDITS, json=remix_body()))
    assert [r.status_code for r in responses] == [200, 200, 422, 401, 404, 500]
    ids = [r.headers["x-request-id"] for r in responses]
    assert all(request_id.startswith("req_") for request_id in ids)
    assert len(set(ids)) == len(ids)
    assert all(r.headers["content-length"] == str(len(r.content)) for r in responses)


def test_requests_are_recorded(server, client):
    client.post(EDITS, json=remix_body(), headers={"X-Trace": "abc"})
    client.post(EDITS, content=b"not json")
    client.get("/files/x.png?size=small")
    first, second, third = server.requests
    assert (first.method, first.path) == ("POST", EDITS)
    assert first.headers["x-trace"] == first.headers["X-TRACE"] == "abc"
    assert first.headers["authorization"] == "Bearer sk-test"
    assert first.json == remix_body()
    assert second.body == b"not json"
    assert second.json is None
    assert (third.method, third.path, third.body) == ("GET", "/files/x.png?size=small", b"")


def test_one_client_reuses_one_connection(server, socket_client):
    for _ in range(20):
        assert socket_client.post(EDITS, json=remix_body()).status_code == 200
    assert server.connections == 1
    assert len(server.requests) == 20


def test_latency_is_added_and_concurrent_requests_run_in_parallel():
    with (
        ThreadPoolExecutor(1) as pool,  # left last: the server hangs up on the held request first
        MockServer(latency=0.2) as server,
        httpx.Client(base_url=server.base_url, headers=AUTH, timeout=120) as http,
    ):
        started = time.perf_counter()
        assert http.post(EDITS, json=remix_body()).status_code == 200
        assert time.perf_counter() - started >= 0.2  # a busy machine can only add to it
        server.latency = 0
        server.enqueue(Fault(delay=3600))  # until the server stops: it cannot end before the test
        held = pool.submit(http.post, EDITS, json=remix_body())
        while len(server.requests) < 2 and not held.done():
            time.sleep(0.01)  # until the held request has arrived
        # Answered while the first still waits: one thread per connection, not one at a time.
        assert http.post(EDITS, json=remix_body()).status_code == 200
        assert not held.done()


def test_a_fault_status_and_headers_pass_through_then_normal_answers_resume(server, client):
    server.enqueue(Fault(status=429, headers={"Retry-After": "2"}), Fault(status=503))
    limited = client.post(EDITS, json=remix_body())
    assert_error(limited, 429, "rate_limit_error")
    assert limited.headers["retry-after"] == "2"
    assert_error(client.post(EDITS, json=remix_body()), 503, "server_error")
    assert_remix_response(client.post(EDITS, json=remix_body()))


@pytest.mark.parametrize(
    ("fault", "status", "content_type", "content"),
    [
        (Fault(status=500, body={"detail": "x"}), 500, "application/json", b'{"detail":"x"}'),
        (Fault(status=502, body="<html>bad gateway"), 502, "text/plain; charset=utf-8", None),
        (Fault(body=b"\x00garbage"), 200, "application/octet-stream", b"\x00garbage"),
        (
            Fault(status=502, body="<p>", headers={"content-type": "text/html"}),
            502,
            "text/html",
            b"<p>",
        ),
    ],
    ids=["json", "text", "bytes-as-200", "header-overrides-type"],
)
def test_a_fault_body_is_sent_as_given(server, client, fault, status, content_type, content):
    server.enqueue(fault)
    response = client.post(EDITS, json=remix_body())
    assert response.status_code == status
    assert response.headers["content-type"] == content_type
    assert response.content == (content or fault.body.encode())


def test_a_dropped_request_gets_no_response(server, socket_client):
    server.enqueue(Fault(drop=True))
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        socket_client.post(EDITS, json=remix_body())
    assert_remix_response(socket_client.post(EDITS, json=remix_body()))
    assert server.connections == 2
    assert [request.json for request in server.requests] == [remix_body(), remix_body()]


def test_a_truncated_response_fails_to_read(server, client):
    server.enqueue(Fault(truncate=True), Fault(status=500, truncate=True))
    for _ in range(2):
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            client.post(EDITS, json=remix_body())
    assert len(server.requests) == 2


def test_a_delay_is_applied_to_a_normal_answer(server, client):
    server.enqueue(Fault(delay=0.1, headers={"X-Mock": "slow"}))
    started = time.perf_counter()
    response = client.post(EDITS, json=remix_body())
    assert time.perf_counter() - started >= 0.1
    assert_remix_response(response)
    assert response.headers["x-mock"] == "slow"


def test_a_long_delay_times_the_client_out_and_does_not_hold_up_stop():
    server = MockServer().start()
    try:
        server.enqueue(Fault(delay=3600))
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{server.base_url}{EDITS}", json=remix_body(), headers=AUTH, timeout=0.2)
        assert len(server.requests) == 1
    finally:
        stopping = threading.Thread(target=server.stop, daemon=True)
        stopping.start()
        stopping.join(WAIT)
    assert not stopping.is_alive()  # stop() did not wait the hour out


def test_faults_apply_only_to_the_edits_endpoint(server, client):
    server.enqueue(Fault(status=500))
    assert_error(client.get("/files/missing.png"), 404, "not_found_error")
    assert_error(client.post(EDITS, json=remix_body()), 500, "server_error")


@pytest.mark.parametrize(
    "arguments",
    [
        {"status": 99},
        {"status": 600},
        {"delay": -1},
        {"drop": True, "truncate": True},
        {"drop": True, "status": 500},
        {"drop": True, "headers": {"Retry-After": "1"}},
    ],
)
def test_a_fault_that_cannot_happen_is_rejected(arguments):
    with pytest.raises(ValidationError):
        Fault(**arguments)


def test_enqueue_accepts_only_faults(server):
    with pytest.raises(ValidationError, match="Fault objects"):
        server.enqueue(429)


def test_stop_hangs_up_open_connections_and_leaves_no_threads():
    threads_before = threading.active_count()
    for _ in range(20):
        with MockServer() as server:
            base_url = server.base_url
            with httpx.Client(base_url=base_url, headers=AUTH) as kept_alive:
                assert kept_alive.get("/files/none.png").status_code == 404
                server.stop()
                assert threading.active_count() == threads_before
    with pytest.raises(httpx.ConnectError):
        httpx.get(base_url)


def test_lifecycle_misuse_is_reported():
    server = MockServer()
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.base_url
    with server, pytest.raises(RuntimeError, match="already running"):
        server.start()
    with pytest.raises(ValidationError, match="latency"):
        MockServer(latency=-1)


def test_a_fixed_port_is_used_and_history_survives_a_restart():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = MockServer(port=port)
    for _ in range(2):
        with server:
            assert server.base_url == f"http://127.0.0.1:{port}"
            httpx.get(f"{server.base_url}/")
    assert len(server.requests) == 2
    assert server.connections == 2


@pytest.mark.usefixtures("signals_as_at_a_terminal")
@pytest.mark.skipif(os.name != "posix", reason="needs signal.pthread_kill")
def test_serve_forever_runs_until_ctrl_c():
    server = MockServer()
    statuses = []

    def use_then_interrupt():
        try:
            while True:
                try:
                    base_url = server.base_url
                    break
                except RuntimeError:
                    time.sleep(0.01)
            statuses.append(httpx.get(f"{base_url}/", timeout=60).status_code)
        finally:
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    helper = threading.Thread(target=use_then_interrupt)
    helper.start()
    server.serve_forever()  # returns on the SIGINT instead of raising KeyboardInterrupt
    helper.join()
    assert statuses == [404]
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.base_url


def test_without_jsonschema_the_import_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "jsonschema", None)
    monkeypatch.delitem(sys.modules, "reve_remix.testing._schema")
    with pytest.raises(ImportError, match=r"pip install 'reve-remix\[mock\]'"):
        importlib.import_module("reve_remix.testing._schema")


@pytest.mark.parametrize(
    ("request_head", "status"),
    [
        (f"POST {EDITS} HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".encode(), 411),
        (f"POST {EDITS} HTTP/1.1\r\nContent-Length: ten\r\n\r\n".encode(), 400),
        (f"BREW {EDITS} HTTP/1.1\r\n\r\n".encode(), 501),
    ],
    ids=["chunked", "bad-content-length", "unknown-method"],
)
def test_unframeable_requests_get_an_envelope_and_a_closed_connection(server, request_head, status):
    with socket.create_connection(("127.0.0.1", int(server.base_url.rsplit(":", 1)[1]))) as raw:
        raw.sendall(request_head)
        received = b"".join(iter(lambda: raw.recv(65536), b""))  # until the server hangs up
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode())
    headers = httpx.Headers([line.split(b": ", 1) for line in head.split(b"\r\n")[1:]])
    assert headers["connection"] == "close"
    assert headers["x-request-id"].startswith("req_")
    assert httpx.Response(status, content=body).json()["error"]["code"] == status


def test_nothing_is_written_to_stderr_and_requests_are_logged(server, socket_client, capfd, caplog):
    caplog.set_level("INFO", logger="reve_remix.testing")
    socket_client.post(EDITS, json={})
    socket_client.get("/nowhere")
    assert capfd.readouterr().err == ""
    assert any("/nowhere" in record.getMessage() for record in caplog.records)
