"""A batch's plan: jobs file + manifest → what the run does with each job, and the problems.

:func:`plan_batch` is pure (it reads image files to fingerprint them, and the output folder to
check targets, but sends and writes nothing), so the command line only renders it, and a dry run
can ask the same question. For each line it decides:

- **identity**: the job's fingerprint (``_identity``: what would be sent); a line without ``id``
  is identified by the first 16 hex digits of it, so key order, ``./cat.png`` vs ``cat.png`` vs
  its absolute path, or an explicit ``null`` equal to the default are one job, and a new
  ``output`` name is the same job placed at a new file. Two lines with one identity are one job
  (the second is a note, not an error). A line whose id is known with another fingerprint is a
  *conflict*, sent only under ``Policy.replace_changed``.
- **action**: ``_runner.plan`` against the job's latest record (send, fetch, place, skip, hold,
  conflict);
- **problems**: a line that is not a valid job, a target outside ``--out``, in a folder that
  cannot be written or shared with another line, and a file no finished job wrote that a job
  would overwrite (unless ``force``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._exceptions import ValidationError
from ._images import is_known_image
from ._jobs_file import JobLine, LineProblem, Target, target_problems
from ._ledger import JobRecord
from ._lifecycle import JobState
from ._recipe import save_image
from ._runner import Action, PaidJob, Policy, plan

if TYPE_CHECKING:
    from reve_remix_api._literals import AspectRatioValue, OutputFormatValue

ID_DIGITS = 16
"""Hex digits of the fingerprint that name a job whose line has no ``id``."""


@dataclass(frozen=True, slots=True)
class OutputFile:
    """Where a batch job's image goes: its :class:`Target` inside the output folder.

    The runner's ``Destination``: records name files relative to ``out_dir``.
    """

    out_dir: Path
    target: Target
    metadata: bool = True
    """Whether saved images carry their recipe (``--no-metadata`` turns it off)."""

    def holds(self, record: JobRecord) -> bool:
        path = self._saved(record)
        return path is not None and path in self.target.candidates()

    def saved_bytes(self, record: JobRecord) -> bytes | None:
        path = self._saved(record)
        if path is None:
            return None
        try:
            data = path.read_bytes()
        except OSError:
            return None
        return data if is_known_image(data) else None

    def save(self, record: JobRecord, data: bytes) -> str:
        recipe = record.recipe if self.metadata else None
        path = save_image(self.target.path_for(data), data, recipe)
        return path.relative_to(self.out_dir).as_posix()

    def _saved(self, record: JobRecord) -> Path | None:
        if record.file is None:
            return None
        path = self.out_dir / record.file
        return path if path.is_file() else None


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
    first: dict[str, tuple[int, str | None]] = {}  # job id -> (line, fingerprint)
    identified: list[tuple[JobLine, str | None]] = []
    for raw in lines:
        line = raw.with_defaults(
            aspect_ratio=defaults.aspect_ratio,
            output_format=defaults.output_format,
            model=defaults.line_model,
            extra_body=defaults.fields,
        )
        try:
            fingerprint = line.fingerprint(defaults.model, fit=defaults.fit)
        except ValidationError as exc:
            if not _finished(line, records, out_dir):  # its inputs may be gone: it is done
                found.append(LineProblem(line.number, str(exc)))
                continue
            fingerprint = None
        except Exception as exc:  # a bug here must not sink the other lines: report and go on
            found.append(LineProblem(line.number, f"unexpected {type(exc).__name__}: {exc}"))
            continue
        line = dataclasses.replace(line, id=_job_id(line, fingerprint, records))
        if line.id in first:
            earlier, earlier_fingerprint = first[line.id]
            if earlier_fingerprint == fingerprint:
                notes.append(f"line {line.number} is the same job as line {earlier}: run once")
            else:
                found.append(
                    LineProblem(
                        line.number,
                        f'duplicate id "{line.id}", first on line {earlier}, with another '
                        'request; give one of them another "id"',
                    )
                )
            continue
        first[line.id] = (line.number, fingerprint)
        identified.append((line, fingerprint))
    clashes = target_problems((line for line, _ in identified), out_dir)
    planned: list[Planned] = []
    for line, fingerprint in identified:
        if line.number in clashes:
            found.append(LineProblem(line.number, clashes[line.number]))
            continue
        target = line.target(out_dir)
        job = PaidJob(
            line.id,
            line.call(fit=defaults.fit),
            fingerprint,
            line.number,
            OutputFile(out_dir, target, defaults.metadata),
        )
        previous = records.get(line.id)
        action = plan(previous, job, policy)
        existing = target.existing()
        own = previous is not None and previous.status is JobState.PAID  # a killed run saved it
        if action in (Action.SEND, Action.PLACE) and existing and not (own or defaults.force):
            found.append(
                LineProblem(
                    line.number,
                    f"{existing} exists but no finished job of this batch wrote it; remove it, "
                    'set another "output", or pass --force to overwrite it',
                )
            )
            continue
        planned.append(Planned(line, job, action, previous))
    found.sort(key=lambda problem: problem.number)
    return BatchPlan(planned, found, notes)


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
