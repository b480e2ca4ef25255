"""remix_many and iter_remix never drop a paid result: however a call stops, what the server
generated is either returned, or logged at WARNING (URL, request id) and attached to the
exception that stopped it. Every test counts the generations on a real loopback server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
import re
import signal
import threading
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

import pytest

from reve_remix import (
    AsyncReveRemix,
    BadRequestError,
    ImageNotSavedError,
    RemixResult,
    ReveRemix,
    ReveRemixError,
    ValidationError,
)
from reve_remix.testing import Fault, MockServer

from .conftest import WAIT, until
from .paid_server import PaidServer

API_KEY = "sk-test-paid-library-0123456789"
IMAGE_URL = "https://example.com/cat.png"
T = TypeVar("T")


def job(n: int) -> dict[str, object]:
    return {"prompt": f"<img>0</img> variation {n}", "images": [IMAGE_URL]}


def generations(server: MockServer | PaidServer) -> int:
    if isinstance(server, PaidServer):
        return server.generations
    return sum(1 for request in server.requests if request.is_remix)


def posted(server: PaidServer) -> int:
    with server.lock:
        return sum(server.posted.values())


def warnings_about(caplog: pytest.LogCaptureFixture, server: MockServer | PaidServer) -> list[str]:
    """The WARNING lines that name a paid image of ``server`` with its request id."""
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno == logging.WARNING
        and "generated, not saved" in record.getMessage()
        and server.base_url in record.getMessage()
        and "request id req" in record.getMessage()
    ]


def opened(gate: threading.Lock, server: PaidServer, in_flight: int) -> threading.Thread:
    """Release ``gate`` (held: no POST is answered) once ``in_flight`` POSTs have arrived.

    So every job a test counts on is out before the first answer, however a busy machine
    schedules the threads or tasks that send them.
    """

    def watch() -> None:
        try:
            until(lambda: posted(server) >= in_flight, f"{in_flight} requests in flight")
        finally:
            gate.release()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


class TestSync:
    def test_a_raising_callback_stops_sending_and_hands_over_what_was_paid(self, caplog):
        def broken(progress: object) -> None:
            raise RuntimeError("bug in on_progress")

        gate = threading.Lock()
        gate.acquire()
        with (
            PaidServer(gate=gate) as server,
            ReveRemix(API_KEY, base_url=server.base_url) as client,
        ):
            opened(gate, server, in_flight=2)
            with pytest.raises(RuntimeError, match="bug in on_progress") as caught:
                client.remix_many([job(n) for n in range(6)], concurrency=2, on_progress=broken)
            assert generations(server) == 2  # the slot of the first outcome was never handed on
            paid = caught.value.paid_results
            assert len(paid) == 2
            assert all(isinstance(result, RemixResult) for result in paid)
            assert len(warnings_about(caplog, server)) == 2
            assert all(len(result.read()) > 0 for result in paid)  # the images can be had

    def test_break_out_of_iter_remix_waits_for_the_running_and_logs_them(self, caplog):
        with MockServer() as server, ReveRemix(API_KEY, base_url=server.base_url) as client:
            for _job, outcome in client.iter_remix([job(n) for n in range(8)], concurrency=4):
                assert isinstance(outcome, RemixResult)
                until(lambda: generations(server) == 4, "the other three sent")
                break
            # Nothing new starts; each job already sent is waited for, and all but the one
            # received are logged.
            assert generations(server) == 4
            assert len(warnings_about(caplog, server)) == 3

    def test_a_raising_job_iterable_stops_sending_and_hands_over_what_was_paid(self, caplog):
        def jobs():
            yield job(0)
            yield job(1)
            # Both out first: a job drawn but not yet taken up by a thread is never sent.
            until(lambda: generations(server) == 2, "both jobs sent")
            raise ValueError("the jobs file broke")

        with MockServer() as server, ReveRemix(API_KEY, base_url=server.base_url) as client:
            with pytest.raises(ValueError, match="jobs file broke") as caught:
                list(client.iter_remix(jobs(), concurrency=4))
            assert generations(server) == 2
            assert len(caught.value.paid_results) == 2
            assert len(warnings_about(caplog, server)) == 2

    def test_a_raising_uploader_is_that_jobs_outcome_and_stops_nothing(self):
        def uploader(data: bytes, mime: str) -> str:
            if data.endswith(b"broken"):
                raise KeyError("the bucket")
            return IMAGE_URL

        with MockServer() as server:
            image = _png()
            jobs = [
                {"prompt": "<img>0</img> a", "images": [image]},
                {"prompt": "<img>0</img> b", "images": [image + b"broken"]},
                {"prompt": "<img>0</img> c", "images": [image]},
            ]
            with ReveRemix(API_KEY, base_url=server.base_url, uploader=uploader) as client:
                outcomes = client.remix_many(jobs, concurrency=1)
            assert isinstance(outcomes[0], RemixResult)
            assert isinstance(outcomes[2], RemixResult)
            failed = outcomes[1]
            assert isinstance(failed, ReveRemixError)
            assert isinstance(failed.__cause__, KeyError)
            assert "nothing was sent" in str(failed)
            assert generations(server) == 2

    @pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs signal.pthread_kill")
    def test_ctrl_c_stops_sending_and_hands_over_what_was_paid(self, caplog):
        # Both requests are held until the Ctrl-C has reached the main thread: however slowly
        # it does, no answer can let a third job start first.
        gate = threading.Lock()
        gate.acquire()
        with (
            PaidServer(gate=gate) as server,
            ReveRemix(API_KEY, base_url=server.base_url) as client,
            ctrl_c_after(lambda: posted(server) == 2, then=gate.release) as interrupted,
        ):
            with pytest.raises(KeyboardInterrupt) as caught:
                client.remix_many([job(n) for n in range(6)], concurrency=2)
            interrupted.join()
            assert generations(server) == 2  # nothing more started once it was seen
            assert len(caught.value.paid_results) == 2  # every generation was handed over
            assert len(warnings_about(caplog, server)) == 2

    def test_closing_the_client_under_a_held_iter_remix_settles_its_requests(self, caplog):
        # The caller breaks out but keeps the iterator (so nothing closes it), then closes the
        # client: the three requests still out must be answered, recorded and logged with their
        # URL and request id, not cut off by the closing pool.
        with MockServer() as server:
            server.enqueue(Fault())  # the first request answered at once, the others in flight
            server.latency = HELD
            client = ReveRemix(API_KEY, base_url=server.base_url)
            run = client.iter_remix([job(n) for n in range(8)], concurrency=4)
            for _job, outcome in run:
                assert isinstance(outcome, RemixResult)
                break
            until(lambda: generations(server) == 4, "four requests sent")
            client.close()
            assert list(run) == []  # the loop was settled: resuming it starts nothing
            assert generations(server) == 4
            _assert_settled(caplog, server, paid=3)

    def test_leaving_with_by_an_exception_attaches_the_held_loops_paid_results(self, caplog):
        with MockServer() as server:
            server.enqueue(Fault())
            server.latency = HELD

            def leave_with_by_an_exception() -> None:
                with ReveRemix(API_KEY, base_url=server.base_url) as client:
                    run = client.iter_remix([job(n) for n in range(8)], concurrency=4)
                    for _pair in run:
                        break
                    until(lambda: generations(server) == 4, "four requests sent")
                    raise RuntimeError("after the loop")

            with pytest.raises(RuntimeError, match="after the loop") as caught:
                leave_with_by_an_exception()
            assert len(caught.value.paid_results) == 3
            _assert_settled(caplog, server, paid=3)


class TestAsync:
    @pytest.mark.anyio
    async def test_a_raising_callback_stops_sending_and_hands_over_what_was_paid(self, caplog):
        def broken(progress: object) -> None:
            raise RuntimeError("bug in on_progress")

        gate = threading.Lock()
        gate.acquire()
        with PaidServer(gate=gate) as server:
            opened(gate, server, in_flight=2)
            async with AsyncReveRemix(API_KEY, base_url=server.base_url) as client:
                with pytest.raises(RuntimeError, match="bug in on_progress") as caught:
                    await client.remix_many(
                        [job(n) for n in range(6)], concurrency=2, on_progress=broken
                    )
            assert generations(server) == 2
            assert len(caught.value.paid_results) == 2
            assert len(warnings_about(caplog, server)) == 2

    @pytest.mark.anyio
    async def test_break_out_of_iter_remix_waits_for_the_running_and_logs_them(self, caplog):
        with MockServer() as server:
            async with AsyncReveRemix(API_KEY, base_url=server.base_url) as client:
                run = client.iter_remix([job(n) for n in range(8)], concurrency=4)
                async with contextlib.aclosing(run):
                    async for _job, outcome in run:
                        assert isinstance(outcome, RemixResult)
                        while generations(server) < 4:  # the other three sent
                            await asyncio.sleep(0.01)
                        break
            assert generations(server) == 4
            assert len(warnings_about(caplog, server)) == 3

    @pytest.mark.anyio
    async def test_a_raising_job_iterable_stops_sending_and_hands_over_what_was_paid(self, caplog):
        def jobs():
            yield job(0)
            yield job(1)
            raise ValueError("the jobs file broke")

        with MockServer() as server:
            async with AsyncReveRemix(API_KEY, base_url=server.base_url) as client:
                with pytest.raises(ValueError, match="jobs file broke") as caught:
                    async for _pair in client.iter_remix(jobs(), concurrency=4):
                        pass
            assert generations(server) == 2
            assert len(caught.value.paid_results) == 2

    @pytest.mark.anyio
    async def test_cancellation_logs_the_requests_that_were_out(self, caplog):
        with MockServer() as server:
            server.enqueue(Fault(delay=3600), Fault(delay=3600))  # until the server stops
            async with AsyncReveRemix(API_KEY, base_url=server.base_url) as client:
                task = asyncio.ensure_future(
                    client.remix_many([job(n) for n in range(6)], concurrency=2)
                )
                while len(server.requests) < 2:
                    await asyncio.sleep(0.01)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
        out = [
            r.getMessage() for r in caplog.records if "may have been generated" in r.getMessage()
        ]
        assert len(out) == 2

    @pytest.mark.anyio
    async def test_closing_the_client_under_a_held_iter_remix_settles_its_requests(self, caplog):
        with MockServer() as server:
            server.enqueue(Fault())
            server.latency = HELD
            client = AsyncReveRemix(API_KEY, base_url=server.base_url)
            run = client.iter_remix([job(n) for n in range(8)], concurrency=4)
            async for _job, outcome in run:
                assert isinstance(outcome, RemixResult)
                break
            await _await(lambda: generations(server) == 4)
            await client.aclose()
            assert [pair async for pair in run] == []
            assert generations(server) == 4
            _assert_settled(caplog, server, paid=3)

    @pytest.mark.anyio
    async def test_leaving_with_by_an_exception_attaches_the_held_loops_paid_results(self, caplog):
        with MockServer() as server:
            server.enqueue(Fault())
            server.latency = HELD

            async def leave_with_by_an_exception() -> None:
                async with AsyncReveRemix(API_KEY, base_url=server.base_url) as client:
                    run = client.iter_remix([job(n) for n in range(8)], concurrency=4)
                    async for _pair in run:
                        break
                    await _await(lambda: generations(server) == 4)
                    raise RuntimeError("after the loop")

            with pytest.raises(RuntimeError, match="after the loop") as caught:
                await leave_with_by_an_exception()
            assert len(caught.value.paid_results) == 3
            _assert_settled(caplog, server, paid=3)


def test_a_closed_client_refuses_to_send_and_says_nothing_was_generated():
    with MockServer() as server:
        client = ReveRemix(API_KEY, base_url=server.base_url)
        client.close()
        with pytest.raises(ValidationError, match="ReveRemix is closed"):
            client.remix("<img>0</img> x", [IMAGE_URL])
        [outcome] = client.remix_many([job(0)])
        assert isinstance(outcome, ValidationError)
        assert "may have been generated" not in str(outcome)
        assert server.requests == []


@pytest.mark.anyio
async def test_a_closed_async_client_refuses_to_send_and_says_nothing_was_generated():
    with MockServer() as server:
        client = AsyncReveRemix(API_KEY, base_url=server.base_url)
        await client.aclose()
        with pytest.raises(ValidationError, match="AsyncReveRemix is closed"):
            await client.remix("<img>0</img> x", [IMAGE_URL])
        [outcome] = await client.remix_many([job(0)])
        assert isinstance(outcome, ValidationError)
        assert server.requests == []


def test_closing_under_a_loop_another_thread_steps_says_so_and_does_not_raise(caplog):
    entered, release = threading.Event(), threading.Event()

    def uploader(data: bytes, mime: str) -> str:
        entered.set()
        release.wait()
        return IMAGE_URL

    with MockServer() as server:
        client = ReveRemix(API_KEY, base_url=server.base_url, uploader=uploader)
        run = client.iter_remix([{"prompt": "<img>0</img> x", "images": [_png()]}])
        outcomes: list[object] = []
        loop = threading.Thread(target=lambda: outcomes.extend(run))
        loop.start()
        entered.wait()  # the loop's thread is inside the iterator, waiting for the job
        client.close()
        release.set()
        loop.join()
    assert any("running in another thread" in r.getMessage() for r in caplog.records)
    [(_job, outcome)] = outcomes
    assert isinstance(outcome, ReveRemixError)
    assert server.requests == []


@pytest.mark.anyio
async def test_closing_under_a_loop_another_task_steps_says_so_and_does_not_raise(caplog):
    entered, release = asyncio.Event(), asyncio.Event()

    async def uploader(data: bytes, mime: str) -> str:
        entered.set()
        await release.wait()
        return IMAGE_URL

    with MockServer() as server:
        client = AsyncReveRemix(API_KEY, base_url=server.base_url, uploader=uploader)
        run = client.iter_remix([{"prompt": "<img>0</img> x", "images": [_png()]}])
        loop = asyncio.ensure_future(_collect(run))
        await entered.wait()
        await client.aclose()
        release.set()
        [(_job, outcome)] = await loop
    assert any("running in another thread" in r.getMessage() for r in caplog.records)
    assert isinstance(outcome, ReveRemixError)
    assert server.requests == []


async def _collect(run: AsyncIterator[T]) -> list[T]:
    return [item async for item in run]


# --- what crosses a process: pickles without the key ----------------------------------------------


def test_results_and_errors_pickle_without_the_key():
    echo = {"created": 1, "data": [{"url": None}], "echo": f"Bearer {API_KEY}"}
    with MockServer() as server, ReveRemix(API_KEY, base_url=server.base_url) as client:
        result = client.remix("<img>0</img> x", [IMAGE_URL])
        echo["data"][0]["url"] = result.image.url  # type: ignore[index]
        server.enqueue(
            Fault(body=echo),
            Fault(status=400, body={"error": {"message": f"bad key {API_KEY}", "type": "x"}}),
        )
        echoed = client.remix("<img>0</img> x", [IMAGE_URL])
        with pytest.raises(BadRequestError) as caught:
            client.remix("<img>0</img> x", [IMAGE_URL])
        copy = pickle.loads(pickle.dumps(echoed))
        assert copy.image.url == echoed.image.url
        assert len(copy.read()) > 0
    for value in (result, result.image, echoed, caught.value):
        data = pickle.dumps(value)
        assert API_KEY.encode() not in data
    error = pickle.loads(pickle.dumps(caught.value))
    assert type(error) is BadRequestError
    assert (error.status_code, error.request_id, str(error)) == (
        400,
        caught.value.request_id,
        str(caught.value),
    )
    assert error.request is None
    assert error.response is None


def test_an_image_not_saved_error_pickles_with_where_the_image_is():
    error = ImageNotSavedError(
        OSError(28, "No space left on device"), request_id="req-1", url="https://cdn/x.png"
    )
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), copy.url, copy.request_id, str(copy)) == (
        ImageNotSavedError,
        "https://cdn/x.png",
        "req-1",
        str(error),
    )


HELD = 0.5
"""Seconds the mock holds each answer after the first, so requests are out when the client
closes. Only the reproduction needs the requests still out; the fixed code passes either way."""


async def _await(condition: Callable[[], bool]) -> None:
    """The async twin of ``until``: poll ``condition`` (no fixed sleep); fail rather than hang."""
    for _ in range(6000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never held")


def _assert_settled(caplog: pytest.LogCaptureFixture, server: MockServer, *, paid: int) -> None:
    """Each paid job the loop did not deliver is logged with its URL and request id, nothing is
    left "may have been generated", and the logged images can be fetched without paying."""
    logged = warnings_about(caplog, server)
    assert len(logged) == paid
    assert not [r for r in caplog.records if "may have been generated" in r.getMessage()]
    sent = generations(server)
    with ReveRemix(API_KEY, base_url=server.base_url) as fresh:
        for line in logged:
            url = re.search(r"url (\S+?)\)", line)
            assert url is not None, line
            assert len(fresh.paid_image(url.group(1)).read()) > 0
    assert generations(server) == sent  # fetched, not generated again


@contextlib.contextmanager
def ctrl_c_after(condition: Callable[[], object], then: Callable[[], object]):
    """Ctrl-C to the main thread once ``condition()`` holds; ``then()`` once it has arrived there.

    Yields the watching thread. The handler is this test's own (restored after), so the
    interrupt arrives even in a run started with SIGINT ignored, and says when it arrived.
    """
    arrived = threading.Event()

    def on_ctrl_c(_signum: int, _frame: object) -> None:
        arrived.set()
        raise KeyboardInterrupt

    def watch() -> None:
        try:
            until(condition, "the moment to press Ctrl-C")
            # A real signal, to the main thread: it wakes a wait there, as Ctrl-C does
            # (_thread.interrupt_main() would only be seen once the wait ended by itself).
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
            arrived.wait(WAIT)
        finally:
            then()

    previous = signal.signal(signal.SIGINT, on_ctrl_c)
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        signal.signal(signal.SIGINT, previous)


def _png() -> bytes:
    from reve_remix.testing._png import gradient_png

    return gradient_png(8, 8, b"paid-library")
