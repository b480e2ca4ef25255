"""The ``reve-remix batch`` jobs file, and where its images go.

- :func:`read_jobs` parses a JSONL file, one job per line, reporting bad lines by number;
- :class:`JobLine` is one line: its remix arguments, id and output name;
- :class:`Target` and :func:`slugify` decide the file an image is saved as;
- :func:`target_problems` checks every output target before anything is sent.

A job's identity (what would be sent) and its plan against the manifest are the batch's
(``_batch_plan``); the manifest itself is ``_manifest``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import stat
import tempfile
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from ._exceptions import ValidationError
from ._files import PART_FILE
from ._identity import Identity, identity
from ._images import IMAGE_FORMATS, UNKNOWN_EXTENSION, image_extension, url_scheme
from ._jobs import JOB_FIELDS, RemixJob, check_job_keys
from ._lifecycle import JOB_ID, JOB_ID_RULE
from ._runner import Call
from ._tags import strip_tags

if TYPE_CHECKING:
    from reve_remix_api._literals import AspectRatioValue, OutputFormatValue

MANIFEST_NAME = "manifest.jsonl"
STATE_DIR = ".reve-remix"
"""The folder inside ``--out`` where a batch keeps its lock and spooled images (hidden: no
``output`` may name it)."""
MAX_JOBS_FILE_BYTES = 256 * 1024 * 1024
"""The largest jobs file read (about a million jobs): it is read whole, so a device such as
``/dev/zero`` or a runaway generator is refused rather than read until memory runs out."""


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

    def __str__(self) -> str:
        """The path a message names: the file, or its stem with ``.*`` when the image's bytes
        decide the extension."""
        return f"{self.path}.*" if self.add_extension else str(self.path)

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

    ``id`` is the line's ``id``, or, for a line without one, the first 16 hex digits of the
    SHA-256 of its JSON text (sorted keys): the id such a line had before jobs were identified by
    what they send, kept so that an old manifest's records are still found. The batch gives a
    line without ``id`` the first 16 digits of its fingerprint instead (``_batch_plan``).
    ``output`` is the file name inside the output folder chosen by the line, or ``None`` for the
    default: ``<id>.<ext>`` for an explicit id, ``<prompt slug>-<id>.<ext>`` otherwise.
    """

    number: int
    id: str
    job: RemixJob
    output: str | None = None

    @property
    def explicit(self) -> bool:
        """Whether the line names its own ``id``."""
        return self.job.id is not None

    def target(self, out_dir: Path) -> Target:
        """Where this job's image goes inside ``out_dir``."""
        if self.output is not None:
            return Target(
                out_dir / self.output, add_extension=not PurePosixPath(self.output).suffix
            )
        stem = self.id if self.job.id is not None else f"{slugify(self.job.prompt, 32)}-{self.id}"
        return Target(out_dir / stem, add_extension=True)

    def with_defaults(
        self,
        *,
        aspect_ratio: AspectRatioValue | None,
        output_format: OutputFormatValue | None,
        model: str | None,
        extra_body: Mapping[str, Any] | None = None,
    ) -> JobLine:
        """This job, with the options its line leaves out taken from the command line
        (``extra_body``: ``--field``, under the line's own ``extra_body``, field by field)."""
        job = self.job
        fields = {**extra_body, **(job.extra_body or {})} if extra_body else job.extra_body
        # Only a missing key (or null) takes the default: an empty string is refused later, as
        # remix refuses it.
        return dataclasses.replace(
            self,
            job=dataclasses.replace(
                job,
                aspect_ratio=aspect_ratio if job.aspect_ratio is None else job.aspect_ratio,
                output_format=output_format if job.output_format is None else job.output_format,
                model=model if job.model is None else job.model,
                extra_body=fields,
            ),
        )

    def call(self, *, fit: bool = False) -> Call:
        """The runner's arguments for this job."""
        job = self.job
        return Call(
            job.prompt,
            job.images,
            job.aspect_ratio,
            job.output_format,
            job.model,
            fit,
            extra_body=job.extra_body,
        )

    def fingerprint(self, default_model: str, *, fit: bool = False) -> str | None:
        """What this job would send, fingerprinted: :meth:`identity`'s fingerprint."""
        found = self.identity(default_model, fit=fit)
        return None if found is None else found.fingerprint

    def identity(self, default_model: str, *, fit: bool = False) -> Identity | None:
        """What this job would send, fingerprinted, and its parts (``_identity.identity``).

        Validates the job as ``remix`` would, without sending it (``ValidationError`` if not):
        local images by their size and leading bytes, and their content hashed, so that a bad
        file is reported with its line before any job of the batch is paid for.
        """
        return identity(self.call(fit=fit), default_model)


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
    are relative to the file's folder. Returns the jobs and, separately, every line that is not
    a valid job. Two lines with one ``id`` are sorted out by the batch's plan, which knows what
    each would send. Raises ``ValidationError`` if the file cannot be read as UTF-8 text, is not a
    file (a device, a folder) or is larger than ``MAX_JOBS_FILE_BYTES``.

    Example::

        jobs, problems = read_jobs(Path("jobs.jsonl"))
        for problem in problems:
            print(problem)  # line 3: missing "prompt"
    """
    return parse_jobs(_read_text(path), path.parent)


def parse_jobs(text: str, base: Path) -> tuple[list[JobLine], list[LineProblem]]:
    """The jobs of a batch file's ``text`` (see :func:`read_jobs`), image paths relative to
    ``base``; what a file holding ``text`` in ``base`` would give, without the file.

    Example::

        jobs, problems = parse_jobs('{"prompt": "<img>0</img>", "images": ["a.png"]}', Path("."))
    """
    jobs: list[JobLine] = []
    problems: list[LineProblem] = []
    seen_outputs: dict[str, int] = {}
    # Split on newlines only: str.splitlines() would also split inside JSON strings (U+2028).
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            job = _parse_line(line, number, base)
            if job.output is not None:
                _check_unique(job.output, "output", seen_outputs, number)
        except ValidationError as exc:
            problems.append(LineProblem(number, str(exc)))
        except Exception as exc:  # a bug here must not sink the other lines: report and go on
            problems.append(LineProblem(number, f"unexpected {type(exc).__name__}: {exc}"))
        else:
            jobs.append(job)
    return jobs, problems


def _read_text(path: Path) -> str:
    """The jobs file's text: a regular file or a pipe, at most ``MAX_JOBS_FILE_BYTES``."""
    where = f"the jobs file {str(path)!r}"
    try:
        with path.open("rb") as file:
            mode = os.fstat(file.fileno()).st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
                raise ValidationError(f"{where} is not a file (a device or a folder)")
            data = file.read(MAX_JOBS_FILE_BYTES + 1)
    except OSError as exc:
        raise ValidationError(f"cannot read {where}: {exc.strerror or exc}") from exc
    if len(data) > MAX_JOBS_FILE_BYTES:
        raise ValidationError(
            f"{where} is larger than {MAX_JOBS_FILE_BYTES >> 20} MiB; split it into several "
            "files, each run with its own --out"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationError(f"cannot read {where}: {exc}") from exc


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
    ):  # hidden parts: the batch's own STATE_DIR among them
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


# --- the output folder ------------------------------------------------------------------------


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
