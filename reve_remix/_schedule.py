"""The schedulers behind ``remix_many``, ``iter_remix`` and ``reve-remix batch``.

:func:`iter_in_threads` (for ``ReveRemix`` and the batch command) and :func:`iter_in_tasks` (for
``AsyncReveRemix``) run a work function over items with a concurrency limit, drawing items only as
slots free up; :func:`run_in_threads` and :func:`run_in_tasks` gather one outcome per item in
input order. A ``ReveRemixError`` is an outcome, not an abort. A caller that must stop starting
jobs (a signal, a ledger that cannot be written) stops the iterable it passes: nothing more is
drawn from it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import (
    AsyncGenerator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Sequence,
)
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

from ._exceptions import ReveRemixError

_T = TypeVar("_T")
_R = TypeVar("_R")


def iter_in_threads(
    work: Callable[[_T], _R],
    items: Iterable[_T],
    *,
    concurrency: int,
    on_interrupt: Callable[[int], None] | None = None,
) -> Generator[tuple[int, _T, _R | ReveRemixError]]:
    """Run ``work`` on every item, ``concurrency`` at a time on threads, yielding as each ends.

    Yields ``(index, item, outcome)`` in the order the items finish: what ``work`` returned, or
    the ``ReveRemixError`` it raised. Items are drawn from ``items`` only as slots free up, and a
    finished item's slot is handed on after its outcome has been consumed, so memory follows the
    concurrency, not the number of items. On ``KeyboardInterrupt`` no further item is started,
    ``on_interrupt(running)`` is called, the running items are waited for (and yielded), then the
    interrupt propagates. Any other exception, or closing the iterator, stops the run the same
    way without yielding more.
    """
    pending = iter(enumerate(items))
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="reve-remix")
    running: dict[Future[_R | ReveRemixError], tuple[int, _T]] = {}

    def start_next() -> bool:
        upcoming = next(pending, None)
        if upcoming is not None:
            running[pool.submit(_capture, work, upcoming[1])] = upcoming
        return upcoming is not None

    def finished() -> Iterator[tuple[int, _T, _R | ReveRemixError]]:
        done, _ = wait(running, return_when=FIRST_COMPLETED)
        for future in done:
            index, item = running.pop(future)
            yield index, item, future.result()

    try:
        for _ in range(concurrency):  # fewer items than slots: stop at the last one
            if not start_next():
                break
        try:
            while running:
                for outcome in finished():
                    yield outcome
                    start_next()
        except KeyboardInterrupt:
            if on_interrupt is not None:
                on_interrupt(len(running))
            while running:
                yield from finished()
            raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def run_in_threads(
    work: Callable[[_T], _R],
    items: Sequence[_T],
    *,
    concurrency: int,
    on_outcome: Callable[[int, _R | ReveRemixError], None],
    on_interrupt: Callable[[int], None] | None = None,
) -> list[_R | ReveRemixError]:
    """:func:`iter_in_threads`, gathered: one outcome per item, in input order.

    ``on_outcome(index, outcome)`` is called in the calling thread as each item finishes, one
    call at a time, before its slot is handed on.
    """
    outcomes: list[_R | ReveRemixError | None] = [None] * len(items)
    run = iter_in_threads(work, items, concurrency=concurrency, on_interrupt=on_interrupt)
    with contextlib.closing(run):
        for index, _item, outcome in run:
            outcomes[index] = outcome
            on_outcome(index, outcome)
    return _complete(outcomes)


async def iter_in_tasks(
    work: Callable[[_T], Awaitable[_R]],
    items: Iterable[_T],
    *,
    concurrency: int,
) -> AsyncGenerator[tuple[int, _T, _R | ReveRemixError]]:
    """The asyncio twin of :func:`iter_in_threads`: at most ``concurrency`` tasks at a time.

    A finished item's slot is handed on after its outcome has been consumed. Any exception other
    than ``ReveRemixError`` (or closing the iterator) starts no further item, waits for the
    running ones, as the thread scheduler does (their requests are out, maybe paid for: their
    outcomes reach the caller's ledger), and propagates as itself. Cancellation is the caller
    asking to stop now: it cancels the running items instead.
    """
    pending = iter(enumerate(items))
    running: dict[asyncio.Future[_R | ReveRemixError], tuple[int, _T]] = {}

    def start_next() -> bool:
        upcoming = next(pending, None)
        if upcoming is not None:
            running[asyncio.ensure_future(_acapture(work, upcoming[1]))] = upcoming
        return upcoming is not None

    cancelled = False
    try:
        for _ in range(concurrency):  # fewer items than slots: stop at the last one
            if not start_next():
                break
        while running:
            done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                index, item = running.pop(task)
                yield index, item, task.result()
                start_next()
    except asyncio.CancelledError:
        cancelled = True
        raise
    finally:
        if cancelled:
            for task in running:
                task.cancel()
        await asyncio.gather(*running, return_exceptions=True)


async def run_in_tasks(
    work: Callable[[_T], Awaitable[_R]],
    items: Sequence[_T],
    *,
    concurrency: int,
    on_outcome: Callable[[int, _R | ReveRemixError], None],
) -> list[_R | ReveRemixError]:
    """:func:`iter_in_tasks`, gathered: one outcome per item, in input order.

    ``on_outcome`` is called on the event loop before the finished item's slot is given to the
    next one.
    """
    outcomes: list[_R | ReveRemixError | None] = [None] * len(items)
    run = iter_in_tasks(work, items, concurrency=concurrency)
    async with contextlib.aclosing(run):
        async for index, _item, outcome in run:
            outcomes[index] = outcome
            on_outcome(index, outcome)
    return _complete(outcomes)


async def _acapture(work: Callable[[_T], Awaitable[_R]], item: _T) -> _R | ReveRemixError:
    try:
        return await work(item)
    except ReveRemixError as exc:
        return exc


def _capture(work: Callable[[_T], _R], item: _T) -> _R | ReveRemixError:
    try:
        return work(item)
    except ReveRemixError as exc:
        return exc


def _complete(outcomes: list[_R | None]) -> list[_R]:
    """The outcomes once every slot is filled (the schedulers fill each exactly once)."""
    filled = [outcome for outcome in outcomes if outcome is not None]
    if len(filled) != len(outcomes):
        raise RuntimeError("a batch job finished without an outcome")
    return filled
