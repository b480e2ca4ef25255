"""``reve-remix grid PROMPT -i ... --axis NAME=V1,V2 ... --out DIR``: a prompt matrix as one image.

The matrix's jobs are run by the ``batch`` command's :func:`~reve_remix._cli._batch.run_lines`
on the folder's manifest, so a grid is paid once and resumable as every batch is; they are
written as a batch file (``DIR/jobs.jsonl``) once the run holds the folder's lock, so a grid
refused by another run's lock writes nothing. Then ``DIR/grid.png`` is drawn and the contact
sheet written.
``--dry-run`` is the batch's own dry run of those jobs (``plan_batch``, as the run would plan
them): it sends and writes nothing, and takes no lock. The caps (``--max-generations``,
``--max-cost``) are the batch's.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from .._grid import job_lines, pillow
from ..review import GRID_JOBS, GRID_NAME, cards_from_ledger, prompt_grid
from . import _batch
from ._console import Console, UsageError
from ._options import Commands, SharedOptions, request_fields
from ._remix import add_images, parse_images
from ._review import refresh_sheet

_EXAMPLES = """\
Examples:
  reve-remix grid "{cat} painted in {style}" -i cat=cat.png \\
      --axis style=ink,oil,"pencil, smudged" --axis aspect_ratio=1:1,16:9 --out grid/
  reve-remix grid "<img>0</img> at {time}" -i city.jpg --axis time=dawn,noon,dusk --out t/ --dry-run

An axis is a {NAME} placeholder of the prompt or one of aspect_ratio, model, output_format;
named images ({cat}) keep their meaning. The jobs (every combination) are written to
DIR/jobs.jsonl and run as 'reve-remix batch' runs them: the same command again sends nothing
new. The first axis runs across DIR/grid.png, the second down; further axes make more pages.
"""


def add(commands: Commands, shared: SharedOptions) -> None:
    """Add the ``grid`` command."""
    summary = "Run a prompt matrix (every combination of the axes) and draw it as one grid."
    grid = shared.command(
        commands, "grid", summary, _EXAMPLES, shared.generation, shared.connection,
        shared.spending,
    )  # fmt: skip
    grid.add_argument("prompt", help="what to make, with a {NAME} placeholder for each axis")
    add_images(grid)
    grid.add_argument(
        "--axis",
        dest="axes",
        action="append",
        required=True,
        metavar="NAME=V1,V2",
        help="an axis and its values, comma-separated (quote a value that holds a comma)",
    )
    _batch.add_run_options(grid)
    grid.set_defaults(run=run)


def run(args: argparse.Namespace, console: Console) -> int:
    """Run ``grid``: the matrix's jobs through the batch, then the grid and the sheet."""
    pillow()  # before anything is paid for: without Pillow the run could not be drawn
    grid = prompt_grid(
        args.prompt,
        parse_images(args.images),
        _parse_axes(args.axes),
        aspect_ratio=args.aspect_ratio,
        output_format=args.output_format,
        model=args.model,
        fit=args.fit,
        extra_body=request_fields(args),
    )
    out_dir = Path(args.out)
    shape = " x ".join(f"{len(values)} {name}" for name, values in grid.axes.items())
    print(f"grid: {shape} = {len(grid.jobs)} job(s)")
    jobs_file = out_dir / GRID_JOBS
    # as batch runs (or plans) the file it would write: --strict, for prompt_grid checked every
    # line; the sheet is written below, with the cards the grid is drawn from
    batch_args = argparse.Namespace(
        **{**vars(args), "jobs": str(jobs_file), "strict": True, "no_review": True}
    )
    if args.dry_run:  # the batch's own dry run of the grid's lines: nothing written
        return _batch.plan_only(batch_args, console, *job_lines(grid))
    _batch.check_out(batch_args)
    written: list[Path] = []  # the jobs file, written once the batch holds the folder's lock
    code = _batch.run_lines(
        batch_args,
        console,
        *job_lines(grid),
        locked=lambda: written.append(grid.write_jobs(jobs_file)),
    )
    if not written:  # refused (another run holds the folder): it is that run's to draw
        return code
    cards = cards_from_ledger(out_dir, jobs_file, price=args.price)
    for page in grid.draw(cards, out_dir / GRID_NAME):
        print(f"grid: {page}")
    refresh_sheet(args, out_dir, jobs_file, console, cards)
    return code


def _parse_axes(values: list[str]) -> dict[str, list[str]]:
    """``--axis NAME=V1,V2`` options as a mapping; a value may be quoted to hold a comma."""
    axes: dict[str, list[str]] = {}
    for value in values:
        name, equals, listed = value.partition("=")
        if not equals or not name:
            raise UsageError(f"--axis {value}: write NAME=VALUE1,VALUE2")
        if name in axes:
            raise UsageError(f"--axis {name}=...: the axis {name!r} is given twice")
        try:
            axes[name] = next(csv.reader([listed], skipinitialspace=True), [])
        except csv.Error as exc:
            raise UsageError(f"--axis {value}: {exc}") from None
    return axes
