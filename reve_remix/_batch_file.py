"""The ``reve-remix batch`` file: jobs from JSONL, where images go, and the resumable manifest.

- :func:`read_jobs` parses a JSONL file, one job per line, reporting bad lines by number;
- :class:`Target` and :func:`slugify` decide the file an image is saved as;
- :func:`target_problems` checks every output target before anything is sent;
- :class:`Manifest` is ``DIR/manifest.jsonl``, the log that makes a batch resumable;
- :func:`run_job` does one job: claim, remix, record paid, save atomically, record done.

Billing safety comes from the manifest and the states of ``_lifecycle``: a job is claimed
(``sent``) before its request leaves and recorded ``paid`` (URL, request id, revised prompt) the
moment a 2xx is parsed, before any download, each record appended, flushed and fsync'd. A re-run
skips ``done`` jobs, downloads ``paid`` ones again, sends ``pending`` and ``failed`` ones, and
holds back the ``sent`` and ``ambiguous`` ones unless asked (``docs/batches.md``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import tempfile
import threading
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Literal

from ._batch import JOB_FIELDS, RemixJob, check_job_keys
from ._exceptions import (
    APIResponseValidationError,
    ImageNotSavedError,
    ReveRemixError,
    ValidationError,
)
from ._images import IMAGE_FORMATS, UNKNOWN_EXTENSION, image_extension, url_scheme
from ._lifecycle import JOB_ID, JOB_ID_RULE, JobState
from ._request import prepare_remix
from ._results import PART_FILE, RemixImage, paid_image
from ._runner import state_after_error
from ._spec import spec
from ._tags import strip_tags

if TYPE_CHECKING:
    from ._client import ReveRemix

MANIFEST_NAME = "manifest.jsonl"


# --- output files ------------------------------------------------------------------------------

_ALL_EXTENSIONS = (*(known.extension for known in IMAGE_FORMATS.values()), UNKNOWN_EXTENSION)


def slugify(text: str, max_length: int = 40) -> str:
    """A short, lower-case, file-name-safe version of a prompt (``remix`` if nothing is left).

    Image tags are left out: they say nothing about the picture.

    Example::

        slugify("Put <img>0</img> on a sofa!")  # 'put-on-a-sofa'
    """
    untagged = strip_tags(text)
    ascii_text = unicodedata.normalize("NFKD", untagged).encode("ascii", "ignore").decode()
    words: list[str] = re.findall(r"[a-z0-9]+", ascii_text.lower())
    if not words:
        return "remix"
    slug = words[0][:max_length]
    for word in words[1:]:
        if len(slug) + 1 + len(word) > max_length:
            break
        slug = f"{slug}-{word}"
    return slug


@dataclass(frozen=True, slots=True)
class Target:
    """Where an image will be saved: a fixed path, or a stem whose extension the bytes decide.

    ``candidates`` lists every path the image may end up at, so that a caller can refuse to
    overwrite anything before a request is paid for.

    Example::

        target = Target(Path("out/cat"), add_extension=True)
        target.candidates()  # [Path('out/cat.png'), Path('out/cat.jpg'), ...]
        target.path_for(png_bytes)  # Path('out/cat.png')
    """

    path: Path
    add_extension: bool

    def candidates(self) -> list[Path]:
        """Every path this target may resolve to."""
        if not self.add_extension:
            return [self.path]
        return [self.path.with_name(self.path.name + ext) for ext in _ALL_EXTENSIONS]

    def existing(self) -> Path | None:
        """The first candidate that already exists, if any."""
        return next((path for path in self.candidates() if path.exists()), None)

    def path_for(self, data: bytes) -> Path:
        """The path to save ``data`` at."""
        if not self.add_extension:
            return self.path
        return self.path.with_name(self.path.name + image_extension(data))


# --- the batch file ----------------------------------------------------------------------------

_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
_SURROGATES = re.compile(r"[\ud800-\udfff]")
# A name is at most 255 bytes on every common file system. The file's own name keeps room for
# the extension added to it and the ".<name>.<12 hex>.part" it is first written as.
_MAX_NAME_BYTES = 255
_MAX_FILE_NAME_BYTES = 200
_MAX_OUTPUT_BYTES = 1024  # well under PATH_MAX (4096 on Linux), whatever --out is
# A line's keys: RemixJob's fields, but headers (a file is no place for credentials), and where
# to save the image.
_LINE_KEYS = (*(name for name in JOB_FIELDS if name != "extra_headers"), "output")


@dataclass(frozen=True, slots=True)
class JobLine:
    """One job of a batch file: its line number, id, remix arguments and output name.

    ``output`` is the file name inside the output folder chosen by the line, or ``None`` for the
    default: ``<id>.<ext>`` for an explicit id, ``<prompt slug>-<id>.<ext>`` otherwise.
    """

    number: int
    id: str
    job: RemixJob
    output: str | None = None

    def target(self, out_dir: Path) -> Target:
        """Where this job's image goes inside ``out_dir``."""
        if self.output is not None:
            return Target(
                out_dir / self.output, add_extension=not PurePosixPath(self.output).suffix
            )
        stem = self.id if self.job.id is not None else f"{slugify(self.job.prompt, 32)}-{self.id}"
        return Target(out_dir / stem, add_extension=True)

    def with_defaults(
        self, *, aspect_ratio: str | None, output_format: str | None, model: str | None
    ) -> JobLine:
        """This job, with the options its line leaves out taken from the command line."""
        job = self.job
        return dataclasses.replace(
            self,
            job=dataclasses.replace(
                job,
                aspect_ratio=job.aspect_ratio or aspect_ratio,
                output_format=job.output_format or output_format,
                model=job.model or model,
            ),
        )

    def check(self, default_model: str, *, fit: bool = False) -> None:
        """Validate the job as ``remix`` would, without sending it; ``ValidationError`` if not.

        Local images are checked here by their size and leading bytes (read in full when the
        job is sent), so that a bad file is reported with its line before any job of the batch
        is paid for, and each image is read once.
        """
        job = self.job
        prepare_remix(
            job.prompt,
            job.images,
            model=job.model or default_model,
            aspect_ratio=job.aspect_ratio,
            output_format=job.output_format or spec().default_output_format,
            fit=fit,
            extra_body=job.extra_body,
            load_images=False,
        )


