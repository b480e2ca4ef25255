"""Where the life of a paid job is written down: one record type, one protocol, many homes.

The runner (:mod:`reve_remix._runner`) drives every paid job through the states of
:mod:`reve_remix._lifecycle` and writes each step to a :class:`Ledger`. Ledgers differ only in
where the records live:

- the batch manifest (``_manifest.Manifest``): a JSONL file under an exclusive lock;
- the paid store of the engines (``_store.PaidStore``): one record per row id, on a disk or an
  fsspec filesystem every worker sees;
- :class:`MemoryLedger`, for ``remix``, ``remix_many`` and ``iter_remix``: records in memory, and a
  WARNING on the ``reve_remix`` logger for every paid result the caller will never receive.

Every one of them stores :class:`JobRecord`, and writes it through :meth:`JobRecord.to_json`, so a
manifest line, a store record and a log line say the same thing in the same words.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import operator
import os
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ._exceptions import ReveRemixError
from ._images import image_extension
from ._lifecycle import GENERATED_NOT_SAVED, MAY_HAVE_BEEN_GENERATED, JobState, paid_context

if TYPE_CHECKING:
    from ._results import RemixResult

logger = logging.getLogger("reve_remix")

BODY_CHARS = 20_000
"""How much of an unreadable 2xx body a record keeps (the user may find the image in it)."""


@dataclass(frozen=True, slots=True)
class JobRecord:
    """What a ledger knows about one job at one moment: its state and where its image is.

    - ``fingerprint``: a digest of what would be sent (the request's fields, and local images by
      the hash of their content); a record whose id comes back with another fingerprint is a
      conflict, never "done";
    - ``attempt``: how many times the job was claimed for sending;
    - ``url`` / ``spool``: where a *paid* image can be had again without paying: the URL the API
      gave, or the file an inline image's bytes were kept in before any save was tried;
    - ``file``: where the image was saved (relative to the ledger's folder where it has one);
    - ``status_code``, ``request_id``, ``error``: how the last attempt ended; ``body`` the raw
      body of a 2xx whose image could not be found (the job is *paid*: it may be in there);
    - ``line``, ``prompt``: the job's line in its batch file and its prompt as written, for
      reports and the contact sheet;
    - ``recipe``: what made the image (``Recipe`` as JSON), written into the saved file, so that
      an image saved by a later run (a resumed download) carries it too;
    - ``time``: when the record was written (ISO 8601, UTC), for ``spend --by day``;
    - ``parts``: each part of what would be sent (the prompt, each image, the model...),
      digested on its own (``_identity.Identity``), so that a conflict can say what changed.

    Example::

        record = JobRecord("cat", JobState.PAID, url="https://cdn.example.com/cat.png")
        record.where  # 'no request id, url https://cdn.example.com/cat.png'
    """

    id: str
    status: JobState
    fingerprint: str | None = None
    attempt: int = 0
    line: int | None = None
    prompt: str | None = None
    request_id: str | None = None
    status_code: int | None = None
    url: str | None = None
    spool: str | None = None
    revised_prompt: str | None = None
    file: str | None = None
    error: str | None = None
    body: str | None = None
    recipe: str | None = None
    time: str | None = None
    parts: str | None = None

    @property
    def where(self) -> str:
        """The request id and where the paid image is, in the words every message uses."""
        return paid_context(self.request_id, self.url, self.spool)

    @property
    def recoverable(self) -> bool:
        """Whether a paid image can be had again without paying (a URL or spooled bytes)."""
        return bool(self.url or self.spool)

    def evolve(self, status: JobState | None = None, **changes: Any) -> JobRecord:  # noqa: ANN401 - any field
        """A copy with ``status`` and ``changes`` (``TypeError`` for a name that is no field).

        Built from the fields' values in one call: ``dataclasses.replace`` reads the class's
        fields anew on every call, and the runner makes a record at every step of every job.
        """
        values = list(_values(self))
        if status is not None:
            values[_INDEX["status"]] = status
        for name, value in changes.items():
            index = _INDEX.get(name)
            if index is None:
                raise TypeError(f"JobRecord has no field {name!r}")
            values[index] = value
        return JobRecord(*values)

    def stamped(self) -> JobRecord:
        """A copy stamped with the time now: what a durable ledger writes."""
        return self.evolve(time=_now())

    def to_json(self) -> str:
        """The record as one line of compact JSON (no newline), empty fields left out.

        ASCII only: a server's text (a lone surrogate in a revised prompt) is escaped, never a
        reason to fail after the image is paid for.
        """
        fields = {name: getattr(self, name) for name in _FIELDS}
        fields["status"] = self.status.value
        kept = {name: value for name, value in fields.items() if value is not None}
        return json.dumps(kept, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> JobRecord | None:
        """The record in ``text``, or ``None`` if it is not one (a line cut short by a crash).

        Fields of the wrong type are dropped rather than trusted.

        Example::

            >>> JobRecord.from_json('{"id":"cat","status":"done","file":"cat.png"}').file
            'cat.png'
            >>> JobRecord.from_json('{"id":"cat","status":"do') is None
            True
        """
        try:
            value = json.loads(text)
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(value, dict):
            return None
        job_id, status = value.get("id"), value.get("status")
        if not isinstance(job_id, str) or status not in _STATES:
            return None
        fields: dict[str, Any] = {}
        for name in _TEXT_FIELDS:
            if isinstance(item := value.get(name), str):
                fields[name] = item
        for name in _INT_FIELDS:
            item = value.get(name)
            if isinstance(item, int) and not isinstance(item, bool):
                fields[name] = item
        return cls(id=job_id, status=JobState(status), **fields)


_FIELDS = tuple(field.name for field in dataclasses.fields(JobRecord))
_values = operator.attrgetter(*_FIELDS)
_INDEX = {name: index for index, name in enumerate(_FIELDS)}
_INT_FIELDS = ("attempt", "line", "status_code")
_TEXT_FIELDS = tuple(name for name in _FIELDS if name not in ("id", "status", *_INT_FIELDS))
_STATES = frozenset(state.value for state in JobState)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class LedgerError(ReveRemixError):
    """A ledger could not be written: a run stops sending, and says what it could not record.

    ``location`` names the ledger, ``os_error`` is why, and ``record`` is the job's state that
    was not recorded: for a paid job its request id and URL (or spooled bytes), and where it was
    saved if it was, so that nothing paid for is lost with the record.

    Example::

        except LedgerError as exc:
            print(exc.location, exc.record.url if exc.record else None)
    """

    def __init__(
        self,
        location: str,
        os_error: OSError | None,
        record: JobRecord | None,
        *,
        cause: ReveRemixError | None = None,
    ) -> None:
        reason = (os_error.strerror or str(os_error)) if os_error is not None else "unknown"
        text = f"cannot write {location}: {reason}"
        if record is not None:
            if record.status is JobState.DONE:
                text += f"; job {record.id} was generated ({record.where}) and saved at "
                text += f"{record.file}, but that is not recorded"
            elif record.status is JobState.PAID:
                text += f"; job {record.id} was {GENERATED_NOT_SAVED} ({record.where})"
            else:
                text += f"; job {record.id} is {record.status.value}"
        if cause is not None:
            text += f" ({cause})"
        super().__init__(text)
        self.location = location
        self.os_error = os_error
        self.record = record


class Ledger(Protocol):
    """Where the runner writes the life of a job. Every write is durable when it returns.

    A ledger raises ``OSError`` when it cannot write; the runner then stops the job in a state it
    can still name (see ``_runner``). Implementations: ``Manifest``, ``PaidStore``,
    :class:`MemoryLedger`.
    """

    def lookup(self, job_id: str) -> JobRecord | None:
        """The job's latest record, or ``None`` if the ledger has never seen it."""
        ...

    def claim(self, record: JobRecord) -> bool:
        """Record that ``record`` (state *sent*) is about to be sent; ``False`` if another run
        holds the job."""
        ...

    def write(self, record: JobRecord) -> None:
        """Record how the job stands now."""
        ...

    def keep(self, record: JobRecord, result: RemixResult, inline: bytes | None) -> JobRecord:
        """Make a 2xx durable before anything else is tried: write ``record`` (state *paid*),
        with ``inline`` (an inline image's bytes) spooled first; returns the record written."""
        ...

    def unspool(self, record: JobRecord) -> bytes:
        """The bytes :meth:`keep` spooled for ``record``; ``OSError`` if they are gone."""
        ...


class MemoryLedger:
    """The ledger of one ``remix``, ``remix_many`` or ``iter_remix`` call: records in memory.

    Nothing here outlives the process, so its one duty beyond bookkeeping is to never drop a paid
    result silently: the scheduler calls :meth:`delivered` as each outcome reaches the caller,
    and :meth:`abandon` when the call stops early. ``abandon`` writes every paid result the
    caller will not receive to a spool folder when it is inline, logs it at WARNING with its
    request id and URL (or spool path), and returns the results so that they can be attached to
    the exception that stopped the call.

    Example::

        ledger = MemoryLedger()
        ... # the runner writes to it
        lost = ledger.abandon("the loop was left early")  # logged; the results themselves
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, JobRecord] = {}
        self._results: dict[str, RemixResult] = {}

    def lookup(self, job_id: str) -> JobRecord | None:
        with self._lock:
            return self._records.get(job_id)

    def claim(self, record: JobRecord) -> bool:
        with self._lock:
            held = self._records.get(record.id)
            if held is not None and held.status is JobState.SENT:
                return False
            self._records[record.id] = record
            return True

    def write(self, record: JobRecord) -> None:
        with self._lock:
            self._records[record.id] = record
            if record.status is not JobState.PAID:
                self._results.pop(record.id, None)

    def keep(self, record: JobRecord, result: RemixResult, inline: bytes | None) -> JobRecord:
        with self._lock:  # inline bytes stay in the result: spooled only if the caller leaves
            self._records[record.id] = record
            self._results[record.id] = result
        return record

    def unspool(self, record: JobRecord) -> bytes:
        if record.spool is None:
            raise FileNotFoundError(f"{record.id}: nothing was spooled")
        return Path(record.spool).read_bytes()

    def delivered(self, job_id: str) -> None:
        """The caller has the job's outcome: nothing of it can be lost here any more."""
        with self._lock:
            self._records.pop(job_id, None)
            self._results.pop(job_id, None)

    def unsettled(self) -> Iterator[JobRecord]:
        """The records of jobs whose outcome the caller has not received, paid ones first."""
        with self._lock:
            records = list(self._records.values())
        order = {JobState.PAID: 0, JobState.SENT: 1, JobState.AMBIGUOUS: 1}
        yield from sorted(
            (record for record in records if record.status in order),
            key=lambda record: order[record.status],
        )

    def abandon(self, why: str) -> list[RemixResult]:
        """Log every paid result and every request still out that the caller will not receive.

        Inline images are written to a temporary folder first, so that the WARNING can say
        where they are. Returns the paid results, for the exception that stopped the call.
        """
        results: list[RemixResult] = []
        spool_dir: str | None = None
        for record in self.unsettled():
            if record.status is not JobState.PAID:
                logger.warning(
                    "%s: job %s %s (%s): the request was out when the call stopped",
                    why, record.id, MAY_HAVE_BEEN_GENERATED, record.where,
                )  # fmt: skip
                continue
            result = self._results.get(record.id)
            if result is not None:
                results.append(result)
                inline = result.image.b64_json
                if record.url is None and inline is not None:
                    spool_dir = spool_dir or tempfile.mkdtemp(prefix="reve-remix-unreceived-")
                    record = record.evolve(spool=_spool_inline(spool_dir, record.id, result))
            logger.warning(
                "%s: job %s was %s and not received (%s)",
                why, record.id, GENERATED_NOT_SAVED, record.where,
            )  # fmt: skip
        return results


def _spool_inline(folder: str, job_id: str, result: RemixResult) -> str | None:
    """Write an inline result's image into ``folder``; its path, or ``None`` if it cannot be."""
    try:
        data = result.image.read()
        path = os.path.join(folder, f"{_safe_name(job_id)}{image_extension(data)}")
        Path(path).write_bytes(data)
    except (OSError, ReveRemixError):
        return None
    return path


def _safe_name(job_id: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in job_id)[:100] or "job"
