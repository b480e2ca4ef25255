"""The paid store: the engines' ledger, one durable record per row id, shared by every worker.

Ray Data retries a batch whose actor died and Spark retries a failed task; without a record of
what was already sent, both send every row of the batch again. :class:`PaidStore` is the
:class:`~reve_remix._ledger.Ledger` the one runner (:mod:`reve_remix._runner`) writes each row's
life to, as records (:class:`~reve_remix._ledger.JobRecord`):

- **claim** ``_claims/<id>.<attempt>``, created only if absent (atomic, so of two workers one
  wins), before a row is sent. It holds the *sent* record and who sent it (host, process id and
  start time). A claim with no outcome after it is either still out (its process is running:
  *sent*, another run is sending it) or *ambiguous* (its process stopped while the request was
  out: it may have been billed, and it is not sent again unless the user asks,
  :meth:`PaidStore.resend_ambiguous`).
- **paid** ``_rows/<id>.json`` records the request id and URL the moment a 2xx arrives; an
  inline image's bytes are first written to ``_spool/<id>.<attempt>.<ext>``. A row found *paid*
  is downloaded (or unspooled) again, never generated again.
- **done** the image is saved as ``<id>.<ext>`` (extension from its bytes), then recorded.
- **failed** records an attempt that provably produced nothing; the next run claims the next
  attempt number and sends the row again.

Every record carries the row's fingerprint (what would be sent, ``_identity.fingerprint``): a
row whose id is in the store with another fingerprint is a conflict, never done with the other
row's image.

The store is a local directory by default, or any fsspec URL (``s3://bucket/run``; needs the
``fsspec`` extra and the filesystem's own package) where workers on many machines must share it.
Records are written whole (a local rename, or one object put), so a crash leaves the old record
or the new one, never half of one.
"""

from __future__ import annotations

import json
import numbers
import os
import secrets
import socket
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ._exceptions import ValidationError
from ._files import write_atomic
from ._images import image_extension
from ._ledger import JobRecord
from ._lifecycle import JOB_ID, JOB_ID_RULE, MAY_HAVE_BEEN_GENERATED, JobState
from ._recipe import SIDECAR_SUFFIX, recipe_of, with_recipe

if TYPE_CHECKING:
    from ._results import RemixResult

CLAIMS = "_claims"
ROWS = "_rows"
SPOOL = "_spool"


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
    def remove(self, name: str) -> None: ...
    def names(self, folder: str) -> list[str]: ...
    def location(self, name: str) -> str: ...