@dataclass(frozen=True, slots=True)
class LineProblem:
    """A line of a batch file that cannot become a job, and why."""

    number: int
    message: str

    def __str__(self) -> str:
        return f"line {self.number}: {self.message}"


def read_jobs(path: Path) -> tuple[list[JobLine], list[LineProblem]]:
    """Parse a JSONL batch file: one job per line; blank lines are skipped.

    A line is an object with ``prompt`` and ``images`` (a list, or an object of named images),
    and optionally ``aspect_ratio``, ``output_format``, ``model``, ``id``, ``output`` and
    ``extra_body`` (request fields ``remix`` has no argument for, as in ``remix``). Image paths
    are relative to the file's folder. A line without an ``id`` gets the first 16 hex
    digits of the SHA-256 of its canonical JSON (sorted keys, no spaces), so the same line keeps
    its id across runs. Returns the jobs and, separately, every line that is not a valid job.
    Raises ``ValidationError`` if the file cannot be read as UTF-8 text.

    Example::

        jobs, problems = read_jobs(Path("jobs.jsonl"))
        for problem in problems:
            print(problem)  # line 3: missing "prompt"
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"cannot read the jobs file {str(path)!r}: {exc}") from exc
    jobs: list[JobLine] = []
    problems: list[LineProblem] = []
    seen_ids: dict[str, int] = {}
    seen_outputs: dict[str, int] = {}
    # Split on newlines only: str.splitlines() would also split inside JSON strings (U+2028).
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            job = _parse_line(line, number, path.parent)
            what = "id" if job.job.id is not None else "job (an identical line)"
            _check_unique(job.id, what, seen_ids, number)
            if job.output is not None:
                _check_unique(job.output, "output", seen_outputs, number)
        except ValidationError as exc:
            problems.append(LineProblem(number, str(exc)))
        except Exception as exc:  # a bug here must not sink the other lines: report and go on
            problems.append(LineProblem(number, f"unexpected {type(exc).__name__}: {exc}"))
        else:
            jobs.append(job)
    return jobs, problems


def _parse_line(line: str, number: int, base: Path) -> JobLine:
    try:
        value = json.loads(line)
    except ValueError as exc:
        raise ValidationError(f"not valid JSON: {exc}") from None
    except RecursionError:
        raise ValidationError("not a job: nested too deeply to read") from None
    if not isinstance(value, dict):
        raise ValidationError(f"expected a JSON object, got {_json_type(value)}")
    check_job_keys(value, allowed=_LINE_KEYS, show=json.dumps)
    if not isinstance(value["prompt"], str):
        raise ValidationError(f'"prompt" must be a string, got {_json_type(value["prompt"])}')
    for key in ("aspect_ratio", "output_format", "model"):
        if value.get(key) is not None and not isinstance(value[key], str):
            raise ValidationError(f'"{key}" must be a string, got {_json_type(value[key])}')
    job_id = value.get("id")
    if job_id is not None and (not isinstance(job_id, str) or not JOB_ID.fullmatch(job_id)):
        raise ValidationError(f'"id" must be {JOB_ID_RULE}; got {json.dumps(job_id)}')
    output = value.get("output")
    if output is not None:
        output = _check_output(output)
    extra_body = value.get("extra_body")
    if extra_body is not None and not isinstance(extra_body, dict):
        raise ValidationError(f'"extra_body" must be an object, got {_json_type(extra_body)}')
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return JobLine(
        number=number,
        # surrogatepass: a lone surrogate ("\ud800" in the JSON) gets an id too, and the check
        # before sending reports it for this line.
        id=job_id or hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()[:16],
        job=RemixJob(
            prompt=value["prompt"],
            images=_resolve_images(value["images"], base),
            aspect_ratio=value.get("aspect_ratio"),
            output_format=value.get("output_format"),
            model=value.get("model"),
            id=job_id,
            extra_body=extra_body,
        ),
        output=output,
    )


def _resolve_images(images: object, base: Path) -> list[str] | dict[str, str]:
    """Images as strings, with relative paths made relative to the jobs file's folder."""
    if isinstance(images, list):
        return [_resolve_image(item, base, f"images[{index}]") for index, item in enumerate(images)]
    if isinstance(images, dict):
        return {name: _resolve_image(item, base, f"images.{name}") for name, item in images.items()}
    raise ValidationError(
        f'"images" must be a list or an object of named images, got {_json_type(images)}'
    )


