"""Measure the SDK's speed, overhead and memory figures, each against its target.

Every figure is measured in this one run, side by side with what it is compared to, and printed
as a Markdown table. The exit status is 1 if any target is missed; ``docs/performance.md``
records the figures and explains each one.

Usage::

    python scripts/bench.py            # the full run: a few minutes
    python scripts/bench.py --quick    # fewer repetitions and settings
    python scripts/bench.py --only concurrency --only rate

What is measured:

- overhead: median microseconds of CPU per call, in process, every contender answered by an
  ``httpx.MockTransport`` with the same canned body, so no network hides the client's own cost.
  The contenders run interleaved, in rounds, so that drift (CPU frequency, other load) hits all
  of them alike;
- import: ``python -c "import reve_remix"`` against ``python -c "import httpx"``, fresh processes,
  interleaved, median wall time; and the heavy modules that ``import reve_remix`` must not load;
- connection reuse: sequential remixes over real loopback HTTP to the mock server, counting the
  TCP connections it accepted;
- fan-out: ``remix_many`` against the mock server with a fixed latency per request;
- memory: ``tracemalloc`` peaks while sending four local images and while saving a large
  base64 result;
- batch scale, against ``scripts/bench_server.py`` in its own process: requests in flight, TCP
  connections and time at concurrency 64/128/256 (async) and 64 (threads); the peak RSS of
  batches of four-image jobs in fresh processes; throughput under a server's rate limit (100/s
  async, and 20/s on threads);
- one large remix's CPU against the floor (read, base64, one send), and reading back a
  100,000-line ``batch`` manifest.

``--only GROUP`` (repeatable) runs some groups; ``docs/performance.md`` explains each figure.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import importlib.util
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from reve_remix import AsyncReveRemix, RemixResult, ReveRemix
from reve_remix._client import DEFAULT_MODEL, USER_AGENT
from reve_remix._images import data_url
from reve_remix._ledger import JobRecord
from reve_remix._lifecycle import JobState
from reve_remix._manifest import Manifest
from reve_remix._request import encode_body
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
    import openai
    from openai.types import ImagesResponse
    from reve_remix_api import AuthenticatedClient
    from reve_remix_api.api.reve_remix import remix as generated_remix
    from reve_remix_api.models import OutputFormat, RemixRequest

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
        "httpx": lambda: raw.post(f"{BASE_URL}{spec().path}", json=body, headers=headers).json(),
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
            # This thread's CPU time: every contender runs in it (a MockTransport, no socket),
            # so the figure is the calls' own cost, which other processes cannot inflate.
            started = time.thread_time()
            for _ in range(calls):
                call()
            samples[name].append((time.thread_time() - started) / calls * 1e6)
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


def wall_time_ms(statement: str, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", NO_HTTPX_CLI + statement], check=True, env=env)
    return (time.perf_counter() - started) * 1000


def bytecode_env(prefix: str) -> dict[str, str]:
    """An environment in which both packages import from bytecode, as installed packages do.

    pip compiles a package's bytecode when it installs it, but an editable install (this
    checkout) has none, and under ``PYTHONDONTWRITEBYTECODE`` (set on some machines, this one
    included) it never gets any: ``reve_remix`` would be compiled from source in every process
    while httpx is not. A cache folder of this run's own holds both packages' bytecode.
    """
    env = {**os.environ, "PYTHONPYCACHEPREFIX": prefix}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def bench_import(sizes: Sizes) -> list[Figure]:
    log(f"import: {sizes.import_runs} fresh processes per statement, interleaved, from bytecode")
    ours: list[float] = []
    theirs: list[float] = []
    with tempfile.TemporaryDirectory() as prefix:
        env = bytecode_env(prefix)
        for statement in ("import reve_remix", "import httpx"):  # write the bytecode
            wall_time_ms(statement, env)
        for _ in range(sizes.import_runs):
            ours.append(wall_time_ms("import reve_remix", env))
            theirs.append(wall_time_ms("import httpx", env))
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
    # The server runs in its own process, as for the batch figures: in this one, its work for
    # each request (parsing, checking against the spec) would be timed as the client's.
    with Loopback(latency=latency) as server:
        warm_up_imports(server.base_url)
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


def warm_up_imports(base_url: str) -> None:
    """One batch of each client, on clients of its own, before any timing.

    What a client imports at first use (the generated models, the batch machinery, anyio under
    httpx's async transport; compiled from source where ``PYTHONDONTWRITEBYTECODE`` is set) is
    paid once per process, 50-70 ms here, and is not fan-out. The timed clients still open their
    own connections.
    """
    job = _fan_out_jobs(1)
    with ReveRemix(API_KEY, base_url=base_url) as client:
        _require_results(client.remix_many(job))

    async def run_async() -> None:
        async with AsyncReveRemix(API_KEY, base_url=base_url) as aclient:
            _require_results(await aclient.remix_many(job))

    asyncio.run(run_async())


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
    paths = write_images(folder)
    total = sum(path.stat().st_size for path in paths)
    log(f"memory: a remix with four {total // 4:,}-byte local images")
    # Sent over loopback HTTP, as a remix is, to the server in its own process, whose memory is
    # not traced. Not through httpx.MockTransport: it reads a streamed body into one bytes (a
    # list of its pieces, then their join), which no real transport does.
    with Loopback() as server, ReveRemix(API_KEY, base_url=server.base_url) as client:
        prompt = "Blend " + ", ".join(f"<img>{n}</img>" for n in range(4))
        client.remix(prompt, paths)  # warm up imports, caches and the connection
        peak = peak_extra_bytes(lambda: client.remix(prompt, paths))
    return [
        Figure(
            "Memory: peak extra for a remix with four 1.5 MB local images",
            f"{peak / total:.2f}x their size ({peak / MB:.1f} MB for {total / MB:.1f} MB)",
            "<= 2.00x",
            peak <= 2 * total,
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


# --- batch scale: a loopback server in its own process -------------------------------------------


class Loopback:
    """``scripts/bench_server.py`` in a subprocess: connections, requests in flight, 429s."""

    def __init__(self, latency: float = 0.0, rate: float | None = None) -> None:
        self.args = [sys.executable, str(Path(__file__).with_name("bench_server.py"))]
        self.args += ["--latency", str(latency)] + (["--rate", str(rate)] if rate else [])

    def __enter__(self) -> Loopback:
        self.process = subprocess.Popen(self.args, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.base_url = f"http://127.0.0.1:{int(self.process.stdout.readline())}"
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.process.terminate()
        self.process.wait()

    def reset(self) -> None:
        httpx.post(f"{self.base_url}/reset")

    def stats(self) -> dict[str, float]:
        result: dict[str, float] = httpx.get(f"{self.base_url}/stats").json()
        return result


@dataclass(frozen=True)
class Run:
    """One contender's batch against the loopback server."""

    wall: float
    cpu_ms: float  # this process's CPU per job
    peak: int  # requests in flight at once, seen by the server
    connections: int
    answered: int
    refused: int
    span: float  # seconds from the first admitted request to the last answer

    def describe(self, ideal: float) -> str:
        return (
            f"{self.peak} in flight, {self.connections} connections, "
            f"{self.wall / ideal:.2f}x ideal, {self.cpu_ms:.1f} ms CPU/job"
        )


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure_run(server: Loopback, jobs: int, batch: Callable[[], object]) -> Run:
    server.reset()
    gc.collect()
    started, cpu = time.perf_counter(), cpu_seconds()
    batch()
    wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    stats = server.stats()
    return Run(
        wall,
        cpu / jobs * 1000,
        int(stats["peak_in_flight"]),
        int(stats["connections"]),
        int(stats["answered"]),
        int(stats["refused"]),
        stats["span"],
    )


REQUEST_BODY = {
    "model": DEFAULT_MODEL,
    "prompt": PROMPT,
    "image_urls": [IMAGE_URL],
    "output_format": "url",
}


async def gathered(send: Callable[[], Awaitable[object]], jobs: int, concurrency: int) -> None:
    """What a caller writes by hand: a semaphore and ``asyncio.gather``."""
    semaphore = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with semaphore:
            await send()

    await asyncio.gather(*(one() for _ in range(jobs)))


def async_contenders(
    base_url: str, jobs: int, concurrency: int
) -> dict[str, Callable[[], Awaitable[object]]]:
    """One batch of each async contender: the facade, raw httpx, the OpenAI SDK (and aiohttp)."""
    import openai  # imported where used: the memory figure's processes must not load it

    async def facade(http_client: httpx.AsyncClient | None = None) -> None:
        async with AsyncReveRemix(API_KEY, base_url=base_url, http_client=http_client) as client:
            outcomes = await client.remix_many(_fan_out_jobs(jobs), concurrency=concurrency)
            _require_results(outcomes)
        if http_client is not None:
            await http_client.aclose()  # injected: the facade leaves it open

    async def raw() -> None:
        async with httpx.AsyncClient(timeout=180) as http:

            async def send() -> object:
                response = await http.post(f"{base_url}{spec().path}", json=REQUEST_BODY)
                return response.raise_for_status().json()

            await gathered(send, jobs, concurrency)

    async def oai() -> None:
        async with openai.AsyncOpenAI(api_key=API_KEY, base_url=f"{base_url}/v1") as client:
            await gathered(
                lambda: client.post("/images/edits", body=REQUEST_BODY, cast_to=object),
                jobs,
                concurrency,
            )

    contenders: dict[str, Callable[[], Awaitable[object]]] = {
        "facade": facade,
        "httpx": raw,
        "openai": oai,
    }
    if importlib.util.find_spec("httpx_aiohttp") is not None:
        from httpx_aiohttp import HttpxAiohttpClient

        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        contenders["facade+aiohttp"] = lambda: facade(HttpxAiohttpClient(limits=limits))
    return contenders


def _require_results(outcomes: Iterable[object]) -> None:
    failed = [outcome for outcome in outcomes if not isinstance(outcome, RemixResult)]
    if failed:
        raise RuntimeError(f"{len(failed)} jobs failed, the first with {failed[0]!r}")


def bench_concurrency(settings: list[tuple[int, float]], jobs: int = 600) -> list[Figure]:
    """``concurrency`` jobs in flight over reused connections, beside httpx and OpenAI."""
    figures = []
    for concurrency, latency in settings:
        ideal = math.ceil(jobs / concurrency) * latency
        log(f"concurrency: {jobs} jobs, concurrency {concurrency}, {latency} s per request")
        with Loopback(latency) as server:
            runs = {
                name: measure_run(server, jobs, lambda batch=batch: asyncio.run(batch()))
                for name, batch in async_contenders(server.base_url, jobs, concurrency).items()
            }
        figures.append(_served_figure("AsyncReveRemix", concurrency, latency, runs, ideal))
    return figures


def bench_sync_concurrency(jobs: int = 600, concurrency: int = 64, latency: float = 0.5) -> Figure:
    """The sync client's thread pool at the same figures, beside httpx and OpenAI on threads."""
    import openai  # imported where used: the memory figure's processes must not load it

    ideal = math.ceil(jobs / concurrency) * latency
    log(f"concurrency (sync): {jobs} jobs, concurrency {concurrency}, {latency} s per request")

    def threaded(send: Callable[[], object]) -> None:
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(lambda _: send(), range(jobs)))

    with Loopback(latency) as server:
        url = f"{server.base_url}{spec().path}"

        def facade() -> None:
            with ReveRemix(API_KEY, base_url=server.base_url) as client:
                _require_results(client.remix_many(_fan_out_jobs(jobs), concurrency=concurrency))

        def raw() -> None:
            with httpx.Client(timeout=180) as http:
                threaded(lambda: http.post(url, json=REQUEST_BODY).raise_for_status().json())

        def oai() -> None:
            with openai.OpenAI(api_key=API_KEY, base_url=f"{server.base_url}/v1") as client:
                threaded(lambda: client.post("/images/edits", body=REQUEST_BODY, cast_to=object))

        runs = {
            name: measure_run(server, jobs, batch)
            for name, batch in {"facade": facade, "httpx": raw, "openai": oai}.items()
        }
    return _served_figure("ReveRemix", concurrency, latency, runs, ideal)


