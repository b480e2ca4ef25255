"""Rows per second for one process, Ray Data and Spark on the same jobs, side by side.

Every row is a POST and a result download against the offline mock (``--latency`` seconds each),
through a fresh paid store, with the same number of rows in flight everywhere (2 x 8 by default):
one process (``remix_rows``, 16 threads), Ray (``remix_dataset``, 2 actors x 8) and Spark
(``remix_partitions`` on ``local[2,2]``, 2 partitions x 8). The engines' start-up (``ray.init``,
the Spark session) is timed apart from the run.

Two more rows measure what a worker should run inside: the sync client on 8 threads against the
async client with 8 tasks (a POST and a download per row, no store), with the CPU time this
process spent per row (the mock's share included, the same for both).

Needs the engine extras: ``pip install -e '.[dev,ray,spark]'``; then
``python scripts/bench_engines.py`` (``--rows 1000 --latency 0.2`` by default).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from reve_remix import AsyncReveRemix, ReveRemix, remix_rows

# Both engines otherwise pick the machine's outward-facing address for their own traffic.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # Ray's single-node mode: loopback
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
from reve_remix.testing import MockServer

API_KEY = "sk-bench"
ACTORS = 2
PER_WORKER = 8
IMAGE = "https://example.com/cat.png"


def jobs(count: int) -> list[dict[str, object]]:
    return [
        {"id": f"job-{i:05d}", "prompt": f"<img>0</img> variation {i}", "images": [IMAGE]}
        for i in range(count)
    ]


def one_process(rows: list[dict[str, object]], store: Path, base_url: str) -> list[str]:
    outcomes = remix_rows(
        rows, store=store, concurrency=ACTORS * PER_WORKER, api_key=API_KEY, base_url=base_url
    )
    return [outcome.status for outcome in outcomes]


def worker_threads(rows: list[dict[str, object]], store: Path, base_url: str) -> list[str]:
    with (
        ReveRemix(API_KEY, base_url=base_url) as client,
        ThreadPoolExecutor(PER_WORKER) as pool,
    ):
        images = list(pool.map(lambda row: client.remix(row["prompt"], row["images"]).read(), rows))
    return ["done" for _ in images]


def worker_async(rows: list[dict[str, object]], store: Path, base_url: str) -> list[str]:
    async def run() -> list[bytes]:
        slots = asyncio.Semaphore(PER_WORKER)
        async with AsyncReveRemix(API_KEY, base_url=base_url) as client:

            async def one(row: dict[str, object]) -> bytes:
                async with slots:
                    result = await client.remix(row["prompt"], row["images"])
                    return await result.aread()

            return await asyncio.gather(*(one(row) for row in rows))

    return ["done" for _ in asyncio.run(run())]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def ray_setup() -> Callable[[list[dict[str, object]], Path, str], list[str]]:
    import ray
    import ray.data

    from reve_remix.ray import remix_dataset

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    ray.data.DataContext.get_current().enable_progress_bars = False

    def run(rows: list[dict[str, object]], store: Path, base_url: str) -> list[str]:
        ds = ray.data.from_items(rows, override_num_blocks=ACTORS * 4)
        out = remix_dataset(
            ds,
            store=store,
            actors=ACTORS,
            concurrency_per_actor=PER_WORKER,
            api_key=API_KEY,
            base_url=base_url,
        )
        return [row["status"] for row in out.take_all()]

    return run


def spark_setup() -> Callable[[list[dict[str, object]], Path, str], list[str]]:
    from pyspark.sql import SparkSession

    from reve_remix.spark import OUTCOME_SCHEMA, remix_partitions

    os.environ["PYSPARK_PYTHON"] = sys.executable
    spark = (
        SparkSession.builder.master("local[2,2]")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")

    def run(rows: list[dict[str, object]], store: Path, base_url: str) -> list[str]:
        df = spark.createDataFrame(
            [(row["id"], row["prompt"], row["images"]) for row in rows],
            "id string, prompt string, images array<string>",
        ).repartition(ACTORS)
        remix = remix_partitions(
            store=store, concurrency=PER_WORKER, api_key=API_KEY, base_url=base_url
        )
        return [row["status"] for row in df.mapInPandas(remix, schema=OUTCOME_SCHEMA).collect()]

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.2, help="mock seconds per request")
    engines: dict[str, Callable[[], Callable[[list[dict[str, object]], Path, str], list[str]]]]
    engines = {
        "process": lambda: one_process,
        "ray": ray_setup,
        "spark": spark_setup,
        "threads": lambda: worker_threads,
        "async": lambda: worker_async,
    }
    parser.add_argument("--only", choices=list(engines), action="append")
    args = parser.parse_args()
    rows = jobs(args.rows)
    print(f"{args.rows} rows, mock latency {args.latency} s, {ACTORS} x {PER_WORKER} in flight")
    with MockServer(latency=args.latency) as server, tempfile.TemporaryDirectory() as scratch:
        for name, setup in engines.items():
            if args.only and name not in args.only:
                continue
            started = time.perf_counter()
            run = setup()
            ready = time.perf_counter()
            before, cpu = len(server.requests), cpu_seconds()
            statuses = run(rows, Path(scratch) / name, server.base_url)
            seconds = time.perf_counter() - ready
            cpu_ms = 1000 * (cpu_seconds() - cpu) / args.rows
            posts = sum(1 for r in server.requests[before:] if r.method == "POST")
            counts = dict(collections.Counter(statuses))
            print(
                f"{name:>8}: {args.rows / seconds:6.1f} rows/s  ({seconds:.1f} s; start-up "
                f"{ready - started:.1f} s; {posts} generations; {counts}; "
                f"{cpu_ms:.1f} ms CPU per row in this process)"
            )


if __name__ == "__main__":
    main()
