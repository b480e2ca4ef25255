"""Remixing a Spark DataFrame without paying twice: ``remix_partitions`` for ``mapInPandas``.

Needs the ``spark`` extra: ``pip install 'reve-remix[spark]'``. The guide is ``docs/engines.md``.

Run Spark with task retries (``local[N,F]`` with ``F`` >= 2 locally, ``spark.task.maxFailures``
on a cluster, 4 by default there): without them one crashed Python worker aborts the whole job
and every row already paid for is lost with it. With them the failed task runs again from its
first row, and the paid store (:class:`~reve_remix.PaidStore`) makes that retry free: done rows
are reported from their records, paid ones downloaded again, and the rows that were in flight on
the crashed worker reported *ambiguous* instead of being paid for again.

Example::

    from reve_remix.spark import OUTCOME_SCHEMA, remix_partitions

    outcomes = df.mapInPandas(remix_partitions(store="/shared/run-1"), schema=OUTCOME_SCHEMA)
    outcomes.groupBy("status").count().show()
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

try:
    import pandas
    from pyspark import SparkContext
    from pyspark.sql.types import StringType, StructField, StructType
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("reve_remix.spark needs PySpark: pip install 'reve-remix[spark]'") from exc

from ._engine import DEFAULT_CONCURRENCY, OUTCOME_COLUMNS, RowRemixer, capped
from ._store import PaidStore

__all__ = ["OUTCOME_SCHEMA", "remix_partitions"]

OUTCOME_SCHEMA = StructType(
    [StructField(name, StringType(), nullable=name != "id") for name in ("id", *OUTCOME_COLUMNS)]
)
"""What ``remix_partitions`` yields: the row's ``id`` (as a string) and its outcome columns.

Join it back to the input on ``id`` for the other columns.
"""


def remix_partitions(
    *,
    store: PaidStore | str | os.PathLike[str],
    concurrency: int = DEFAULT_CONCURRENCY,
    max_generations: int | None = None,
    max_cost: float | str | Decimal | None = None,
    price: float | str | Decimal | None = None,
    **client_options: Any,  # noqa: ANN401 - ReveRemix's options, checked there
) -> Callable[[Iterator[Any]], Iterator[Any]]:
    """A function for ``df.mapInPandas(..., schema=OUTCOME_SCHEMA)`` that remixes every row.

    Rows need ``id`` (unique and stable: it keys the store), ``prompt`` and ``images`` (an array,
    or a map of named images), and may have ``aspect_ratio``, ``output_format`` and
    ``extra_body`` (a map, or a JSON object as a string). Each task keeps ``concurrency`` rows in
    flight; ``store`` must be reachable from every executor (a shared directory or an fsspec
    URL). ``max_generations`` and ``max_cost`` (USD, at ``price`` or ``$REVE_REMIX_PRICE``) cap
    the requests that may be billed across every task running the returned function, kept in
    the store; rows that do not fit end *pending*, unsent. Other keyword arguments go to
    :class:`~reve_remix.ReveRemix`; prefer setting ``ONEROUTER_API_KEY`` on the executors
    (``spark.executorEnv.ONEROUTER_API_KEY``) to passing ``api_key``, which is shipped to them
    with the function.

    Example::

        remix = remix_partitions(store="/shared/run-1", concurrency=8)
        outcomes = df.mapInPandas(remix, schema=OUTCOME_SCHEMA)
        outcomes.filter("status = 'ambiguous'").show()
    """
    paid_store = store if isinstance(store, PaidStore) else PaidStore(store)
    paid_store._require_shared("Spark", several_hosts=_several_hosts())
    client_options = capped(paid_store, client_options, max_generations, max_cost, price)
    # A bad option fails here, on the driver, not in every task.
    RowRemixer(paid_store, concurrency=concurrency, **client_options).close()

    def remix(batches: Iterator[Any]) -> Iterator[Any]:
        remixer = RowRemixer(paid_store, concurrency=concurrency, **client_options)
        try:
            for batch in batches:
                outcomes = remixer.remix_rows(batch.to_dict("records"))
                yield pandas.DataFrame(
                    [{"id": outcome.id, **outcome.columns()} for outcome in outcomes],
                    columns=OUTCOME_SCHEMA.fieldNames(),
                )
        finally:
            remixer.close()

    return remix


def _several_hosts() -> bool:
    """Whether the running Spark application has executors on more than one host.

    ``local[...]`` runs on this machine; otherwise the hosts the executors registered so far
    decide (an executor that joins later cannot be foreseen).
    """
    context = SparkContext._active_spark_context
    if context is None or (context.master or "local").startswith("local"):
        return False
    infos = context._jsc.sc().statusTracker().getExecutorInfos()
    return len({info.host() for info in infos}) > 1
