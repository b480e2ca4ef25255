"""Running a batch's plan: every job through the one runner, stopping cleanly when told to.

:class:`BatchRun` hands each planned job to ``_runner.lifecycle`` (driven by the client, with the
manifest as its ledger), ``concurrency`` at a time, and reports each outcome. It stops *starting*
jobs, and lets the running ones answer and save what was paid, when:

- :meth:`BatchRun.stop` is called (the command line does on SIGINT, SIGTERM or SIGHUP);
- the manifest cannot be written (an outcome carries a ``LedgerError``): every later job would be
  paid for and not recorded;
- a job ends with a 401 or 402 (the record's ``status_code``): every later job would fail the
  same way;
- an image cannot be saved because of where it goes (:attr:`BatchRun.unsaveable`): the disk is
  full or read-only, or the folder cannot be written, tried for real once the save failed
  (``OutputFile.cannot_save``). Every later job would be paid for and not saved, so the first
  such failure stops the run: waiting for a second would pay for up to ``concurrency`` more
  images that cannot be saved. A failure of one file alone (a folder where the image goes) does
  not stop it. What was paid stays *paid* (its URL, or its bytes spooled), and a plain resume
  saves it without generating it again.

The client's budget (``--max-generations``, ``--max-cost``) is a cap of another kind: a job that
would *send* is started only while the generations spent and the sending jobs in flight leave
room for it, so the jobs sent are the first ones in file order (those a dry run names) whatever
the concurrency; the rest are left pending (:attr:`BatchRun.capped`). A job whose attempt made
nothing gives its generation back, and the next one is started. Jobs that only download or copy
what was paid for cost nothing, and still run.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from ._batch_plan import OutputFile, Planned
from ._exceptions import BudgetExceededError, ImageNotSavedError, ReveRemixError
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
        self.unsaveable: str | None = None
        """Why images cannot be saved, if a failed save stopped the run."""
        self.not_started = 0
        self.capped = 0
        """Jobs left pending by the budget: refused by it, or not started once it was reached."""
        self._budget_reached = False
        self._refused = 0
        self._sending = 0  # jobs that may send, started and not yet settled
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
                if item.action.sends:
                    if self._out_of_budget():
                        self.capped += 1
                        continue
                    self._sending += 1
                started += 1
                yield item

        run = iter_in_threads(
            self._one, until_stopped(jobs), concurrency=min(self.concurrency, len(jobs) or 1)
        )
        with contextlib.closing(run):
            for _index, planned, outcome in run:
                if isinstance(outcome, ReveRemixError):  # the lifecycle returns errors: a bug
                    raise outcome
                self._sending -= planned.action.sends  # before the next job is started
                self._check(planned, outcome)
                self.on_settled(planned, outcome)
        self.not_started = len(jobs) - started - self.capped
        self.capped += self._refused

    @property
    def budget_reached(self) -> bool:
        """Whether the budget stopped jobs from being sent."""
        return self.capped > 0

    def _out_of_budget(self) -> bool:
        # Each sending job in flight will hold a generation: counting them before they hold it
        # keeps a later job from taking one an earlier job is about to (the run sends the
        # first jobs, in file order, as a dry run says). remaining is 0 also while a budget
        # shared with others is held elsewhere.
        budget = self.client.budget
        if budget.limit is not None and budget.spent + self._sending >= budget.limit:
            return True
        return self._budget_reached or budget.remaining == 0

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

    def _check(self, planned: Planned, settled: Settled) -> None:
        record, error = settled.record, settled.error
        if isinstance(error, BudgetExceededError):
            self._budget_reached = True
            self._refused += record.status is JobState.PENDING  # not sent: left pending
        elif isinstance(error, LedgerError):
            self.stop(f"failure to write {error.location}")
        elif record.status is JobState.FAILED and record.status_code in ACCOUNT_STATUSES:
            self.account_status = self.account_status or record.status_code
            self.stop(f"{record.status_code} on line {record.line}")
        elif isinstance(error, ImageNotSavedError) and isinstance(error.cause, OSError):
            output = planned.job.destination
            why = output.cannot_save(error.cause) if isinstance(output, OutputFile) else None
            if why is not None:
                self.unsaveable = self.unsaveable or why
                self.stop(f"failure to save line {record.line}'s image")
