"""The paid store: one durable record per row id, so that an engine's retry never pays twice.

Ray Data retries a batch whose actor died and Spark retries a failed task; without a record of
what was already sent, both send every row of the batch again. The store follows the life of a
paid job (:mod:`reve_remix._lifecycle`) per row id:

- **claim** ``_claims/<id>.<attempt>``, created only if absent (atomic), before a row is sent. A
  claim without an outcome is *ambiguous*: the worker stopped while the request was out, and it
  may have been billed. It is not sent again unless the user asks
  (:meth:`PaidStore.resend_ambiguous`).
- **paid** ``_rows/<id>.json`` records the request id and URL the moment a 2xx arrives; a row
  found *paid* is downloaded again, never generated again.
- **done** the image is saved as ``<id>.<ext>`` (extension from its bytes), then recorded.
- **release** records a *failed* attempt that provably produced nothing; the next run claims the
  next attempt number and sends the row again.

The store is a local directory by default, or any fsspec URL (``s3://bucket/run``; needs the
``fsspec`` extra and the filesystem's own package) where workers on many machines must share it.
Records are written whole (a local rename, or one object put), so a crash leaves the old record
or the new one, never half of one.
"""

from __future__ import annotations

import dataclasses
import json
import numbers
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ._exceptions import ValidationError
from ._images import image_extension
from ._lifecycle import JOB_ID, JOB_ID_RULE, MAY_HAVE_BEEN_GENERATED, JobState
from ._results import write_atomic

CLAIMS = "_claims"
ROWS = "_rows"


@dataclass(frozen=True, slots=True)
class RowRecord:
    """What the store knows about one row: its state, attempt number and where things are.

    ``attempt`` counts claims: ``0`` for a row never sent, ``n`` once attempt ``n`` is claimed.
    ``image`` is the file name of the saved image inside the store; ``body`` keeps, as JSON text,
    a 2xx body the SDK could not read (the row is *paid*: what was generated may be in it).

    Example::

        record = store.lookup("sku-42")
        if record.status is JobState.AMBIGUOUS:
            print(record.id, record.request_id, record.error)
    """

    id: str
    status: JobState
    attempt: int = 0
    request_id: str | None = None
    url: str | None = None
    revised_prompt: str | None = None
    image: str | None = None
    error: str | None = None
    body: str | None = None

    def to_json(self) -> bytes:
        """The record as compact JSON bytes."""
        fields = dataclasses.asdict(self)
        fields["status"] = self.status.value
        return json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, row_id: str, data: bytes) -> RowRecord:
        """The record stored as ``data``; an unreadable one counts as *ambiguous* (not re-sent)."""
        try:
            value = json.loads(data)
            status = JobState(value["status"])
            attempt = value["attempt"]
            if not isinstance(attempt, int):
                raise TypeError(attempt)
        except (ValueError, KeyError, TypeError):
            return cls(row_id, JobState.AMBIGUOUS, error=f"unreadable record: {data[:200]!r}")
        texts = {
            name: value.get(name) if isinstance(value.get(name), str) else None
            for name in ("request_id", "url", "revised_prompt", "image", "error", "body")
        }
        return cls(row_id, status, attempt, **texts)


def row_id(value: object) -> str:
    """A row's id as the store's key: a string of 1-128 letters, digits, ``.``, ``_``, ``-``.

    Integers are accepted and written in decimal. Raises ``ValidationError`` for anything else,
    as an id is a file name in the store.

    Example::

        >>> row_id(42), row_id("sku-42")
        ('42', 'sku-42')
    """
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = str(int(value))
    if not isinstance(value, str) or not JOB_ID.fullmatch(value):
        raise ValidationError(f"id: expected {JOB_ID_RULE} (or an integer), got {value!r}")
    return value


class _Files(Protocol):
    """The few operations the store needs from a filesystem."""

    def create(self, name: str, data: bytes) -> bool: ...
    def read(self, name: str) -> bytes | None: ...
    def write(self, name: str, data: bytes) -> None: ...
    def exists(self, name: str) -> bool: ...
    def names(self, folder: str) -> list[str]: ...
    def location(self, name: str) -> str: ...


