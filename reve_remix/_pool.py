"""The connection pool a client makes for itself: every connection kept alive, sized to the batch.

httpx's default pool keeps 20 of its 100 connections alive, so a batch of 64 concurrent jobs
opens a new TCP (and TLS) connection for most requests, and a ``concurrency`` above 100 is
silently capped. Sizing one httpcore pool to the concurrency is no cure: its bookkeeping walks
every connection for every idle one on each request, so its CPU per request grows with the
pool and a large batch falls behind (``scripts/bench.py`` measures it; ``docs/performance.md``
has the figures and the comparison with an aiohttp transport).

:class:`ShardedTransport` therefore spreads requests over several small httpcore pools of at
most :data:`SHARD_SIZE` connections each, all kept alive, sending each request to the first pool
with room. ``remix_many`` and ``iter_remix`` grow it to their concurrency
with :meth:`ShardedTransport.ensure_capacity`.
"""

from __future__ import annotations

import functools
import math
import os
import ssl
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Generic, TypeVar, cast

import httpx

from ._exceptions import ValidationError

SHARD_SIZE = 16
"""Connections per httpcore pool: small enough that its per-request bookkeeping stays cheap."""

DEFAULT_MAX_CONNECTIONS = 100
"""httpx's default; every one of them is kept alive (httpx keeps 20)."""

Shard = TypeVar("Shard", httpx.HTTPTransport, httpx.AsyncHTTPTransport)


class _Shards(Generic[Shard]):
    """The pools and their loads; shared by the sync and the async transport.

    A pool is made when the ones before it are full, so a client that never has more than
    ``SHARD_SIZE`` requests in flight holds one; all pools share one TLS context (see
    :func:`tls_context`).
    """

    def __init__(
        self, make: Callable[[httpx.Limits, ssl.SSLContext], Shard], max_connections: int
    ) -> None:
        self._make: Callable[[httpx.Limits, ssl.SSLContext], Shard] = make
        self._lock = threading.Lock()
        self.shards: list[Shard] = []
        self._loads: list[int] = []
        self.capacity = 0
        self.ensure_capacity(max_connections)

    def ensure_capacity(self, connections: int) -> None:
        """Allow at least ``connections`` requests in flight at once (pools come as needed)."""
        with self._lock:
            self.capacity = max(self.capacity, math.ceil(connections / SHARD_SIZE) * SHARD_SIZE)

    def acquire(self) -> tuple[int, Shard]:
        """The first pool with room (else the least loaded), counted as carrying one more request.

        Filling pools in order, rather than spreading requests over all of them, keeps the
        connections as few as the concurrency needs: each holds buffers as large as the largest
        body it has sent.
        """
        with self._lock:
            loads = self._loads
            index = next((n for n, load in enumerate(loads) if load < SHARD_SIZE), None)
            if index is None and len(self.shards) * SHARD_SIZE < self.capacity:
                index = self._add_shard()
            if index is None:
                index = min(range(len(loads)), key=loads.__getitem__)
            loads[index] += 1
            return index, self.shards[index]

    def _add_shard(self) -> int:
        limits = httpx.Limits(max_connections=SHARD_SIZE, max_keepalive_connections=SHARD_SIZE)
        self.shards.append(self._make(limits, tls_context()))
        self._loads.append(0)
        return len(self.shards) - 1

    def release(self, index: int) -> None:
        with self._lock:
            self._loads[index] -= 1


def tls_context() -> ssl.SSLContext:
    """The TLS context of every client's own pool in this process, made at the first request.

    Making one (httpx's: certifi's roots, or ``SSL_CERT_FILE``/``SSL_CERT_DIR``) costs as much as
    the rest of a client, and every client would make the same one: a process that
    makes a client per job, per worker or per test pays it once. A change to those variables
    gets a context of its own.

    Example::

        assert tls_context() is tls_context()
    """
    return _tls_context(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


@functools.lru_cache(maxsize=4)
def _tls_context(cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    try:
        return httpx.create_ssl_context()
    except OSError as exc:  # the variables name what cannot be read: say which, not just ENOENT
        named = [
            f"{name}={value!r}"
            for name, value in (("SSL_CERT_FILE", cert_file), ("SSL_CERT_DIR", cert_dir))
            if value is not None
        ]
        where = " or ".join(named) or "the default CA certificates"
        raise ValidationError(
            f"cannot load CA certificates from {where}: {exc.strerror or exc}; point it at a "
            "readable file (or folder) of certificates, or unset it; nothing was sent"
        ) from None


class ShardedTransport(httpx.BaseTransport):
    """A sync ``httpx`` transport over small keep-alive pools (see the module docstring).

    Example::

        http = httpx.Client(transport=ShardedTransport(max_connections=64))
    """

    def __init__(self, max_connections: int = DEFAULT_MAX_CONNECTIONS) -> None:
        self._shards = _Shards(
            lambda limits, tls: httpx.HTTPTransport(limits=limits, verify=tls), max_connections
        )

    def ensure_capacity(self, connections: int) -> None:
        """Grow the pool so that ``connections`` requests can be in flight at once."""
        self._shards.ensure_capacity(connections)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        index, shard = self._shards.acquire()
        try:
            response = shard.handle_request(request)
        except BaseException:
            self._shards.release(index)
            raise
        response.stream = _Released(response.stream, lambda: self._shards.release(index))
        return response

    def close(self) -> None:
        for shard in self._shards.shards:
            shard.close()


class AsyncShardedTransport(httpx.AsyncBaseTransport):
    """The asyncio twin of :class:`ShardedTransport`.

    Example::

        http = httpx.AsyncClient(transport=AsyncShardedTransport(max_connections=256))
    """

    def __init__(self, max_connections: int = DEFAULT_MAX_CONNECTIONS) -> None:
        self._shards = _Shards(
            lambda limits, tls: httpx.AsyncHTTPTransport(limits=limits, verify=tls), max_connections
        )

    def ensure_capacity(self, connections: int) -> None:
        """Grow the pool so that ``connections`` requests can be in flight at once."""
        self._shards.ensure_capacity(connections)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        index, shard = self._shards.acquire()
        try:
            response = await shard.handle_async_request(request)
        except BaseException:
            self._shards.release(index)
            raise
        response.stream = _AsyncReleased(response.stream, lambda: self._shards.release(index))
        return response

    async def aclose(self) -> None:
        for shard in self._shards.shards:
            await shard.aclose()


class _Released(httpx.SyncByteStream):
    """A response body that gives its pool's slot back when closed, exactly once."""

    def __init__(self, stream: object, release: Callable[[], None]) -> None:
        self._stream = cast(
            httpx.SyncByteStream, stream
        )  # what the matching httpx transport returns
        self._release: Callable[[], None] | None = release

    def __iter__(self) -> Iterator[bytes]:
        yield from self._stream

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()


class _AsyncReleased(httpx.AsyncByteStream):
    """The asyncio twin of :class:`_Released`."""

    def __init__(self, stream: object, release: Callable[[], None]) -> None:
        self._stream = cast(
            httpx.AsyncByteStream, stream
        )  # what the matching httpx transport returns
        self._release: Callable[[], None] | None = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()
