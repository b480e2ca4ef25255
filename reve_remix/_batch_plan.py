"""A batch's plan: jobs file + manifest → what the run does with each job, and the problems.

:func:`plan_batch` is pure (it reads image files to fingerprint them, and the output folder to
check targets, but sends and writes nothing), so the command line only renders it, and a dry run
can ask the same question. For each line it decides:

- **identity**: the job's fingerprint (``_identity``: what would be sent); a line without ``id``
  is identified by the first 16 hex digits of it, so key order, ``./cat.png`` vs ``cat.png`` vs
  its absolute path, or an explicit ``null`` equal to the default are one job, and a new
  ``output`` name is the same job placed at a new file. Two lines with one identity are one job
  (the second is a note, not an error): paid once, and saved at each line's file when their
  ``output`` differs (the later lines are the job's *copies*). A line whose id is known with
  another fingerprint is a *conflict*, sent only under ``Policy.replace_changed``.
- **action**: ``_runner.plan`` against the job's latest record (send, fetch, place, skip, hold,
  conflict);
- **problems**: a line that is not a valid job, a target outside ``--out``, in a folder that
  cannot be written or shared with another line, and a file no finished job wrote that a job
  would overwrite (unless ``force``).
"""

from __future__ import annotations

import dataclasses
import errno
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._exceptions import ReveRemixError, ValidationError
from ._identity import Identity
from ._images import is_known_image
from ._jobs_file import JobLine, LineProblem, Target, target_problems, unwritable
from ._ledger import JobRecord
from ._lifecycle import JobState
from ._recipe import read_recipe, save_image
from ._runner import Action, PaidJob, Policy, changed, plan

if TYPE_CHECKING:
    from reve_remix_api._literals import AspectRatioValue, OutputFormatValue

ID_DIGITS = 16
"""Hex digits of the fingerprint that name a job whose line has no ``id``."""
_DISK_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})
"""Save failures of the whole disk (full, over quota, read-only): every file would fail."""


@dataclass(frozen=True, slots=True)
class OutputFile:
    """Where a batch job's image goes: its :class:`Target` inside the output folder.

    The runner's ``Destination``: records name files relative to ``out_dir``.
    """

    out_dir: Path
    target: Target
    metadata: bool = True
    """Whether saved images carry their recipe (``--no-metadata`` turns it off)."""
    copies: tuple[Target, ...] = ()
    """Where later lines of the same job save it too: written with ``target``, paid once. The
    record names ``target``'s file; a copy is the job's when its bytes are the same."""

    def holds(self, record: JobRecord) -> bool:
        path = self._saved(record)
        if path is None or path not in self.target.candidates():
            return False
        if not self.copies:
            return True
        data = _image_at(path)
        return data is not None and all(_image_at(copy.existing()) == data for copy in self.copies)

    def saved_bytes(self, record: JobRecord) -> bytes | None:
        """The image ``record`` saved: its file, else a copy whose recipe names its request."""
        data = _image_at(self._saved(record))
        if data is not None or record.request_id is None:
            return data
        for copy in self.copies:
            path = copy.existing()
            if path is not None and _saved_for(path, record.request_id):
                return _image_at(path)
        return None

    def save(self, record: JobRecord, data: bytes) -> str:
        recipe = record.recipe if self.metadata else None
        path = save_image(self.target.path_for(data), data, recipe)
        for copy in self.copies:
            save_image(copy.path_for(data), data, recipe)
        return path.relative_to(self.out_dir).as_posix()

    def mine(self, path: Path, record: JobRecord | None) -> bool:
        """Whether the file at ``path`` may be overwritten by this job without ``--force``: a
        killed run of it saved it (the job is *paid*), its record names it, or it holds the
        job's image."""
        if record is None:
            return False
        if record.status is JobState.PAID or self._saved(record) == path:
            return True
        saved = self.saved_bytes(record)
        return saved is not None and _image_at(path) == saved

    def cannot_save(self, cause: OSError) -> str | None:
        """Why no image can be saved where this job saves, now that a save failed with
        ``cause``: the disk is full or read-only, or a folder of its files cannot be written
        (tried for real). ``None`` when the failure is this file's own (a folder where the image
        goes, a name the file system refuses): another job's image may still be saved.
        """
        if cause.errno in _DISK_ERRORS:
            return f"cannot write in {self.target.path.parent}: {cause.strerror or cause}"
        for target in (self.target, *self.copies):
            blocked = unwritable(target.path.parent)
            if blocked is not None:
                return blocked
        return None

    def _saved(self, record: JobRecord) -> Path | None:
        if record.file is None:
            return None
        path = self.out_dir / record.file
        return path if path.is_file() else None


