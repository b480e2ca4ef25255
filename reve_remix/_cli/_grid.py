"""``reve-remix grid PROMPT -i ... --axis NAME=V1,V2 ... --out DIR``: a prompt matrix as one image.

The matrix's jobs are written as a batch file (``DIR/jobs.jsonl``) and run by the ``batch``
command's :func:`~reve_remix._cli._batch.run` on the folder's manifest, so a grid is paid once
and resumable as every batch is; then ``DIR/grid.png`` is drawn and the contact sheet written.
``--dry-run`` plans those jobs with ``plan_batch``, as the run would, and sends nothing.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from .._batch_plan import plan_batch
from .._client import DEFAULT_MODEL
from .._grid import pillow
from .._jobs_file import MANIFEST_NAME, unwritable
from .._manifest import read_records
from .._runner import Action
from ..review import GRID_JOBS, GRID_NAME, Grid, cards_from_ledger, prompt_grid
from . import _batch
from ._console import EXIT_OK, EXIT_USAGE, PROG, Console, UsageError
from ._options import Commands, SharedOptions
from ._remix import add_images, parse_images
from ._review import add_price, refresh_sheet

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
        commands, "grid", summary, _EXAMPLES, shared.generation, shared.connection
    )
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
    grid.add_argument(
        "--dry-run", action="store_true", help="print how many generations a run would send"
    )
    add_price(grid)
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
    )
    out_dir = Path(args.out)
    shape = " x ".join(f"{len(values)} {name}" for name, values in grid.axes.items())
    print(f"grid: {shape} = {len(grid.jobs)} job(s)")
    jobs_file = out_dir / GRID_JOBS
    if args.dry_run:
        return _dry_run(grid, out_dir, jobs_file, args, console)
    blocked = unwritable(out_dir)
    if blocked:
        raise UsageError(f"--out {out_dir}: {blocked}; nothing was sent")
    grid.write_jobs(jobs_file)
    # prompt_grid checked every line (--strict only guards that); the sheet is written below,
    # with the cards the grid is drawn from
    batch_args = {**vars(args), "jobs": str(jobs_file), "strict": True, "no_review": True}
    code: int = _batch.run(argparse.Namespace(**batch_args), console)
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


def _dry_run(
    grid: Grid, out_dir: Path, jobs_file: Path, args: argparse.Namespace, console: Console
) -> int:
    """Print what a real run would do with the grid's jobs: the batch's plan of them against
    the folder's manifest (read without its lock), as the run would make it. Writes nothing."""
    lines, problems = grid.job_lines()
    records, _unreadable = read_records(out_dir / MANIFEST_NAME)
    defaults = _batch.defaults_of(args, args.model or DEFAULT_MODEL)  # the client's model
    plan = plan_batch(lines, records, out_dir, defaults, _batch.policy_of(args), problems)
    _batch.announce(plan, str(jobs_file), console)
    counts = {action: len(plan.having(action)) for action in Action}
    parts = [f"would send {counts[Action.SEND]} generation(s)"]
    if counts[Action.FETCH] or counts[Action.PLACE]:
        parts.append(
            f"save {counts[Action.FETCH] + counts[Action.PLACE]} paid image(s) again "
            "(not generated again)"
        )
    if counts[Action.SKIP]:
        parts.append(f"{counts[Action.SKIP]} done already")
    if counts[Action.HOLD]:
        parts.append(f"{counts[Action.HOLD]} held (see the flags above)")
    if counts[Action.CONFLICT]:
        parts.append(f"{counts[Action.CONFLICT]} changed since recorded (--replace-changed)")
    if plan.problems:
        parts.append(f"{len(plan.problems)} invalid")
    print(", ".join(parts) + "; nothing was sent (--dry-run)")
    if plan.problems:
        console.say(f"{PROG}: a run would stop here: nothing would be sent")
        return EXIT_USAGE
    return EXIT_OK
