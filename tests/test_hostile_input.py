"""Hostile input, as a new user types it: a clear SDK error before anything is sent, and a batch
that never dies of one line.

The examples reproduce what the issue found (lone surrogates, odd batch lines, the command line's
inconsistencies, a batch that went on after a 401); the properties at the end feed arbitrary text
(surrogates, control characters, very long strings) to every string argument of the library and
of the command line, and to every field of a batch line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import jsonschema
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from reve_remix import AsyncReveRemix, ReveRemix, ReveRemixError, ValidationError
from reve_remix._spec import spec
from reve_remix.testing import Fault, MockServer

from .conftest import API_KEY, IMAGE_URL, run_cli

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "reve_remix" / "_samples"
VENDOR = json.loads((ROOT / "openapi" / "vendor.openapi.json").read_bytes())
REQUEST_SCHEMA = VENDOR["paths"][spec().path][spec().method.lower()]["requestBody"]["content"][
    "application/json"
]["schema"]
REQUEST_VALIDATOR = jsonschema.Draft202012Validator(REQUEST_SCHEMA)
PROMPT = "<img>0</img> at dusk"


def as_in_environment(text: str) -> str:
    """``text`` as the environment can hold it: bytes without NUL, shown as Python shows them."""
    return os.fsdecode(text.replace("\x00", "").encode("utf-8", "surrogatepass"))


@pytest.fixture(autouse=True)
def in_a_scratch_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A command that does send saves its image in the current folder: keep it out of the repo."""
    monkeypatch.chdir(tmp_path)


def cli(*args: str, key: str | None = API_KEY) -> tuple[int, str, str]:
    """``reve-remix ARGS`` in this process, the key as the environment would hold it."""
    return run_cli(*args, key=None if key is None else as_in_environment(key))


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if re.match(r"reve-remix( \w+)?: error: ", line)]


def posts(server: MockServer) -> list[Any]:
    return [request for request in server.requests if request.method == "POST"]


# --- lone surrogates --------------------------------------------------------------------------


SURROGATE_CALLS = [
    ("<img>0</img> in the rain \ud800", [IMAGE_URL], {}),
    (PROMPT, [IMAGE_URL], {"model": "reve-remix\udcff"}),
    (PROMPT, ["https://example.com/\ud800.png"], {}),
    ("Put {cat} there", {"cat": IMAGE_URL, "\ud800": IMAGE_URL}, {}),
    (PROMPT, ["data:image/png;base64,\ud800"], {}),
    (PROMPT, [IMAGE_URL], {"aspect_ratio": "16:9\ud800"}),
]


@pytest.mark.parametrize(("prompt", "images", "options"), SURROGATE_CALLS)
def test_a_lone_surrogate_is_a_validation_error_and_nothing_is_sent(
    server: MockServer, client: ReveRemix, prompt: str, images: Any, options: dict[str, str]
):
    """The issue: "\\ud800" in a prompt raised UnicodeEncodeError."""
    with pytest.raises(ValidationError):
        client.remix(prompt, images, **options)
    assert server.requests == []


@pytest.mark.anyio
@pytest.mark.parametrize(("prompt", "images", "options"), SURROGATE_CALLS)
async def test_the_async_client_refuses_lone_surrogates_too(
    server: MockServer,
    aclient: AsyncReveRemix,
    prompt: str,
    images: Any,
    options: dict[str, str],
):
    with pytest.raises(ValidationError):
        await aclient.remix(prompt, images, **options)
    assert server.requests == []


def test_the_surrogate_error_says_where_and_why(client: ReveRemix):
    with pytest.raises(ValidationError, match=r"^prompt: character 12 is a lone surrogate"):
        client.remix("<img>0</img>\ud800", [IMAGE_URL])


def test_a_lone_surrogate_on_the_command_line_exits_2(server: MockServer):
    code, _, stderr = cli(
        "remix", "<img>0</img> \udcff", "-i", IMAGE_URL, "--base-url", server.base_url
    )
    assert code == 2, stderr
    assert "lone surrogate" in stderr
    assert "please report it" not in stderr
    assert server.requests == []


# --- {name} with a list of images -------------------------------------------------------------


