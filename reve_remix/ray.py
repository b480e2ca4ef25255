"""Remixing a Ray Dataset without paying twice: ``remix_dataset`` and ``RemixBatches``.

Needs the ``ray`` extra: ``pip install 'reve-remix[ray]'``. The guide is ``docs/engines.md``.

Ray Data retries a batch whose actor died, from its first row. Every row goes through a paid store
(:class:`~reve_remix.PaidStore`), so the retry reports the rows already done from their records,
downloads the paid ones again, and reports the rows that were in flight on the dead actor as
*ambiguous* instead of paying for them again.

Example::

    import ray
    from reve_remix.ray import remix_dataset

    ds = ray.data.from_items([
        {"id": "sku-1", "prompt": "<img>0</img> on a marble table", "images": ["https://..."]},
    ])
    out = remix_dataset(ds, store="/shared/remix-run-1", requests_per_second=5)
    out.filter(lambda row: row["status"] != "done").show()
"""

from __future__ import annotations

import os
import time
from decimal import Decimal
from typing import Any

try:
    import pyarrow
    import ray
    import ray.data
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("reve_remix.ray needs Ray Data: pip install 'reve-remix[ray]'") from exc

from ._engine import DEFAULT_CONCURRENCY, OUTCOME_COLUMNS, RowRemixer, capped
from ._jobs import check_concurrency
from ._retry import RateLimiter, SteadyRate
from ._store import PaidStore

__all__ = ["DEFAULT_RATE_LIMITER_NAME", "RayRateLimiter", "RemixBatches", "remix_dataset"]

DEFAULT_RATE_LIMITER_NAME = "reve-remix-rate-limiter"
# A remix actor spends its time waiting on the network: a quarter of a CPU each lets two actors
# and Ray Data's own read tasks share a 2-CPU node (one CPU per actor, Ray's default, hangs there).
DEFAULT_NUM_CPUS = 0.25
BATCH_ROWS_PER_THREAD = 4  # rows per batch = 4 x concurrency_per_actor: short tails, few batches


class RemixBatches:
    """A callable class for ``Dataset.map_batches(batch_format="pandas")``: remixes each batch.

    Each actor builds one client and keeps ``concurrency`` rows in flight. The batch comes back
    with the outcome columns added: ``status``, ``request_id``, ``image``, ``revised_prompt``,
    ``error``. Other keyword arguments go to :class:`~reve_remix.ReveRemix`.

    Example::

        from ray.data import ActorPoolStrategy

        out = ds.map_batches(
            RemixBatches,
            fn_constructor_kwargs={"store": "/shared/run-1", "concurrency": 8},
            batch_format="pandas",
            compute=ActorPoolStrategy(size=2),
            num_cpus=0.25,
        )
    """

    def __init__(
        self,
        store: PaidStore | str | os.PathLike[str],
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        **client_options: Any,  # noqa: ANN401 - ReveRemix's options, checked there
    ) -> None:
        self._remixer = RowRemixer(store, concurrency=concurrency, **client_options)

    def __call__(self, batch: Any) -> pyarrow.Table:  # noqa: ANN401 - a pandas DataFrame
        """The batch as an Arrow table with the outcome columns added, typed as strings.

        A column of ``None`` (no row of the block has an error) would otherwise become Arrow's
        ``null`` type, and Parquet written by two runs could not be read back as one dataset;
        Ray infers a pandas column's type again, whatever its dtype, so the types are set here.
        """
        outcomes = self._remixer.remix_rows(batch.to_dict("records"))
        table = pyarrow.Table.from_pandas(batch, preserve_index=False)
        for name in OUTCOME_COLUMNS:
            values = [getattr(outcome, name) for outcome in outcomes]
            column = pyarrow.array(values, type=pyarrow.string())
            if name in table.column_names:  # the input had a column of that name: replaced
                table = table.set_column(table.column_names.index(name), name, column)
            else:
                table = table.append_column(name, column)
        return table


class _SteadyRateActor:
    """The Ray actor behind :class:`RayRateLimiter`: one ``SteadyRate`` for every worker."""

    def __init__(self, requests_per_second: float) -> None:
        self._rate = SteadyRate(requests_per_second)

    def set_rate(self, requests_per_second: float) -> None:
        self._rate = SteadyRate(requests_per_second)

    def next_slot(self) -> float:
        return self._rate.next_slot()

    def on_rate_limited(self, seconds: float) -> None:
        self._rate.on_rate_limited(seconds, sent_at=0.0)  # a steady pace only holds


