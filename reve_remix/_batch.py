"""Many remixes at once: the job model and the schedulers behind ``remix_many``.

:class:`RemixJob` is one job, :class:`BatchProgress` what ``on_progress`` receives, and the two
schedulers, :func:`run_in_threads` (for ``ReveRemix``) and :func:`run_in_tasks` (for
``AsyncReveRemix``), run any work function over a list of items with a concurrency limit and
return one outcome per item in input order: a ``ReveRemixError`` is an outcome, not an abort.
The ``reve-remix batch`` command uses the same thread scheduler (see ``_batch_file``).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Mapping, Sequence
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
        unknown = sorted(str(key) for key in job if key not in _JOB_FIELDS)
        if unknown:
            raise ValidationError(
                f"job: unknown key(s) {', '.join(map(repr, unknown))}; "
                f"expected some of {', '.join(_JOB_FIELDS)}"
            )
        missing = [key for key in ("prompt", "images") if key not in job]
        if missing:
            raise ValidationError(f"job: missing {' and '.join(map(repr, missing))}")
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


_JOB_FIELDS = tuple(field.name for field in dataclasses.fields(RemixJob))


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


def run_in_threads(
    work: Callable[[_T], _R],
    items: Sequence[_T],
    *,
    concurrency: int,
    on_outcome: Callable[[int, _R | ReveRemixError], None],
    on_interrupt: Callable[[int], None] | None = None,
) -> list[_R | ReveRemixError]:
    """Run ``work`` on every item, ``concurrency`` at a time, on a thread pool.

    Returns one outcome per item, in input order: what ``work`` returned, or the
    ``ReveRemixError`` it raised. Items are started one by one as others finish, and
    ``on_outcome(index, outcome)`` is called in the calling thread as each finishes, one call at
    a time. On ``KeyboardInterrupt`` no further item is started, ``on_interrupt(running)`` is
    called, the running items are waited for (and reported), then the interrupt propagates.
    Any other exception stops the run the same way, without waiting to report.
    """
    outcomes: list[_R | ReveRemixError | None] = [None] * len(items)
    pending = iter(enumerate(items))
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="reve-remix")
    running: dict[Future[_R | ReveRemixError], int] = {}

    def start_next() -> None:
        upcoming = next(pending, None)
        if upcoming is not None:
            index, item = upcoming
            running[pool.submit(_capture, work, item)] = index

    def report_until_idle(*, start_more: bool) -> None:
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                index = running.pop(future)
                outcome = future.result()
                outcomes[index] = outcome
                on_outcome(index, outcome)
                if start_more:
                    start_next()

    try:
        for _ in range(concurrency):
            start_next()
        try:
            report_until_idle(start_more=True)
        except KeyboardInterrupt:
            if on_interrupt is not None:
                on_interrupt(len(running))
            report_until_idle(start_more=False)
            raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return _complete(outcomes)


async def run_in_tasks(
    work: Callable[[_T], Awaitable[_R]],
    items: Sequence[_T],
    *,
    concurrency: int,
    on_outcome: Callable[[int, _R | ReveRemixError], None],
) -> list[_R | ReveRemixError]:
    """The asyncio twin of :func:`run_in_threads`: one task per item, a semaphore for the limit.

    ``on_outcome`` is called on the event loop before the finished item's slot is given to the
    next one. Any exception other than ``ReveRemixError`` (or cancellation) starts no further
    item, cancels the running ones, and propagates as itself (not in an ``ExceptionGroup``).
    """
    outcomes: list[_R | ReveRemixError | None] = [None] * len(items)
    semaphore = asyncio.Semaphore(concurrency)
    stopping = asyncio.Event()

    async def one(index: int, item: _T) -> None:
        async with semaphore:
            if stopping.is_set():
                return
            try:
                try:
                    outcome: _R | ReveRemixError = await work(item)
                except ReveRemixError as exc:
                    outcome = exc
                outcomes[index] = outcome
                on_outcome(index, outcome)
            except BaseException:
                stopping.set()  # before the slot is released: no waiting item may start
                raise

    tasks = [asyncio.ensure_future(one(index, item)) for index, item in enumerate(items)]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return _complete(outcomes)


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