def _served_figure(
    client: str, concurrency: int, latency: float, runs: dict[str, Run], ideal: float
) -> Figure:
    ours = runs["facade"]
    others = "; ".join(
        f"{name}: {run.describe(ideal)}" for name, run in runs.items() if name != "facade"
    )
    return Figure(
        f"Concurrency {concurrency}, {latency:g} s latency, 600 jobs ({client}.remix_many)",
        f"{ours.describe(ideal)} (ideal {ideal:.1f} s) | {others}",
        f">= {math.ceil(0.9 * concurrency)} in flight, <= {int(1.25 * concurrency)} "
        "connections, <= 1.30x ideal",
        ours.peak >= 0.9 * concurrency
        and ours.connections <= 1.25 * concurrency
        and ours.wall <= 1.3 * ideal,
    )


# --- batch scale: memory follows concurrency ---------------------------------------------------

MEMORY_KINDS = ("iter_remix", "remix_many", "httpx", "openai")


def write_images(folder: Path, count: int = 4) -> list[Path]:
    """``count`` of the largest local images the API accepts, incompressible."""
    size = spec().max_image_bytes - 1
    paths = []
    for n in range(count):
        path = folder / f"upload-{n}.png"
        # Random bytes after a PNG signature: accepted (only the header is sniffed), and
        # incompressible, so nothing along the way can make the figure look better than it is.
        path.write_bytes(PNG_SIGNATURE + os.urandom(size - len(PNG_SIGNATURE)))
        paths.append(path)
    return paths


