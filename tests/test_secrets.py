"""The API key never leaves the Authorization header of requests to the API.

Every error path is driven with a recognisable key and DEBUG logging on everywhere (the library,
httpx, httpcore, the root logger), and the key is looked for in every exception's text (``str``,
``repr``, ``args``, attributes, the whole chain, the formatted traceback), in the ``repr`` of
clients, results and images, in every log record, and in the command line's output, ``--debug``
tracebacks included. A result URL on another host is fetched without the key.
"""

from __future__ import annotations

import io
import json
import logging
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from reve_remix import AsyncReveRemix, RemixResult, ReveRemix, ReveRemixError, ValidationError
from reve_remix._cli import Console
from reve_remix._images import prepare_image
from reve_remix._redact import redact
from reve_remix._spec import spec
from reve_remix.testing import Fault, MockServer

from . import conftest
from .conftest import API_KEY, IMAGE_URL, RefusedPort

PROMPT = "<img>0</img> in the rain"
STATUSES = [400, 401, 402, 403, 404, 408, 413, 422, 429, 500, 502, 503, 504]
LOGGERS = ["", "reve_remix", "reve_remix.testing", "httpx", "httpcore"]
REDACTED = "<redacted>"  # what the command line prints if the key ever reaches its output


@pytest.fixture(autouse=True)
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """DEBUG on every logger that could see a request, and no record may hold the key."""
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    yield caplog
    for record in caplog.records:
        assert API_KEY not in record.getMessage(), record
        assert API_KEY not in repr(record.__dict__), record
        if record.exc_info:
            assert API_KEY not in "".join(traceback.format_exception(*record.exc_info))


def exception_texts(exc: BaseException) -> Iterator[str]:
    """Every text an exception shows: its own and that of each exception chained to it."""
    yield "".join(traceback.format_exception(exc))
    seen: set[int] = set()
    current: BaseException | None = exc
    pending = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield str(current)
        yield repr(current)
        yield repr(current.args)
        yield repr(vars(current))
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]


def assert_no_key_in(exc: BaseException) -> None:
    for text in exception_texts(exc):
        assert API_KEY not in text


def raised_by(call: Callable[[], object]) -> ReveRemixError:
    with pytest.raises(ReveRemixError) as info:
        call()
    assert_no_key_in(info.value)
    return info.value


# --- the library's error paths ---------------------------------------------------------------


def test_the_debug_logs_under_watch_are_captured(server: MockServer, debug_logs):
    """So that ``debug_logs`` finding no key means something: httpx and httpcore log here."""
    with ReveRemix(API_KEY, base_url=server.base_url) as client:
        client.remix(PROMPT, [IMAGE_URL]).read()
    names = {record.name.split(".")[0] for record in debug_logs.records}
    assert {"reve_remix", "httpx", "httpcore"} <= names
    assert any(record.levelno == logging.DEBUG for record in debug_logs.records)


@pytest.mark.parametrize("status", STATUSES)
def test_no_status_error_shows_the_key(server: MockServer, status: int):
    server.enqueue(Fault(status=status, headers={"Retry-After": "0"}))
    with ReveRemix(API_KEY, base_url=server.base_url, max_retries=0) as client:
        raised_by(lambda: client.remix(PROMPT, [IMAGE_URL]))
        assert API_KEY not in repr(client)


@pytest.mark.parametrize(
    "fault",
    [
        Fault(drop=True),
        Fault(status=200, body=b'{"created": 1, "data": []}', truncate=True),
        Fault(status=200, body=b"<html>not json</html>"),
        Fault(status=200, body={"created": "yesterday", "data": []}),
        Fault(delay=3600),  # held until the server stops: however slow the client, it times out
    ],
    ids=["dropped", "truncated", "not-json", "off-schema", "timeout"],
)
def test_no_connection_timeout_or_response_error_shows_the_key(server: MockServer, fault: Fault):
    server.enqueue(fault)
    with ReveRemix(API_KEY, base_url=server.base_url, timeout=0.3, max_retries=0) as client:
        raised_by(lambda: client.remix(PROMPT, [IMAGE_URL]))


@pytest.mark.usefixtures("fast_backoff")  # its retries wait; what they wait is not the point
def test_connection_refused_does_not_show_the_key():
    with (
        RefusedPort() as refused,
        ReveRemix(API_KEY, base_url=f"http://127.0.0.1:{refused.port}", max_retries=1) as client,
    ):
        raised_by(lambda: client.remix(PROMPT, [IMAGE_URL]))


