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

import math
import os
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from ._batch_file import JobLine, Manifest, ManifestRecord, read_jobs
from ._exceptions import _CONTENT_POLICY, ValidationError
from ._grid import GRID_FIELDS, GRID_JOBS, GRID_NAME, Grid, GridJob, draw_grid, prompt_grid
from ._lifecycle import JobState
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
    price: float | None = None,
    title: str | None = None,
) -> Path:
    """Write ``out_dir/index.html``, the contact sheet of the batch in ``out_dir``; its path.

    ``cards`` default to :func:`cards_from_ledger` (with ``jobs_file`` and ``price``); with cards
    of your own, ``price`` fills the cost of those that were (or may have been) paid for and
    have none. The sheet lists the cards in the order given, and in a second order grouped by
    status (chosen on the page, no script needed).

    Example::

        path = contact_sheet("results/", price=0.04)
        print(path)  # results/index.html: open it in a browser
    """
    folder = Path(out_dir)
    _check_price(price)
    if cards is None:
        cards = cards_from_ledger(folder, jobs_file, price=price)
    elif price is not None:
        cards = [_priced(card, price) for card in cards]
    return write_sheet(folder, cards, title=title)


# --- the adapter from the ledger ---------------------------------------------------------------

# A content-policy refusal is told by the error type an APIStatusError's message carries:
# "403 Forbidden [content_policy_violation]: ...".
_ERROR_TYPE = re.compile(r"[0-9]{3} [^\[:]*\[([^\]]*)\]")


def cards_from_ledger(
    out_dir: str | os.PathLike[str],
    jobs_file: str | os.PathLike[str] | None = None,
    *,
    price: float | None = None,
) -> list[Card]:
    """The cards of the batch in ``out_dir``: every job of its jobs file, then every other job of
    its ledger (``manifest.jsonl``), by line.

    The ledger holds each job's status, result, request id, revised prompt and error; the jobs
    file (``jobs_file``, by default ``out_dir/jobs.jsonl`` when there is one, as ``reve-remix
    grid`` writes) holds its prompt and references. A job of the file the ledger does not know
    yet is ``pending``. With a ``price`` (USD per generation), each job that was or may have been
    paid for gets a cost. Raises ``ValidationError`` if the jobs file cannot be read.

    Example::

        for card in cards_from_ledger("results/", "jobs.jsonl"):
            print(card.line, card.status, card.image)
    """
    folder = Path(out_dir)
    _check_price(price)
    if jobs_file is None and (folder / GRID_JOBS).is_file():
        jobs_file = folder / GRID_JOBS
    jobs = read_jobs(Path(jobs_file))[0] if jobs_file is not None else []
    latest, _unreadable = Manifest(folder).latest()
    cards = [_card(job.id, job, latest.get(job.id), folder) for job in jobs]
    listed = {job.id for job in jobs}
    others = [record for record in latest.values() if record.id not in listed]
    others.sort(key=lambda record: (record.line is None, record.line or 0, record.id))
    cards += [_card(record.id, None, record, folder) for record in others]
    return cards if price is None else [_priced(card, price) for card in cards]


def _card(job_id: str, job: JobLine | None, record: ManifestRecord | None, out_dir: Path) -> Card:
    """One job's card, from its line of the jobs file and its latest ledger record."""
    status = _status(record)
    references: tuple[Reference, ...] = ()
    if job is not None:
        images = job.job.images
        if isinstance(images, dict):
            references = tuple(Reference(f"{{{name}}}", str(src)) for name, src in images.items())
        else:
            references = tuple(
                Reference(f"<img>{index}</img>", str(src))
                for index, src in enumerate(images)  # type: ignore[arg-type]
            )
    recorded = record or ManifestRecord(id=job_id, status=JobState.PENDING)
    return Card(
        id=job_id,
        status=status,
        line=job.number if job is not None else recorded.line,
        prompt=job.job.prompt if job is not None else None,
        references=references,
        image=out_dir / recorded.file if recorded.file else None,
        url=recorded.url,
        revised_prompt=recorded.revised_prompt,
        request_id=recorded.request_id,
        error=recorded.error,
    )


def _status(record: ManifestRecord | None) -> CardStatus:
    """What a card says of a job whose latest record is ``record``.

    ``sent`` (a run ended with the request out) is ``ambiguous`` like ``ambiguous`` itself; a
    ``paid`` job is ``held`` when its response had no image URL (only --regenerate-paid gets
    it); a ``failed`` one recorded before ``flagged`` existed is ``flagged`` when its error is
    the content policy's.
    """
    if record is None:
        return "pending"
    state = record.status
    if state == JobState.PAID:
        return "paid" if record.url else "held"
    if state == JobState.FAILED:
        error_type = _ERROR_TYPE.match(record.error or "")
        return "flagged" if error_type and _CONTENT_POLICY.search(error_type[1]) else "failed"
    return _CARD_STATUS[state]


_CARD_STATUS: dict[JobState, CardStatus] = {
    JobState.PENDING: "pending",
    JobState.SENT: "ambiguous",
    JobState.AMBIGUOUS: "ambiguous",
    JobState.DONE: "done",
    JobState.FLAGGED: "flagged",
}


def _check_price(price: object) -> None:
    if price is None:
        return
    if isinstance(price, bool) or not isinstance(price, int | float) or not 0 <= price < math.inf:
        raise ValidationError(f"price: USD per generation, a number from 0 up; got {price!r}")


def _priced(card: Card, price: float) -> Card:
    if card.cost is not None or card.status not in BILLED:
        return card
    return replace(card, cost=price)