def memory_child(kind: str, jobs: int, base_url: str, folder: str) -> None:
    """Run one batch of ``kind`` in this (fresh) process; print its peak RSS in bytes."""
    paths = sorted(Path(folder).glob("upload-*.png"))
    prompt = "Blend " + ", ".join(f"<img>{n}</img>" for n in range(len(paths)))
    batch = [{"prompt": f"{prompt}, study {n}", "images": paths} for n in range(jobs)]

    def inline(path: Path) -> str:
        return f"data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}"

    def body() -> dict[str, object]:
        return {**REQUEST_BODY, "prompt": prompt, "image_urls": [inline(path) for path in paths]}

    async def run() -> None:
        if kind in ("iter_remix", "remix_many"):
            async with AsyncReveRemix(API_KEY, base_url=base_url) as client:
                if kind == "iter_remix":
                    async for _job, outcome in client.iter_remix(batch, concurrency=8):
                        _require_results([outcome])
                else:
                    _require_results(await client.remix_many(batch, concurrency=8))
        elif kind == "httpx":
            async with httpx.AsyncClient(timeout=180) as http:

                async def send() -> object:
                    response = await http.post(f"{base_url}{spec().path}", json=body())
                    return response.raise_for_status().json()

                await gathered(send, jobs, 8)
        else:
            import openai  # only here: the other contenders' peak must not include it

            async with openai.AsyncOpenAI(api_key=API_KEY, base_url=f"{base_url}/v1") as client:
                await gathered(
                    lambda: client.post("/images/edits", body=body(), cast_to=object), jobs, 8
                )

    asyncio.run(run())
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def peak_rss(kind: str, jobs: int, base_url: str, folder: Path) -> int:
    command = [sys.executable, __file__, "--memory-child", kind, str(jobs), base_url, str(folder)]
    return int(subprocess.run(command, check=True, capture_output=True, text=True).stdout)


