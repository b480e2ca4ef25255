"""Spark: a Python worker SIGKILLed mid-task costs at most its in-flight rows, reported ambiguous,
when the task is retried (``local[2,2]``). Run by .ci/run with the spark extra installed."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession

from reve_remix import ValidationError
from reve_remix.spark import OUTCOME_SCHEMA, remix_partitions
from reve_remix.testing import MockServer
from tests.conftest import API_KEY
from tests.engines.crash import Killer, assert_paid_once, unique_rows

CONCURRENCY = 8


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    os.environ["PYSPARK_PYTHON"] = sys.executable
    session = (
        SparkSession.builder.master("local[2,2]")  # two cores, a failed task is tried twice
        .appName("reve-remix-engine-test")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def frame(spark: SparkSession, rows: list[dict]) -> DataFrame:
    """``rows`` as a DataFrame of four partitions (two run at once on ``local[2,2]``)."""
    return spark.createDataFrame(
        [(row["id"], row["prompt"], row["images"]) for row in rows],
        "id string, prompt string, images array<string>",
    ).repartition(4)


def alive(pids_dir: Path) -> list[int]:
    """Python workers that have run the remix function and are still alive."""
    pids = []
    for entry in pids_dir.iterdir():
        pid = int(entry.name)
        if Path(f"/proc/{pid}").exists():
            pids.append(pid)
    return sorted(pids)


def test_a_crashed_python_worker_costs_at_most_its_in_flight_rows(spark, tmp_path):
    rows = unique_rows(200)
    pids_dir = tmp_path / "pids"
    pids_dir.mkdir()
    df = frame(spark, rows)

    with MockServer(latency=0.2) as server:
        remix = remix_partitions(
            store=tmp_path / "store",
            concurrency=CONCURRENCY,
            api_key=API_KEY,
            base_url=server.base_url,
        )

        def recording_pid(batches: Iterator) -> Iterator:  # so the test knows whom to kill
            (pids_dir / str(os.getpid())).touch()
            yield from remix(batches)

        killer = Killer(server, after=60, find=lambda: alive(pids_dir))
        killer.start()
        started = time.monotonic()
        out = df.mapInPandas(recording_pid, schema=OUTCOME_SCHEMA).collect()
        killer.finish()
        assert_paid_once("spark", server, rows, out, started, killer, CONCURRENCY)

    done = next(row for row in out if row["status"] == "done")
    assert Path(done["image"]).read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("options", [{"concurrency": 0}, {"auth_scheme": "nope"}])
def test_bad_options_fail_on_the_driver_before_any_task(options):
    with pytest.raises(ValidationError):
        remix_partitions(store="unused", **options)


def test_a_store_only_one_process_can_see_is_refused_before_anything_is_sent():
    with pytest.raises(ValidationError, match="only this process can see it, and Spark"):
        remix_partitions(store="memory://reve-remix-spark", api_key=API_KEY)


def test_one_cap_holds_across_every_task(spark, tmp_path):
    """Four partitions on two cores, each task with its own copy of the budget: the store keeps
    the one cap, and the rows that did not fit are pending, unsent."""
    rows = unique_rows(12)
    df = frame(spark, rows)
    with MockServer(latency=0.1) as server:
        remix = remix_partitions(
            store=tmp_path / "store", concurrency=4, max_generations=5,
            api_key=API_KEY, base_url=server.base_url,
        )  # fmt: skip
        out = df.mapInPandas(remix, schema=OUTCOME_SCHEMA).collect()
        posts = sum(request.method == "POST" for request in server.requests)
    assert posts == 5
    assert sorted(row["status"] for row in out) == ["done"] * 5 + ["pending"] * 7
