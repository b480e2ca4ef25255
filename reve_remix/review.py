"""Look at a batch rather than read it: a contact sheet of its jobs, and a prompt matrix as a grid.

- :func:`contact_sheet` writes ``DIR/index.html``: one card per job of the batch in ``DIR`` (the
  result, the references with their ``<img>N</img>`` or ``{name}`` label, the prompt as written
  with its tags highlighted, the revised prompt, the status and its error, the request id, the
  cost when a price is known), filterable by status. A static page: it opens from ``file://``
  with the network off;
- :func:`cards_from_ledger` reads those cards from the batch's ledger, for a page or a notebook
  of your own;
- :func:`prompt_grid` makes the jobs of a prompt matrix (``{style}`` in the prompt, or a request
  field, over a list of values each) and draws their results as one image (:meth:`Grid.draw`,
  needs Pillow); ``reve-remix grid`` runs it through the batch's ledger, paid once and resumable.

Example::

    from reve_remix.review import contact_sheet

    # after `reve-remix batch jobs.jsonl --out results/`:
    contact_sheet("results/", jobs_file="jobs.jsonl")  # results/index.html
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

from . import _config
from ._batch_plan import ID_DIGITS
from ._client import DEFAULT_MODEL
from ._exceptions import ValidationError, names_content_policy
from ._grid import GRID_FIELDS, GRID_JOBS, GRID_NAME, Grid, GridJob, draw_grid, prompt_grid
from ._jobs_file import STATE_DIR, JobLine, read_jobs
from ._ledger import JobRecord
from ._lifecycle import JobState
from ._manifest import read_history
from ._sheet import (
    BILLED,
    SHEET_NAME,
    STATUS_MEANING,
    STATUS_ORDER,
    Card,
    CardStatus,
    Reference,
    write_sheet,
)

__all__ = [
    "GRID_FIELDS",
    "GRID_JOBS",
    "GRID_NAME",
    "SHEET_NAME",
    "STATUS_MEANING",
    "STATUS_ORDER",
    "Card",
    "CardStatus",
    "Grid",
    "GridJob",
    "Reference",
    "cards_from_ledger",
    "contact_sheet",
    "draw_grid",
    "prompt_grid",
]


def contact_sheet(
    out_dir: str | os.PathLike[str],
    cards: Sequence[Card] | None = None,
    *,
    jobs_file: str | os.PathLike[str] | None = None,
    price: Decimal | float | str | None = None,
    title: str | None = None,
) -> Path:
    """Write ``out_dir/index.html``, the contact sheet of the batch in ``out_dir``; its path.

    ``cards`` default to :func:`cards_from_ledger` (with ``jobs_file`` and ``price``); with cards
    of your own, ``price`` (USD per generation; default ``$REVE_REMIX_PRICE``) fills the cost
    of those that were (or may have been) paid for and have none. The sheet lists the cards in
    the order given, and in a second order grouped by status (chosen on the page, no script
    needed).

    Example::

        path = contact_sheet("results/", price=0.04)
        print(path)  # results/index.html: open it in a browser
    """
    folder = Path(out_dir)
    if cards is None:
        cards = cards_from_ledger(folder, jobs_file, price=price)
    else:
        cards = _priced(cards, price)
    return write_sheet(folder, cards, title=title)


# --- the adapter from the ledger ---------------------------------------------------------------

# A content-policy refusal recorded as ``failed`` (before the ``flagged`` state existed) is told by
# the error type its APIStatusError's message carries: "403 Forbidden [content_policy_violation]".
_ERROR_TYPE = re.compile(r"[0-9]{3} [^\[:]*\[([^\]]*)\]")


JOBS_FILE_NOTE = "jobs-file"
"""In a batch's state folder: the path of the jobs file its last run read (for the sheet)."""


def remember_jobs_file(out_dir: Path, jobs_file: Path) -> None:
    """Note which jobs file ran in ``out_dir``, so that ``review DIR`` finds its references."""
    note = out_dir / STATE_DIR / JOBS_FILE_NOTE
    try:
        note.parent.mkdir(parents=True, exist_ok=True)
        note.write_text(str(jobs_file.resolve()), encoding="utf-8", errors="surrogateescape")
    except OSError:  # a convenience: the sheet then shows fewer references, nothing more
        pass


def last_jobs_file(out_dir: Path) -> Path | None:
    """The jobs file the last batch in ``out_dir`` ran, else ``out_dir/jobs.jsonl``, if any."""
    try:
        noted = (out_dir / STATE_DIR / JOBS_FILE_NOTE).read_text(
            encoding="utf-8", errors="surrogateescape"
        )
    except OSError:
        noted = ""
    for candidate in (Path(noted) if noted else None, out_dir / GRID_JOBS):
        if candidate is not None and candidate.is_file():
            return candidate
    return None