def _image_at(path: Path | None) -> bytes | None:
    """The image in the file at ``path``, or ``None`` (no file, unreadable, not an image)."""
    if path is None:
        return None
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return data if is_known_image(data) else None


def _saved_for(path: Path, request_id: str) -> bool:
    """Whether the image at ``path`` carries the recipe of the answer ``request_id``."""
    try:
        recipe = read_recipe(path)
    except (OSError, ReveRemixError):
        return False
    return recipe is not None and recipe.request_id == request_id


@dataclass(frozen=True, slots=True)
class Defaults:
    """What the command line gives the lines that leave a field out, and how to run them."""

    model: str
    """The client's model: what a line without ``model`` sends."""
    aspect_ratio: AspectRatioValue | None = None
    """``--aspect-ratio``: one of the spec's values (the parser's choices), or ``None``."""
    output_format: OutputFormatValue | None = None
    line_model: str | None = None
    """``--model``: what a line without ``model`` says (``None``: the client's)."""
    fields: Mapping[str, Any] | None = None
    """``--field``: request fields for every line; a line's ``extra_body`` wins field by field."""
    fit: bool = False
    force: bool = False
    """Overwrite files in the output folder that no finished job wrote."""
    metadata: bool = True
    """Saved images carry their recipe (``--no-metadata``: saved as the API sent them)."""


@dataclass(frozen=True, slots=True)
class Planned:
    """One job of the plan: its line (with its final id), the runner's job, and the action."""

    line: JobLine
    job: PaidJob
    action: Action
    previous: JobRecord | None
    copies: tuple[JobLine, ...] = ()
    """Later lines of the same job with another ``output``: saved there too, paid once."""


@dataclass(frozen=True, slots=True)
class BatchPlan:
    """What a run will do: every job with its action, the invalid lines, and notes."""

    jobs: list[Planned]
    problems: list[LineProblem]
    notes: list[str]
    """Lines that are the same job as an earlier line, run once."""

    def having(self, *actions: Action) -> list[Planned]:
        """The jobs whose action is one of ``actions``, in file order."""
        return [planned for planned in self.jobs if planned.action in actions]

    @property
    def to_run(self) -> list[Planned]:
        """The jobs this run hands to the runner."""
        return self.having(Action.SEND, Action.FETCH, Action.PLACE)

    def capped(self, limit: int | None) -> list[Planned]:
        """The jobs a run allowed ``limit`` generations leaves pending, if every request is
        answered: those that would send, after the first ``limit`` of them in file order (the
        order ``BatchRun`` starts them in). ``None``: no cap.

        Example::

            left = plan.capped(budget.limit)  # not sent by this run: pending for the next
        """
        return [] if limit is None else self.having(Action.SEND)[limit:]


def plan_batch(
    lines: Sequence[JobLine],
    records: Mapping[str, JobRecord],
    out_dir: Path,
    defaults: Defaults,
    policy: Policy,
    problems: Sequence[LineProblem] = (),
) -> BatchPlan:
    """Plan ``lines`` against the manifest's latest ``records``; pure, sends nothing.

    ``problems`` are the lines ``read_jobs`` could not read; the plan's problems add those of
    the valid lines, sorted by line number.

    Example::

        lines, problems = read_jobs(Path("jobs.jsonl"))
        batch = plan_batch(lines, manifest.records, Path("out"), Defaults(model=client.model),
                           Policy(), problems)
        for planned in batch.having(Action.HOLD):
            print(planned.line.number, planned.previous)
    """
    found: list[LineProblem] = list(problems)
    notes: list[str] = []
    jobs: dict[str, _Job] = {}  # by id, in file order
    for raw in lines:
        line = raw.with_defaults(
            aspect_ratio=defaults.aspect_ratio,
            output_format=defaults.output_format,
            model=defaults.line_model,
            extra_body=defaults.fields,
        )
        try:
            identity = line.identity(defaults.model, fit=defaults.fit)
        except ValidationError as exc:
            if not _finished(line, records, out_dir):  # its inputs may be gone: it is done
                found.append(LineProblem(line.number, str(exc)))
                continue
            identity = None
        except Exception as exc:  # a bug here must not sink the other lines: report and go on
            found.append(LineProblem(line.number, f"unexpected {type(exc).__name__}: {exc}"))
            continue
        fingerprint = None if identity is None else identity.fingerprint
        line = dataclasses.replace(line, id=_job_id(line, fingerprint, records))
        earlier = jobs.get(line.id)
        if earlier is None:
            jobs[line.id] = _Job(line, identity)
            continue
        first = earlier.line
        if earlier.fingerprint != fingerprint:
            found.append(
                LineProblem(
                    line.number,
                    f'duplicate id "{line.id}", first on line {first.number}, with another '
                    'request; give one of them another "id"',
                )
            )
        elif line.target(out_dir) == first.target(out_dir):
            notes.append(f"line {line.number} is the same job as line {first.number}: run once")
        else:
            earlier.copies.append(line)
            notes.append(
                f"line {line.number} is the same job as line {first.number}: generated once, "
                f"also saved as {line.target(out_dir)}"
            )
    every_line = sorted(
        (line for job in jobs.values() for line in (job.line, *job.copies)),
        key=lambda line: line.number,
    )
    clashes = target_problems(every_line, out_dir)  # in file order: the later line is named
    planned: list[Planned] = []
    for job in jobs.values():
        made = _plan_job(job, records.get(job.line.id), clashes, out_dir, defaults, policy, found)
        if made is not None:
            planned.append(made)
    found.sort(key=lambda problem: problem.number)
    return BatchPlan(planned, found, notes)