def test_named_placeholders_with_a_list_of_images_are_refused(
    server: MockServer, client: ReveRemix
):
    """They were sent literally, and paid for, without a word."""
    with pytest.raises(ValidationError, match=r"`\{cat\}` at position 4 names an image") as info:
        client.remix("Put {cat} on <img>0</img>", [IMAGE_URL])
    assert "pass a mapping of names to images, such as {'cat': ...}" in str(info.value)
    client.remix("<img>0</img> with {{braces}} and { spaces }", [IMAGE_URL])  # not names
    assert len(posts(server)) == 1


def test_the_command_line_says_how_to_name_the_images(server: MockServer):
    code, _, stderr = cli(
        "remix",
        "Put {cat} on {sofa}",
        "-i",
        IMAGE_URL,
        "-i",
        IMAGE_URL,
        "--base-url",
        server.base_url,
    )
    assert code == 2
    assert "name the images: -i cat=IMAGE" in stderr
    assert server.requests == []


# --- fit without Pillow -----------------------------------------------------------------------


@pytest.fixture
def no_pillow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "PIL", None)
    monkeypatch.setitem(sys.modules, "PIL.Image", None)


@pytest.mark.usefixtures("no_pillow")
def test_fit_without_pillow_is_a_validation_error(server: MockServer, client: ReveRemix):
    with pytest.raises(ValidationError, match=r"^fit=True needs Pillow: pip install"):
        client.remix(PROMPT, [IMAGE_URL], fit=True)
    assert server.requests == []


@pytest.mark.usefixtures("no_pillow")
def test_fit_without_pillow_on_the_command_line_speaks_of_fit(server: MockServer):
    code, _, stderr = cli("remix", PROMPT, "-i", IMAGE_URL, "--fit", "--base-url", server.base_url)
    assert code == 2
    assert error_lines(stderr) == [
        "reve-remix: error: --fit needs Pillow: pip install 'reve-remix[pillow]'"
    ]


# --- the command line's own inconsistencies ---------------------------------------------------


def test_a_name_without_an_image_says_so(server: MockServer):
    code, _, stderr = cli("remix", "{cat}", "-i", "cat=", "--base-url", server.base_url)
    assert code == 2
    assert error_lines(stderr) == [
        "reve-remix: error: -i cat=: no image after '='; write -i cat=IMAGE"
    ]


@pytest.mark.parametrize("model", ["", "  "])
def test_an_empty_model_is_refused_as_the_library_refuses_it(server: MockServer, model: str):
    code, _, stderr = cli(
        "remix", PROMPT, "-i", IMAGE_URL, "--model", model, "--base-url", server.base_url
    )
    assert code == 2
    assert "argument --model: expected a non-empty string" in stderr
    assert server.requests == []


@pytest.mark.parametrize(
    "args", [["remix", PROMPT, "-i", IMAGE_URL], ["batch", "jobs.jsonl", "--out", "out"], ["demo"]]
)
def test_an_unknown_flag_after_a_command_shows_that_commands_usage(args: list[str]):
    """It showed the top-level usage, which says nothing of the command's options."""
    code, _, stderr = cli(*args, "--no-such-flag")
    assert code == 2
    assert stderr == (
        f"reve-remix {args[0]}: error: unrecognized arguments: --no-such-flag "
        f"(see 'reve-remix {args[0]} --help')\n"
    )


@pytest.mark.parametrize("timeout", ["nan", "inf", "-inf", "1e300", "0", "-1", "ten"])
def test_a_timeout_that_is_not_a_usable_number_exits_2(server: MockServer, timeout: str):
    code, _, stderr = cli(
        "remix", PROMPT, "-i", IMAGE_URL, "--timeout", timeout, "--base-url", server.base_url
    )
    assert code == 2
    assert len(error_lines(stderr)) == 1
    assert "argument --timeout: " in stderr
    assert "unexpected" not in stderr


