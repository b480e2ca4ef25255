"""A small HTTP/1.1 server on 127.0.0.1 for the batch-scale figures of ``scripts/bench.py``.

It answers every ``POST`` with the same canned remix body after ``--latency`` seconds, and counts
what the figures need: TCP connections accepted, the most requests in flight at once, requests
answered and requests refused with 429. With ``--rate N`` it admits N requests per second (a
token bucket holding one second's worth) and answers the rest ``429`` with ``Retry-After``
(seconds until the next token, as a decimal).

It runs in its own process (asyncio, one thread), so its work never competes with the client's
for the GIL. ``GET /stats`` returns the counters as JSON; ``POST /reset`` zeroes them (and must be
sent on a fresh connection, which it does not count).

Usage::

    python scripts/bench_server.py --latency 0.5 [--rate 50]   # prints the port, then serves
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

CANNED = json.dumps(
    {"created": 1_700_000_000, "data": [{"url": "https://cdn.example.com/out.png"}]}
).encode()


class Counters:
    def __init__(self, latency: float, rate: float | None) -> None:
        self.latency = latency
        self.rate = rate
        self.reset()

    def reset(self) -> None:
        self.connections = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        self.answered = 0
        self.refused = 0
        self.first = 0.0
        self.last = 0.0
        self.tokens = self.rate or 0.0
        self.refilled = time.monotonic()

    def admit(self) -> float | None:
        """``None`` if the request may go ahead, else the seconds until it could."""
        if self.rate is None:
            return None
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.refilled) * self.rate)
        self.refilled = now
        if self.tokens >= 1:
            self.tokens -= 1
            return None
        return (1 - self.tokens) / self.rate

    def stats(self) -> bytes:
        return json.dumps(
            {
                "connections": self.connections,
                "peak_in_flight": self.peak_in_flight,
                "answered": self.answered,
                "refused": self.refused,
                "span": self.last - self.first,
            }
        ).encode()


def response(status: int, body: bytes, extra: str = "") -> bytes:
    reason = {200: "OK", 429: "Too Many Requests"}[status]
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nx-request-id: req_bench\r\n{extra}\r\n"
    )
    return head.encode() + body


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, c: Counters) -> None:
    counted = False
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *lines = head.decode("latin-1").split("\r\n")
            length = 0
            for line in lines:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            await reader.readexactly(length)
            path = request_line.split(" ")[1]
            if path == "/stats":
                writer.write(response(200, c.stats()))
            elif path == "/reset":
                c.reset()
                writer.write(response(200, b"{}"))
            else:
                if not counted:
                    counted = True
                    c.connections += 1
                wait = c.admit()
                if wait is not None:
                    c.refused += 1
                    writer.write(response(429, b"{}", f"retry-after: {wait:.3f}\r\n"))
                else:
                    c.in_flight += 1
                    c.peak_in_flight = max(c.peak_in_flight, c.in_flight)
                    c.first = c.first or time.monotonic()
                    await asyncio.sleep(c.latency)
                    c.in_flight -= 1
                    c.answered += 1
                    c.last = time.monotonic()
                    writer.write(response(200, CANNED))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(latency: float, rate: float | None) -> None:
    counters = Counters(latency, rate)
    server = await asyncio.start_server(
        lambda r, w: serve(r, w, counters), "127.0.0.1", 0, backlog=1024
    )
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--rate", type=float, default=None)
    args = parser.parse_args()
    try:
        asyncio.run(main(args.latency, args.rate))
    except KeyboardInterrupt:
        sys.exit(0)