def _resolve_image(item: object, base: Path, where: str) -> str:
    if not isinstance(item, str):
        raise ValidationError(f"{where} must be a URL or a path string, got {_json_type(item)}")
    if url_scheme(item) or Path(item).is_absolute():
        return item
    return str(base / item)


def file_name_problem(path: str, *, limit: int | None = None) -> str | None:
    """Why an image cannot be saved at ``path`` on common file systems, or ``None``.

    Checked before a paid request, so that the image is not lost at the save: a control
    character, a lone surrogate that no file name can hold (``"\\udcff"``, an undecodable byte of
    a command-line argument, can), a name longer than 255 bytes, or ``limit`` bytes in all.

    Example::

        file_name_problem("out/cat.png")  # None
        file_name_problem("a\\x00b.png")  # 'holds a control character at position 1'
    """
    control = _CONTROL_CHARS.search(path)
    if control:
        return f"holds a control character at position {control.start()}"
    try:
        size = len(os.fsencode(path))
    except UnicodeEncodeError as exc:
        return f"holds a lone surrogate at position {exc.start}, which no file name can"
    sizes = [len(os.fsencode(part)) for part in PurePosixPath(path).parts]
    if sizes and (
        sizes[-1] > _MAX_FILE_NAME_BYTES
        or max(sizes) > _MAX_NAME_BYTES
        or (limit is not None and size > limit)
    ):
        in_all = f" and {limit} in all" if limit is not None else ""
        return (
            f"is longer than file systems allow: at most {_MAX_FILE_NAME_BYTES} bytes for the "
            f"file's name (leaving room for its extension and the temporary file written first), "
            f"{_MAX_NAME_BYTES} for a folder's{in_all}"
        )
    return None