@pytest.mark.parametrize("latency", ["nan", "inf"])
def test_the_mock_refuses_a_latency_that_is_not_finite(latency: str):
    code, _, stderr = cli("mock", "--latency", latency)
    assert code == 2
    assert "must be a finite number" in stderr


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--base-url", ""], "--base-url: is empty"),
        (["--base-url", "127.0.0.1:8080"], "--base-url: '127.0.0.1:8080' is not an http(s) URL"),
        (["--base-url", "http://u:p@127.0.0.1:9"], "holds credentials"),
    ],
)
def test_a_bad_base_url_exits_2_before_anything_is_read(options: list[str], message: str):
    code, _, stderr = cli("remix", PROMPT, "-i", IMAGE_URL, *options)
    assert code == 2
    assert message in stderr


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (" \n", "no API key: set the ONEROUTER_API_KEY environment variable"),
        (f"{API_KEY} {API_KEY}", "$ONEROUTER_API_KEY: character 35 of 69 is a space"),
        (API_KEY + "é", "is a non-ASCII character"),
    ],
)
def test_a_blank_or_malformed_key_exits_2_and_never_shows_it(
    server: MockServer, key: str, message: str
):
    code, _, stderr = cli("remix", PROMPT, "-i", IMAGE_URL, "--base-url", server.base_url, key=key)
    assert code == 2
    assert message in stderr
    assert server.requests == []


@pytest.mark.parametrize(
    ("output", "problem"),
    [
        ("a\ud800.png", "holds a lone surrogate at position 1, which no file name can"),
        ("a\x00b.png", "holds a control character at position 1"),
        ("a" * 250 + ".png", "is longer than file systems allow"),
        ("d/" + "b" * 256 + "/c.png", "is longer than file systems allow"),
    ],
)
def test_an_output_no_file_can_have_exits_2_before_anything_is_paid(
    server: MockServer, output: str, problem: str
):
    """The image would have been generated, paid for, and lost at the save."""
    code, _, stderr = cli(
        "remix", PROMPT, "-i", IMAGE_URL, "-o", output, "--base-url", server.base_url
    )
    assert code == 2
    [line] = error_lines(stderr)
    assert line.startswith(f"reve-remix: error: -o {output!r} {problem}")
    assert server.requests == []


def test_an_output_name_that_is_not_utf8_is_saved_and_printed_as_given(server: MockServer):
    """``-o $'\\xff.png'``: Python sees a surrogate, which a strict stdout could not print."""
    name = os.fsdecode(b"caf\xe9.png")  # Latin-1, as an old file system might hold
    code, stdout, stderr = cli(
        "remix", PROMPT, "-i", IMAGE_URL, "-o", name, "--base-url", server.base_url
    )
    assert code == 0, stderr
    assert stdout == name + "\n"
    assert Path(name).is_file()
    assert b"caf\xe9.png" in os.listdir(b".")


# --- batch lines ------------------------------------------------------------------------------


def write_jobs(folder: Path, lines: list[str]) -> Path:
    path = folder / "jobs.jsonl"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def good_line(name: str) -> str:
    return json.dumps({"prompt": f"<img>0</img> {name}", "images": [IMAGE_URL], "id": name})


def test_no_line_sinks_the_batch(server: MockServer, tmp_path: Path):
    """The issue's lines each aborted the whole batch (one after its job was paid)."""
    job = {"prompt": PROMPT, "images": [IMAGE_URL]}
    bad_lines = {
        json.dumps({**job, "prompt": "<img>0</img> \ud800"}): "lone surrogate",
        json.dumps({**job, "output": "a" * 300 + ".png"}): "longer than file systems allow",
        "[" * 100_000: "nested too deeply",
        json.dumps({**job, "output": "a\u0000b.png"}): "control character",
        json.dumps({**job, "output": "d/" * 600 + "x.png"}): "longer than file systems allow",
        json.dumps({**job, "output": "x\ud800.png"}): "lone surrogate",
    }
    jobs = write_jobs(tmp_path, [*bad_lines, good_line("fine")])
    out = str(tmp_path / "out")
    code, stdout, stderr = cli("batch", str(jobs), "--out", out, "--base-url", server.base_url)
    assert code == 1, stderr
    problems = [line for line in stderr.splitlines() if "jobs.jsonl: line" in line]
    pairs = zip(problems, bad_lines.values(), strict=True)
    for number, (problem, words) in enumerate(pairs, start=1):
        assert f"jobs.jsonl: line {number}: " in problem
        assert words in problem
    assert "1 done, 0 failed, 6 invalid line(s) skipped" in stdout
    assert (tmp_path / "out" / "fine.png").is_file()
    assert len(posts(server)) == 1