@pytest.mark.parametrize(
    ("prompt", "images", "options"),
    [
        ("<img>3</img> broken <img>x</img>", [IMAGE_URL], {}),
        (PROMPT, [], {}),
        (PROMPT, ["ftp://example.com/a.png"], {}),
        (PROMPT, [b"GIF89a not supported"], {}),
        (PROMPT, [IMAGE_URL], {"aspect_ratio": "21:9"}),
        (PROMPT, [IMAGE_URL], {"output_format": "png"}),
        (PROMPT, [IMAGE_URL], {"model": ""}),
    ],
)
def test_no_validation_error_shows_the_key(
    server: MockServer, prompt: str, images: list[object], options: dict[str, str]
):
    with ReveRemix(API_KEY, base_url=server.base_url) as client:
        error = raised_by(lambda: client.remix(prompt, images, **options))  # type: ignore[arg-type]
    assert isinstance(error, ValidationError)
    assert server.requests == []


def test_the_missing_key_error_names_the_variable_and_no_key(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("ONEROUTER_API_KEY", raising=False)
    client = ReveRemix(base_url="http://127.0.0.1:9")
    error = raised_by(lambda: client.remix(PROMPT, [IMAGE_URL]))
    assert "ONEROUTER_API_KEY" in str(error)


def test_a_key_from_the_environment_is_not_shown_either(
    server: MockServer, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("ONEROUTER_API_KEY", API_KEY)
    server.enqueue(Fault(status=401))
    with ReveRemix(base_url=server.base_url) as client:
        assert API_KEY not in repr(client)
        raised_by(lambda: client.remix(PROMPT, [IMAGE_URL]))


@pytest.mark.parametrize("path", ["/files/missing.png", "/elsewhere"])
def test_no_download_error_shows_the_key(server: MockServer, path: str):
    body = {"created": 1_700_000_000, "data": [{"url": server.base_url + path}]}
    server.enqueue(Fault(status=200, body=body))
    with ReveRemix(API_KEY, base_url=server.base_url) as client:
        result = client.remix(PROMPT, [IMAGE_URL])
        raised_by(result.read)


@pytest.mark.usefixtures("fast_backoff")  # its retries wait; what they wait is not the point
def test_a_download_from_a_closed_port_does_not_show_the_key(server: MockServer):
    with RefusedPort() as refused, ReveRemix(API_KEY, base_url=server.base_url) as client:
        url = f"http://127.0.0.1:{refused.port}/out.png"
        server.enqueue(Fault(status=200, body={"created": 1_700_000_000, "data": [{"url": url}]}))
        raised_by(client.remix(PROMPT, [IMAGE_URL]).read)


@pytest.mark.anyio
async def test_the_async_client_shows_no_key_either(server: MockServer):
    server.enqueue(Fault(status=500), Fault(drop=True))
    async with AsyncReveRemix(API_KEY, base_url=server.base_url, max_retries=0) as client:
        for _ in range(2):
            with pytest.raises(ReveRemixError) as info:
                await client.remix(PROMPT, [IMAGE_URL])
            assert_no_key_in(info.value)
        assert API_KEY not in repr(client)


def test_results_and_images_do_not_show_the_key(server: MockServer, tmp_path: Path):
    with ReveRemix(API_KEY, base_url=server.base_url) as client:
        for output_format in ("url", "b64_json"):
            result = client.remix(PROMPT, [IMAGE_URL], output_format=output_format)
            assert isinstance(result, RemixResult)
            result.save(tmp_path / f"{output_format}.png")
            for shown in (result, result.image, *result.images):
                assert API_KEY not in repr(shown)
                assert API_KEY not in str(shown)
    png = (tmp_path / "url.png").read_bytes()
    assert API_KEY not in repr(prepare_image(png, "image 0"))


# --- downloads go out without the key --------------------------------------------------------


@pytest.fixture
def cdn() -> Iterator[MockServer]:
    """A second server on another port: another origin, as a CDN or bucket is."""
    with MockServer() as other:
        yield other


def cdn_url(cdn: MockServer) -> str:
    """The URL of an image the CDN serves (it serves only images it made itself)."""
    body = {"model": "m", "prompt": "p", "image_urls": [IMAGE_URL]}
    answer = httpx.post(
        f"{cdn.base_url}{spec().path}", json=body, headers={"Authorization": "Bearer cdn"}
    )
    url: str = answer.json()["data"][0]["url"]
    return url


def downloads(server: MockServer) -> list[httpx.Headers]:
    return [request.headers for request in server.requests if request.method == "GET"]


@pytest.mark.parametrize("client_headers", [{}, {"Authorization": f"Bearer {API_KEY}"}])
def test_a_result_on_another_host_is_fetched_without_the_key(
    server: MockServer, cdn: MockServer, client_headers: dict[str, str]
):
    """Even when the injected httpx client carries the key as a default header."""
    url = cdn_url(cdn)
    server.enqueue(Fault(status=200, body={"created": 1_700_000_000, "data": [{"url": url}]}))
    http = httpx.Client(headers=client_headers)
    with ReveRemix(API_KEY, base_url=server.base_url, http_client=http) as client:
        data = client.remix(PROMPT, [IMAGE_URL]).read()
    http.close()
    assert data.startswith(b"\x89PNG")
    [headers] = downloads(cdn)
    assert "authorization" not in headers
    assert API_KEY not in repr(headers.multi_items())
    [post] = [request for request in server.requests if request.method == "POST"]
    assert post.headers["authorization"] == f"Bearer {API_KEY}"  # the API itself gets it


@pytest.mark.anyio
async def test_the_async_client_fetches_another_host_without_the_key(
    server: MockServer, cdn: MockServer
):
    url = cdn_url(cdn)
    server.enqueue(Fault(status=200, body={"created": 1_700_000_000, "data": [{"url": url}]}))
    async with AsyncReveRemix(API_KEY, base_url=server.base_url) as client:
        result = await client.remix(PROMPT, [IMAGE_URL])
        assert (await result.aread()).startswith(b"\x89PNG")
    [headers] = downloads(cdn)
    assert "authorization" not in headers


def test_a_result_on_the_api_host_is_fetched_without_the_key_too(server: MockServer):
    with ReveRemix(API_KEY, base_url=server.base_url) as client:
        client.remix(PROMPT, [IMAGE_URL]).read()
    [headers] = downloads(server)
    assert "authorization" not in headers


# --- the command line ------------------------------------------------------------------------


def run_cli(*args: str, cwd: Path, key: str = API_KEY) -> conftest.CliRun:
    """``reve-remix ARGS`` in this process; conftest.run_cli checks the key is never printed."""
    completed = conftest.run_cli(*args, cwd=cwd, key=key)
    for output in (completed.stdout, completed.stderr):
        assert REDACTED not in output  # the last-resort redaction never had to step in
    return completed


@pytest.mark.parametrize(
    ("faults", "code"),
    [
        ((), 0),
        ((Fault(status=401),), 1),
        ((Fault(status=200, body=b"not json"),), 1),
        ((Fault(drop=True),), 1),
        ((Fault(delay=3600),), 1),  # held until the server stops: the 0.5 s timeout comes first
    ],
    ids=["success", "401", "not-json", "dropped", "timeout"],
)
def test_remix_on_the_command_line_never_prints_the_key(
    server: MockServer, tmp_path: Path, faults: tuple[Fault, ...], code: int
):
    server.enqueue(*faults)
    completed = run_cli(
        "remix", PROMPT, "-i", IMAGE_URL, "-o", "out.png", "--debug", "--timeout", "0.5",
        "--max-retries", "0", "--base-url", server.base_url,
        cwd=tmp_path,
    )  # fmt: skip
    assert completed.returncode == code, completed.stderr
    if code:
        assert "Traceback" in completed.stderr  # --debug printed it, and it holds no key


def test_a_validation_error_on_the_command_line_never_prints_the_key(
    server: MockServer, tmp_path: Path
):
    completed = run_cli(
        "remix", "<img>5</img>", "-i", IMAGE_URL, "--debug", "--base-url", server.base_url,
        cwd=tmp_path,
    )  # fmt: skip
    assert completed.returncode == 2
    assert server.requests == []


def test_batch_on_the_command_line_never_prints_the_key(server: MockServer, tmp_path: Path):
    jobs = [
        {"prompt": PROMPT, "images": [IMAGE_URL], "id": "refused"},
        {"prompt": PROMPT, "images": [IMAGE_URL], "id": "fine"},
        {"prompt": "<img>7</img>", "images": [IMAGE_URL], "id": "invalid"},
    ]
    (tmp_path / "jobs.jsonl").write_text("".join(json.dumps(job) + "\n" for job in jobs))
    server.enqueue(Fault(status=403))  # the first job sent (concurrency 1)
    completed = run_cli(
        "batch", "jobs.jsonl", "--out", "out", "--debug", "--concurrency", "1",
        "--max-retries", "0", "--base-url", server.base_url,
        cwd=tmp_path,
    )  # fmt: skip
    assert completed.returncode == 1
    manifest = (tmp_path / "out" / "manifest.jsonl").read_text()
    assert API_KEY not in manifest


# --- every form of the key: stripped, repr'd, escaped ----------------------------------------

KEY_WITH_NEWLINE = API_KEY + "\n"  # what `export KEY=$(cat key.txt)` and copy-paste leave


@pytest.mark.parametrize(
    "shown",
    [
        API_KEY,
        KEY_WITH_NEWLINE,
        repr(KEY_WITH_NEWLINE),
        repr(f"Bearer {KEY_WITH_NEWLINE}".encode()),  # httpx: Illegal header value b'Bearer …\n'
        json.dumps({"key": KEY_WITH_NEWLINE}),
        json.dumps(" " + API_KEY + "é", ensure_ascii=True),
        quote(KEY_WITH_NEWLINE, safe=""),
    ],
)
@pytest.mark.parametrize("secret", [KEY_WITH_NEWLINE, f"  {API_KEY}\r\n", API_KEY])
def test_redact_catches_every_form_of_the_key(shown: str, secret: str):
    assert API_KEY not in redact(f"before {shown} after", secret)
    assert redact(f"before {shown} after", secret).startswith("before ")


def test_redact_leaves_short_secrets_and_other_text_alone():
    assert redact("abc abc", "abc") == "abc abc"  # a "key" this short would garble everything
    assert redact("nothing to see", None, "") == "nothing to see"


@pytest.mark.parametrize("echo", [quote(API_KEY, safe=""), repr(API_KEY + "\n")])
def test_an_escaped_echo_of_the_key_is_redacted_in_exceptions(server: MockServer, echo: str):
    """A server that echoes the key escaped (URL-encoded, repr'd) does not get it through."""
    server.enqueue(Fault(status=400, body={"error": {"message": f"bad key {echo}"}}))
    with ReveRemix(API_KEY, base_url=server.base_url) as client:
        error = raised_by(lambda: client.remix(PROMPT, [IMAGE_URL]))
    assert REDACTED in str(error)


def test_the_console_redacts_the_stripped_key_of_a_key_with_a_newline(
    monkeypatch: pytest.MonkeyPatch,
):
    """The old redaction compared the raw key (with its newline) and missed the stripped one."""
    monkeypatch.setenv("ONEROUTER_API_KEY", KEY_WITH_NEWLINE)
    stream = io.StringIO()
    console = Console(stream, debug=False)
    console.say(f"Illegal header value b'Bearer {API_KEY}'")
    console.say(f"key {KEY_WITH_NEWLINE!r}")
    assert API_KEY not in stream.getvalue()
    assert stream.getvalue().count(REDACTED) == 2


def test_a_key_with_a_newline_works_on_the_command_line_and_is_never_shown(
    server: MockServer, tmp_path: Path
):
    """The issue: the key leaked 4x with --debug and into every manifest record."""
    jobs = [{"prompt": PROMPT, "images": [IMAGE_URL], "id": name} for name in ("a", "b")]
    (tmp_path / "jobs.jsonl").write_text("".join(json.dumps(job) + "\n" for job in jobs))
    server.enqueue(Fault(status=401))
    completed = run_cli(
        "batch", "jobs.jsonl", "--out", "out", "--debug", "--concurrency", "1",
        "--base-url", server.base_url,
        cwd=tmp_path, key=KEY_WITH_NEWLINE,
    )  # fmt: skip
    assert completed.returncode == 1, completed.stderr
    assert "LocalProtocolError" not in completed.stderr
    manifest = (tmp_path / "out" / "manifest.jsonl").read_text()
    assert API_KEY not in manifest
    assert "401" in manifest
    assert [request.headers["authorization"] for request in server.requests] == [
        f"Bearer {API_KEY}"
    ]


def test_manifest_errors_go_through_the_redaction(server: MockServer, tmp_path: Path):
    """However the key got into an exception's text, the manifest record does not hold it."""
    from reve_remix._batch_plan import Defaults, plan_batch
    from reve_remix._batch_run import BatchRun
    from reve_remix._jobs_file import read_jobs
    from reve_remix._manifest import Manifest
    from reve_remix._runner import Policy

    (tmp_path / "jobs.jsonl").write_text(json.dumps({"prompt": PROMPT, "images": [IMAGE_URL]}))
    lines, _ = read_jobs(tmp_path / "jobs.jsonl")
    settled = []
    with ReveRemix(API_KEY, base_url=server.base_url) as client, Manifest(tmp_path) as manifest:
        manifest.open()
        client._build = lambda *args: (_ for _ in ()).throw(  # type: ignore[method-assign]
            ValidationError(f"a message holding {API_KEY!r}")
        )
        plan = plan_batch(lines, manifest.records, tmp_path, Defaults(client.model), Policy())
        run = BatchRun(
            client, manifest, Policy(), concurrency=1, on_settled=lambda _job, s: settled.append(s)
        )
        run.run(plan.to_run)
    [outcome] = settled
    assert outcome.record.error == f"a message holding '{REDACTED}'"
    assert API_KEY not in (tmp_path / "manifest.jsonl").read_text()