def bench_batch_memory(folder: Path, small: int, large: int) -> list[Figure]:
    """Peak RSS of a batch of four-image jobs at concurrency 8, in fresh processes."""
    log(f"memory: batches of {small} and {large} jobs x four 1.5 MB images, concurrency 8")
    paths = write_images(folder)
    body_bytes = len(encode_body({}, [data_url(p.read_bytes(), "image/png") for p in paths]))
    with Loopback() as server:
        rss = {
            (kind, jobs): peak_rss(kind, jobs, server.base_url, folder)
            for kind in MEMORY_KINDS
            for jobs in ((small, large) if kind == "iter_remix" else (large,))
        }
    target = 2 * 8 * body_bytes + 100 * MB
    ours_small, ours_large = rss["iter_remix", small], rss["iter_remix", large]
    others = ", ".join(f"{kind} {rss[kind, large] / MB:.0f} MB" for kind in MEMORY_KINDS[1:])
    return [
        Figure(
            f"Memory: {large} jobs x four 1.5 MB images, concurrency 8 (AsyncReveRemix.iter_remix)",
            f"peak RSS {ours_large / MB:.0f} MB ({small} jobs: {ours_small / MB:.0f} MB) | "
            f"{large} jobs with {others}",
            f"<= {target / MB:.0f} MB (2 x 8 x body + 100 MB); no growth with jobs (<= +10%)",
            ours_large <= target and ours_large <= 1.1 * ours_small,
        )
    ]


# --- batch scale: throughput under a rate limit ------------------------------------------------


RATE_LATENCY = 0.2  # seconds the loopback server takes to answer an admitted request