@pytest.mark.parametrize(
    ("status", "word"), [(401, "the key was refused"), (402, "the account is out of credits")]
)
def test_a_batch_stops_after_a_401_or_402_and_leaves_the_rest_pending(
    server: MockServer, tmp_path: Path, status: int, word: str
):
    jobs = write_jobs(tmp_path, [good_line(f"job{number}") for number in range(6)])
    out = tmp_path / "out"
    server.enqueue(Fault(status=status))
    args = (
        "batch",
        str(jobs),
        "--out",
        str(out),
        "--concurrency",
        "1",
        "--base-url",
        server.base_url,
    )
    code, stdout, stderr = cli(*args)
    assert code == 1
    assert f"reve-remix: stopped: {word}" in stderr
    assert "every other job would fail the same way" in stderr
    assert f"0 done, 1 failed, 5 not started (stopped after the {status} on line 1" in stdout
    assert len(posts(server)) == 1
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    # Claimed before sending, then failed (provably unpaid); no other job was touched.
    assert [(record["id"], record["status"]) for record in records] == [
        ("job0", "sent"),
        ("job0", "failed"),
    ]

    code, stdout, _ = cli(*args)  # fixed: the same command resumes, and sends every job
    assert code == 0
    assert "6 done" in stdout
    assert len(posts(server)) == 7


# --- properties: arbitrary text everywhere ----------------------------------------------------

CHARS = st.characters() | st.characters(categories=["Cs"]) | st.characters(categories=["Cc"])
LONG = st.builds(
    lambda piece, count: piece * count,
    st.sampled_from(["a", "é", "\ud800", "<img>0</img>", " ", "{cat}", "/"]),
    st.integers(300, 5_000),
)
TEXT = st.text(CHARS, max_size=24) | LONG