def _check_output(output: object) -> str:
    if not isinstance(output, str):
        raise ValidationError(f'"output" must be a file name, got {_json_type(output)}')
    shown = json.dumps(output[:60]) + ("…" if len(output) > 60 else "")
    surrogate = _SURROGATES.search(output)  # the manifest, UTF-8, could not record the name
    if surrogate:
        raise ValidationError(
            f'"output" holds a lone surrogate at position {surrogate.start()}; got {shown}'
        )
    problem = file_name_problem(output, limit=_MAX_OUTPUT_BYTES)
    if problem:
        raise ValidationError(f'"output" {problem}; got {shown}')
    parts = PurePosixPath(output).parts
    if (
        not parts
        or "\\" in output
        or output.endswith("/")
        or PurePosixPath(output).is_absolute()
        or any(part in ("..", ".") or part.startswith(".") for part in parts)
        or output == MANIFEST_NAME
    ):
        raise ValidationError(
            f'"output" must be a relative file name inside the output folder, without ".." '
            f"or hidden parts, and not {MANIFEST_NAME!r}; got {json.dumps(output)}"
        )
    return output


def _check_unique(value: str, what: str, seen: dict[str, int], number: int) -> None:
    first = seen.setdefault(value, number)
    if first != number:
        raise ValidationError(f"duplicate {what} {json.dumps(value)}, first on line {first}")


def _json_type(value: object) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number")


# --- the manifest ------------------------------------------------------------------------------

Action = Literal["send", "fetch", "skip", "hold"]
"""What a run does with a job: generate it, download its paid image, nothing, or hold it back."""


