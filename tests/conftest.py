"""Shared fixtures: a live mock server on 127.0.0.1 and clients pointed at it."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TypeVar
from unittest import mock

import httpx
import pytest

from reve_remix import AsyncReveRemix, RemixImage, RemixResult, ReveRemix
from reve_remix._cli import main
from reve_remix._config import API_KEY_ENV
from reve_remix.testing import MockServer

# A user's project with its own pytest.ini, run in its own process by test_user_project.py.
collect_ignore = ["user_project"]

# Recognisable on purpose: the secrets tests grep every output for it.
API_KEY = "sk-or-TEST-SECRET-7f3a9c2e51d84b60"
IMAGE_URL = "https://example.com/cat.png"
# Seconds a readiness condition (a child's first line, a request arriving) may take on a busy
# machine before the test fails: a safety net against a hang, never a measure of speed.
WAIT = 60


# pyproject's timeout (120 s) catches a hung test in the quick suite. A slow-marked test (deep
# fuzzing, whole batches killed and resumed) does a fixed amount of work that takes about a
# minute on an idle 2-core machine, and as long as other processes make it: its net is wider.
SLOW_TEST_TIMEOUT = 900


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TEST_TIMEOUT))


def claim_by_a_stopped_process(store: str, job_id: str, attempt: int = 1) -> None:
    """What a SIGKILLed engine worker leaves in a paid store: a claim by a process that no
    longer runs, with no outcome after it."""
    code = (
        "import sys; from reve_remix import JobRecord, JobState, PaidStore; "
        "record = JobRecord(sys.argv[2], JobState.SENT, attempt=int(sys.argv[3])); "
        "PaidStore(sys.argv[1]).claim(record)"
    )
    subprocess.run([sys.executable, "-c", code, store, job_id, str(attempt)], check=True)


@pytest.fixture
def server() -> Iterator[MockServer]:
    with MockServer() as mock:
        yield mock


@pytest.fixture
def client(server: MockServer) -> Iterator[ReveRemix]:
    with ReveRemix(API_KEY, base_url=server.base_url) as remix_client:
        yield remix_client


@pytest.fixture
async def aclient(server: MockServer) -> AsyncIterator[AsyncReveRemix]:
    async with AsyncReveRemix(API_KEY, base_url=server.base_url) as remix_client:
        yield remix_client


# --- the sync and async clients as twins ---------------------------------------------------------

_T = TypeVar("_T")
CLIENT_KINDS = ("sync", "async")


class Twin:
    """A ``ReveRemix`` or an ``AsyncReveRemix`` behind the same blocking calls.

    One test body then checks both twins. The async client lives on an event loop in a thread of
    its own, so that callers in several threads share one client, as with the sync client.
    """

    def __init__(self, kind: str, **options: Any) -> None:
        self.kind = kind
        self._loop: asyncio.AbstractEventLoop | None = None
        self._http: list[httpx.Client | httpx.AsyncClient] = []
        if kind == "sync":
            self.client: ReveRemix | AsyncReveRemix = ReveRemix(**options)
            return
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

        async def build() -> AsyncReveRemix:  # on the loop that will use it
            return AsyncReveRemix(**options)

        self.client = self._run(build())

    def _run(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def remix(self, *args: Any, **kwargs: Any) -> RemixResult:
        """``client.remix(...)``, awaited on the async twin."""
        if isinstance(self.client, AsyncReveRemix):
            return self._run(self.client.remix(*args, **kwargs))
        return self.client.remix(*args, **kwargs)

    def call(self, owner: object, method: str, *args: Any, **kwargs: Any) -> Any:
        """``owner.method(...)``, or ``await owner.amethod(...)`` on the async twin, as the SDK
        names its twins (``read``/``aread``, ``save``/``asave``, ``download``/``adownload``)."""
        if self._loop is None:
            return getattr(owner, method)(*args, **kwargs)
        return self._run(getattr(owner, f"a{method}")(*args, **kwargs))

    def read(self, result: RemixResult | RemixImage) -> bytes:
        """The image's bytes: ``result.read()``, or ``await result.aread()`` on the async twin."""
        result_bytes: bytes = self.call(result, "read")
        return result_bytes

    def http_client(self, **options: Any) -> httpx.Client | httpx.AsyncClient:
        """A plain httpx client of this twin's kind (for a ``Downloader``); closed with the twin."""
        kind = httpx.Client if self._loop is None else httpx.AsyncClient
        self._http.append(kind(**options))
        return self._http[-1]

    def close(self) -> None:
        for http in self._http:
            if isinstance(http, httpx.AsyncClient):
                self._run(http.aclose())
            else:
                http.close()
        if isinstance(self.client, AsyncReveRemix):
            self._run(self.client.aclose())
        else:
            self.client.close()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    def __enter__(self) -> Twin:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@pytest.fixture(params=CLIENT_KINDS)
