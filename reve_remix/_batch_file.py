"""The ``reve-remix batch`` file: jobs from JSONL, where images go, and the resumable manifest.

- :func:`read_jobs` parses a JSONL file, one job per line, reporting bad lines by number;
- :class:`Target` and :func:`slugify` decide the file an image is saved as;
- :class:`Manifest` is ``DIR/manifest.jsonl``, the log that makes a batch resumable;
- :func:`run_job` does one job: remix, save atomically, record.

Billing safety comes from the manifest: every finished job is recorded (appended, flushed and
fsync'd) right after its image is written atomically, and a re-run skips every job whose latest
record is ``done`` and whose file is still there.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import threading
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Literal

from ._batch import RemixJob
from ._exceptions import ReveRemixError, ValidationError
from ._images import sniff_format
from ._request import prepare_remix
from ._results import write_atomic

if TYPE_CHECKING:
    from ._client import ReveRemix

MANIFEST_NAME = "manifest.jsonl"


# --- output files ------------------------------------------------------------------------------

_EXTENSIONS = {
    "png": ".png",
    "jpeg": ".jpg",
    "webp": ".webp",
    "avif": ".avif",
    "heif": ".heic",
    "gif": ".gif",
    "bmp": ".bmp",
    "tiff": ".tiff",
}
_UNKNOWN_EXTENSION = ".bin"
_TAG = re.compile(r"<(?:img|ref)>[^<]*</(?:img|ref)>", re.IGNORECASE)
_ALL_EXTENSIONS = (*dict.fromkeys(_EXTENSIONS.values()), _UNKNOWN_EXTENSION)


def image_extension(data: bytes) -> str:
    """The file extension for image ``data``, sniffed from its bytes (``.bin`` if unknown).

    Example::

        image_extension(b"\\x89PNG\\r\\n\\x1a\\n...")  # '.png'
    """
    return _EXTENSIONS.get(sniff_format(data) or "", _UNKNOWN_EXTENSION)


def slugify(text: str, max_length: int = 40) -> str:
    """A short, lower-case, file-name-safe version of a prompt (``remix`` if nothing is left).

    Image tags are left out: they say nothing about the picture.

    Example::

        slugify("Put <img>0</img> on a sofa!")  # 'put-on-a-sofa'
    """
    untagged = _TAG.sub(" ", text)
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

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+:")  # any scheme (2+ letters: "C:\\x" is a path)
_LINE_KEYS = ("prompt", "images", "aspect_ratio", "output_format", "model", "id", "output")


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
            output_format=job.output_format or "url",
            fit=fit,
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
    and optionally ``aspect_ratio``, ``output_format``, ``model``, ``id`` and ``output``. Image
    paths are relative to the file's folder. A line without an ``id`` gets the first 16 hex
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
        else:
            jobs.append(job)
    return jobs, problems


def _parse_line(line: str, number: int, base: Path) -> JobLine:
    try:
        value = json.loads(line)
    except ValueError as exc:
        raise ValidationError(f"not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValidationError(f"expected a JSON object, got {_json_type(value)}")
    unknown = [key for key in value if key not in _LINE_KEYS]
    if unknown:
        raise ValidationError(
            f"unknown key(s) {', '.join(map(json.dumps, unknown))}; "
            f"expected some of {', '.join(_LINE_KEYS)}"
        )
    for key in ("prompt", "images"):
        if key not in value:
            raise ValidationError(f'missing "{key}"')
    if not isinstance(value["prompt"], str):
        raise ValidationError(f'"prompt" must be a string, got {_json_type(value["prompt"])}')
    for key in ("aspect_ratio", "output_format", "model"):
        if value.get(key) is not None and not isinstance(value[key], str):
            raise ValidationError(f'"{key}" must be a string, got {_json_type(value[key])}')
    job_id = value.get("id")
    if job_id is not None and (not isinstance(job_id, str) or not _ID.fullmatch(job_id)):
        raise ValidationError(
            f'"id" must be 1-128 letters, digits, ".", "_" or "-", starting with a letter or '
            f"digit; got {json.dumps(job_id)}"
        )
    output = value.get("output")
    if output is not None:
        output = _check_output(output)
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return JobLine(
        number=number,
        id=job_id or hashlib.sha256(canonical.encode()).hexdigest()[:16],
        job=RemixJob(
            prompt=value["prompt"],
            images=_resolve_images(value["images"], base),
            aspect_ratio=value.get("aspect_ratio"),
            output_format=value.get("output_format"),
            model=value.get("model"),
            id=job_id,
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
    if _URL.match(item) or Path(item).is_absolute():
        return item
    return str(base / item)


def _check_output(output: object) -> str:
    if not isinstance(output, str):
        raise ValidationError(f'"output" must be a file name, got {_json_type(output)}')
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

Status = Literal["done", "failed"]


@dataclass(frozen=True, slots=True)
class ManifestRecord:
    """One line of ``manifest.jsonl``: how one attempt at a job ended.

    ``file`` is relative to the output folder (``None`` when failed); ``line`` is the job's line
    number in the batch file at the time.
    """

    id: str
    status: Status
    file: str | None = None
    request_id: str | None = None
    revised_prompt: str | None = None
    error: str | None = None
    line: int | None = None

    def to_json(self) -> str:
        """The record as one line of compact JSON (without the newline)."""
        return json.dumps(dataclasses.asdict(self), ensure_ascii=False, separators=(",", ":"))

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
        if not isinstance(job_id, str) or status not in ("done", "failed"):
            return None
        fields = {
            name: value.get(name) if isinstance(value.get(name), str) else None
            for name in ("file", "request_id", "revised_prompt", "error")
        }
        line = value.get("line")
        return cls(id=job_id, status=status, line=line if isinstance(line, int) else None, **fields)


class Manifest:
    """``DIR/manifest.jsonl``: an append-only log of finished jobs, safe to share across threads.

    Every record is flushed and fsync'd as it is appended, so a crash loses at most the record
    being written; a line cut short by a crash is ignored when the manifest is read back.

    Example::

        with Manifest(Path("out")) as manifest:
            finished = manifest.latest()
            manifest.append(ManifestRecord(id="cat", status="done", file="cat.png"))
    """

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.path = out_dir / MANIFEST_NAME
        self._lock = threading.Lock()
        self._file: IO[str] | None = None

    def latest(self) -> tuple[dict[str, ManifestRecord], list[int]]:
        """The latest record of every job id, and the numbers of unreadable lines."""
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

    def split(
        self, jobs: Iterable[JobLine], latest: Mapping[str, ManifestRecord]
    ) -> tuple[list[JobLine], list[JobLine]]:
        """Split ``jobs`` into those to run and those done: recorded done, file still there."""
        pending: list[JobLine] = []
        done: list[JobLine] = []
        for job in jobs:
            record = latest.get(job.id)
            finished = (
                record is not None
                and record.status == "done"
                and record.file is not None
                and (self.out_dir / record.file).is_file()
            )
            (done if finished else pending).append(job)
        return pending, done

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
        file = self.path.open("a+", encoding="utf-8")
        if file.tell() > 0:
            file.seek(file.tell() - 1)
            if file.read(1) != "\n":  # a record cut short by a crash: end its line first
                file.write("\n")
        return file

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


# --- one batch job -----------------------------------------------------------------------------


def run_job(
    client: ReveRemix, job: JobLine, out_dir: Path, manifest: Manifest, *, fit: bool = False
) -> ManifestRecord:
    """Remix ``job``, save its image atomically, record the outcome; return the record.

    A ``ReveRemixError`` becomes a ``failed`` record rather than an exception, so that every
    finished job, paid for or not, is in the manifest before the next one is reported. An
    ``OSError`` while saving (disk full, no permission) propagates: every later job would fail
    the same way after being paid for.
    """
    try:
        result = client.remix(**job.job.arguments(), fit=fit)
        data = result.read()
        path = job.target(out_dir).path_for(data)
        write_atomic(path, data)
        record = ManifestRecord(
            id=job.id,
            status="done",
            file=path.relative_to(out_dir).as_posix(),
            request_id=result.request_id,
            revised_prompt=result.image.revised_prompt,
            line=job.number,
        )
    except ReveRemixError as exc:
        request_id = getattr(exc, "request_id", None)
        record = ManifestRecord(
            id=job.id, status="failed", request_id=request_id, error=str(exc), line=job.number
        )
    manifest.append(record)
    return record
