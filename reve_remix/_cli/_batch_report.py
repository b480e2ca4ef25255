"""What ``reve-remix batch`` says: why a job is held, how each job ended, and the summary.

The words are the lifecycle's (``_lifecycle``), so that the manifest, an exception and this
output say the same thing; every message about a paid job carries its request id and where the
image is (URL or spool file).
"""

from __future__ import annotations

import collections
import time
from pathlib import Path

from .._batch_plan import BatchPlan, Planned
from .._exceptions import BudgetExceededError
from .._identity import what_changed
from .._lifecycle import (
    GENERATED_NOT_SAVED,
    MAY_HAVE_BEEN_GENERATED,
    REFUSED_BY_CONTENT_POLICY,
    JobState,
)
from .._manifest import kept_raw
from .._progress import bar_line
from .._runner import Action, Settled
from ._console import PROG, Console

_REGENERATE = "--regenerate-paid generates it again (billed again)"


def held_reason(planned: Planned) -> str:
    """Why a job is not sent this run, and the flag that would send it."""
    line, record = planned.line, planned.previous
    assert record is not None  # held and conflicting jobs have a record
    rid = f"request id {record.request_id}" if record.request_id else "no request id"
    if planned.action is Action.CONFLICT:
        changed = what_changed(record.parts, planned.job.parts)
        return (
            f"conflict {line.id} (line {line.number}): this id is {record.status.value} in the "
            f"manifest for another request ({changed}); not sent: --replace-changed sends the "
            "new one (billed) in its place"
        )
    where = f"held {line.id} (line {line.number}): "
    if record.status is JobState.PAID:
        kept = "raw body in the manifest" if record.body else "its image was not kept"
        return f"{where}generated ({rid}), but its response had no image ({kept}); {_REGENERATE}"
    if record.status is JobState.FLAGGED:
        return (
            f"{where}{REFUSED_BY_CONTENT_POLICY} ({rid}); change the line, or --resend-flagged "
            "sends it again as it is"
        )
    return (
        f"{where}{MAY_HAVE_BEEN_GENERATED} ({rid}): its last run ended without an answer; "
        "--resend-ambiguous sends it again (possibly billed twice)"
    )


def announce(plan: BatchPlan, jobs: str, console: Console) -> bool:
    """Print the plan's problems, notes, held jobs and conflicts (``jobs`` names the jobs file);
    whether there were no problems."""
    for problem in plan.problems:
        console.say(f"{PROG}: {jobs}: {problem}")
    for note in plan.notes:
        console.say(f"{PROG}: {jobs}: {note}")
    for planned in plan.having(Action.HOLD, Action.CONFLICT):
        console.say(f"{PROG}: {held_reason(planned)}")
    return not plan.problems


class Report:
    """Counts a running batch, reports each finished job, draws the bar, writes the summary."""

    def __init__(self, console: Console, out_dir: Path, *, total: int = 0) -> None:
        self.console = console
        self.out_dir = out_dir
        self.total = total
        self.done = 0
        self.placed = 0
        self.ended: collections.Counter[JobState] = collections.Counter()
        self.started = time.monotonic()

    @property
    def failed(self) -> int:
        """Jobs of this run that ended other than done."""
        return sum(self.ended.values())

    def render(self, elapsed: float, retry: str | None) -> str:
        return bar_line(self.done, self.failed, self.total, elapsed, retry)

    def settled(self, planned: Planned, settled: Settled) -> None:
        """Count and report one job's outcome."""
        record = settled.record
        if isinstance(settled.error, BudgetExceededError) and record.status is JobState.PENDING:
            return  # not sent: left pending, counted by the run and said once at the end
        counter = f"[{self.done + self.failed + 1}/{self.total}]"
        where = f"{record.id} (line {record.line})"
        if settled.error is not None and record.status is JobState.DONE:  # saved, not recorded
            self.ended[JobState.PAID] += 1
            self.console.say(f"{PROG}: {counter} error: {settled.error}")
            return
        if record.status is JobState.DONE:
            self.done += 1
            self.placed += settled.action is Action.PLACE
            how = " (placed from an earlier run, not generated again)" * (
                settled.action is Action.PLACE
            )
            if not self.console.live:
                path = self.out_dir / str(record.file)
                also = "".join(
                    f", line {copy.number} -> {copy.target(self.out_dir)}"
                    for copy in planned.copies
                )
                self.console.say(f"{PROG}: {counter} done {where} -> {path}{also}{how}")
            return
        status = JobState.AMBIGUOUS if settled.action is Action.HOLD else record.status
        self.ended[status] += 1
        text = str(settled.error) if settled.error is not None else str(record.error)
        label = {
            JobState.PAID: GENERATED_NOT_SAVED,
            JobState.AMBIGUOUS: MAY_HAVE_BEEN_GENERATED,
            JobState.FLAGGED: REFUSED_BY_CONTENT_POLICY,
        }.get(status, "failed")
        self.console.say(f"{PROG}: {counter} {label} {where}: {text}{_advice(settled)}")

    def summary(
        self,
        *,
        before: int,
        held: int,
        flagged: int = 0,
        conflicts: int,
        invalid: int,
        not_started: int,
        capped: int = 0,
        stopped: str | None,
        manifest: Path,
    ) -> str:
        """The one line on stdout at the end. ``held`` jobs were held by the plan, ``flagged``
        of them because they were refused by content policy in an earlier run; ``capped`` were
        left pending by the budget."""
        parts = [f"{self.done + before} done" + (f" ({before} in earlier runs)" if before else "")]
        parts.append(f"{self.ended[JobState.FAILED]} failed")
        if self.ended[JobState.PAID]:
            parts.append(f"{self.ended[JobState.PAID]} {GENERATED_NOT_SAVED} (run again)")
        ambiguous = self.ended[JobState.AMBIGUOUS] + held - flagged
        if ambiguous:
            parts.append(f"{ambiguous} held ({MAY_HAVE_BEEN_GENERATED} or unreadable)")
        flagged += self.ended[JobState.FLAGGED]
        if flagged:
            parts.append(f"{flagged} flagged ({REFUSED_BY_CONTENT_POLICY}; --resend-flagged)")
        if capped:
            parts.append(f"{capped} left pending by the budget (run again to send them)")
        if conflicts:
            parts.append(f"{conflicts} in conflict with the manifest")
        if invalid:
            parts.append(f"{invalid} invalid line(s) skipped")
        if not_started:
            why = stopped if stopped in (None, "interrupted") else f"stopped after the {stopped}"
            parts.append(f"{not_started} not started ({why or 'interrupted'}; run again to resume)")
        seconds = time.monotonic() - self.started
        return f"{', '.join(parts)} in {seconds:.1f} s; manifest: {manifest}"


def _advice(settled: Settled) -> str:
    """What the next run does with a job that did not end done, and the flag that changes it."""
    record = settled.record
    if record.status is JobState.PAID:
        if (not record.recoverable or kept_raw(record)) and not record.url:
            return f"; {_REGENERATE}"
        again = "; run again to save it (not generated again)"
        if settled.action is Action.FETCH:  # it failed in an earlier run too: the URL may be gone
            again += f"; if its URL has expired, {_REGENERATE}"
        return again
    if record.status is JobState.AMBIGUOUS or settled.action is Action.HOLD:
        return "; not sent again unless you pass --resend-ambiguous"
    if record.status is JobState.FLAGGED:
        return "; not sent again unless you pass --resend-flagged"
    return ""