class _LocalFiles:
    """A local directory: exclusive create with ``O_EXCL``, whole writes by rename, fsync'd."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def create(self, name: str, data: bytes) -> bool:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        return True

    def read(self, name: str) -> bytes | None:
        try:
            return (self.root / name).read_bytes()
        except FileNotFoundError:
            return None

    def write(self, name: str, data: bytes) -> None:
        write_atomic(self.root / name, data)

    def exists(self, name: str) -> bool:
        return (self.root / name).exists()

    def names(self, folder: str) -> list[str]:
        try:
            return [entry.name for entry in os.scandir(self.root / folder) if entry.is_file()]
        except FileNotFoundError:
            return []

    def location(self, name: str) -> str:
        return str(self.root / name)


class _FsspecFiles:
    """Any fsspec filesystem: exclusive create with mode ``"xb"``, whole writes as one put."""

    def __init__(self, url: str, storage_options: dict[str, Any]) -> None:
        try:
            import fsspec
        except ImportError:
            raise ValidationError(
                f"store {url!r}: a URL store needs fsspec: pip install 'reve-remix[fsspec]'"
            ) from None
        self.url = url.rstrip("/")
        self.fs, self.root = fsspec.core.url_to_fs(self.url, **storage_options)

    def _path(self, name: str) -> str:
        return f"{self.root}/{name}"

    def create(self, name: str, data: bytes) -> bool:
        try:
            with self.fs.open(self._path(name), "xb") as file:
                file.write(data)
        except FileExistsError:
            return False
        return True

    def read(self, name: str) -> bytes | None:
        try:
            data: bytes = self.fs.cat_file(self._path(name))
        except FileNotFoundError:
            return None
        return data

    def write(self, name: str, data: bytes) -> None:
        self.fs.pipe_file(self._path(name), data)

    def exists(self, name: str) -> bool:
        return bool(self.fs.exists(self._path(name)))

    def names(self, folder: str) -> list[str]:
        try:
            entries = self.fs.ls(self._path(folder), detail=False)
        except FileNotFoundError:
            return []
        return [str(entry).rstrip("/").rsplit("/", 1)[-1] for entry in entries]

    def location(self, name: str) -> str:
        return f"{self.url}/{name}"


class PaidStore:
    """Per-row records of what was sent and paid for, shared by every worker of a job.

    ``location`` is a local directory (created when first written) or an fsspec URL; extra
    keyword arguments are fsspec storage options. The store pickles as its location, so engines
    can ship it to workers. See the module documentation for the rules.

    Example::

        store = PaidStore("remix-run-1")
        outcomes = remix_rows(rows, store=store)
        store.resend_ambiguous()  # after review: send them again on the next run
    """

    def __init__(self, location: str | os.PathLike[str], **storage_options: Any) -> None:  # noqa: ANN401 - fsspec options are any values
        text = os.fspath(location) if isinstance(location, str | os.PathLike) else None
        if not isinstance(text, str) or not text:
            raise ValidationError(f"store: expected a directory or URL, got {location!r}")
        self.is_url = "://" in text and not text.startswith("file://")
        # A local store is named absolutely here, on the driver: a worker may run elsewhere
        # (Ray's runtime_env working_dir), and must still write to the same directory.
        self.location = text if self.is_url else os.path.abspath(text.removeprefix("file://"))
        self._storage_options = storage_options
        self._files: _Files | None = None

    def __repr__(self) -> str:
        return f"PaidStore({self.location!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_files": None}  # each worker opens the filesystem itself

    @property
    def files(self) -> _Files:
        if self._files is None:
            self._files = (
                _FsspecFiles(self.location, self._storage_options)
                if self.is_url
                else _LocalFiles(Path(self.location))
            )
        return self._files

    def lookup(self, row_id: str) -> RowRecord:
        """Where ``row_id`` stands: its latest record, or *ambiguous* if a claim has no outcome.

        A row never seen is ``pending`` at attempt 0.
        """
        data = self.files.read(f"{ROWS}/{row_id}.json")
        record = (
            RowRecord(row_id, JobState.PENDING)
            if data is None
            else RowRecord.from_json(row_id, data)
        )
        if record.status in (JobState.PAID, JobState.DONE):
            return record
        attempt = record.attempt
        while self.files.exists(_claim_name(row_id, attempt + 1)):
            attempt += 1
        if attempt == record.attempt:
            return record
        return RowRecord(
            row_id,
            JobState.AMBIGUOUS,
            attempt,
            error=f"sent (attempt {attempt}) but no outcome was recorded: the worker stopped "
            f"while the request was out; {MAY_HAVE_BEEN_GENERATED}",
        )

    def claim(self, row_id: str, attempt: int) -> bool:
        """Record that attempt ``attempt`` of ``row_id`` is about to be sent; False if taken.

        Created only if absent, atomically: of two workers claiming the same attempt, one wins.
        """
        return self.files.create(_claim_name(row_id, attempt), b"")

    def paid(self, record: RowRecord) -> RowRecord:
        """Record a 2xx (``record.status`` is *paid*) before anything is downloaded."""
        return self._record(record, JobState.PAID)

    def done(self, record: RowRecord, image: bytes) -> RowRecord:
        """Save ``image`` as ``<id>.<ext>``, then record the row *done*; returns the record."""
        name = f"{record.id}{image_extension(image)}"
        self.files.write(name, image)
        return self._record(dataclasses.replace(record, image=name, error=None), JobState.DONE)

    def release(self, record: RowRecord) -> RowRecord:
        """Record an attempt that provably produced nothing: the next run sends the row again."""
        return self._record(record, JobState.FAILED)

    def ambiguous(self, record: RowRecord) -> RowRecord:
        """Record an attempt that may have been billed: not sent again unless the user asks."""
        return self._record(record, JobState.AMBIGUOUS)

    def image_location(self, record: RowRecord) -> str | None:
        """The path or URL of the row's saved image, if it has one."""
        return None if record.image is None else self.files.location(record.image)

    def records(self) -> Iterator[RowRecord]:
        """The current record of every row the store has seen (claimed or recorded)."""
        ids = {name.removesuffix(".json") for name in self.files.names(ROWS)}
        ids.update(name.rsplit(".", 1)[0] for name in self.files.names(CLAIMS))
        for row in sorted(ids):
            yield self.lookup(row)

    def resend_ambiguous(self, ids: Iterable[object] | None = None) -> list[str]:
        """Let the next run send the *ambiguous* rows again (all of them, or those in ``ids``).

        The one deliberate way to pay again for a row that may already have been billed (the
        batch command's ``--resend-ambiguous``): check the provider's usage page first, the
        records carry request ids. Rows in any other state are left alone. Returns the ids
        released.

        Example::

            ambiguous = [r.id for r in store.records() if r.status == "ambiguous"]
            store.resend_ambiguous(ambiguous)  # then run the same job again
        """
        return self._release_for_resend(JobState.AMBIGUOUS, ids, "resent by the user after")

    def regenerate_paid(self, ids: Iterable[object] | None = None) -> list[str]:
        """Let the next run generate the *paid* rows again (all of them, or those in ``ids``).

        A paid row is billed but its image was never saved (say its URL expired); a run only
        ever downloads it. This generates it again, billed again (the batch command's
        ``--regenerate-paid``). Returns the ids released.
        """
        return self._release_for_resend(JobState.PAID, ids, "regenerated by the user after")

    def _release_for_resend(
        self, state: JobState, ids: Iterable[object] | None, note: str
    ) -> list[str]:
        wanted = None if ids is None else {row_id(value) for value in ids}
        records = self.records() if wanted is None else map(self.lookup, sorted(wanted))
        released = []
        for record in records:
            if record.status is state:
                error = f"{note}: {record.error}"
                self._record(dataclasses.replace(record, error=error), JobState.PENDING)
                released.append(record.id)
        return released

    def _record(self, record: RowRecord, status: JobState) -> RowRecord:
        record = dataclasses.replace(record, status=status)
        self.files.write(f"{ROWS}/{record.id}.json", record.to_json())
        return record


def _claim_name(row_id: str, attempt: int) -> str:
    return f"{CLAIMS}/{row_id}.{attempt}"
