"""``reve-remix review DIR``: the contact sheet of the batch in ``DIR``, and the one a run leaves.

:func:`refresh_sheet` is what ``batch`` and ``grid`` call at the end of every run (unless
``--no-review``): the sheet is rewritten and its path printed.
"""

from __future__ import annotations

import argparse
import traceback
from collections.abc import Sequence
from pathlib import Path

from .. import _config
from .._exceptions import ValidationError
from .._jobs_file import MANIFEST_NAME
from .._sheet import Card
from ..review import GRID_JOBS, contact_sheet, last_jobs_file, remember_jobs_file
from ._console import DEBUG_HINT, EXIT_OK, PROG, Console, UsageError
from ._options import Commands, SharedOptions

_EXAMPLES = f"""\
Example:
  reve-remix batch jobs.jsonl --out results/     # writes results/index.html at the end
  reve-remix review results/ --jobs jobs.jsonl --price 0.04

The page needs no network and no script: open it from the folder, zip it with the folder.
A price (--price, or ${_config.PRICE_ENV}) shows what the jobs cost; the API does not say.
"""


def add(commands: Commands, shared: SharedOptions) -> None:
    """Add the ``review`` command."""
    summary = "Write DIR/index.html: a contact sheet of the batch in DIR, one card per job."
    review = shared.command(commands, "review", summary, _EXAMPLES, shared.price)
    review.add_argument("dir", metavar="DIR", help="the --out folder of a batch")
    review.add_argument(
        "--jobs",
        metavar="JOBS.jsonl",
        help="the batch's jobs file, for the references (default: the one DIR's last batch "
        f"ran, else DIR/{GRID_JOBS})",
    )
    review.set_defaults(run=run)


def run(args: argparse.Namespace, console: Console) -> int:
    """Run ``review``: write the contact sheet and print its path."""
    out_dir = Path(args.dir)
    if not out_dir.is_dir():
        raise UsageError(f"{out_dir}: not a folder")
    jobs_file = Path(args.jobs) if args.jobs else None
    manifest = out_dir / MANIFEST_NAME
    if jobs_file is None and not manifest.is_file() and last_jobs_file(out_dir) is None:
        raise UsageError(
            f"{out_dir} holds no {manifest.name}: run "
            f"'{PROG} batch JOBS.jsonl --out {out_dir}' first, or pass --jobs"
        )
    print(contact_sheet(out_dir, jobs_file=jobs_file, price=args.price))
    return EXIT_OK


def refresh_sheet(
    args: argparse.Namespace,
    out_dir: Path,
    jobs_file: Path,
    console: Console,
    cards: Sequence[Card] | None = None,
) -> None:
    """At the end of a run: rewrite ``DIR/index.html`` (of ``cards``, else of the ledger) unless
    ``--no-review``, and print its path. A sheet that cannot be written is a warning: the run
    itself is over, and its images are saved."""
    remember_jobs_file(out_dir, jobs_file)  # for a later 'review DIR' without --jobs
    if args.no_review:
        return
    price = getattr(args, "price", None)  # a command without --price: $REVE_REMIX_PRICE
    try:
        path = contact_sheet(out_dir, cards, jobs_file=jobs_file, price=price)
    except (OSError, ValidationError) as exc:
        console.say(f"{PROG}: warning: the contact sheet was not written: {exc}")
        return
    except Exception as exc:  # a bug in the sheet must not turn a finished run into a failure
        if console.debug:
            console.say("".join(traceback.format_exception(exc)).rstrip())
        console.say(
            f"{PROG}: warning: the contact sheet was not written: unexpected "
            f"{type(exc).__name__}: {exc} ({DEBUG_HINT})"
        )
        return
    print(f"review: {path}")