class _LocalFiles:
    """A local directory: exclusive create by hard link, whole writes by rename, fsync'd."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def create(self, name: str, data: bytes) -> bool:
        """Create ``name`` holding ``data`` only if absent; readers never see it half written.

        The data is written to a temporary file first, then linked to its name: ``link`` fails
        if the name exists, atomically, on local disks and NFS alike. Where hard links are not
        supported, ``O_EXCL`` creates the file and the data follows.
        """
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.part")  # write_atomic's form
        _write_new(tmp, data)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError:  # no hard links here (some FUSE and SMB mounts)
            return _write_new(path, data)
        finally:
            tmp.unlink(missing_ok=True)
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

    def remove(self, name: str) -> None:
        (self.root / name).unlink(missing_ok=True)

    def names(self, folder: str) -> list[str]:
        try:
            return [entry.name for entry in os.scandir(self.root / folder) if entry.is_file()]
        except FileNotFoundError:
            return []

    def location(self, name: str) -> str:
        return str(self.root / name)


def _write_new(path: Path, data: bytes) -> bool:
    """Create ``path`` (``O_EXCL``) holding ``data``, fsync'd; ``False`` if it exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    return True


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

    def remove(self, name: str) -> None:
        if self.exists(name):
            self.fs.rm_file(self._path(name))

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

    What users call: :meth:`records`, :meth:`resend_ambiguous`, :meth:`regenerate_paid`,
    :meth:`image_location`. ``lookup``, ``claim``, ``write``, ``keep`` and ``unspool`` are the
    ledger protocol the SDK's runner drives: documented for authors of other stores, not meant
    to be called by hand.

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
        self._opened: _Files | None = None

    def __repr__(self) -> str:
        return f"PaidStore({self.location!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_opened": None}  # each worker opens the filesystem itself

    @property
    def _files(self) -> _Files:
        if self._opened is None:
            self._opened = (
                _FsspecFiles(self.location, self._storage_options)
                if self.is_url
                else _LocalFiles(Path(self.location))
            )
        return self._opened

    # The ledger protocol (reve_remix._ledger.Ledger), driven by the runner.

    def lookup(self, job_id: str) -> JobRecord | None:
        """Ledger protocol: the row's latest record, ``None`` if the store has never seen it.

        A claim newer than the record is the latest word: *sent* while the process that claimed
        it runs (or cannot be checked, on another host), *ambiguous* once it has stopped.
        """
        data = self._files.read(f"{ROWS}/{job_id}.json")
        record = None if data is None else JobRecord.from_json(data)
        recorded = 0 if record is None else record.attempt
        attempt = recorded
        while self._files.exists(_claim_name(job_id, attempt + 1)):
            attempt += 1
        if data is not None and record is None:  # e.g. edited by hand: never a reason to resend
            error = f"unreadable record: {data[:200]!r}"
            return JobRecord(job_id, JobState.AMBIGUOUS, attempt=attempt, error=error)
        if attempt == recorded:
            return record
        return _claimed(job_id, attempt, self._files.read(_claim_name(job_id, attempt)))

    def claim(self, record: JobRecord) -> bool:
        """Ledger protocol: record that ``record.attempt`` is about to be sent; False if taken.

        Created only if absent, atomically: of two workers claiming the same attempt, one wins.
        """
        claim = {**json.loads(record.stamped().to_json()), "holder": _holder()}
        data = json.dumps(claim, separators=(",", ":")).encode()
        return self._files.create(_claim_name(record.id, record.attempt), data)

    def write(self, record: JobRecord) -> None:
        """Ledger protocol: record how the row stands now (whole, durably)."""
        if record.status is JobState.DONE and record.spool is not None:
            spool, record = record.spool, record.evolve(spool=None)
            self._files.write(f"{ROWS}/{record.id}.json", record.stamped().to_json().encode())
            self._files.remove(self._spooled_name(spool))  # the saved image holds the bytes now
            return
        self._files.write(f"{ROWS}/{record.id}.json", record.stamped().to_json().encode())

    def keep(self, record: JobRecord, result: RemixResult, inline: bytes | None) -> JobRecord:
        """Ledger protocol: record a 2xx (``record`` is *paid*) before any download or save.

        An inline image's bytes are written into the store first (``_spool/``), so that a
        failed save can be retried by the next run without paying again.
        """
        if inline is not None:
            name = f"{SPOOL}/{record.id}.{record.attempt}{image_extension(inline)}"
            self._files.write(name, inline)
            record = record.evolve(spool=self._files.location(name))
        self.write(record)
        return record

    def unspool(self, record: JobRecord) -> bytes:
        """Ledger protocol: the bytes :meth:`keep` spooled for ``record``."""
        if record.spool is None:
            raise FileNotFoundError(f"{record.id}: nothing was spooled")
        data = self._files.read(self._spooled_name(record.spool))
        if data is None:
            raise FileNotFoundError(record.spool)
        return data

    def _spooled_name(self, spool: str) -> str:
        """The store-relative name of a spool location (the store may have moved since)."""
        return f"{SPOOL}/{spool.replace(os.sep, '/').rsplit('/', 1)[-1]}"

    # What users call.

    def image_location(self, record: JobRecord) -> str | None:
        """The path or URL of the row's saved image, if it has one."""
        return None if record.file is None else self._files.location(record.file)

    def records(self) -> Iterator[JobRecord]:
        """The current record of every row the store has seen (claimed or recorded).

        Example::

            ambiguous = [r for r in store.records() if r.status == "ambiguous"]
        """
        rows, claims = self._files.names(ROWS), self._files.names(CLAIMS)
        ids = {name.removesuffix(".json") for name in rows if not name.startswith(".")}
        ids.update(name.rsplit(".", 1)[0] for name in claims if not name.startswith("."))
        for row in sorted(ids):
            record = self.lookup(row)
            if record is not None:
                yield record

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
            if record is not None and record.status is state:
                self.write(record.evolve(JobState.PENDING, error=f"{note}: {record.error}"))
                released.append(record.id)
        return released

    def _require_shared(self, engine: str, *, several_hosts: bool) -> None:
        """Refuse a store some of ``engine``'s workers could not see, before anything is sent.

        A process-local filesystem (``memory://``) is never shared: each worker would write into
        its own memory, report rows done whose images exist nowhere, and a re-run would pay for
        every row again. A local directory is refused when the workers run on ``several_hosts``
        and it is not on a network filesystem.
        """
        if self.is_url:
            files = self._files
            assert isinstance(files, _FsspecFiles)
            if _process_local(files.fs):
                raise ValidationError(
                    f"store {self.location!r}: only this process can see it, and {engine} runs "
                    "rows in other processes; use a directory or an fsspec URL every worker "
                    "can reach"
                )
        elif several_hosts and network_filesystem(self.location) is False:
            raise ValidationError(
                f"store {self.location!r}: a local directory, not on a network filesystem, and "
                f"this {engine} cluster has several hosts: workers elsewhere cannot see it; use "
                "a shared directory (NFS) or an fsspec URL (s3://...)"
            )


