"""Many remixes at once: the job model and the schedulers behind ``remix_many``.

:class:`RemixJob` is one job, :class:`BatchProgress` what ``on_progress`` receives, and the two
schedulers, :func:`run_in_threads` (for ``ReveRemix``) and :func:`run_in_tasks` (for
``AsyncReveRemix``), run any work function over a list of items with a concurrency limit and
return one outcome per item in input order: a ``ReveRemixError`` is an outcome, not an abort.
The ``reve-remix batch`` command uses the same thread scheduler (see ``_batch_file``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import (
    AsyncGenerator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, TypeVar

from ._exceptions import ReveRemixError, ValidationError
from ._request import Images
from ._results import RemixResult

_T = TypeVar("_T")
_R = TypeVar("_R")

Outcome = RemixResult | ReveRemixError
"""What ``remix_many`` returns for one job: its result, or the error that ended it."""


@dataclass(frozen=True, slots=True)
class RemixJob:
    """One remix for ``remix_many``: the arguments of ``remix``, plus an ``id`` for your records.

    ``output_format`` and ``model`` left as ``None`` use the client's defaults; ``extra_body``
    and ``extra_headers`` are passed to ``remix`` as they are. A plain mapping with the same keys
    works too.

    Example::

        jobs = [
            RemixJob("<img>0</img> as a watercolour", ["cat.png"], id="cat"),
            {"prompt": "Put {cat} on {sofa}", "images": {"cat": "cat.png", "sofa": "sofa.jpg"},
             "extra_body": {"seed": 7}},
        ]
        results = client.remix_many(jobs)
    """

    prompt: str
    images: Images
    aspect_ratio: str | None = None
    output_format: str | None = None
    model: str | None = None
    id: str | None = None
    extra_body: Mapping[str, Any] | None = None
    extra_headers: Mapping[str, str] | None = None

    @classmethod
    def coerce(cls, job: object) -> RemixJob:
        """``job`` itself, or a ``RemixJob`` built from a mapping of its fields.

        Raises ``ValidationError`` for anything else, or for missing or unknown keys.

        Example::

            RemixJob.coerce({"prompt": "<img>0</img> at dusk", "images": ["city.jpg"]})
        """
        if isinstance(job, RemixJob):
            return job
        if not isinstance(job, Mapping):
            raise ValidationError(
                f"job: expected a RemixJob or a mapping, got {type(job).__name__}"
            )
        check_job_keys(job, "job: ")
        return cls(**job)

    def arguments(self) -> dict[str, Any]:
        """The keyword arguments of ``remix`` for this job (``None`` options left out)."""
        options = {
            "aspect_ratio": self.aspect_ratio,
            "output_format": self.output_format,
            "model": self.model,
            "extra_body": self.extra_body,
            "extra_headers": self.extra_headers,
        }
        return {
            "prompt": self.prompt,
            "images": self.images,
            **{name: value for name, value in options.items() if value is not None},
        }


JOB_FIELDS = tuple(field.name for field in dataclasses.fields(RemixJob))
"""The keys a job mapping may have: ``RemixJob``'s fields."""
REQUIRED_JOB_FIELDS = ("prompt", "images")


def check_job_keys(
    job: Mapping[Any, object],
    prefix: str = "",
    *,
    allowed: Sequence[str] = JOB_FIELDS,
    show: Callable[[str], str] = repr,
) -> None:
    """``ValidationError`` for a job mapping with an unknown key or without prompt and images.

    One rule for ``remix_many``'s mappings and the batch file's lines (which ``show`` keys as JSON).

    Example::

        >>> check_job_keys({"prompt": "<img>0</img>", "imgs": []}, "job: ")
        Traceback (most recent call last):
          ...
        reve_remix.ValidationError: job: unknown key(s) 'imgs'; expected some of prompt, images, \
aspect_ratio, output_format, model, id, extra_body, extra_headers
    """
    unknown = sorted(str(key) for key in job if key not in allowed)
    if unknown:
        raise ValidationError(
            f"{prefix}unknown key(s) {', '.join(map(show, unknown))}; "
            f"expected some of {', '.join(allowed)}"
        )
    missing = [key for key in REQUIRED_JOB_FIELDS if key not in job]
    if missing:
        raise ValidationError(f"{prefix}missing {' and '.join(map(show, missing))}")


@dataclass(frozen=True, slots=True)
class BatchProgress:
    """How far ``remix_many`` has got; passed to ``on_progress`` each time a job finishes.

    Example::

        def show(progress: BatchProgress) -> None:
            print(f"{progress.finished}/{progress.total} ({progress.failed} failed)")

        client.remix_many(jobs, on_progress=show)
    """

    done: int
    """Jobs that ended with a result."""
    failed: int
    """Jobs that ended with an error."""
    total: int

    @property
    def finished(self) -> int:
        """Jobs that ended either way."""
        return self.done + self.failed


def check_concurrency(concurrency: object) -> int:
    """``concurrency`` if it is an integer >= 1; ``ValidationError`` otherwise."""
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValidationError(f"concurrency: expected an integer >= 1, got {concurrency!r}")
    return concurrency


def progress_counter(
    total: int, on_progress: Callable[[BatchProgress], None] | None
) -> Callable[[int, object], None]:
    """An ``on_outcome`` callback that counts outcomes and reports them to ``on_progress``.

    An outcome that is a ``ReveRemixError`` counts as failed, anything else as done.
    """
    counts = {"done": 0, "failed": 0}

    def count(_index: int, outcome: object) -> None:
        counts["failed" if isinstance(outcome, ReveRemixError) else "done"] += 1
        if on_progress is not None:
            on_progress(BatchProgress(counts["done"], counts["failed"], total))

    return count


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

    def start_next() -> None:
        upcoming = next(pending, None)
        if upcoming is not None:
            running[pool.submit(_capture, work, upcoming[1])] = upcoming

    def finished() -> Iterator[tuple[int, _T, _R | ReveRemixError]]:
        done, _ = wait(running, return_when=FIRST_COMPLETED)
        for future in done:
            index, item = running.pop(future)
            yield index, item, future.result()

    try:
        for _ in range(concurrency):
            start_next()
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

    def start_next() -> None:
        upcoming = next(pending, None)
        if upcoming is not None:
            running[asyncio.ensure_future(_acapture(work, upcoming[1]))] = upcoming

    cancelled = False
    try:
        for _ in range(concurrency):
            start_next()
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
