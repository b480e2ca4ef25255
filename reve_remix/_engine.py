"""Remixing rows of a table: the engine-neutral core behind the Ray and Spark adapters.

A row is a mapping with a stable ``id``, a ``prompt`` and ``images`` and, optionally,
``aspect_ratio``, ``output_format`` and ``extra_body``; other keys are ignored. Each row becomes
one :class:`RowOutcome`, as data, never an exception: ``status`` (a ``JobState`` value),
``request_id``, ``image`` (where the image went), ``revised_prompt`` and ``error``.

Every row is one paid job of the one runner (:func:`reve_remix._runner.lifecycle`), with a
:class:`~reve_remix._store.PaidStore` as its ledger: that is what makes an engine's retry safe.
A *done* row is reported from its record, a *paid* one downloaded (or unspooled) again, one whose
worker stopped mid-request reported *ambiguous*, one another live run is sending waited for, one
whose id is in the store for another job refused, and only rows that provably produced nothing
are sent again.

A worker runs its rows with the sync client on a thread pool, chosen by measurement
(``scripts/bench_engines.py --only threads --only async``): the same throughput as the async
client for less CPU per row, and no event loop to run inside an engine's synchronous batch
function.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ._client import ReveRemix
from ._exceptions import BudgetExceededError, ValidationError
from ._identity import identity, what_changed
from ._jobs import check_concurrency
from ._ledger import JobRecord, LedgerError
from ._lifecycle import JobState
from ._runner import Action, Call, PaidJob, Settled, lifecycle, plan
from ._store import PaidStore, StoreImages, row_id
from ._store_budget import StoreBudget

DEFAULT_CONCURRENCY = 8
OUTCOME_COLUMNS = ("status", "request_id", "image", "revised_prompt", "error")
"""The columns an outcome adds to a row (besides its ``id``)."""
CLAIM_WAIT = 300.0
"""Seconds a row waits, at most, for another live run that claimed it to record its outcome."""
FIRST_PAUSE, LONGEST_PAUSE = 0.05, 2.0  # how often the store is read again while waiting


@dataclass(frozen=True, slots=True)
class RowOutcome:
    """How one row ended: a ``JobState`` value as ``status``, and where its image went.

    Example::

        for outcome in remix_rows(rows, store="out"):
            if outcome.status != "done":
                print(outcome.id, outcome.status, outcome.request_id, outcome.error)
    """

    id: str
    status: str
    request_id: str | None = None
    image: str | None = None
    revised_prompt: str | None = None
    error: str | None = None

    def columns(self) -> dict[str, str | None]:
        """The outcome columns (``OUTCOME_COLUMNS``) as a dict."""
        return {name: getattr(self, name) for name in OUTCOME_COLUMNS}


class RowRemixer:
    """One worker's remixer: a client, a store and a thread pool size; reusable across batches.

    ``store`` is a :class:`PaidStore` or its location; ``concurrency`` is the number of rows in
    flight at once; ``claim_wait`` the seconds a row claimed by another live run waits for that
    run's outcome before it is reported *sent*; other keyword arguments go to
    :class:`ReveRemix` (``api_key``, ``base_url``, ``rate_limiter``, ...), or pass a ready
    ``client``. The Ray and Spark adapters build one per worker.

    Example::

        remixer = RowRemixer("out", concurrency=8, base_url=server.base_url)
        outcomes = remixer.remix_rows([{"id": "a", "prompt": "<img>0</img> at night",
                                        "images": ["https://example.com/a.png"]}])
        remixer.close()
    """

    def __init__(
        self,
        store: PaidStore | str | os.PathLike[str],
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        claim_wait: float = CLAIM_WAIT,
        client: ReveRemix | None = None,
        **client_options: Any,  # noqa: ANN401 - ReveRemix's options, checked there
    ) -> None:
        self.store = store if isinstance(store, PaidStore) else PaidStore(store)
        self.concurrency = check_concurrency(concurrency)
        if not isinstance(claim_wait, int | float) or not claim_wait >= 0:
            raise ValidationError(f"claim_wait: expected seconds >= 0, got {claim_wait!r}")
        self.claim_wait = float(claim_wait)
        self._owns_client = client is None
        self.client = ReveRemix(**client_options) if client is None else client
        self._images = StoreImages(self.store)

    def __repr__(self) -> str:
        return f"RowRemixer({self.store!r}, concurrency={self.concurrency}, client={self.client!r})"

    def remix_rows(self, rows: Iterable[Mapping[str, Any]]) -> list[RowOutcome]:
        """One outcome per row, in input order; ``concurrency`` rows in flight at once."""
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="reve-remix-row") as pool:
            return list(pool.map(self.remix_row, rows))

    def remix_row(self, row: Mapping[str, Any]) -> RowOutcome:
        """Remix one row through the store; every problem is returned as an outcome."""
        if not isinstance(row, Mapping):
            error = f"row: expected a mapping of columns, got {type(row).__name__}"
            return RowOutcome("", JobState.FAILED.value, error=error)
        try:
            key = row_id(row.get("id"))
        except ValidationError as exc:
            return RowOutcome(str(row.get("id")), JobState.FAILED.value, error=str(exc))
        try:
            call = _call(row)
            found = identity(call, self.client.model)
            job = PaidJob(
                key,
                call,
                None if found is None else found.fingerprint,
                None,
                self._images,
                None if found is None else found.parts,
            )
        except ValidationError as exc:
            return RowOutcome(key, JobState.FAILED.value, error=str(exc))
        return self._run(job)

    def _run(self, job: PaidJob) -> RowOutcome:
        """Drive ``job`` through the runner; a row another live run holds waits for its outcome.

        A claim lost to another worker, or found in the store with no outcome yet from a process
        that still runs, is the same job sent elsewhere (a job submitted twice, a speculative
        task, a duplicate id with the same content): its outcome is read back once recorded,
        within ``claim_wait`` seconds, instead of being guessed.
        """
        deadline = time.monotonic() + self.claim_wait
        pause = FIRST_PAUSE
        while True:
            try:
                previous = self.store.lookup(job.id)
            except OSError as exc:
                return RowOutcome(job.id, JobState.FAILED.value, error=f"store unreadable: {exc}")
            expected = plan(previous, job)
            sent = previous is not None and previous.status is JobState.SENT
            if sent and expected is Action.HOLD:  # the same job, claimed by a process that runs
                assert previous is not None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return self._outcome(Settled(previous, Action.HOLD), previous)
                time.sleep(min(pause, remaining))
                pause = min(pause * 2, LONGEST_PAUSE)
                continue
            run = lifecycle(job, self.store, self.client, previous=previous, looked_up=True)
            settled = self.client._drive(run)
            lost_claim = settled.action is Action.HOLD and expected is not Action.HOLD
            if not lost_claim or time.monotonic() >= deadline:
                return self._outcome(settled, previous, lost_claim=lost_claim)
            # the claim went to another worker a moment ago: read the store again, wait for it

    def _outcome(
        self, settled: Settled, previous: JobRecord | None, *, lost_claim: bool = False
    ) -> RowOutcome:
        record = settled.record
        if settled.action is Action.CONFLICT:
            assert previous is not None
            conflict = (
                f"id {record.id} is in the store for another job "
                f"({what_changed(previous.parts, record.parts)}; {previous.status.value} there): "
                "refused, not sent; give this row its own id, or use another store"
            )
            return RowOutcome(record.id, JobState.FAILED.value, error=conflict)
        status = record.status
        if lost_claim:
            status = JobState.SENT
        elif status is JobState.PENDING and not isinstance(settled.error, BudgetExceededError):
            status = JobState.FAILED  # the store could not be written: nothing was sent
        error: str | None = record.error
        if isinstance(settled.error, LedgerError) or (error is None and settled.error):
            error = str(settled.error)
        return RowOutcome(
            id=record.id,
            status=status.value,
            request_id=record.request_id,
            image=self.store.image_location(record) if status is JobState.DONE else None,
            revised_prompt=record.revised_prompt,
            error=None if error is None else self.client._redact(error),
        )

    def close(self) -> None:
        """Close the client if this remixer made it."""
        if self._owns_client:
            self.client.close()


def capped(
    store: PaidStore,
    client_options: dict[str, Any],
    max_generations: int | None,
    max_cost: float | str | Decimal | None,
    price: float | str | Decimal | None,
) -> dict[str, Any]:
    """``client_options`` with one run's cap, kept in ``store`` (a :class:`StoreBudget` every
    worker shares), when ``max_generations`` or ``max_cost`` is given.

    Example::

        options = capped(store, {"base_url": url}, 100, None, None)  # options["budget"]
    """
    if max_generations is None and max_cost is None:
        return client_options
    if "budget" in client_options:
        raise ValidationError("budget: give max_generations/max_cost or a budget, not both")
    return {**client_options, "budget": StoreBudget(store, max_generations, max_cost, price)}


def remix_rows(
    rows: Iterable[Mapping[str, Any]],
    *,
    store: PaidStore | str | os.PathLike[str],
    concurrency: int = DEFAULT_CONCURRENCY,
    max_generations: int | None = None,
    max_cost: float | str | Decimal | None = None,
    price: float | str | Decimal | None = None,
    **client_options: Any,  # noqa: ANN401 - ReveRemix's options, checked there
) -> list[RowOutcome]:
    """Remix every row through the paid ``store``: one :class:`RowOutcome` per row, in order.

    Running it again with the same store sends only rows that never reached the server or
    provably produced nothing; done rows are reported, paid ones downloaded, ambiguous ones
    reported until :meth:`PaidStore.resend_ambiguous` releases them.

    ``max_generations`` and ``max_cost`` (USD, at ``price`` or ``$REVE_REMIX_PRICE`` a
    generation) cap the requests that may be billed in this call, across its threads and
    workers, counted in the store; rows that do not fit end *pending*, unsent, and the next call
    sends them.

    Example::

        rows = [{"id": "cat", "prompt": "<img>0</img> as a watercolour",
                 "images": ["https://example.com/cat.png"]}]
        [outcome] = remix_rows(rows, store="out", api_key="sk-...")
        print(outcome.status, outcome.image)  # done out/cat.png
    """
    paid_store = store if isinstance(store, PaidStore) else PaidStore(store)
    options = capped(paid_store, client_options, max_generations, max_cost, price)
    remixer = RowRemixer(paid_store, concurrency=concurrency, **options)
    try:
        return remixer.remix_rows(rows)
    finally:
        remixer.close()


def _call(row: Mapping[str, Any]) -> Call:
    """The remix a row asks for, from values that may be numpy or pandas ones."""
    if "prompt" not in row or "images" not in row:
        raise ValidationError("row: needs 'prompt' and 'images' columns")
    options = {
        name: row[name] for name in ("aspect_ratio", "output_format") if not _missing(row.get(name))
    }
    return Call(
        row["prompt"],
        _images(row["images"]),  # type: ignore[arg-type] # remix checks what it is
        extra_body=_extra_body(row.get("extra_body")) or None,
        **options,
    )


def _missing(value: object) -> bool:
    """None, NaN or pandas' NA: how a table says "no value"."""
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return True
    return isinstance(value, float) and math.isnan(value)


def _images(value: object) -> object:
    """A row's images as ``remix`` takes them: an Arrow list arrives as a numpy array."""
    if isinstance(value, Mapping):
        return {str(name): item for name, item in value.items()}
    if isinstance(value, str | bytes) or _missing(value) or not isinstance(value, Iterable):
        return value  # remix reports what is wrong with it
    return list(value)


def _extra_body(value: object) -> dict[str, Any] | None:
    """A row's ``extra_body``: a mapping, or a JSON object as text (a Spark string column)."""
    if _missing(value):
        return None
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ValidationError(f"extra_body: not valid JSON: {exc}") from None
    if not isinstance(value, Mapping):
        raise ValidationError(f"extra_body: expected an object, got {type(value).__name__}")
    return dict(value)
