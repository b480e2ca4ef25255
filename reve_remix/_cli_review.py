"""The ``review`` and ``grid`` commands, and the contact sheet a ``batch`` leaves behind.

- ``reve-remix review DIR`` writes ``DIR/index.html``, the contact sheet of the batch in ``DIR``;
- ``reve-remix grid PROMPT -i ... --axis NAME=V1,V2 ... --out DIR`` writes the prompt matrix as a
  batch file (``DIR/jobs.jsonl``) and runs the ``batch`` command on it, so that the grid is paid
  once and resumable as every batch is; then it draws ``DIR/grid.png`` and the sheet;
- :func:`refresh_sheet` is what ``batch`` calls at the end of a run (unless ``--no-review``).

The commands are registered on the ``reve-remix`` parser by :func:`register`.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import TYPE_CHECKING

from . import _cli
from ._batch_file import Manifest, unwritable
from ._client import DEFAULT_CONCURRENCY
from ._exceptions import ValidationError
from ._grid import GRID_JOBS, GRID_NAME, GridJob, _pillow
from .review import cards_from_ledger, contact_sheet, prompt_grid

if TYPE_CHECKING:
    from ._cli import Console, _Commands, _SharedOptions

_REVIEW_EXAMPLES = """\
Example:
  reve-remix batch jobs.jsonl --out results/     # writes results/index.html at the end
  reve-remix review results/ --jobs jobs.jsonl --price 0.04

The page needs no network and no script: open it from the folder, zip it with the folder.
"""

_GRID_EXAMPLES = """\
Examples:
  reve-remix grid "{cat} painted in {style}" -i cat=cat.png \\
      --axis style=ink,oil,"pencil, smudged" --axis aspect_ratio=1:1,16:9 --out grid/
  reve-remix grid "<img>0</img> at {time}" -i city.jpg --axis time=dawn,noon,dusk --out t/ --dry-run

An axis is a {NAME} placeholder of the prompt or one of aspect_ratio, model, output_format;
named images ({cat}) keep their meaning. The jobs (every combination) are written to
DIR/jobs.jsonl and run as 'reve-remix batch' runs them: the same command again sends nothing
new. The first axis runs across DIR/grid.png, the second down; further axes make more pages.
"""


def register(commands: _Commands, shared: _SharedOptions) -> None:
    """Add ``review`` and ``grid`` to the ``reve-remix`` parser's ``commands``."""
    summary = "Write DIR/index.html: a contact sheet of the batch in DIR, one card per job."
    review = shared.command(commands, "review", summary, _REVIEW_EXAMPLES)
    review.add_argument("dir", metavar="DIR", help="the --out folder of a batch")
    review.add_argument(
        "--jobs",
        metavar="JOBS.jsonl",
        help=f"the batch's jobs file, for prompts and references (default: DIR/{GRID_JOBS})",
    )
    _add_price(review)
    review.set_defaults(run=review_command)

    summary = "Run a prompt matrix (every combination of the axes) and draw it as one grid."
    grid = shared.command(
        commands, "grid", summary, _GRID_EXAMPLES, shared.generation, shared.connection
    )
    grid.add_argument("prompt", help="what to make, with a {NAME} placeholder for each axis")
    grid.add_argument(
        "-i",
        "--image",
        dest="images",
        action="append",
        required=True,
        metavar="IMAGE",
        help="a path or http(s) URL; NAME=IMAGE names it for {NAME} in the prompt",
    )
    grid.add_argument(
        "--axis",
        dest="axes",
        action="append",
        required=True,
        metavar="NAME=V1,V2",
        help="an axis and its values, comma-separated (quote a value that holds a comma)",
    )
    grid.add_argument("--out", required=True, metavar="DIR", help="folder for the grid's files")
    grid.add_argument(
        "--dry-run", action="store_true", help="print how many generations a run would send"
    )
    grid.add_argument(
        "--concurrency",
        type=_cli._number(int, 1),
        metavar="N",
        default=DEFAULT_CONCURRENCY,
        help=f"jobs in flight at once (default: {DEFAULT_CONCURRENCY})",
    )
    for flag, text in {
        "--force": "overwrite files in DIR that no finished job wrote",
        "--resend-ambiguous": "send again the cells whose last run may have been billed "
        "without an answer",
        "--regenerate-paid": "generate again (pay again) paid cells whose image cannot be "
        "downloaded",
    }.items():
        grid.add_argument(flag, action="store_true", help=text)
    _add_price(grid)
    grid.set_defaults(run=grid_command)


def add_no_review(batch: argparse.ArgumentParser) -> None:
    """Add ``--no-review`` to the ``batch`` command's parser."""
    batch.add_argument(
        "--no-review", action="store_true", help="do not write DIR/index.html at the end"
    )


def _add_price(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--price",
        type=_cli._number(float, 0),
        metavar="USD",
        help="the price of one generation, to show what the jobs cost",
    )


