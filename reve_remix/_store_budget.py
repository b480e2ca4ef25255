"""A :class:`~reve_remix.Budget` kept in a paid store: one cap for every worker of one run.

A ``Budget`` counts under a lock in one process; Ray actors and Spark tasks are many processes on
many hosts. :class:`StoreBudget` keeps the count where they all write already, the paid store
(``_store.PaidStore``): each attempt about to be sent reserves a generation by creating the file
``_budget/<run>/<n>`` for some ``n`` below the cap, *only if it is absent*. That create is atomic
on a local disk, NFS and every fsspec filesystem the store supports (``PaidStore`` claims rows the
same way), so of two workers reserving the same number one wins and the other tries the next:
however many workers share the store, at most ``cap`` numbers exist, so at most ``cap`` requests
that may be billed are sent.

- **given back** when the attempt provably made nothing (a 429, a 502/503/504, any other 4xx, a
  connection refused): its file is removed and the number is free again. A retry of it costs
  nothing.
- **kept** otherwise (a 2xx, a 500, a timeout, a refusal by content policy, a worker killed
  with the request out): the file stays, the generation may have been billed.
- **one run**: ``<run>`` is made once per ``remix_rows``, ``remix_dataset`` or
  ``remix_partitions`` call and travels to every worker with the budget, so each call has its
  own cap and a later call on the same store starts from zero. The files stay as a record of
  what the run reserved (each names the host and process that reserved it).

Each reservation lists the folder once (``names``), then tries the free numbers in order; a
budget that is spent costs one listing per row, and refuses without creating anything.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ._budget import Budget, Hold
from ._exceptions import BudgetExceededError
from ._store import PaidStore

BUDGET = "_budget"
RESERVE_ROUNDS = 100
"""Listings a reservation tries before it gives up (each round lost every free number to other
workers); giving up refuses the attempt, which never overspends."""


class StoreBudget(Budget):
    """A :class:`Budget` whose generations are reserved in ``store``, shared by every process
    that has a copy of it (it pickles as its store, caps and run).

    ``spent``, ``reserved`` and ``refused`` count this process's attempts; ``remaining`` and
    :attr:`used` read the store, so they count every worker's.

    Example::

        budget = StoreBudget(PaidStore("/shared/run-1"), max_generations=100)
        outcomes = remix_rows(rows, store=budget.store, budget=budget)  # or max_generations=100
        budget.used  # generations reserved by every worker of this run
    """

    def __init__(
        self,
        store: PaidStore,
        max_generations: int | None = None,
        max_cost: float | str | Decimal | None = None,
        price: float | str | Decimal | None = None,
        *,
        run: str | None = None,
    ) -> None:
        super().__init__(max_generations, max_cost, price)
        self.store = store
        self.run = run or f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"
        """This run's folder under ``_budget/`` in the store."""

    @property
    def folder(self) -> str:
        return f"{BUDGET}/{self.run}"

    @property
    def used(self) -> int:
        """Generations reserved in the store by every worker of this run (spent or in flight)."""
        return len(self._taken())

    def hold(self, *, billed_before: bool = False) -> Hold:
        limit = self.limit
        if limit is None:
            return super().hold(billed_before=billed_before)
        slot = self._reserve(limit)
        with self._lock:
            if slot is None:
                self._refused += 1
                raise BudgetExceededError(
                    self._exhausted(), budget=self, earlier_attempt_billed=billed_before
                )
            self._reserved += 1
        return Hold(self, slot)

    def _reserve(self, limit: int) -> int | None:
        """Create a free ``_budget/<run>/<n>`` (``n`` < ``limit``); its number, or ``None``."""
        files = self.store._files
        now = datetime.now(UTC).isoformat(timespec="seconds")
        mine = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "time": now}).encode()
        for _ in range(RESERVE_ROUNDS):
            taken = self._taken()
            free = [number for number in range(limit) if number not in taken]
            if not free:
                return None
            for number in free:
                if files.create(f"{self.folder}/{number}", mine):
                    return number
        return None

    def _taken(self) -> set[int]:
        return {int(name) for name in self.store._files.names(self.folder) if name.isdigit()}

    def _settle(self, spent: bool, slot: int | None = None) -> None:
        if not spent and slot is not None:  # provably nothing made: the number is free again
            try:
                self.store._files.remove(f"{self.folder}/{slot}")
            except OSError:  # kept: counted as spent, which never overspends
                spent = True
        super()._settle(spent)

    def _remaining(self) -> int | None:
        limit = self.limit
        return None if limit is None else max(limit - len(self._taken()), 0)

    def _exhausted(self) -> str:
        return (
            f"budget spent: the {self.limit} generation(s) allowed to this run are reserved in "
            f"{self.store._files.location(self.folder)} by its workers (spent, or in flight); "
            "this request was not sent"
        )

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_lock"]
        state.update(_spent=0, _reserved=0, _refused=0)  # a copy counts its own process
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
