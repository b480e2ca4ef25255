"""Ray Data: an actor SIGKILLed mid-run costs at most its in-flight rows, reported ambiguous;
the shared named-actor limiter keeps every actor under one rate. Run by .ci/run with the ray extra.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import pyarrow
import pyarrow.dataset
import pytest
import ray
import ray.data

from reve_remix import ValidationError
from reve_remix.ray import RayRateLimiter, remix_dataset
from reve_remix.testing import Fault, MockServer
from reve_remix.testing._server import RecordedRequest
from tests.conftest import API_KEY, WAIT
from tests.engines.crash import Killer, assert_paid_once, processes_named, unique_rows

CONCURRENCY_PER_ACTOR = 8


@pytest.fixture(scope="module", autouse=True)
def ray_on_two_cpus() -> Iterator[None]:
    ray.init(
        num_cpus=2,
        _node_ip_address="127.0.0.1",
        include_dashboard=False,
        object_store_memory=100 * 1024 * 1024,
        log_to_driver=False,
        logging_level="ERROR",
    )
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


def test_a_killed_actor_costs_at_most_its_in_flight_rows(tmp_path):
    rows = unique_rows(300)
    with MockServer(latency=0.2) as server:
        killer = Killer(server, after=100, find=lambda: processes_named("RemixBatches"))
        killer.start()
        started = time.monotonic()
        out = remix_dataset(
            ray.data.from_items(rows, override_num_blocks=10),
            store=tmp_path / "store",
            actors=2,
            concurrency_per_actor=CONCURRENCY_PER_ACTOR,
            api_key=API_KEY,
            base_url=server.base_url,
        ).take_all()
        killer.finish()
        assert_paid_once("ray", server, rows, out, started, killer, CONCURRENCY_PER_ACTOR)
    assert set(rows[0]) <= set(out[0])  # the input columns are kept


class RateLimitedMock(MockServer):
    """A mock that answers 429 to any POST beyond ``per_second`` in the trailing second."""

    def __init__(self, per_second: int) -> None:
        super().__init__(latency=0.05)
        self.per_second = per_second
        self.recent: deque[float] = deque()
        self.guard = threading.Lock()
        self.rejected = 0
        # The API decides each request's fate (MockAPI.plan asks its _admit): wrap that one.
        self._admit_scripted = self._api._admit
        self._api._admit = self._admit  # type: ignore[method-assign]

    def _admit(self, request: RecordedRequest) -> Fault | None:
        fault = self._admit_scripted(request)
        if request.method != "POST":
            return fault
        with self.guard:
            now = time.monotonic()
            while self.recent and now - self.recent[0] > 1.0:
                self.recent.popleft()
            if len(self.recent) >= self.per_second:
                self.rejected += 1
                return Fault(status=429, headers={"Retry-After": "1"})
            self.recent.append(now)
        return fault


# Half the server's rate: a paced request a busy machine sends late lands in the next second, and
# it would take a second of such lateness to put twice the pace into one second at the server.
@pytest.mark.parametrize("limit", [None, 10], ids=["no-limiter", "shared-limiter"])
def test_one_named_actor_paces_every_actor(tmp_path, limit):
    with RateLimitedMock(per_second=20) as server:
        out = remix_dataset(
            ray.data.from_items(unique_rows(60), override_num_blocks=4),
            store=tmp_path / "store",
            actors=2,
            requests_per_second=limit,
            api_key=API_KEY,
            base_url=server.base_url,
            max_retries=0,
        ).take_all()
    print(f"\nray limiter={limit}: 429s={server.rejected}")
    if limit is None:
        assert server.rejected > 0  # the control: 16 rows in flight overrun 20/s
    else:
        assert server.rejected == 0
        assert {row["status"] for row in out} == {"done"}


# One slot a minute and an hour's hold: however long a busy machine takes over the actor's
# calls, the slot taken and the hold are still ahead when the other handle asks.
def test_the_limiter_is_one_named_actor():
    first = RayRateLimiter.create(requests_per_second=1 / 60, name="test-limiter")
    second = RayRateLimiter.create(requests_per_second=1 / 60, name="test-limiter")
    assert first.next_slot() == 0.0  # taken: the other handle's next slot is up to 60 s on
    assert 0.0 < second.next_slot() <= 60
    second.on_rate_limited(3600.0, second.on_sent())
    assert 3600 - WAIT < first.next_slot() <= 3600  # a 429 told to one holds both


def test_the_async_client_awaits_the_actor_rather_than_block_its_loop():
    limiter = RayRateLimiter.create(requests_per_second=1 / 60, name="test-async-limiter")

    async def ask_twice() -> list[float]:
        return [await limiter.anext_slot(), await limiter.anext_slot()]

    first, second = asyncio.run(ask_twice())
    assert first == 0.0
    assert 0.0 < second <= 60


def test_the_api_key_stays_out_of_the_plan_and_the_logs(tmp_path):
    with MockServer() as server:
        out = remix_dataset(
            ray.data.from_items(unique_rows(4)),
            store=tmp_path / "store",
            api_key=API_KEY,
            base_url=server.base_url,
        )
        shown = f"{out!r} {out} {out.stats()}"
        assert {row["status"] for row in out.take_all()} == {"done"}
    logs = Path("/tmp/ray/session_latest/logs")
    leaked = [
        path for path in logs.rglob("*") if path.is_file() and API_KEY.encode() in path.read_bytes()
    ]
    assert API_KEY not in shown
    assert leaked == []


@pytest.mark.parametrize(
    "options", [{"actors": 0}, {"concurrency_per_actor": 0}, {"auth_scheme": "nope"}]
)
def test_bad_options_fail_on_the_driver_before_any_actor(options):
    with pytest.raises(ValidationError):
        remix_dataset(ray.data.range(1), store="unused", **options)


def test_a_store_only_one_process_can_see_is_refused_before_anything_is_sent():
    with MockServer() as server:
        with pytest.raises(ValidationError, match="only this process can see it, and Ray"):
            remix_dataset(
                ray.data.from_items(unique_rows(4)),
                store="memory://reve-remix-ray",
                api_key=API_KEY,
                base_url=server.base_url,
            )
        assert server.requests == []


def test_outcome_columns_are_strings_so_two_runs_read_back_as_one_parquet_dataset(tmp_path):
    rows = unique_rows(6)
    bad = [{**row, "images": []} for row in unique_rows(2)]  # failed: every row has an error
    with MockServer() as server:
        for name, batch in (("good", rows), ("bad", bad)):
            remix_dataset(
                ray.data.from_items(batch, override_num_blocks=2),
                store=tmp_path / f"store-{name}",
                api_key=API_KEY,
                base_url=server.base_url,
            ).write_parquet(str(tmp_path / name))
    # The first file's schema is the dataset's: a null-typed column there fails the cast of the
    # other run's strings ("Unsupported cast from string to null").
    files = [str(path) for run in ("good", "bad") for path in sorted((tmp_path / run).iterdir())]
    table = pyarrow.dataset.dataset(files, format="parquet").to_table()
    for column in ("status", "request_id", "image", "revised_prompt", "error"):
        assert table.schema.field(column).type in (pyarrow.string(), pyarrow.large_string())
    statuses = collections.Counter(table.column("status").to_pylist())
    assert statuses == {"done": 6, "failed": 2}