def mostly(valid: st.SearchStrategy[Any], other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``valid`` three times in four (so that calls get past every check), else ``other``.

    (``st.one_of`` would not do: it draws its branches evenly, however often one is repeated.)
    """
    return st.sampled_from([valid, valid, valid, other]).flatmap(lambda chosen: chosen)


def text_or(*valid: str) -> st.SearchStrategy[str]:
    """One of ``valid`` three times in four, else any text."""
    return mostly(st.sampled_from(valid), TEXT)


def decorated_key(around: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.builds(lambda before, after: before + API_KEY + after, around, around)


KEYS = mostly(st.just(API_KEY) | decorated_key(st.text(" \t\r\n")), decorated_key(TEXT))
URLS = text_or("https://api.test", "http://127.0.0.1:8080/proxy/")
IMAGE_TEXT = text_or(IMAGE_URL, "http://cdn.test:8443/a/b.jpg?x=1")
PROMPTS = text_or(PROMPT, "Put {cat} on {sofa}", "<img>0</img> and <img>1</img>")
IMAGES = (
    st.lists(IMAGE_TEXT, min_size=1, max_size=4)
    | st.dictionaries(text_or("cat", "sofa"), IMAGE_TEXT, min_size=1, max_size=4)
    | IMAGE_TEXT
    | st.lists(IMAGE_TEXT, max_size=6)
)
# A prompt and images that fit together, with any text after the prompt's own, most of the
# time (arbitrary prompts and images rarely agree on their tags); anything at all otherwise.
FORMS = st.sampled_from(
    [
        (PROMPT, [IMAGE_URL]),
        ("Put {cat} on {sofa}", {"cat": IMAGE_URL, "sofa": "http://cdn.test:8443/a/b.jpg?x=1"}),
    ]
)
FITTING = st.builds(lambda form, tail: (form[0] + tail, form[1]), FORMS, TEXT)
PROMPT_AND_IMAGES = mostly(FITTING, st.tuples(PROMPTS, IMAGES))
CLI_IMAGES = st.one_of(
    st.just([IMAGE_URL]),
    st.just(["cat=" + IMAGE_URL, "sofa=" + IMAGE_URL]),
    st.lists(text_or(IMAGE_URL, "cat=" + IMAGE_URL, "sofa=" + IMAGE_URL), min_size=1, max_size=5),
)
OPTIONAL = {
    "aspect_ratio": text_or("16:9", "1:1"),
    "output_format": text_or("url", "b64_json"),
    "model": text_or("reve-remix-image-to-image"),
}
PNG = (SAMPLES / "cat.png").read_bytes()
HEADER_VALUE = re.compile(rb"[\x21-\x7e]+(?: [\x21-\x7e]+)*")


class Wire:
    """Stands in for the network: answers like the API and checks every request it gets."""

    def __init__(self, key: str) -> None:
        self.key = key.strip()
        self.problems: list[str] = []
        self.posts = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        for name, value in request.headers.raw:
            if not HEADER_VALUE.fullmatch(value):
                self.problems.append(f"header {name!r} cannot be sent: {value!r}")
        if request.method == "GET":
            return httpx.Response(200, content=PNG, headers={"content-type": "image/png"})
        self.posts += 1
        if not request.url.path.endswith(spec().path):
            self.problems.append(f"posted to {request.url}")
        if request.headers.get("authorization") != f"Bearer {self.key}":
            self.problems.append("the key was not sent as given, stripped")
        body = json.loads(request.content)
        self.problems += [error.message for error in REQUEST_VALIDATOR.iter_errors(body)]
        image = (
            {"b64_json": "iVBORw0KGgo="}
            if body.get("output_format") == "b64_json"
            else {"url": "https://cdn.test/out.png"}
        )
        return httpx.Response(200, json={"created": 1_700_000_000, "data": [image]})


class LogRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(record.getMessage())


@contextlib.contextmanager
def watched_logs() -> Iterator[LogRecords]:
    handler = LogRecords()
    loggers = [logging.getLogger(name) for name in ("reve_remix", "httpx", "httpcore")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


def exception_texts(exc: BaseException) -> Iterator[str]:
    current: BaseException | None = exc
    while current is not None:
        yield str(current)
        yield repr(current.args)
        current = current.__cause__ or current.__context__


PROPERTY = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,  # in_a_scratch_folder: each example makes its own
    ],
)


@PROPERTY
@given(
    use_async=st.booleans(),
    key=KEYS,
    base_url=URLS,
    client_model=text_or("reve-remix-image-to-image"),
    prompt_and_images=PROMPT_AND_IMAGES,
    options=st.fixed_dictionaries({}, optional=OPTIONAL),
)
def test_the_library_raises_its_own_error_or_sends_a_valid_request(
    use_async: bool,
    key: str,
    base_url: str,
    client_model: str,
    prompt_and_images: tuple[str, Any],
    options: dict[str, str],
):
    prompt, images = prompt_and_images
    wire = Wire(key)
    transport = httpx.MockTransport(wire)

    async def remix_async() -> None:
        http = httpx.AsyncClient(transport=transport)
        client = AsyncReveRemix(key, base_url=base_url, model=client_model, http_client=http)
        result = await client.remix(prompt, images, **options)  # type: ignore[arg-type]
        await result.aread()

    def remix() -> None:
        http = httpx.Client(transport=transport)
        client = ReveRemix(key, base_url=base_url, model=client_model, http_client=http)
        client.remix(prompt, images, **options).read()  # type: ignore[arg-type]

    with watched_logs() as logs:
        try:
            asyncio.run(remix_async()) if use_async else remix()
        except ReveRemixError as exc:
            event(type(exc).__name__)
            for text in exception_texts(exc):
                assert API_KEY not in text
            if isinstance(exc, ValidationError):
                assert wire.posts == 0
        else:
            event("sent")
            assert wire.posts == 1
    assert wire.problems == []
    for text in logs.texts:
        assert API_KEY not in text


def safe_relative(path: str) -> bool:
    """Whether an ``-o`` stays inside the example's folder (the test must not write elsewhere)."""
    return not path.startswith(("/", "~")) and ".." not in path


@contextlib.contextmanager
def offline(wire: Wire) -> Iterator[None]:
    """Every request of the command's own pools goes to ``wire``, whatever its URL.

    The transport makes no connection pool either, and files are not fsync'd: the TLS set-up
    (reading the CA bundle) and the fsync of each saved file would take most of the time.
    """

    def handle(_transport: object, request: httpx.Request) -> httpx.Response:
        response = wire(request)
        return httpx.Response(
            response.status_code, headers=response.headers, content=response.content
        )

    def no_pool(_transport: object, *args: object, **kwargs: object) -> None:
        pass

    with (
        mock.patch.object(httpx.HTTPTransport, "__init__", no_pool),
        mock.patch.object(httpx.HTTPTransport, "handle_request", handle),
        mock.patch.object(httpx.HTTPTransport, "close", no_pool),
        mock.patch("os.fsync"),
    ):
        yield


def check_cli_outcome(code: int, stderr: str) -> None:
    event(f"exit {code}")
    assert code in (0, 1, 2), stderr
    assert "Traceback" not in stderr
    assert "unexpected" not in stderr  # how the command reports an exception it did not expect
    if code:
        assert len(error_lines(stderr)) <= 1, stderr


OPTION_VALUES = {
    "--model": text_or("reve-remix-image-to-image"),
    "--aspect-ratio": text_or("16:9"),
    "--format": text_or("url", "b64_json"),
    "--timeout": text_or("30", "0.5"),
    "--base-url": URLS,
    "-o": text_or("out.png", "folder/"),
}


@settings(PROPERTY, max_examples=80)
@given(
    key=KEYS,
    prompt=mostly(st.builds(str.__add__, text_or(PROMPT, "Put {cat} on {sofa}"), TEXT), PROMPTS),
    images=CLI_IMAGES,
    options=st.fixed_dictionaries({}, optional=OPTION_VALUES),
    equals=st.booleans(),
)
def test_the_command_line_exits_with_one_error_or_sends_a_valid_request(
    key: str, prompt: str, images: list[str], options: dict[str, str], equals: bool
):
    assume(safe_relative(options.get("-o", "")))
    args = ["remix", prompt]
    for image in images:
        args += [f"-i={image}"] if equals else ["-i", image]
    for option, value in options.items():
        args += [f"{option}={value}"] if equals else [option, value]
    wire = Wire(as_in_environment(key))
    with tempfile.TemporaryDirectory() as folder, contextlib.chdir(folder), offline(wire):
        code, _, stderr = cli(*args, key=key)
    check_cli_outcome(code, stderr)
    assert wire.problems == []
    if code == 2:
        assert wire.posts == 0


# Every field of a line: a prompt and images that mostly fit together, and any of the others.
OTHER_FIELDS = {
    "aspect_ratio": OPTIONAL["aspect_ratio"],
    "output_format": OPTIONAL["output_format"],
    "model": OPTIONAL["model"],
    "id": text_or("job-1", "a.b_c"),
    "output": text_or("x.png", "sub/y", "z"),
    "unknown": TEXT,
}
JOBS = st.builds(
    lambda pair, others, keep: {
        **{key: value for key, value in zip(("prompt", "images"), pair, strict=True) if keep},
        **others,
    },
    PROMPT_AND_IMAGES,
    st.fixed_dictionaries({}, optional=OTHER_FIELDS),
    mostly(st.just(True), st.just(False)),
)
LINES = mostly(
    JOBS.map(json.dumps) | JOBS.map(lambda job: json.dumps(job, ensure_ascii=False)), TEXT
)


@settings(PROPERTY, max_examples=40)
@given(lines=st.lists(LINES, min_size=1, max_size=4), key=KEYS, not_utf8=st.booleans())
def test_a_batch_reports_every_bad_line_by_number_and_never_dies_of_one(
    lines: list[str], key: str, not_utf8: bool
):
    wire = Wire(as_in_environment(key))
    with tempfile.TemporaryDirectory() as folder, offline(wire):
        jobs = Path(folder) / "jobs.jsonl"
        # A lone surrogate is written as its JSON escape (\ud800), or as the bytes of no UTF-8.
        jobs.write_bytes(
            "\n".join(lines).encode(
                "utf-8", errors="surrogatepass" if not_utf8 else "backslashreplace"
            )
        )
        code, _, stderr = cli("batch", str(jobs), "--out", str(Path(folder) / "out"), key=key)
        manifest = Path(folder) / "out" / "manifest.jsonl"
        if manifest.exists():
            assert API_KEY not in manifest.read_text(encoding="utf-8", errors="replace")
    check_cli_outcome(code, stderr)
    assert wire.problems == []
