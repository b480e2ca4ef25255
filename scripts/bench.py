"""Measure the SDK's speed, overhead and memory figures, each against its target.

Every figure is measured in this one run, side by side with what it is compared to, and printed
as a Markdown table (the README quotes it). The exit status is 1 if any target is missed.

Usage::

    python scripts/bench.py            # the full run: a few minutes
    python scripts/bench.py --quick    # CI-sized: well under a minute

What is measured (the README explains each figure):

- overhead: median microseconds per call, in process, every contender answered by an
  ``httpx.MockTransport`` with the same canned body, so no network hides the client's own cost.
  The contenders run interleaved, in rounds, so that drift (CPU frequency, other load) hits all
  of them alike;
- import: ``python -c "import reve_remix"`` against ``python -c "import httpx"``, fresh processes,
  interleaved, median wall time; and the heavy modules that ``import reve_remix`` must not load;
- connection reuse: sequential remixes over real loopback HTTP to the mock server, counting the
  TCP connections it accepted;
- fan-out: ``remix_many`` against the mock server with a fixed latency per request;
- memory: ``tracemalloc`` peaks while sending four local images and while saving a large
  base64 result.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
from openai.types import ImagesResponse
from reve_remix_api import AuthenticatedClient
from reve_remix_api.api.reve_remix import remix as generated_remix
from reve_remix_api.models import OutputFormat, RemixRequest

from reve_remix import AsyncReveRemix, RemixResult, ReveRemix
from reve_remix._client import DEFAULT_MODEL, USER_AGENT
from reve_remix._spec import spec
from reve_remix.testing import MockServer

API_KEY = "sk-bench-not-a-real-key"
BASE_URL = "https://api.bench.test"
PROMPT = "<img>0</img> as a watercolour"
IMAGE_URL = "https://example.com/cat.png"
CANNED = json.dumps(
    {
        "created": 1_700_000_000,
        "data": [{"url": "https://cdn.example.com/out.png", "revised_prompt": "a watercolour"}],
    }
).encode()
# What a real API sends back: the body type and a request id.
JSON_HEADERS = {"content-type": "application/json", "x-request-id": "req_bench"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MB = 10**6

# Keep httpx's optional command line (``httpx[cli]``: click, rich, pygments) out of both sides of
# the import comparison: it is loaded by ``import httpx`` only when those happen to be installed,
# and would add the same ~40 ms to both, flattering the ratio.
NO_HTTPX_CLI = "import sys; sys.modules['httpx._main'] = None; "
HEAVY_MODULES = ("PIL", "jsonschema", "reve_remix.testing", "reve_remix._cli")


@dataclass(frozen=True)
class Figure:
    """One measured figure, its target and whether the measurement meets it."""

    name: str
    measured: str
    target: str
    passed: bool | None  # None: shown for context, no target

    @property
    def mark(self) -> str:
        return {True: "PASS", False: "FAIL", None: "info"}[self.passed]


@dataclass(frozen=True)
class Sizes:
    """How much work each benchmark does; ``--quick`` shrinks the repetitions, not the targets."""

    rounds: int
    calls_per_round: int
    import_runs: int


FULL = Sizes(rounds=40, calls_per_round=500, import_runs=31)
QUICK = Sizes(rounds=8, calls_per_round=200, import_runs=15)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- per-call overhead -----------------------------------------------------------------------


def _canned(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=CANNED, headers=JSON_HEADERS)


def overhead_contenders() -> dict[str, Callable[[], object]]:
    """One call of each contender; each sends the same request and gets the same body back."""
    facade = ReveRemix(
        API_KEY, base_url=BASE_URL, http_client=httpx.Client(transport=httpx.MockTransport(_canned))
    )
    raw = httpx.Client(transport=httpx.MockTransport(_canned))
    body = {
        "model": DEFAULT_MODEL,
        "prompt": PROMPT,
        "image_urls": [IMAGE_URL],
        "n": 1,
        "output_format": "url",
    }
    # The floor sends what the facade sends: the same JSON and the same headers.
    headers = {"Authorization": f"Bearer {API_KEY}", "User-Agent": USER_AGENT}
    generated = AuthenticatedClient(
        base_url=BASE_URL,
        token=API_KEY,
        httpx_args={"transport": httpx.MockTransport(_canned)},
    )
    oai = openai.OpenAI(
        api_key=API_KEY,
        base_url=f"{BASE_URL}/v1",
        # The pinned OpenAI SDK (2.54, its last release on httpx) runs on the same transport.
        http_client=httpx.Client(transport=httpx.MockTransport(_canned)),
    )

    def generated_call() -> object:
        request = RemixRequest(
            model=DEFAULT_MODEL,
            prompt=PROMPT,
            image_urls=[IMAGE_URL],
            output_format=OutputFormat.URL,
        )
        return generated_remix.sync_detailed(client=generated, body=request).parsed

    return {
        "facade": lambda: facade.remix(PROMPT, [IMAGE_URL]),
        "httpx": lambda: raw.post(f"{BASE_URL}/v1/images/edits", json=body, headers=headers).json(),
        "generated": generated_call,
        "openai_typed": lambda: oai.post("/images/edits", body=body, cast_to=ImagesResponse),
        "openai_untyped": lambda: oai.post("/images/edits", body=body, cast_to=object),
    }


def median_call_times(
    contenders: dict[str, Callable[[], object]], rounds: int, calls: int
) -> dict[str, float]:
    """Median microseconds per call of each contender, over ``rounds`` interleaved rounds."""
    for call in contenders.values():  # warm up: first-call imports, caches, the allocator
        for _ in range(50):
            call()
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for round_number in range(rounds):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:  # rotate who goes first
            call = contenders[name]
            gc.collect()
            started = time.perf_counter()
            for _ in range(calls):
                call()
            samples[name].append((time.perf_counter() - started) / calls * 1e6)
    return {name: statistics.median(values) for name, values in samples.items()}


def bench_overhead(sizes: Sizes) -> list[Figure]:
    log(f"overhead: {sizes.rounds} rounds x {sizes.calls_per_round} calls per contender")
    us = median_call_times(overhead_contenders(), sizes.rounds, sizes.calls_per_round)
    facade, floor = us["facade"], us["httpx"]
    over_floor = facade / floor
    typed_ratio = us["openai_typed"] / facade
    return [
        Figure(
            "Per-call overhead: facade vs raw httpx (post + json)",
            f"{over_floor:.2f}x ({facade:.0f} us vs {floor:.0f} us)",
            "<= 1.20x",
            over_floor <= 1.20,
        ),
        Figure(
            "Per-call: OpenAI SDK post(cast_to=ImagesResponse) vs facade",
            f"{typed_ratio:.2f}x slower ({us['openai_typed']:.0f} us)",
            ">= 2.50x",
            typed_ratio >= 2.50,
        ),
        Figure(
            "Per-call: OpenAI SDK post(cast_to=object), untyped dict",
            f"{us['openai_untyped'] / facade:.2f}x the facade ({us['openai_untyped']:.0f} us; "
            f"{us['openai_untyped'] / floor:.2f}x raw httpx)",
            "-",
            None,
        ),
        Figure(
            "Per-call: bare generated client (sync_detailed)",
            f"{us['generated'] / facade:.2f}x the facade ({us['generated']:.0f} us)",
            "-",
            None,
        ),
    ]


# --- import cost -----------------------------------------------------------------------------


def wall_time_ms(statement: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", NO_HTTPX_CLI + statement], check=True)
    return (time.perf_counter() - started) * 1000


def bench_import(sizes: Sizes) -> list[Figure]:
    log(f"import: {sizes.import_runs} fresh processes per statement, interleaved")
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(sizes.import_runs):
        ours.append(wall_time_ms("import reve_remix"))
        theirs.append(wall_time_ms("import httpx"))
    ours_ms, theirs_ms = statistics.median(ours), statistics.median(theirs)
    probe = (
        f"import json, reve_remix; "
        f"print(json.dumps([m for m in {HEAVY_MODULES!r} if m in sys.modules]))"
    )
    loaded_text = subprocess.run(
        [sys.executable, "-c", NO_HTTPX_CLI + probe], check=True, capture_output=True, text=True
    ).stdout
    loaded = json.loads(loaded_text)
    return [
        Figure(
            "Import: `import reve_remix` vs `import httpx` (fresh process)",
            f"{ours_ms / theirs_ms:.2f}x ({ours_ms:.0f} ms vs {theirs_ms:.0f} ms)",
            "<= 1.50x",
            ours_ms / theirs_ms <= 1.50,
        ),
        Figure(
            "Import: heavy modules loaded by `import reve_remix`",
            ", ".join(loaded) or "none",
            f"none of {', '.join(HEAVY_MODULES)}",
            not loaded,
        ),
    ]


# --- loopback: connection reuse and fan-out --------------------------------------------------


def bench_connection_reuse(calls: int = 500) -> list[Figure]:
    log(f"connection reuse: {calls} sequential remixes over loopback")
    with MockServer() as server, ReveRemix(API_KEY, base_url=server.base_url) as client:
        started = time.perf_counter()
        for _ in range(calls):
            client.remix(PROMPT, [IMAGE_URL])
        elapsed = time.perf_counter() - started
        connections, requests = server.connections, len(server.requests)
    return [
        Figure(
            f"Connection reuse: TCP connections for {calls} sequential remixes",
            f"{connections} ({requests} requests, {elapsed / calls * 1000:.2f} ms each)",
            "exactly 1",
            connections == 1 and requests == calls,
        )
    ]


def _fan_out_jobs(count: int) -> list[dict[str, Any]]:
    return [{"prompt": f"{PROMPT}, study {n}", "images": [IMAGE_URL]} for n in range(count)]


def bench_fan_out(jobs: int = 64, concurrency: int = 8, latency: float = 0.2) -> list[Figure]:
    ideal = jobs / concurrency * latency
    log(f"fan-out: {jobs} jobs, concurrency {concurrency}, {latency * 1000:.0f} ms per request")
    figures = []
    with MockServer(latency=latency) as server:
        with ReveRemix(API_KEY, base_url=server.base_url) as client:
            started = time.perf_counter()
            outcomes = client.remix_many(_fan_out_jobs(jobs), concurrency=concurrency)
            sync_elapsed = time.perf_counter() - started
        figures.append(_fan_out_figure("ReveRemix", sync_elapsed, ideal, outcomes))

        async def run_async() -> tuple[float, list[object]]:
            async with AsyncReveRemix(API_KEY, base_url=server.base_url) as aclient:
                started = time.perf_counter()
                outcomes = await aclient.remix_many(_fan_out_jobs(jobs), concurrency=concurrency)
                return time.perf_counter() - started, list(outcomes)

        async_elapsed, async_outcomes = asyncio.run(run_async())
        figures.append(_fan_out_figure("AsyncReveRemix", async_elapsed, ideal, async_outcomes))
    return figures


def _fan_out_figure(client_name: str, elapsed: float, ideal: float, outcomes: list[Any]) -> Figure:
    failed = sum(1 for outcome in outcomes if not isinstance(outcome, RemixResult))
    ratio = elapsed / ideal
    suffix = f"; {failed} jobs failed" if failed else ""
    return Figure(
        f"Fan-out: 64 jobs, concurrency 8, 200 ms each ({client_name}.remix_many)",
        f"{ratio:.3f}x ideal ({elapsed:.3f} s vs {ideal:.1f} s){suffix}",
        "<= 1.10x",
        ratio <= 1.10 and not failed,
    )


# --- memory ----------------------------------------------------------------------------------


def peak_extra_bytes(action: Callable[[], object]) -> int:
    """The most memory ``action`` held at once beyond what was allocated before it ran."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        action()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def bench_upload_memory(folder: Path) -> list[Figure]:
    size = spec().max_image_bytes - 1  # the largest image the API accepts
    log(f"memory: a remix with four {size:,}-byte local images")
    paths = []
    for n in range(4):
        path = folder / f"upload-{n}.png"
        # Random bytes after a PNG signature: accepted (only the header is sniffed), and
        # incompressible, so nothing along the way can make the figure look better than it is.
        path.write_bytes(PNG_SIGNATURE + os.urandom(size - len(PNG_SIGNATURE)))
        paths.append(path)
    total = size * 4
    # The transport answers and lets the request go: nothing but the client holds the body.
    http = httpx.Client(transport=httpx.MockTransport(_canned))
    with ReveRemix(API_KEY, base_url=BASE_URL, http_client=http) as client:
        prompt = "Blend " + ", ".join(f"<img>{n}</img>" for n in range(4))
        client.remix(prompt, paths)  # warm up imports and caches outside the measurement
        peak = peak_extra_bytes(lambda: client.remix(prompt, paths))
    return [
        Figure(
            "Memory: peak extra for a remix with four 1.5 MB local images",
            f"{peak / total:.2f}x their size ({peak / MB:.1f} MB for {total / MB:.1f} MB)",
            "<= 4.00x",
            peak <= 4 * total,
        )
    ]


