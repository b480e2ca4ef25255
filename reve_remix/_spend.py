"""What a ledger says was spent: every attempt of every job, counted from the full history.

The API reports no cost, so the only account of what a batch spent is its manifest. The manifest
is an append-only log, and a job may have been sent more than once (a failure sent again, an
ambiguous one resent with ``--resend-ambiguous``, a paid one regenerated with
``--regenerate-paid``): counting only the latest record of each job would miss those. So
:func:`attempts` replays the log and cuts it into attempts: each starts where the job was claimed
(a *sent* record, numbered ``attempt``), and ends in the last state recorded for that number:

- **paid**: a 2xx arrived (*paid*, then *done* once saved): billed;
- **ambiguous**: no answer, a 500, a crash while the request was out (*sent* or *ambiguous*):
  may have been billed;
- **flagged**: refused by content policy: may have been billed (a provider may generate first
  and moderate the result), as a :class:`~reve_remix.Budget` counts it;
- **failed**: provably nothing was made: not billed;
- refused by a budget before it left (*pending*): not an attempt, not counted.

:func:`spend` adds them up (per UTC day of the claim, if asked); the ``spend`` command renders it.
Pure: it reads nothing but the records it is given.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from ._ledger import JobRecord
from ._lifecycle import JobState

UNKNOWN_DAY = "unknown"
"""The day of an attempt whose records carry no time (written by an old version)."""

_OUTCOMES = {
    JobState.PAID: "paid",
    JobState.DONE: "paid",
    JobState.SENT: "ambiguous",
    JobState.AMBIGUOUS: "ambiguous",
    JobState.FLAGGED: "flagged",
    JobState.FAILED: "failed",
}
"""How an attempt ended, by the last state recorded for it (``pending``: never sent)."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """One claim of one job and how it ended: ``outcome`` is paid, ambiguous, flagged, failed,
    or unsent (refused by a budget before it left).

    ``day`` is the UTC date the request was claimed (``YYYY-MM-DD``), or ``unknown``.
    """

    id: str
    number: int
    outcome: str
    day: str


@dataclass(slots=True)
class Spent:
    """Attempts counted by outcome. ``billed`` is what may have been billed: paid, ambiguous
    and flagged ones; ``failed`` ones made nothing.

    Example::

        >>> spent = Spent(paid=3, ambiguous=1, failed=2)
        >>> spent.billed, spent.cost(Decimal("0.04")), spent.cost(None)
        (4, Decimal('0.16'), None)
    """

    paid: int = 0
    ambiguous: int = 0
    flagged: int = 0
    failed: int = 0

    @property
    def billed(self) -> int:
        """Generations that may have been billed."""
        return self.paid + self.ambiguous + self.flagged

    def cost(self, price: Decimal | None) -> Decimal | None:
        """``billed`` x ``price`` in USD; ``None`` without a price."""
        return None if price is None else self.billed * price

    def add(self, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)

    def to_dict(self, price: Decimal | None) -> dict[str, int | float | None]:
        """The counts, ``billed``, and with a price ``cost`` and ``cost_paid`` (paid ones only),
        as JSON numbers."""
        counts: dict[str, int | float | None] = dict(dataclasses.asdict(self))
        counts["billed"] = self.billed
        if price is not None:
            counts["cost"] = float(self.billed * price)
            counts["cost_paid"] = float(self.paid * price)
        return counts


@dataclass(slots=True)
class Spend:
    """What a ledger says was spent: ``total``, and ``days`` (UTC date → :class:`Spent`)."""

    total: Spent = field(default_factory=Spent)
    days: dict[str, Spent] = field(default_factory=dict)


def attempts(records: Iterable[JobRecord]) -> Iterator[Attempt]:
    """Every attempt in a ledger's history (records in the order they were written).

    A *sent* record opens an attempt; later records with its number (or none, from an old
    version) end it in their state; a record of another number without a claim before it (an
    old manifest, or an attempt stopped before its request was built) is an attempt of its own.

    Example::

        >>> log = [JobRecord("a", JobState.SENT, attempt=1), JobRecord("a", JobState.PAID, attempt=1),
        ...        JobRecord("a", JobState.SENT, attempt=2), JobRecord("a", JobState.DONE, attempt=2)]
        >>> [(a.number, a.outcome) for a in attempts(log)]
        [(1, 'paid'), (2, 'paid')]
    """  # noqa: E501 - a doctest's input is one statement
    open_: dict[str, tuple[int, str, JobState]] = {}  # job id -> (number, day, last state)
    for record in records:
        current = open_.get(record.id)
        same = current is not None and record.attempt in (0, current[0])
        if record.status is JobState.SENT or not same:
            if current is not None:
                yield _ended(record.id, current)
            if record.status is JobState.PENDING:  # refused before it left, or never claimed
                open_.pop(record.id, None)
                continue
            open_[record.id] = (record.attempt, _day(record), record.status)
        else:
            assert current is not None
            open_[record.id] = (current[0], current[1], record.status)
    for job_id, current in open_.items():
        yield _ended(job_id, current)


def spend(records: Iterable[JobRecord]) -> Spend:
    """Add up the attempts of ``records`` (a ledger's full history), in total and per day.

    Example::

        >>> log = [JobRecord("a", JobState.SENT, attempt=1, time="2025-01-02T10:00:00+00:00"),
        ...        JobRecord("a", JobState.FAILED, attempt=1)]
        >>> spent = spend(log)
        >>> spent.total.failed, spent.total.billed, list(spent.days)
        (1, 0, ['2025-01-02'])
    """
    result = Spend()
    for attempt in attempts(records):
        if attempt.outcome == "unsent":
            continue
        result.total.add(attempt.outcome)
        result.days.setdefault(attempt.day, Spent()).add(attempt.outcome)
    result.days = dict(sorted(result.days.items()))
    return result


def _ended(job_id: str, current: tuple[int, str, JobState]) -> Attempt:
    number, day, state = current
    return Attempt(job_id, number, _OUTCOMES.get(state, "unsent"), day)


def _day(record: JobRecord) -> str:
    return record.time[:10] if record.time else UNKNOWN_DAY
