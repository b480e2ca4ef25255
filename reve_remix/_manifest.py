"""``DIR/manifest.jsonl``: the batch's ledger, under an exclusive lock, with its spool.

The runner (``_runner``) writes every step of a job here (a :class:`~reve_remix._ledger.Ledger`):
each :class:`~reve_remix._ledger.JobRecord` is appended as one JSON line, flushed and fsync'd
before the runner takes the next step, so a crash loses at most the line being written (cut off
when the manifest is next opened). Around the file:

- **the lock** (``DIR/.reve-remix/lock``): one run at a time per folder. Two runs on one
  manifest would each send every job not yet done and pay for it twice. The lock is an
  ``flock`` (the kernel drops it when its process dies, however it dies), and the file says who
  holds it (PID and start time) so that a second run can name it; a lock left by a process that
  is gone is taken over, and said so.
- **the spool** (``DIR/.reve-remix/spool/<id>.<ext>``): an inline (``b64_json``) image has no
  URL to fetch it from again, so its bytes are written and fsync'd here before its *paid* record
  and before any save is tried; a resume saves it from here, without a request. The spool file
  goes once the job is *done*.
- **deletion**: every append checks that the manifest is still the file it opened: one deleted
  or replaced mid-run is an ``OSError``, which stops the run (``LedgerError``) instead of writing
  records nobody will read.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING

from ._exceptions import ReveRemixError
from ._files import write_atomic
from ._images import image_extension, is_known_image
from ._jobs_file import MANIFEST_NAME, STATE_DIR
from ._ledger import JobRecord
from ._lifecycle import JobState

if TYPE_CHECKING:
    from ._results import RemixResult

logger = logging.getLogger("reve_remix")

LOCK_NAME = "lock"
SPOOL_DIR = "spool"
_TAIL_BYTES = 1 << 20  # a record is far shorter (a raw body is capped at BODY_CHARS)
_RAW_EXTENSION = ".b64.txt"  # a 2xx's inline data that is not an image, kept as it came


def kept_raw(record: JobRecord) -> bool:
    """Whether ``record``'s spool holds a response's undecodable data rather than an image:
    kept for the user to read, but no resume can save it."""
    return record.spool is not None and record.spool.endswith(_RAW_EXTENSION)


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds (or held) a batch folder's lock: a process id and when it started."""

    pid: int
    started: str

    def __str__(self) -> str:
        return f"process {self.pid} (started {self.started})"

    @classmethod
    def parse(cls, text: str) -> Holder | None:
        try:
            value = json.loads(text)
            return cls(int(value["pid"]), str(value["started"]))
        except (ValueError, KeyError, TypeError):
            return None


class LockHeld(ReveRemixError):
    """Another run holds the batch folder: nothing was sent.

    Example::

        except LockHeld as exc:
            print(exc.holder)  # process 4242 (started 2025-05-01T10:00:00+00:00)
    """

    def __init__(self, lock: Path, holder: Holder | None) -> None:
        who = str(holder) if holder else "another process"
        super().__init__(
            f"{lock.parent.parent} is in use by {who}, which holds {lock}: two runs on one "
            "manifest would pay for every job twice; nothing was sent (--wait waits for it)"
        )
        self.holder = holder