def bench_save_memory(folder: Path, image_bytes: int = 6 * MB) -> list[Figure]:
    log(f"memory: saving a {image_bytes / MB:.0f} MB image returned as b64_json")
    image = PNG_SIGNATURE + os.urandom(image_bytes - len(PNG_SIGNATURE))
    body = json.dumps(
        {"created": 1_700_000_000, "data": [{"b64_json": base64.b64encode(image).decode()}]}
    ).encode()
    del image

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers=JSON_HEADERS)

    http = httpx.Client(transport=httpx.MockTransport(answer))
    target = folder / "saved.png"
    with ReveRemix(API_KEY, base_url=BASE_URL, http_client=http) as client:
        result = client.remix(PROMPT, [IMAGE_URL], output_format="b64_json")
        result.save(target)  # warm up
        peak = peak_extra_bytes(lambda: result.save(target))
    saved = target.stat().st_size
    return [
        Figure(
            "Memory: peak extra while saving a 6 MB b64_json result",
            f"{peak / saved:.2f}x the image ({peak / MB:.1f} MB for {saved / MB:.1f} MB)",
            "<= 2.00x",
            peak <= 2 * saved and saved == image_bytes,
        )
    ]


# --- report ----------------------------------------------------------------------------------


def table(figures: list[Figure]) -> str:
    lines = ["| Figure | Measured | Target | Result |", "| --- | --- | --- | --- |"]
    lines += [f"| {f.name} | {f.measured} | {f.target} | {f.mark} |" for f in figures]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, for CI")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    started = time.perf_counter()
    figures = bench_overhead(sizes) + bench_import(sizes)
    figures += bench_connection_reuse() + bench_fan_out()
    with tempfile.TemporaryDirectory(prefix="reve-remix-bench-") as folder:
        figures += bench_upload_memory(Path(folder)) + bench_save_memory(Path(folder))
    print(table(figures))
    missed = [figure.name for figure in figures if figure.passed is False]
    mode = "quick" if args.quick else "full"
    print(
        f"\n{len(figures) - len(missed)} of {len(figures)} figures within target or informational "
        f"({mode} run, {time.perf_counter() - started:.0f} s, Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs)."
    )
    if missed:
        print("Missed: " + "; ".join(missed))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