def bench_rate_limit(rate: float = 100, jobs: int = 600, concurrency: int = 64) -> Figure:
    """A server admitting ``rate`` requests/s; the rest get 429 + Retry-After."""
    import openai  # imported where used: the memory figure's processes must not load it

    log(f"rate limit: {jobs} jobs, concurrency {concurrency}, server admits {rate:g}/s")
    with Loopback(RATE_LATENCY, rate) as server:
        url = f"{server.base_url}{spec().path}"

        async def facade() -> None:
            async with AsyncReveRemix(API_KEY, base_url=server.base_url) as client:
                await client.remix_many(_fan_out_jobs(jobs), concurrency=concurrency)

        async def raw() -> None:  # the hand-written loop: sleep what Retry-After says, again
            async with httpx.AsyncClient(timeout=180) as http:

                async def send() -> None:
                    while (response := await http.post(url, json=REQUEST_BODY)).status_code == 429:
                        await asyncio.sleep(float(response.headers["retry-after"]))

                await gathered(send, jobs, concurrency)

        async def oai() -> None:
            async with openai.AsyncOpenAI(
                api_key=API_KEY, base_url=f"{server.base_url}/v1"
            ) as client:

                async def send() -> None:
                    with contextlib.suppress(openai.RateLimitError):
                        await client.post("/images/edits", body=REQUEST_BODY, cast_to=object)

                await gathered(send, jobs, concurrency)

        runs = {
            name: measure_run(server, jobs, lambda batch=batch: asyncio.run(batch()))
            for name, batch in {"facade": facade, "httpx": raw, "openai": oai}.items()
        }
    ours = runs.pop("facade")
    others = "; ".join(f"{name}: {_describe_rate(run, rate, jobs)}" for name, run in runs.items())
    return _rate_figure("AsyncReveRemix.remix_many", rate, jobs, concurrency, ours, others)


def bench_sync_rate_limit(rate: float = 20, jobs: int = 600, concurrency: int = 64) -> Figure:
    """The same at another rate, on the sync client's threads: the pace is not tuned to one."""
    log(f"rate limit (sync): {jobs} jobs, concurrency {concurrency}, server admits {rate:g}/s")
    with Loopback(RATE_LATENCY, rate) as server:

        def facade() -> None:
            with ReveRemix(API_KEY, base_url=server.base_url) as client:
                client.remix_many(_fan_out_jobs(jobs), concurrency=concurrency)

        run = measure_run(server, jobs, facade)
    return _rate_figure("ReveRemix.remix_many, threads", rate, jobs, concurrency, run, "")


def _rate_reached(run: Run, rate: float) -> float:
    """The share of ``rate`` a batch reached: the server's bucket starts full (one second's
    worth), so the rate is what was admitted after it, over the time after its first second."""
    return (run.answered - rate) / (run.wall - RATE_LATENCY) / rate


def _describe_rate(run: Run, rate: float, jobs: int) -> str:
    refused = run.refused / max(1, run.answered + run.refused)
    return (
        f"{_rate_reached(run, rate):.0%} of the rate ({run.answered} of {jobs} done, "
        f"{refused:.0%} of requests refused)"
    )


def _rate_figure(
    client_name: str, rate: float, jobs: int, concurrency: int, ours: Run, others: str
) -> Figure:
    return Figure(
        f"Rate limit: {jobs} jobs, concurrency {concurrency}, server admits {rate:g}/s "
        f"({client_name})",
        _describe_rate(ours, rate, jobs) + (f" | {others}" if others else ""),
        ">= 90% of the rate, <= 10% refused, every job done",
        ours.answered == jobs
        and _rate_reached(ours, rate) >= 0.9
        and ours.refused <= 0.1 * (ours.answered + ours.refused),
    )


# --- batch scale: a large remix, a long manifest -----------------------------------------------