class _BatchLock:
    """The exclusive lock of one batch folder, held from :meth:`acquire` to :meth:`release`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self.took_over: Holder | None = None
        """The holder of a lock its process left behind (it died), taken over by this run."""

    def acquire(self, *, wait: bool, on_wait: Callable[[Holder | None], None]) -> None:
        """Hold the lock, or raise :class:`LockHeld` (``wait``: block until it is free)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if not self._try(fd):
                holder = Holder.parse(_read_all(fd))
                if not wait:
                    raise LockHeld(self.path, holder)
                on_wait(holder)
                self._try(fd, block=True)
            self.took_over = Holder.parse(_read_all(fd))  # a clean release empties the file
            me = Holder(os.getpid(), datetime.now(UTC).isoformat(timespec="seconds"))
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps({"pid": me.pid, "started": me.started}).encode(), 0)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    @staticmethod
    def _try(fd: int, *, block: bool = False) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
        except BlockingIOError:
            return False
        return True

    def release(self) -> None:
        """Say nobody holds it (an empty file), then let it go."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        os.close(self._fd)  # closing the last descriptor drops the flock
        self._fd = None


def _read_all(fd: int) -> str:
    return os.pread(fd, 4096, 0).decode("utf-8", "replace")


class Manifest:
    """``DIR/manifest.jsonl``: the ledger of ``reve-remix batch`` (see the module's notes).

    :meth:`open` takes the folder's lock (:class:`LockHeld` if another run has it), cuts off a
    line a crash left half-written, and reads the latest record of every job; the runner then
    writes through :meth:`claim`, :meth:`write` and :meth:`keep`. Thread-safe.

    Example::

        with Manifest(Path("out")) as manifest:
            unreadable = manifest.open()
            manifest.records.get("cat")  # its latest JobRecord, or None
    """

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.path = out_dir / MANIFEST_NAME
        self.spool_dir = out_dir / STATE_DIR / SPOOL_DIR
        self._batch_lock = _BatchLock(out_dir / STATE_DIR / LOCK_NAME)
        self._lock = threading.Lock()
        self._file: IO[str] | None = None
        self._identity: tuple[int, int] | None = None
        self._latest: dict[str, JobRecord] = {}

    @property
    def location(self) -> str:
        """The file, as messages name it."""
        return str(self.path)

    @property
    def took_over(self) -> Holder | None:
        """The holder of a lock left by a process that is gone, taken over by :meth:`open`."""
        return self._batch_lock.took_over

    @property
    def records(self) -> Mapping[str, JobRecord]:
        """The latest record of every job, as read by :meth:`open` and written since."""
        return self._latest

    def open(
        self, *, wait: bool = False, on_wait: Callable[[Holder | None], None] = lambda _: None
    ) -> list[int]:
        """Lock the folder, open the file for appending and read it; unreadable line numbers.

        Raises :class:`LockHeld`, or ``OSError`` if the folder or the file cannot be written:
        either way before anything is sent.
        """
        self._batch_lock.acquire(wait=wait, on_wait=on_wait)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _cut_torn_tail(self.path)
            unreadable = self._read()
            file = self.path.open("a", encoding="utf-8")
        except BaseException:
            self._batch_lock.release()
            raise
        info = os.fstat(file.fileno())
        self._file, self._identity = file, (info.st_dev, info.st_ino)
        return unreadable

    def _read(self) -> list[int]:
        """Load the latest record of every job; the numbers of lines that are not records.

        Lines of the manifests older versions wrote (no fingerprint) are records too.
        """
        records, unreadable = read_history(self.out_dir)
        for record in records:
            self._latest[record.id] = record
        return unreadable

    # --- the Ledger protocol -------------------------------------------------------------------

    def lookup(self, job_id: str) -> JobRecord | None:
        with self._lock:
            return self._latest.get(job_id)

    def claim(self, record: JobRecord) -> bool:
        # The folder's lock makes this run the only one that can hold a job: a claim is a write.
        self.write(record)
        return True

    def write(self, record: JobRecord) -> None:
        spool = record.spool if record.status is JobState.DONE else None
        if spool is not None:  # saved and recorded: the spooled copy is no longer needed
            record = record.evolve(spool=None)
        self._append(record.stamped())
        if spool is not None:
            with contextlib.suppress(OSError):
                Path(spool).unlink()

    def keep(self, record: JobRecord, result: RemixResult, inline: bytes | None) -> JobRecord:
        if inline is not None:
            record = record.evolve(spool=self._spool(record, inline))
        record = record.stamped()
        self._append(record)
        return record

    def unspool(self, record: JobRecord) -> bytes:
        assert record.spool is not None
        path = Path(record.spool)
        if not path.exists():  # the folder was moved, or run from elsewhere: look in ours
            path = self.spool_dir / path.name
        data = path.read_bytes()
        if not is_known_image(data):
            raise OSError(
                errno.EINVAL,
                "the response's inline image could not be decoded; its data is kept as it came",
                str(path),
            )
        return data

    # --- the file ------------------------------------------------------------------------------

    def _spool(self, record: JobRecord, inline: bytes) -> str | None:
        """Write ``inline`` durably into the spool; its path, or ``None`` if it cannot be.

        When the output folder's disk cannot take it (full, read-only), the bytes go to a spool
        in the system's temporary folder instead, most often another disk: a paid image is never
        held only in memory while a disk anywhere can take it.
        """
        extension = image_extension(inline) if is_known_image(inline) else _RAW_EXTENSION
        name = f"{record.id}{extension}"  # ids are file-safe (JOB_ID)
        for folder in (self.spool_dir, self._fallback_spool()):
            path = folder / name
            try:
                write_atomic(path, inline)  # written and fsync'd, then renamed into place
                _fsync_folder(path.parent)
            except OSError as exc:
                logger.error(
                    "could not keep job %s's inline image at %s (%s)",
                    record.id, path, exc.strerror or exc,
                )  # fmt: skip
                continue
            return str(path)
        return None  # the bytes are still in memory: the runner saves them next

    def _fallback_spool(self) -> Path:
        """A spool for this output folder in the system's temporary folder."""
        tag = hashlib.sha256(str(self.out_dir.resolve()).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"reve-remix-spool-{tag}"

    def _append(self, record: JobRecord) -> None:
        """Append ``record`` and make it durable before returning; ``OSError`` if it cannot."""
        line = record.to_json() + "\n"
        with self._lock:
            if self._file is None:
                raise OSError(errno.EBADF, "the manifest is not open", str(self.path))
            self._check_still_there()
            self._file.write(line)
            self._file.flush()
            os.fsync(self._file.fileno())
            self._latest[record.id] = record

    def _check_still_there(self) -> None:
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            info = None
        if info is None or (info.st_dev, info.st_ino) != self._identity:
            raise FileNotFoundError(
                errno.ENOENT, "the manifest was deleted or replaced during the run", str(self.path)
            )

    def close(self) -> None:
        """Close the file and release the folder's lock."""
        with self._lock:
            if self._file is not None:
                with contextlib.suppress(OSError):  # a failing disk: the records were fsync'd
                    self._file.close()
                self._file = None
        self._batch_lock.release()

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def read_history(out_dir: Path) -> tuple[list[JobRecord], list[int]]:
    """Every record of ``out_dir``'s manifest in the order written, and the numbers of lines that
    are not records; nothing if there is no manifest.

    Reads only: no lock is taken and nothing is written, so it is safe while a batch runs on the
    folder (``spend``, ``batch --dry-run``). A last line without its newline is one being written
    (or one a crash cut short, which the next run cuts off): left out, not reported.

    Example::

        records, unreadable = read_history(Path("results"))
        paid = [r for r in records if r.status == "paid"]
    """
    try:
        text = (out_dir / MANIFEST_NAME).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return [], []
    lines = text.split("\n")[:-1]  # the piece after the last newline is empty, or torn
    records: list[JobRecord] = []
    unreadable: list[int] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        record = JobRecord.from_json(line)
        if record is None:
            unreadable.append(number)
        else:
            records.append(record)
    return records, unreadable


def lock_holder(out_dir: Path) -> Holder | None:
    """Who holds ``out_dir``'s lock now, told without taking it (a dry run must not take it,
    even for a moment: a real run starting then would stop): the holder its lock file names,
    if that process is running. A lock released cleanly names nobody; one left by a process
    that died names a process that is gone, and a real run takes it over.
    """
    try:
        holder = Holder.parse((out_dir / STATE_DIR / LOCK_NAME).read_text(errors="replace"))
    except OSError:
        return None
    if holder is None:
        return None
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return None
    except OSError:  # PermissionError: running, as another user
        pass
    return holder


def _cut_torn_tail(path: Path) -> None:
    """Cut off a last line a crash left half-written, so that the next record starts a line."""
    with path.open("ab+") as raw:
        size = raw.seek(0, os.SEEK_END)
        if not size:
            return
        raw.seek(max(0, size - _TAIL_BYTES))
        tail = raw.read()
        if not tail.endswith(b"\n"):
            cut = tail.rfind(b"\n")
            raw.truncate(size - len(tail) + cut + 1 if cut >= 0 else 0)
            os.fsync(raw.fileno())


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