class RayRateLimiter:
    """A ``RateLimiter`` shared by every worker of a Ray job: a proxy to a named actor.

    Every attempt (retries included) asks the actor for a slot, and every 429 is told to it, so
    all actors together stay under ``requests_per_second``. Get one with :meth:`create`; it
    pickles as the actor's handle, so pass it to workers as ``rate_limiter=``. Under
    ``AsyncReveRemix`` the client awaits :meth:`anext_slot`, so asking never blocks the loop.

    Example::

        limiter = RayRateLimiter.create(requests_per_second=5)
        out = ds.map_batches(RemixBatches, fn_constructor_kwargs={"store": "run-1",
                             "rate_limiter": limiter}, ...)
    """

    def __init__(self, handle: Any) -> None:  # noqa: ANN401 - a Ray actor handle
        self._handle = handle

    @classmethod
    def create(
        cls, requests_per_second: float, *, name: str = DEFAULT_RATE_LIMITER_NAME
    ) -> RayRateLimiter:
        """The limiter actor called ``name`` (made if absent), set to ``requests_per_second``.

        Two calls with the same name share one actor (the last rate wins), so two datasets
        remixed at once still respect one account's limit. It needs no CPU.
        """
        SteadyRate(requests_per_second)  # validate here, not inside the actor
        actor = ray.remote(num_cpus=0)(_SteadyRateActor)
        handle: Any = actor.options(name=name, get_if_exists=True).remote(requests_per_second)
        ray.get(handle.set_rate.remote(requests_per_second))
        return cls(handle)

    def next_slot(self) -> float:
        """Seconds until the next slot; 0: it is now, and taken (one round trip to the actor)."""
        seconds: float = ray.get(self._handle.next_slot.remote())
        return seconds

    async def anext_slot(self) -> float:
        """:meth:`next_slot` for ``AsyncReveRemix``: the round trip is awaited, not waited on."""
        seconds: float = await self._handle.next_slot.remote()
        return seconds

    def on_sent(self) -> float:
        """When the attempt went out (the actor keeps a steady pace, which needs nothing more)."""
        return time.monotonic()

    def on_rate_limited(self, seconds: float, sent_at: float) -> None:
        """Tell the actor of a 429 (without waiting); calls from one worker reach it in order."""
        self._handle.on_rate_limited.remote(seconds)


def remix_dataset(
    ds: ray.data.Dataset,
    *,
    store: PaidStore | str | os.PathLike[str],
    actors: int = 2,
    concurrency_per_actor: int = DEFAULT_CONCURRENCY,
    requests_per_second: float | None = None,
    num_cpus: float = DEFAULT_NUM_CPUS,
    max_generations: int | None = None,
    max_cost: float | str | Decimal | None = None,
    price: float | str | Decimal | None = None,
    **client_options: Any,  # noqa: ANN401 - ReveRemix's options, checked there
) -> ray.data.Dataset:
    """Remix every row of ``ds``; the result is ``ds``'s columns plus the outcome columns.

    Rows need ``id`` (unique and stable: it keys the store), ``prompt`` and ``images``, and may
    have ``aspect_ratio``, ``output_format`` and ``extra_body``. ``store`` is a
    :class:`~reve_remix.PaidStore` or its location, which every worker must reach (a shared
    directory or an fsspec URL on a cluster). ``actors`` x ``concurrency_per_actor`` rows are in
    flight at once; ``requests_per_second`` shares one :class:`RayRateLimiter` among them (off by
    default). ``max_generations`` and ``max_cost`` (USD, at ``price`` or ``$REVE_REMIX_PRICE``)
    cap the requests that may be billed across every actor of this call, kept in the store;
    rows that do not fit end *pending*, unsent. Other keyword arguments go to
    :class:`~reve_remix.ReveRemix` in each actor; prefer setting ``ONEROUTER_API_KEY`` on the
    workers to passing ``api_key``, which travels with the dataset's plan. Like every Ray Data
    call it is lazy: rows are sent when the result is consumed.

    Example::

        out = remix_dataset(ds, store="/shared/run-1", actors=2, concurrency_per_actor=8)
        print(out.groupby("status").count().take_all())
    """
    check_concurrency(actors)
    paid_store = store if isinstance(store, PaidStore) else PaidStore(store)
    paid_store._require_shared("Ray", several_hosts=_several_nodes())
    client_options = capped(paid_store, client_options, max_generations, max_cost, price)
    if requests_per_second is not None:
        limiter: RateLimiter = RayRateLimiter.create(requests_per_second)
        client_options = {**client_options, "rate_limiter": limiter}
    remixer_options = {
        "store": paid_store,
        "concurrency": concurrency_per_actor,
        **client_options,
    }
    RowRemixer(**remixer_options).close()  # a bad option fails here, not in every actor
    return ds.map_batches(
        RemixBatches,
        fn_constructor_kwargs=remixer_options,
        batch_format="pandas",
        batch_size=BATCH_ROWS_PER_THREAD * concurrency_per_actor,
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=num_cpus,
    )


def _several_nodes() -> bool:
    """Whether the Ray cluster this process is connected to has more than one live node.

    Not connected yet: the first Ray call starts a local cluster, one node.
    """
    if not ray.is_initialized():
        return False
    nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call, unused-ignore]
    return sum(1 for node in nodes if node.get("Alive")) > 1