def bench_upload_cpu(folder: Path, sizes: Sizes) -> list[Figure]:
    """CPU of one remix with four 1.5 MB local images, against the floor and the OpenAI SDK."""
    import openai  # imported where used: the memory figure's processes must not load it

    log("upload CPU: a remix with four 1.5 MB local images")
    paths = write_images(folder)
    prompt = "Blend " + ", ".join(f"<img>{n}</img>" for n in range(4))
    transport = httpx.MockTransport(_canned)
    client = ReveRemix(API_KEY, base_url=BASE_URL, http_client=httpx.Client(transport=transport))
    raw = httpx.Client(transport=transport)
    oai = openai.OpenAI(api_key=API_KEY, base_url=f"{BASE_URL}/v1", http_client=raw)
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}

    def floor() -> object:  # read, one base64 pass, one join, one send
        inline = [b"data:image/png;base64," + base64.b64encode(p.read_bytes()) for p in paths]
        body = b'{"image_urls":["' + b'","'.join(inline) + b'"]}'
        return raw.post(f"{BASE_URL}{spec().path}", content=body, headers=headers).json()

    def openai_call() -> object:
        urls = [f"data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}" for p in paths]
        body = {**REQUEST_BODY, "prompt": prompt, "image_urls": urls}
        return oai.post("/images/edits", body=body, cast_to=object)

    contenders = {
        "facade": lambda: client.remix(prompt, paths),
        "floor": floor,
        "openai": openai_call,
    }
    ms = median_cpu_times(contenders, rounds=max(5, sizes.rounds // 2), calls=5)
    ratio = ms["facade"] / ms["floor"]
    return [
        Figure(
            "CPU: a remix with four 1.5 MB local images vs the floor (read, base64, one send)",
            f"{ratio:.2f}x ({ms['facade']:.1f} ms vs {ms['floor']:.1f} ms) | "
            f"OpenAI SDK post with data: URLs {ms['openai']:.1f} ms",
            "<= 1.50x",
            ratio <= 1.5,
        )
    ]


def median_cpu_times(
    contenders: dict[str, Callable[[], object]], rounds: int, calls: int
) -> dict[str, float]:
    """Median CPU milliseconds per call of each contender, over interleaved rounds."""
    for call in contenders.values():
        call()
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, call in contenders.items():
            gc.collect()
            started = time.process_time()
            for _ in range(calls):
                call()
            samples[name].append((time.process_time() - started) / calls * 1000)
    return {name: statistics.median(values) for name, values in samples.items()}


def bench_manifest_resume(folder: Path, lines: int = 100_000) -> list[Figure]:
    """Reading back a long ``batch`` manifest, against parsing its lines with ``json`` alone."""
    log(f"manifest: resuming from {lines:,} lines")
    manifest = Manifest(folder / "resume")
    manifest.path.parent.mkdir()
    records = (
        JobRecord(
            id=f"job-{n:06d}",
            status=JobState.DONE,
            file=f"a-watercolour-study-{n:06d}.png",
            request_id=f"req_{n:032x}",
            revised_prompt="A watercolour study of the image, soft light",
            line=n + 1,
        ).to_json()
        for n in range(lines)
    )
    manifest.path.write_text("\n".join(records) + "\n", encoding="utf-8")
    started = time.perf_counter()
    with manifest:
        manifest.open()  # locks the folder, reads the latest record of every job
        latest = manifest.records
    ours = time.perf_counter() - started
    started = time.perf_counter()
    text = manifest.path.read_text(encoding="utf-8")
    floor = [json.loads(line) for line in text.split("\n") if line]
    floor_s = time.perf_counter() - started
    return [
        Figure(
            f"Resume: `Manifest(out).open()` on a {lines:,}-line manifest",
            f"{ours:.2f} s ({ours / floor_s:.1f}x `json.loads` of every line, {floor_s:.2f} s)",
            "< 3 s",
            ours < 3 and len(latest) == lines == len(floor),
        )
    ]


# --- report ----------------------------------------------------------------------------------


def table(figures: list[Figure]) -> str:
    lines = ["| Figure | Measured | Target | Result |", "| --- | --- | --- | --- |"]
    lines += [f"| {f.name} | {f.measured} | {f.target} | {f.mark} |" for f in figures]
    return "\n".join(lines)


GROUPS = ("overhead", "import", "loopback", "concurrency", "memory", "rate", "upload", "resume")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, for CI")
    parser.add_argument("--only", choices=GROUPS, action="append", help="run only these groups")
    parser.add_argument("--memory-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        kind, jobs, base_url, folder = args.memory_child
        memory_child(kind, int(jobs), base_url, folder)
        return 0
    sizes = QUICK if args.quick else FULL
    groups = set(args.only or GROUPS)
    started = time.perf_counter()
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="reve-remix-bench-") as name:
        folder = Path(name)
        if "overhead" in groups:
            figures += bench_overhead(sizes)
        if "import" in groups:
            figures += bench_import(sizes)
        if "loopback" in groups:
            figures += bench_connection_reuse() + bench_fan_out()
        if "concurrency" in groups:
            settings = [(64, 0.5)] if args.quick else [(64, 0.5), (128, 1.0), (256, 2.0)]
            figures += [*bench_concurrency(settings), bench_sync_concurrency()]
        if "memory" in groups:
            figures += bench_upload_memory(folder) + bench_save_memory(folder)
            figures += bench_batch_memory(folder, *((20, 100) if args.quick else (100, 500)))
        if "rate" in groups:
            figures.append(bench_rate_limit())
            if not args.quick:
                figures.append(bench_sync_rate_limit())
        if "upload" in groups:
            figures += bench_upload_cpu(folder, sizes)
        if "resume" in groups:
            figures += bench_manifest_resume(folder)
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
