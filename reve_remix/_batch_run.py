"""Running a batch's plan: every job through the one runner, stopping cleanly when told to.

:class:`BatchRun` hands each planned job to ``_runner.lifecycle`` (driven by the client, with the
manifest as its ledger), ``concurrency`` at a time, and reports each outcome. It stops *starting*
jobs, and lets the running ones answer and save what was paid, when:

- :meth:`BatchRun.stop` is called (the command line does on SIGINT, SIGTERM or SIGHUP);
- the manifest cannot be written (an outcome carries a ``LedgerError``): every later job would be
  paid for and not recorded;
- a job ends with a 401 or 402 (the record's ``status_code``): every later job would fail the
  same way.

The client's budget (``--max-generations``, ``--max-cost``) is a cap of another kind: once it is
reached (a job was refused by it, or nothing of it is left) no further job that would *send* is
started, and those are left pending (:attr:`BatchRun.capped`); jobs that only download or copy
what was paid for cost nothing, and still run.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from ._batch_plan import Planned
from ._exceptions import BudgetExceededError, ReveRemixError
from ._ledger import JobRecord, LedgerError
from ._lifecycle import JobState
from ._manifest import Manifest
from ._runner import Policy, Settled, lifecycle
from ._schedule import iter_in_threads

if TYPE_CHECKING:
    from ._client import ReveRemix

ACCOUNT_STATUSES = frozenset({401, 402})
"""A job that fails with one of these fails for the account, not the job: the batch stops."""


class BatchRun:
    """One run of a batch's planned jobs (see the module's notes).

    Example::

        run = BatchRun(client, manifest, Policy(), concurrency=4, on_settled=report)
        run.run(plan.to_run)
        run.stopped  # why it stopped early, or None
    """

    def __init__(
        self,
        client: ReveRemix,
        manifest: Manifest,
        policy: Policy,
        *,
        concurrency: int,
        on_settled: Callable[[Planned, Settled], None],
    ) -> None:
        self.client = client
        self.manifest = manifest
        self.policy = policy
        self.concurrency = concurrency
        self.on_settled = on_settled
        self.stopped: str | None = None
        """Why no further job was started, if something stopped the run."""
        self.account_status: int | None = None
        """The 401 or 402 that stopped the run, if one did."""
        self.not_started = 0
        self.capped = 0
        """Jobs left pending by the budget: refused by it, or not started once it was reached."""
        self._budget_reached = False
        self._refused = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._running: dict[str, Planned] = {}

    def stop(self, why: str) -> None:
        """Start no further job; the running ones finish. The first reason is kept."""
        with self._lock:
            if self.stopped is None:
                self.stopped = why
        self._stop.set()

    def running(self) -> list[JobRecord]:
        """The latest records of the jobs in flight now (what a quit now would leave)."""
        with self._lock:
            ids = list(self._running)
        return [record for job_id in ids if (record := self.manifest.lookup(job_id))]

    def run(self, jobs: Sequence[Planned]) -> None:
        """Run ``jobs``; returns when every started job has settled."""
        started = 0

        def until_stopped(items: Iterable[Planned]) -> Iterator[Planned]:
            nonlocal started
            for item in items:
                if self._stop.is_set():
                    return
                if item.action.sends and self._out_of_budget():
                    self.capped += 1
                    continue
                started += 1
                yield item

        run = iter_in_threads(
            self._one, until_stopped(jobs), concurrency=min(self.concurrency, len(jobs) or 1)
        )
        with contextlib.closing(run):
            for _index, planned, outcome in run:
                if isinstance(outcome, ReveRemixError):  # the lifecycle returns errors: a bug
                    raise outcome
                self._check(outcome)
                self.on_settled(planned, outcome)
        self.not_started = len(jobs) - started - self.capped
        self.capped += self._refused

    @property
    def budget_reached(self) -> bool:
        """Whether the budget stopped jobs from being sent."""
        return self.capped > 0

    def _out_of_budget(self) -> bool:
        # remaining is 0 also while the last generations are held by jobs in flight: a job
        # started now would be refused (and one of those may yet give its generation back)
        return self._budget_reached or self.client.budget.remaining == 0

    def _one(self, planned: Planned) -> Settled:
        with self._lock:
            self._running[planned.job.id] = planned
        try:
            run = lifecycle(
                planned.job,
                self.manifest,
                self.client,
                self.policy,
                previous=planned.previous,
                looked_up=True,
            )
            return self.client._drive(run)
        finally:
            with self._lock:
                self._running.pop(planned.job.id, None)

    def _check(self, settled: Settled) -> None:
        record = settled.record
        if isinstance(settled.error, BudgetExceededError):
            self._budget_reached = True
            self._refused += record.status is JobState.PENDING  # not sent: left pending
        elif isinstance(settled.error, LedgerError):
            self.stop(f"failure to write {settled.error.location}")
        elif record.status is JobState.FAILED and record.status_code in ACCOUNT_STATUSES:
            self.account_status = self.account_status or record.status_code
            self.stop(f"{record.status_code} on line {record.line}")
