"""At scale: the concurrency asked for is served over reused connections, outcomes stream.

The speed and memory figures live in ``scripts/bench.py``; these tests pin the behaviour behind
them over real HTTP on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import json
import os
import re
import threading
import time
import weakref
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TypeVar

import certifi
import httpx
import pytest

from reve_remix import AsyncReveRemix, RemixResult, ReveRemix, ValidationError
from reve_remix._images import LocalImage, data_url
from reve_remix._pool import AsyncShardedTransport, ShardedTransport, tls_context
from reve_remix._request import RequestBody, encode_body
from reve_remix.testing import Fault
from reve_remix.testing._png import gradient_png
from tests.conftest import API_KEY, IMAGE_URL, WAIT

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_Server = TypeVar("_Server", bound=ThreadingHTTPServer)
ANSWER = json.dumps({"created": 1, "data": [{"url": "https://cdn.example.com/a.png"}]}).encode()


class _Gathering(ThreadingHTTPServer):
    """Answers no request until ``gather`` of them are in flight at once; counts connections.

    If they never are, every request gets a 504 after ``WAIT`` seconds (a safety net: a busy
    machine may take seconds to open them all).
    """

    daemon_threads = True
    request_queue_size = 512

    def __init__(self, gather: int) -> None:
        self.barrier = threading.Barrier(gather, timeout=WAIT)
        self.connections = 0
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _GatheringHandler)


class _GatheringHandler(BaseHTTPRequestHandler):
    server: _Gathering
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.connections += 1

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        try:
            self.server.barrier.wait()
        except threading.BrokenBarrierError:
            self.send_response(504)  # fewer than `gather` requests were ever in flight together
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(ANSWER)))
        self.end_headers()
        self.wfile.write(ANSWER)

    def log_message(self, format: str, *args: object) -> None:
        pass


def gathering(gather: int) -> contextlib.AbstractContextManager[_Gathering]:
    return serving(_Gathering(gather))


@contextlib.contextmanager
def serving(server: _Server) -> Iterator[_Server]:
    """``server`` answering on a thread of its own until the block ends."""
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def jobs(count: int) -> list[dict[str, object]]:
    return [{"prompt": f"<img>0</img> study {n}", "images": [IMAGE_URL]} for n in range(count)]


# Above httpx's default pool of 100: before the pool grew to the concurrency, the 101st request
# waited for a connection, the barrier never filled and every request timed out with a 504.
CONCURRENCY = 120


def test_sync_remix_many_serves_the_concurrency_asked_for_over_reused_connections():
    with gathering(CONCURRENCY) as server, ReveRemix(API_KEY, base_url=_url(server)) as client:
        # Two rounds: the second must reuse the first round's connections.
        outcomes = client.remix_many(jobs(2 * CONCURRENCY), concurrency=CONCURRENCY)
        assert all(isinstance(outcome, RemixResult) for outcome in outcomes), outcomes[0]
        assert server.connections == CONCURRENCY


def test_async_remix_many_serves_the_concurrency_asked_for_over_reused_connections():
    async def main() -> list[object]:
        async with AsyncReveRemix(API_KEY, base_url=_url(server)) as client:
            return list(await client.remix_many(jobs(2 * CONCURRENCY), concurrency=CONCURRENCY))

    with gathering(CONCURRENCY) as server:
        outcomes = asyncio.run(main())
        assert all(isinstance(outcome, RemixResult) for outcome in outcomes), outcomes[0]
        assert server.connections == CONCURRENCY


def test_clients_share_one_tls_context_until_the_certificate_variables_change(monkeypatch):
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    first, second = ShardedTransport(), AsyncShardedTransport()
    first._shards.acquire()
    second._shards.acquire()
    shared = tls_context()
    assert first._shards.shards[0]._pool._ssl_context is shared
    assert second._shards.shards[0]._pool._ssl_context is shared
    monkeypatch.setenv("SSL_CERT_FILE", certifi.where())
    assert tls_context() is not shared


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "8"])
def test_max_connections_must_be_a_positive_integer(bad):
    with pytest.raises(ValidationError, match="max_connections"):
        ReveRemix(API_KEY, max_connections=bad)


def test_iter_remix_draws_jobs_lazily_and_yields_them_as_they_finish(server):
    drawn: list[int] = []

    def generate() -> Iterator[dict[str, object]]:
        for n in range(10):
            drawn.append(n)
            yield {"prompt": f"<img>0</img> study {n}", "images": [IMAGE_URL]}

    with ReveRemix(API_KEY, base_url=server.base_url) as client:
        stream = client.iter_remix(generate(), concurrency=3)
        assert drawn == []  # nothing runs before the loop asks
        job, outcome = next(stream)
        assert len(drawn) <= 4  # the three in flight, and the one that took the freed slot
        assert isinstance(outcome, RemixResult)
        assert job["prompt"].startswith("<img>0</img> study")
        rest = list(stream)
    prompts = sorted(job["prompt"] for job, _ in [(job, outcome), *rest])
    assert prompts == sorted(f"<img>0</img> study {n}" for n in range(10))
    assert drawn == list(range(10))


def test_leaving_iter_remix_early_starts_nothing_more(server):
    with ReveRemix(API_KEY, base_url=server.base_url) as client:
        with contextlib.closing(client.iter_remix(jobs(50), concurrency=2)) as stream:
            for _ in stream:
                break
    assert len(server.requests) <= 3


def test_async_iter_remix_yields_outcomes_and_stops_when_left(server):
    async def main() -> tuple[list[object], int]:
        async with AsyncReveRemix(API_KEY, base_url=server.base_url) as client:
            seen = [outcome async for _job, outcome in client.iter_remix(jobs(6), concurrency=3)]
            async with contextlib.aclosing(client.iter_remix(jobs(50), concurrency=2)) as stream:
                async for _ in stream:
                    break
            return seen, len(server.requests)

    seen, sent = asyncio.run(main())
    assert len(seen) == 6
    assert all(isinstance(outcome, RemixResult) for outcome in seen)
    assert sent <= 6 + 3


def test_iter_remix_reports_a_bad_job_as_its_outcome(server):
    with ReveRemix(API_KEY, base_url=server.base_url) as client:
        outcomes = [outcome for _, outcome in client.iter_remix([{"prompt": "x"}, *jobs(1)])]
    assert sum(isinstance(outcome, ValidationError) for outcome in outcomes) == 1
    assert sum(isinstance(outcome, RemixResult) for outcome in outcomes) == 1


def test_iter_remix_checks_the_concurrency_at_the_call():
    with ReveRemix(API_KEY) as client, pytest.raises(ValidationError, match="concurrency"):
        client.iter_remix(jobs(1), concurrency=0)


def _url(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_port}"


def test_a_batch_check_reads_only_the_head_of_each_local_image(tmp_path, monkeypatch):
    from reve_remix import _images
    from reve_remix._jobs import RemixJob
    from reve_remix._jobs_file import JobLine

    image = tmp_path / "cat.png"
    image.write_bytes(PNG_SIGNATURE + bytes(200_000))
    reads: list[int] = []
    read_file = _images._read_file

    def counting(path, label, source, size=-1):
        data = read_file(path, label, source, size)
        reads.append(len(data))
        return data

    monkeypatch.setattr(_images, "_read_file", counting)
    JobLine(1, "cat", RemixJob("<img>0</img> as ink", [str(image)])).fingerprint("m")
    assert reads == [4096]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"GIF89a" + bytes(100), "GIF"),
        (b"not an image at all", "unknown format"),
        (PNG_SIGNATURE + bytes(1_500_000), "too large"),
    ],
)
def test_a_batch_check_rejects_what_a_remix_would(tmp_path, content, message):
    from reve_remix._jobs import RemixJob
    from reve_remix._jobs_file import JobLine

    image = tmp_path / "bad.img"
    image.write_bytes(content)
    job = JobLine(1, "bad", RemixJob("<img>0</img> as ink", [str(image)]))
    with pytest.raises(ValidationError, match=message) as checked:
        job.fingerprint("m")
    with pytest.raises(ValidationError) as remixed:
        ReveRemix(API_KEY).remix("<img>0</img> as ink", [str(image)])
    assert str(checked.value) == str(remixed.value)


def test_a_body_of_four_large_local_images_is_byte_valid_json_the_spec_accepts(
    twin, server, tmp_path
):
    paths = _large_images(tmp_path)
    # The mock server checks the body against the spec's RemixRequest schema.
    twin.remix("Blend <img>0</img>, <img>1</img>, <img>2</img> and <img>3</img>", paths)
    body = server.requests[-1].body
    parsed = json.loads(body)
    assert body == json.dumps(parsed, ensure_ascii=False, separators=(",", ":")).encode()
    assert [base64.b64decode(url.split(",", 1)[1]) for url in parsed["image_urls"]] == [
        path.read_bytes() for path in paths
    ]


def test_a_body_with_inline_images_is_what_json_makes_of_their_data_urls():
    # Every remainder of a length by 3 (base64 padding), an image longer than one piece of the
    # stream and not a multiple of 3, text that needs escaping, and an odd media type (a
    # LocalImage only ever holds a sniffed one; it is escaped all the same).
    sizes = [0, 1, 2, 3, 3 * 64 * 1024 + 1, 700_001]
    images = [LocalImage(f"image {n}", os.urandom(size), "image/png", "png") for n, size in
              enumerate(sizes)]  # fmt: skip
    images.append(LocalImage("odd", b"\x89PNG", 'image/png"\n', "png"))
    urls = [*images[:3], "https://example.com/é.png", *images[3:], 'data:,"quoted"\n']
    fields = {"seed": 7, "prompt": 'say "hi"\n — <img>0</img>', "n": 1}
    sent = {**fields, "image_urls": [_as_data_url(url) for url in urls]}
    expected = json.dumps(sent, ensure_ascii=False, separators=(",", ":")).encode()

    body = encode_body(fields, urls)
    assert isinstance(body, RequestBody)
    assert b"".join(body) == expected
    assert b"".join(body) == expected  # again, as a retry sends it
    assert body.length == len(expected)

    async def read() -> bytes:
        return b"".join([chunk async for chunk in body])

    assert asyncio.run(read()) == expected


def _as_data_url(url: str | LocalImage) -> str:
    return data_url(url.data, url.mime) if isinstance(url, LocalImage) else url


def test_a_body_without_inline_images_is_one_json_call():
    urls = [IMAGE_URL, "data:image/png;base64,AAAA"]
    payload = {"prompt": "<img>0</img>", "image_urls": urls}
    assert encode_body({"prompt": "<img>0</img>"}, urls) == (
        json.dumps(payload, separators=(",", ":")).encode()
    )


def _copied(value: object) -> object:
    return json.loads(json.dumps(value))  # every string a new str, as a model might make it


def test_a_local_image_is_sent_whole_whatever_the_model_does_with_strings(
    make_twin, server, tmp_path, monkeypatch
):
    """The body never carries a ``data:`` head without its bytes: a regenerated model that
    copies the strings it is given (here: every one, through JSON) changes nothing sent."""
    from reve_remix_api.models import RemixRequest

    from_dict, to_dict = RemixRequest.from_dict.__func__, RemixRequest.to_dict
    monkeypatch.setattr(
        RemixRequest, "from_dict", classmethod(lambda cls, src: from_dict(cls, _copied(src)))
    )
    monkeypatch.setattr(RemixRequest, "to_dict", lambda self: _copied(to_dict(self)))
    png = gradient_png(8, 8, seed=bytes(32))
    path = tmp_path / "cat.png"
    path.write_bytes(png)
    client = make_twin(api_key=API_KEY, base_url=server.base_url)
    client.remix("<img>0</img> and <img>1</img>", [path, IMAGE_URL])
    (sent,) = server.requests[:1]
    assert sent.images == [png, IMAGE_URL]
    assert re.search(rb'"data:[^",]*;base64,"', sent.body) is None  # no head without its bytes


def test_a_retried_large_body_reaches_the_server_byte_for_byte_again(
    make_twin, server, tmp_path, fast_backoff
):
    paths = _large_images(tmp_path)
    server.enqueue(Fault(status=503))
    client = make_twin(api_key=API_KEY, base_url=server.base_url)
    client.remix("Blend <img>0</img>, <img>1</img>, <img>2</img> and <img>3</img>", paths)
    first, second = server.requests  # the mock server checked both against the spec
    assert first.body == second.body
    assert int(second.headers["Content-Length"]) == len(second.body)
    assert [base64.b64decode(url.split(",", 1)[1]) for url in second.json["image_urls"]] == [
        path.read_bytes() for path in paths
    ]


def test_a_custom_uploader_gets_the_bytes_and_its_url_is_sent(make_twin, server, tmp_path):
    paths = _large_images(tmp_path, count=2)
    uploaded: list[tuple[bytes, str]] = []

    def upload(data: bytes, mime: str) -> str:
        uploaded.append((data, mime))
        return f"https://cdn.example.com/{len(uploaded)}.png"

    client = make_twin(api_key=API_KEY, base_url=server.base_url, uploader=upload)
    client.remix("Blend <img>0</img> and <img>1</img>", paths)
    assert uploaded == [(path.read_bytes(), "image/png") for path in paths]
    assert server.requests[-1].json["image_urls"] == [
        "https://cdn.example.com/1.png",
        "https://cdn.example.com/2.png",
    ]


def _large_images(folder: Path, count: int = 4) -> list[Path]:
    paths = []
    for n in range(count):
        path = folder / f"image-{n}.png"
        path.write_bytes(PNG_SIGNATURE + os.urandom(1_400_000 + n))
        paths.append(path)
    return paths


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_finished_remix_frees_its_request_body_without_the_garbage_collector(server, kind):
    # httpx ties every response to its stream and back: unbroken, the cycle keeps the request
    # and its body (megabytes of inline images) until a full collection, so a batch's memory
    # grew with its length instead of its concurrency.
    requests: list[weakref.ref[httpx.Request]] = []

    def remember(response: httpx.Response) -> None:
        requests.append(weakref.ref(response.request))

    async def aremember(response: httpx.Response) -> None:
        remember(response)

    gc.collect()
    gc.disable()
    try:
        if kind == "sync":
            with (
                httpx.Client(event_hooks={"response": [remember]}) as http,
                ReveRemix(API_KEY, base_url=server.base_url, http_client=http) as client,
            ):
                client.remix("<img>0</img> as ink", [PNG_SIGNATURE + bytes(100_000)])
        else:

            async def main() -> None:
                http = httpx.AsyncClient(event_hooks={"response": [aremember]})
                async with AsyncReveRemix(API_KEY, base_url=server.base_url, http_client=http) as c:
                    await c.remix("<img>0</img> as ink", [PNG_SIGNATURE + bytes(100_000)])
                await http.aclose()

            asyncio.run(main())
        assert len(requests) == 1
        assert requests[0]() is None
    finally:
        gc.enable()


# --- throughput under a rate limit ---------------------------------------------------------------


class _TokenBucket(ThreadingHTTPServer):
    """Admits ``rate`` requests a second, holding one second's worth, and answers the rest 429
    with ``Retry-After``: the seconds until its next token (as ``scripts/bench_server.py``)."""

    daemon_threads = True
    request_queue_size = 512

    def __init__(self, rate: float) -> None:
        self.rate = self.tokens = rate
        self.refilled = time.monotonic()
        self.admitted = self.refused = 0
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _TokenBucketHandler)

    def admit(self) -> float | None:
        """``None`` if a request may go ahead, else the seconds until it could."""
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.rate, self.tokens + (now - self.refilled) * self.rate)
            self.refilled = now
            if self.tokens >= 1:
                self.tokens -= 1
                self.admitted += 1
                return None
            self.refused += 1
            return (1 - self.tokens) / self.rate


class _TokenBucketHandler(BaseHTTPRequestHandler):
    server: _TokenBucket
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        wait = self.server.admit()
        body = ANSWER if wait is None else b"{}"
        self.send_response(200 if wait is None else 429)
        self.send_header("Content-Type", "application/json")
        if wait is not None:
            self.send_header("Retry-After", f"{wait:.3f}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_batch_under_a_rate_limit_is_paced_and_every_job_is_done(kind):
    # 120 jobs, 32 at a time, against 40 requests a second: unpaced, with only the cooldown of
    # each 429, most requests are refused and jobs run out of retries. A busy machine only sends
    # slower, and so is refused less: the bound holds under load.
    with serving(_TokenBucket(rate=40)) as server:
        if kind == "sync":
            with ReveRemix(API_KEY, base_url=_url(server)) as client:
                outcomes = client.remix_many(jobs(120), concurrency=32)
        else:

            async def main() -> list[object]:
                async with AsyncReveRemix(API_KEY, base_url=_url(server)) as client:
                    return list(await client.remix_many(jobs(120), concurrency=32))

            outcomes = asyncio.run(main())
    failed = [outcome for outcome in outcomes if not isinstance(outcome, RemixResult)]
    assert not failed, failed[:3]
    assert server.refused <= 0.25 * (server.admitted + server.refused), server.refused