@dataclass(slots=True)
class _Job:
    """A job of the plan being made: its first line, identity, and the lines that copy it."""

    line: JobLine
    identity: Identity | None
    copies: list[JobLine] = dataclasses.field(default_factory=list)

    @property
    def fingerprint(self) -> str | None:
        return None if self.identity is None else self.identity.fingerprint

    @property
    def parts(self) -> str | None:
        return None if self.identity is None else self.identity.parts


def _plan_job(
    job: _Job,
    previous: JobRecord | None,
    clashes: Mapping[int, str],
    out_dir: Path,
    defaults: Defaults,
    policy: Policy,
    found: list[LineProblem],
) -> Planned | None:
    """``job``'s action against its ``previous`` record, with the copies that can be saved;
    ``None`` when its own file cannot be. Adds the problems of its lines to ``found``."""
    line = job.line

    def planned(copies: list[JobLine]) -> Planned:
        targets = tuple(copy.target(out_dir) for copy in copies)
        output = OutputFile(out_dir, line.target(out_dir), defaults.metadata, targets)
        paid = PaidJob(
            line.id, line.call(fit=defaults.fit), job.fingerprint, line.number, output, job.parts
        )
        return Planned(line, paid, plan(previous, paid, policy), previous, tuple(copies))

    copies = [copy for copy in job.copies if copy.number not in clashes]
    found.extend(LineProblem(c.number, clashes[c.number]) for c in job.copies if c not in copies)
    made = planned(copies)
    if line.number in clashes:
        problem: str | None = clashes[line.number]
    elif made.action in (Action.SEND, Action.FETCH, Action.PLACE):
        # A file the job's previous record (of the same request) wrote may be overwritten;
        # that of a changed job is the old request's image, kept unless --force.
        owner = None if previous is None or changed(made.job, previous) else previous
        output = made.job.destination
        assert isinstance(output, OutputFile)
        troubled = {
            copy.number: trouble
            for copy in copies
            if (trouble := _overwrites(copy.target(out_dir), output, owner, defaults.force))
        }
        if troubled:  # a copy that would overwrite a file is left out, alone
            found.extend(LineProblem(number, trouble) for number, trouble in troubled.items())
            made = planned([copy for copy in copies if copy.number not in troubled])
        problem = _overwrites(output.target, output, owner, defaults.force)
    else:
        problem = None
    if problem is not None:
        found.append(LineProblem(line.number, problem))
        found.extend(  # the job is not run: nor are its copies
            LineProblem(c.number, f"the same job as line {line.number}, which is not run")
            for c in made.copies
        )
        return None
    return made


def _overwrites(
    target: Target, output: OutputFile, owner: JobRecord | None, force: bool
) -> str | None:
    """Why saving at ``target`` would overwrite a file no finished job of the batch wrote."""
    existing = target.existing()
    if existing is None or force or output.mine(existing, owner):
        return None
    return (
        f"{existing} exists but no finished job of this batch wrote it; remove it, "
        'set another "output", or pass --force to overwrite it'
    )


def _job_id(line: JobLine, fingerprint: str | None, records: Mapping[str, JobRecord]) -> str:
    """The line's ``id``; else its fingerprint's first digits, or the id an old manifest knows.

    Manifests written before jobs had fingerprints named a line without ``id`` by a hash of its
    text (``line.id``): a job recorded that way keeps that id, so it is not paid for again.
    """
    if line.explicit or fingerprint is None:
        return line.id
    new = fingerprint[:ID_DIGITS]
    old = records.get(line.id)
    if new not in records and old is not None and old.fingerprint is None:
        return line.id
    return new


def _finished(line: JobLine, records: Mapping[str, JobRecord], out_dir: Path) -> bool:
    """Whether an explicit-id line is done and saved where it says: nothing to check or send."""
    record = records.get(line.id)
    return (
        line.explicit
        and record is not None
        and record.status is JobState.DONE
        and OutputFile(out_dir, line.target(out_dir)).holds(record)
    )