# --- review --------------------------------------------------------------------------------------


def review_command(args: argparse.Namespace, console: Console) -> int:
    """``reve-remix review DIR``: write the contact sheet and print its path."""
    out_dir = Path(args.dir)
    if not out_dir.is_dir():
        raise _cli.UsageError(f"{out_dir}: not a folder")
    jobs_file = Path(args.jobs) if args.jobs else None
    manifest = Manifest(out_dir).path
    if jobs_file is None and not manifest.is_file() and not (out_dir / GRID_JOBS).is_file():
        raise _cli.UsageError(
            f"{out_dir} holds no {manifest.name}: run "
            f"'{_cli.PROG} batch JOBS.jsonl --out {out_dir}' first, or pass --jobs"
        )
    print(contact_sheet(out_dir, jobs_file=jobs_file, price=args.price))
    return _cli.EXIT_OK


def refresh_sheet(
    args: argparse.Namespace, out_dir: Path, jobs_file: Path, console: Console
) -> None:
    """At the end of a ``batch`` run: rewrite ``DIR/index.html`` (unless ``--no-review``) and
    print its path. A sheet that cannot be written is a warning: the batch itself is done."""
    if getattr(args, "no_review", False):
        return
    try:
        path = contact_sheet(out_dir, jobs_file=jobs_file, price=getattr(args, "price", None))
    except (OSError, ValidationError) as exc:
        console.say(f"{_cli.PROG}: warning: the contact sheet was not written: {exc}")
        return
    print(f"review: {path}")


# --- grid ----------------------------------------------------------------------------------------


def grid_command(args: argparse.Namespace, console: Console) -> int:
    """``reve-remix grid``: the matrix's jobs through the batch, then the grid and the sheet."""
    _pillow()  # before anything is paid for: without Pillow the run could not be drawn
    grid = prompt_grid(
        args.prompt,
        _cli._parse_images(args.images),
        _parse_axes(args.axes),
        aspect_ratio=args.aspect_ratio,
        output_format=args.output_format,
        model=args.model,
        fit=args.fit,
    )
    out_dir = Path(args.out)
    shape = " x ".join(f"{len(values)} {name}" for name, values in grid.axes.items())
    print(f"grid: {shape} = {len(grid.jobs)} job(s)")
    if args.dry_run:
        print(_dry_run(grid.jobs, out_dir, args))
        return _cli.EXIT_OK
    blocked = unwritable(out_dir)
    if blocked:
        raise _cli.UsageError(f"--out {out_dir}: {blocked}; nothing was sent")
    jobs_file = grid.write_jobs(out_dir / GRID_JOBS)
    code: int = _cli._batch(
        # the lines are valid (prompt_grid checked them); the sheet is written below
        argparse.Namespace(
            **{**vars(args), "jobs": str(jobs_file), "strict": True, "no_review": True}
        ),
        console,
    )
    cards = cards_from_ledger(out_dir, jobs_file, price=args.price)
    for page in grid.draw(cards, out_dir / GRID_NAME):
        print(f"grid: {page}")
    print(f"review: {contact_sheet(out_dir, cards)}")
    return code


def _parse_axes(values: list[str]) -> dict[str, list[str]]:
    """``--axis NAME=V1,V2`` options as a mapping; a value may be quoted to hold a comma."""
    axes: dict[str, list[str]] = {}
    for value in values:
        name, equals, listed = value.partition("=")
        if not equals or not name:
            raise _cli.UsageError(f"--axis {value}: write NAME=VALUE1,VALUE2")
        if name in axes:
            raise _cli.UsageError(f"--axis {name}=...: the axis {name!r} is given twice")
        try:
            axes[name] = next(csv.reader([listed], skipinitialspace=True), [])
        except csv.Error as exc:
            raise _cli.UsageError(f"--axis {value}: {exc}") from None
    return axes


def _dry_run(jobs: tuple[GridJob, ...], out_dir: Path, args: argparse.Namespace) -> str:
    """What a real run would do with the grid's jobs, by their records in ``out_dir``."""
    latest, _unreadable = Manifest(out_dir).latest()
    counts = {"send": 0, "fetch": 0, "skip": 0, "hold": 0}
    for job in jobs:
        record = latest.get(job.id)
        action = (
            record.action(
                out_dir,
                resend_ambiguous=args.resend_ambiguous,
                regenerate_paid=args.regenerate_paid,
            )
            if record
            else "send"
        )
        counts[action] += 1
    parts = [f"would send {counts['send']} generation(s)"]
    if counts["fetch"]:
        parts.append(f"download {counts['fetch']} paid image(s) again (not generated again)")
    if counts["skip"]:
        parts.append(f"{counts['skip']} done already")
    if counts["hold"]:
        parts.append(f"{counts['hold']} held (may have been billed; see --resend-ambiguous)")
    return ", ".join(parts) + "; nothing was sent (--dry-run)"