@dataclass(frozen=True, slots=True)
class ManifestRecord:
    """One line of ``manifest.jsonl``: a job's state (``_lifecycle.JobState``) at one moment.

    ``file`` is relative to the output folder (set once ``done``); ``url``, ``request_id`` and
    ``revised_prompt`` are what a ``paid`` job needs to get its image again; ``body`` is the raw
    body of a 2xx whose images could not be found; ``line`` is the job's line in the batch file.
    """

    id: str
    status: JobState
    file: str | None = None
    url: str | None = None
    request_id: str | None = None
    revised_prompt: str | None = None
    error: str | None = None
    line: int | None = None
    body: str | None = None

    def to_json(self) -> str:
        """The record as one line of compact JSON (without the newline).

        ASCII only: a server's text (a lone surrogate in a revised prompt) is escaped, never a
        reason to fail after the image is saved.
        """
        fields = {name: getattr(self, name) for name in _RECORD_FIELDS}
        return json.dumps(fields, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> ManifestRecord | None:
        """The record on a manifest line, or ``None`` if the line is not one (e.g. cut short)."""
        try:
            value = json.loads(text)
        except ValueError:
            return None
        if not isinstance(value, dict):
            return None
        job_id, status = value.get("id"), value.get("status")
        if not isinstance(job_id, str) or status not in _STATES:
            return None
        texts = {
            name: item if isinstance(item := value.get(name), str) else None
            for name in _TEXT_FIELDS
        }
        line = value.get("line")
        return cls(
            id=job_id,
            status=JobState(status),
            line=line if isinstance(line, int) else None,
            **texts,
        )

    def action(self, out_dir: Path, *, resend_ambiguous: bool, regenerate_paid: bool) -> Action:
        """What the next run does with this job (see ``docs/batches.md``)."""
        status = self.status
        if status == JobState.DONE:
            return "skip" if self.file and (out_dir / self.file).is_file() else "send"
        if status == JobState.PAID:
            if self.url:
                return "fetch"
            return "send" if regenerate_paid else "hold"
        if status.resend_on_resume or resend_ambiguous:
            return "send"
        return "hold"


_RECORD_FIELDS = tuple(field.name for field in dataclasses.fields(ManifestRecord))
_TEXT_FIELDS = tuple(name for name in _RECORD_FIELDS if name not in ("id", "status", "line"))
_STATES = frozenset(state.value for state in JobState)


class Manifest:
    """``DIR/manifest.jsonl``: an append-only log of job states, safe to share across threads.

    Every record is flushed and fsync'd as it is appended, so a crash loses at most the record
    being written; a line cut short by a crash is ignored when read back, and cut off when the
    file is next opened for appending.

    Example::

        with Manifest(Path("out")) as manifest:
            latest, unreadable = manifest.latest()
            manifest.append(ManifestRecord(id="cat", status=JobState.DONE, file="cat.png"))
    """

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.path = out_dir / MANIFEST_NAME
        self._lock = threading.Lock()
        self._file: IO[str] | None = None

    def latest(self) -> tuple[dict[str, ManifestRecord], list[int]]:
        """The latest record of every job id, and the numbers of unreadable lines.

        One ``json.loads`` per line: a 100,000-line manifest loads in well under a second.
        """
        records: dict[str, ManifestRecord] = {}
        unreadable: list[int] = []
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return records, unreadable
        for number, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            record = ManifestRecord.from_json(line)
            if record is None:
                unreadable.append(number)
            else:
                records[record.id] = record
        return records, unreadable

    def open(self) -> None:
        """Open the file for appending now (creating the folder), so that a manifest that cannot
        be written stops a batch before anything is sent. Raises ``OSError``."""
        with self._lock:
            if self._file is None:
                self._file = self._open()

    def append(self, record: ManifestRecord) -> None:
        """Append ``record`` and make it durable before returning."""
        with self._lock:
            if self._file is None:
                self._file = self._open()
            self._file.write(record.to_json() + "\n")
            self._file.flush()
            os.fsync(self._file.fileno())

    def _open(self) -> IO[str]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab+") as raw:  # a record cut short by a crash: cut it off
            size = raw.seek(0, os.SEEK_END)
            if size:
                raw.seek(max(0, size - _TAIL_BYTES))
                tail = raw.read()
                if not tail.endswith(b"\n"):
                    cut = tail.rfind(b"\n")
                    raw.truncate(size - len(tail) + cut + 1 if cut >= 0 else 0)
                    os.fsync(raw.fileno())
        return self.path.open("a", encoding="utf-8")

    def close(self) -> None:
        """Close the file (appending again reopens it)."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


_TAIL_BYTES = 1 << 20  # a record is far shorter (a raw body is capped at BODY_CHARS)
BODY_CHARS = 20_000  # of an unreadable 2xx body kept in the manifest


def remove_stale_parts(out_dir: Path) -> list[Path]:
    """Delete the temporary files a killed run left in ``out_dir`` (``.name.<hex>.part``).

    Only names :func:`write_atomic` makes are touched; returns what was removed.
    """
    pattern = re.compile(PART_FILE)
    stale = [
        Path(folder, name)
        for folder, _, names in os.walk(out_dir)  # symbolic links to folders are not followed
        for name in names
        if pattern.fullmatch(name)
    ]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


# --- output targets, checked before anything is sent -------------------------------------------


def target_problems(jobs: Iterable[JobLine], out_dir: Path) -> dict[int, str]:
    """Problems with where ``jobs`` save, by line number, found without sending anything.

    A target must resolve (symlinks followed) inside ``out_dir``, be in a folder that can be
    written, and belong to one job only: the second job of a clash is reported, naming both lines.

    Example::

        target_problems(jobs, Path("out"))  # {7: 'saves to out/cat.png, as line 3 does; ...'}
    """
    root = out_dir.resolve()
    owners: dict[Path, int] = {}
    problems: dict[int, str] = {}
    folders: dict[Path, str | None] = {}
    for job in jobs:
        candidates = job.target(out_dir).candidates()
        resolved = [path.parent.resolve() / path.name for path in candidates]
        folder = resolved[0].parent
        if folder != root and root not in folder.parents:
            problems[job.number] = (
                f"{candidates[0].parent} leads outside {out_dir} (a symbolic link): refused"
            )
            continue
        if folder not in folders:
            folders[folder] = unwritable(folder)
        if folders[folder]:
            problems[job.number] = str(folders[folder])
            continue
        clash = next((owners[path] for path in resolved if path in owners), None)
        if clash is not None:
            problems[job.number] = (
                f"saves to the same file as line {clash} ({_shown(candidates, resolved, owners)});"
                ' give one of them another "id" or "output"'
            )
            continue
        owners.update(dict.fromkeys(resolved, job.number))
    return problems


def _shown(candidates: list[Path], resolved: list[Path], owners: Mapping[Path, int]) -> Path:
    return next(c for c, r in zip(candidates, resolved, strict=True) if r in owners)


def unwritable(folder: Path) -> str | None:
    """Why a file cannot be created in ``folder`` (which may not exist yet), or ``None``.

    The nearest existing folder is tried for real (a temporary file, removed at once): file
    modes, ACLs, read-only mounts and running as root all answer truthfully.

    Example::

        unwritable(Path("a-file/sub"))  # 'a-file is a file, not a folder'
    """
    existing = folder
    while not existing.exists() and existing != existing.parent:
        if existing.is_symlink():
            return f"{existing} is a broken symbolic link"
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        return f"cannot write in {existing}: {exc.strerror or exc}"
    return None


# --- one batch job -----------------------------------------------------------------------------


def run_job(
    client: ReveRemix,
    job: JobLine,
    out_dir: Path,
    manifest: Manifest,
    *,
    fit: bool = False,
    previous: ManifestRecord | None = None,
    regenerate_paid: bool = False,
) -> ManifestRecord:
    """Do one job by the paid-job rules of ``_lifecycle``; return its last record.

    A ``paid`` job (``previous``, with a URL) is downloaded again, never generated again unless
    ``regenerate_paid`` and the download fails. Otherwise the job is claimed (``sent``, durably),
    remixed, recorded ``paid`` with its URL, request id and revised prompt before any download,
    then saved and recorded ``done``. A ``ReveRemixError`` becomes a record in the state
    ``state_after_error`` gives (``failed`` only when provably unpaid), never an exception. An
    ``OSError`` of the manifest propagates: every later job would be paid for and not recorded.
    """
    if previous is not None and previous.status == JobState.PAID and previous.url:
        image = paid_image(
            client._downloader, previous.url, previous.request_id, previous.revised_prompt
        )
        record = _save(image, job, out_dir, previous, manifest)
        if record.status == JobState.DONE or not regenerate_paid:
            return record
    manifest.append(ManifestRecord(id=job.id, status=JobState.SENT, line=job.number))
    try:
        result = client.remix(**job.job.arguments(), fit=fit)
    except ReveRemixError as exc:
        record = ManifestRecord(
            id=job.id,
            status=state_after_error(exc),
            request_id=getattr(exc, "request_id", None),
            error=client._redact(str(exc)),  # the one redaction, however the key got in
            line=job.number,
            body=_raw_body(exc),
        )
        manifest.append(record)
        return record
    image = result.image
    paid = ManifestRecord(
        id=job.id,
        status=JobState.PAID,
        url=image.url,
        request_id=result.request_id,
        revised_prompt=image.revised_prompt,
        line=job.number,
    )
    if image.url is not None:  # inline bytes are saved first: there is nothing to record
        manifest.append(paid)
    return _save(image, job, out_dir, paid, manifest)


def _save(
    image: RemixImage, job: JobLine, out_dir: Path, paid: ManifestRecord, manifest: Manifest
) -> ManifestRecord:
    """Read ``image``, save it at ``job``'s target, record ``done`` (or ``paid`` with the error)."""
    try:
        data = image.read()
        path = image.write(job.target(out_dir).path_for(data), data)
    except ImageNotSavedError as exc:
        record = dataclasses.replace(paid, status=JobState.PAID, error=str(exc), line=job.number)
    else:
        file = path.relative_to(out_dir).as_posix()
        record = dataclasses.replace(
            paid, status=JobState.DONE, file=file, error=None, line=job.number
        )
    manifest.append(record)
    return record


def _raw_body(error: ReveRemixError) -> str | None:
    """The raw body of a 2xx whose images could not be found, to keep in the manifest."""
    if not isinstance(error, APIResponseValidationError):
        return None
    body = error.body if isinstance(error.body, str) else json.dumps(error.body)
    return body[:BODY_CHARS]
