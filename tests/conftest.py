"""Shared fixtures: a live mock server on 127.0.0.1 and clients pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from reve_remix import AsyncReveRemix, ReveRemix
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