def make_twin(request: pytest.FixtureRequest) -> Iterator[Callable[..., Twin]]:
    """Build clients of one kind (``sync`` or ``async``: each test runs with both); closed after."""
    made: list[Twin] = []

    def make(**options: Any) -> Twin:
        made.append(Twin(request.param, **options))
        return made[-1]

    yield make
    for twin in made:
        twin.close()


@pytest.fixture
def twin(make_twin: Callable[..., Twin], server: MockServer) -> Twin:
    """A client of either kind pointed at ``server``."""
    return make_twin(api_key=API_KEY, base_url=server.base_url)


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Backoff in milliseconds, so retry tests measure behaviour rather than patience."""
    monkeypatch.setattr("reve_remix._retry.INITIAL_BACKOFF", 0.01)
    monkeypatch.setattr("reve_remix._retry.MAX_BACKOFF", 0.02)


def until(condition: Callable[[], object], what: str) -> None:
    """Wait for ``condition()``: a readiness condition, never a guess at how long things take."""
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


@contextlib.contextmanager
def child(command: Sequence[object], **options: Any) -> Iterator[subprocess.Popen[Any]]:
    """``subprocess.Popen(command, **options)``, killed on the way out if it is still running.

    A failing test never leaves its process behind: a ``reve-remix mock`` would serve until
    killed, and ``Popen``'s own exit waits for the process to end by itself.
    """
    process = subprocess.Popen([str(part) for part in command], **options)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()  # reaps it and closes its pipes


class RefusedPort:
    """A port on 127.0.0.1 that refuses connections until released (or the ``with`` block ends).

    Bound but not listening: a connection is refused, and no other process (another test run
    on the machine) can take the port meanwhile, as it could a port found free and let go.

    Example::

        with RefusedPort() as refused:
            ReveRemix(API_KEY, base_url=f"http://127.0.0.1:{refused.port}")
    """

    def __init__(self) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]

    def release(self) -> None:
        """Let the port go, e.g. for a server to start on it. Idempotent."""
        self._socket.close()

    def __enter__(self) -> RefusedPort:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


@pytest.fixture
def signals_as_at_a_terminal() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP act as in a foreground terminal while the test runs.

    For a test that sends one of them, to a child process or to itself. A shell starts a
    background job (``pytest &`` in a script) with SIGINT ignored, and ``nohup`` ignores SIGHUP;
    an ignored signal stays ignored in every child, and Python installs no Ctrl-C handler when
    SIGINT is ignored, so the signal would do nothing. Only for the test: the run as a whole
    keeps what it was started with.
    """
    defaults = {
        signal.SIGINT: signal.default_int_handler,
        signal.SIGTERM: signal.SIG_DFL,
        signal.SIGHUP: signal.SIG_DFL,
    }
    ignored = [signum for signum in defaults if signal.getsignal(signum) == signal.SIG_IGN]
    for signum in ignored:
        signal.signal(signum, defaults[signum])
    try:
        yield
    finally:
        for signum in ignored:
            signal.signal(signum, signal.SIG_IGN)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --- the command line, in this process -------------------------------------------------------


class CliRun(NamedTuple):
    """What ``reve-remix ARGS`` did: its exit code and everything it printed."""

    returncode: int
    stdout: str
    stderr: str


@contextlib.contextmanager
def cli_environment(
    key: str | None = API_KEY, env: Mapping[str, str] | None = None
) -> Iterator[None]:
    """``os.environ`` as a user's shell would have it: no ``REVE_REMIX_*``, ``key`` if given."""
    environ = {
        name: value for name, value in os.environ.items() if not name.startswith("REVE_REMIX")
    }
    environ.pop(API_KEY_ENV, None)
    if key is not None:
        environ[API_KEY_ENV] = key
    environ.update(env or {})
    with mock.patch.dict(os.environ, environ, clear=True):
        yield


def run_cli(
    *args: object,
    key: str | None = API_KEY,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
) -> CliRun:
    """``reve-remix ARGS`` in this process (``main([...])``), checking the key is never printed.

    stdout is strict UTF-8 and stderr replaces what it cannot encode, as Python's own streams
    do, so text that a real terminal could not print fails here too.
    """
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict")
    stderr = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="backslashreplace")
    with (
        cli_environment(key, env),
        contextlib.chdir(cwd) if cwd is not None else contextlib.nullcontext(),
        contextlib.redirect_stdout(stdout),
        contextlib.redirect_stderr(stderr),
    ):
        code = main([str(arg) for arg in args])
    printed = []
    for stream in (stdout, stderr):
        stream.flush()
        data = stream.buffer.getvalue()  # type: ignore[attr-defined]
        printed.append(data.decode("utf-8", "surrogateescape"))
    for output in printed:
        assert API_KEY not in output
    return CliRun(code, *printed)
