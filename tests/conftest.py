"""Shared fixtures: a live mock server on 127.0.0.1 and clients pointed at it."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import NamedTuple
from unittest import mock

import pytest

from reve_remix import AsyncReveRemix, ReveRemix
from reve_remix._cli import main
from reve_remix._config import API_KEY_ENV
from reve_remix.testing import MockServer

# A user's project with its own pytest.ini, run in its own process by test_user_project.py.
collect_ignore = ["user_project"]

# Recognisable on purpose: the secrets tests grep every output for it.
API_KEY = "sk-or-TEST-SECRET-7f3a9c2e51d84b60"
IMAGE_URL = "https://example.com/cat.png"


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


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Backoff in milliseconds, so retry tests measure behaviour rather than patience."""
    monkeypatch.setattr("reve_remix._retry.INITIAL_BACKOFF", 0.01)
    monkeypatch.setattr("reve_remix._retry.MAX_BACKOFF", 0.02)


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