def cards_from_ledger(
    out_dir: str | os.PathLike[str],
    jobs_file: str | os.PathLike[str] | None = None,
    *,
    price: Decimal | float | str | None = None,
) -> list[Card]:
    """The cards of the batch in ``out_dir``: every job of its jobs file, then every other job of
    its ledger (``manifest.jsonl``), by line.

    The ledger holds each job's status, prompt, line, result, request id, revised prompt and error;
    the jobs file (``jobs_file``, by default the one the folder's last batch ran, else
    ``out_dir/jobs.jsonl`` as ``reve-remix grid`` writes) adds the references. A line with an ``id``
    is that job's; a line without one is the job the ledger recorded for that line and prompt. A job
    of the file the ledger does not know yet is ``pending``. With a ``price`` (USD per generation;
    default ``$REVE_REMIX_PRICE``), each job that was or may have been paid for gets a cost. Reads
    without the folder's lock, so it works while a batch runs. Raises ``ValidationError`` if the
    jobs file cannot be read.

    Example::

        for card in cards_from_ledger("results/", "jobs.jsonl"):
            print(card.line, card.status, card.image)
    """
    folder = Path(out_dir)
    if jobs_file is None:
        jobs_file = last_jobs_file(folder)
    lines = read_jobs(Path(jobs_file))[0] if jobs_file is not None else []
    history, _unreadable = read_history(folder)
    latest = {record.id: record for record in history}
    by_line = {(record.line, record.prompt): record for record in latest.values()}
    cards: list[Card] = []
    shown: set[str] = set()
    for line in lines:
        record = (
            latest.get(line.id) if line.explicit else by_line.get((line.number, line.job.prompt))
        )
        job_id = record.id if record is not None else _pending_id(line)
        if job_id in shown:  # the same job as an earlier line: the batch runs it once
            continue
        shown.add(job_id)
        cards.append(_card(job_id, line, record, folder))
    others = [record for record in latest.values() if record.id not in shown]
    others.sort(key=lambda record: (record.line is None, record.line or 0, record.id))
    cards += [_card(record.id, None, record, folder) for record in others]
    return _priced(cards, price)


def _pending_id(line: JobLine) -> str:
    """The id a batch with the default model gives a line the ledger does not know yet."""
    if line.explicit:
        return line.id
    try:
        identity = line.fingerprint(DEFAULT_MODEL)
    except ValidationError:  # the batch will report the line; the sheet shows it pending
        return line.id
    return identity[:ID_DIGITS] if identity else line.id


def _card(job_id: str, line: JobLine | None, record: JobRecord | None, out_dir: Path) -> Card:
    """One job's card, from its line of the jobs file and its latest ledger record."""
    references: tuple[Reference, ...] = ()
    if line is not None:
        images = line.job.images
        if isinstance(images, Mapping):
            references = tuple(Reference(f"{{{name}}}", str(src)) for name, src in images.items())
        else:
            references = tuple(
                Reference(f"<img>{index}</img>", str(src))
                for index, src in enumerate(images)  # type: ignore[arg-type]
            )
    recorded = record or JobRecord(id=job_id, status=JobState.PENDING)
    return Card(
        id=job_id,
        status=_card_status(record),
        line=line.number if line is not None else recorded.line,
        prompt=line.job.prompt if line is not None else recorded.prompt,
        references=references,
        image=out_dir / recorded.file if recorded.file else None,
        url=recorded.url,
        revised_prompt=recorded.revised_prompt,
        request_id=recorded.request_id,
        error=recorded.error,
    )


def _card_status(record: JobRecord | None) -> CardStatus:
    """What a card says of a job whose latest record is ``record`` (``None``: not sent yet).

    A ``paid`` job is ``paid`` (generated, not saved: the next run saves it) when its image can
    be had again, from its URL or its spooled bytes, and ``held`` when not (its response had no
    image: only --regenerate-paid gets it). A ``failed`` one recorded before ``flagged`` existed
    is ``flagged`` when its error names the content policy. Every other state is its own word.

    Example::

        >>> _card_status(JobRecord("cat", JobState.PAID, url="https://cdn.example.com/cat.png"))
        'paid'
        >>> _card_status(JobRecord("cat", JobState.PAID))
        'held'
    """
    if record is None:
        return "pending"
    state = record.status
    if state is JobState.PAID:
        return "paid" if record.recoverable else "held"
    if state is JobState.FAILED:
        error_type = _ERROR_TYPE.match(record.error or "")
        return "flagged" if error_type and names_content_policy(error_type[1], None) else "failed"
    return _CARD_STATUS[state]


_CARD_STATUS: dict[JobState, CardStatus] = {
    JobState.PENDING: "pending",
    JobState.SENT: "sent",
    JobState.AMBIGUOUS: "ambiguous",
    JobState.DONE: "done",
    JobState.FLAGGED: "flagged",
}


def _priced(cards: Sequence[Card], price: Decimal | float | str | None) -> list[Card]:
    """``cards``, each that was or may have been paid for and has no cost costing ``price``."""
    cost = _config.price(price)
    if cost is None:
        return list(cards)
    return [
        replace(card, cost=cost) if card.cost is None and card.status in BILLED else card
        for card in cards
    ]