class StoreImages:
    """Where an engine row's image goes: ``<id>.<ext>`` in its store (a runner Destination).

    A *done* row is reported from its record, never checked against the image (a resume costs
    no request per row, and a deleted image is never paid for again behind the user's back).
    """

    def __init__(self, store: PaidStore, *, metadata: bool = True) -> None:
        self.store = store
        self.metadata = metadata
        """Whether saved images carry their recipe (PNG/JPEG inside, else ``<id>.<ext>.json``)."""

    def holds(self, record: JobRecord) -> bool:
        return record.file is not None

    def saved_bytes(self, record: JobRecord) -> bytes | None:
        return None if record.file is None else self.store._files.read(record.file)

    def save(self, record: JobRecord, data: bytes) -> str:
        name = f"{record.id}{image_extension(data)}"
        recipe = recipe_of(record.recipe) if self.metadata else None
        image, sidecar = (data, None) if recipe is None else with_recipe(data, recipe)
        self.store._files.write(name, image)
        if sidecar is not None:
            self.store._files.write(name + SIDECAR_SUFFIX, sidecar)
        return name


def _claim_name(row_id: str, attempt: int) -> str:
    return f"{CLAIMS}/{row_id}.{attempt}"


def _claimed(job_id: str, attempt: int, data: bytes | None) -> JobRecord:
    """What a claim with no outcome after it says: *sent* if its process runs, else ambiguous."""
    claim = JobRecord.from_json(data) if data else None
    sent = JobRecord(job_id, JobState.SENT, attempt=attempt) if claim is None else claim
    sent = sent.evolve(id=job_id, attempt=attempt)
    holder: Any = json.loads(data).get("holder") if claim is not None and data else None
    alive = _holder_alive(holder)
    if holder is None or alive is False:
        who = "" if holder is None else f" (pid {holder.get('pid')} on {holder.get('host')})"
        return sent.evolve(
            JobState.AMBIGUOUS,
            error=f"sent (attempt {attempt}) but no outcome was recorded: the worker{who} "
            f"stopped while the request was out; {MAY_HAVE_BEEN_GENERATED}",
        )
    since = f" since {sent.time}" if sent.time else ""
    return sent.evolve(
        error=f"claimed by another run (pid {holder.get('pid')} on {holder.get('host')}{since}, "
        f"attempt {attempt}) that is still sending it: its outcome will be in the store"
    )


def _holder() -> dict[str, Any]:
    """Who is claiming: enough to tell later whether that process still runs."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "started": _process_start(pid)}


def _process_start(pid: int) -> str | None:
    """A process's start time in clock ticks (Linux ``/proc``), or ``None``: tells pid reuse."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    if len(fields) < 20 or fields[0] in ("Z", "X"):  # a zombie has stopped: it sends nothing
        return "stopped"
    return fields[19]  # field 22 of proc(5), counted after the name


def _holder_alive(holder: object) -> bool | None:
    """Whether a claim's process still runs: ``None`` when that cannot be told (another host)."""
    if not isinstance(holder, dict) or holder.get("host") != socket.gethostname():
        return None
    pid, started = holder.get("pid"), holder.get("started")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return None
    now = _process_start(pid)
    if now is not None and started is not None:
        return bool(now == started)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return None
    return True


def _process_local(fs: Any) -> bool:  # noqa: ANN401 - an fsspec filesystem
    """Whether an fsspec filesystem lives in this process only (``memory``), wrappers included."""
    protocols = fs.protocol if isinstance(fs.protocol, tuple | list) else (fs.protocol,)
    if "memory" in protocols:
        return True
    inner = getattr(fs, "fs", None)  # dir::, simplecache:: and the like wrap another one
    return inner is not None and inner is not fs and _process_local(inner)


NETWORK_FILESYSTEMS = frozenset(
    [
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "ceph",
        "glusterfs",
        "lustre",
        "gpfs",
        "beegfs",
        "9p",
        "virtiofs",
        "ocfs2",
        "gfs2",
        "afs",
        "davfs",
        "panfs",
        "wekafs",
        "orangefs",
    ]
)
"""Filesystem types several hosts can mount at once (``fuse.*`` counts too: s3fs, gcsfuse)."""


def network_filesystem(path: str, mounts: str | None = None) -> bool | None:
    """Whether ``path`` is on a filesystem other hosts can share; ``None`` when unknown.

    ``mounts`` is ``/proc/self/mounts``' text (read when not given; no Linux, no answer). The
    longest mount point above the path decides.

    Example::

        >>> network_filesystem("/data/run", "srv:/data /data nfs4 rw 0 0\\n/dev/sda1 / ext4 rw 0 0")
        True
        >>> network_filesystem("/tmp/run", "srv:/data /data nfs4 rw 0 0\\n/dev/sda1 / ext4 rw 0 0")
        False
    """
    if mounts is None:
        try:
            mounts = Path("/proc/self/mounts").read_text()
        except OSError:
            return None
    path = os.path.realpath(path)
    best, kind = "", None
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fields[2]
    if kind is None:
        return None
    return kind in NETWORK_FILESYSTEMS or kind.startswith("fuse")
