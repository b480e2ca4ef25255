"""``reve-remix spend DIR``: what a batch's manifest says was spent, attempt by attempt.

The counting is :mod:`reve_remix._spend` (pure, over the manifest's full history); this module
reads the manifest without taking its lock (a batch may be running on the folder) and renders.
"""

from __future__ import annotations

import argparse
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from .._jobs_file import MANIFEST_NAME
from .._manifest import read_history
from .._money import usd
from .._spend import Spent, spend
from ._console import EXIT_OK, PROG, Console, UsageError
from ._options import Commands, SharedOptions, folder, price


def add(commands: Commands, shared: SharedOptions) -> None:
    """Add the ``spend`` command."""
    summary = "Count what a batch's manifest says was spent: paid, ambiguous, flagged, failed."
    spent = shared.command(commands, "spend", summary, _EXAMPLES, shared.price)
    spent.add_argument("dir", metavar="DIR", type=folder, help="the --out folder of a batch")
    spent.add_argument("--json", action="store_true", help="print one JSON object")
    spent.add_argument(
        "--by", choices=["day"], help="also count per UTC day the requests were sent"
    )
    spent.set_defaults(run=run)


_EXAMPLES = """\
Examples:
  reve-remix spend results/
  reve-remix spend results/ --price 0.04 --by day
  reve-remix spend results/ --json

Every attempt the manifest records is counted, not only each job's latest state (a job sent
again, or regenerated with --regenerate-paid, paid more than once): paid (a 2xx), ambiguous
(may have been billed: no answer, a 500, a crash while the request was out), flagged (refused
by content policy; may have been billed) and failed (provably nothing made, not billed).
'billed' is paid + ambiguous + flagged; the cost is billed x the price. The API reports no cost:
this is the SDK's own count, made as it sent.
"""

_ROWS = (
    ("paid", "a 2xx: billed"),
    ("ambiguous", "may have been billed: no answer, a 500, or a crash while it was out"),
    ("flagged", "refused by content policy: may have been billed"),
    ("failed", "nothing made: not billed"),
)


def run(args: argparse.Namespace, console: Console) -> int:
    """Run ``spend``: the counts as rows, or one JSON object."""
    out_dir = Path(args.dir)
    if not (out_dir / MANIFEST_NAME).is_file():
        raise UsageError(f"{out_dir}: no {MANIFEST_NAME} here (not the --out folder of a batch?)")
    cost = price(args)
    records, unreadable = read_history(out_dir)
    for number in unreadable:
        console.say(f"{PROG}: warning: {out_dir / MANIFEST_NAME}: line {number} is unreadable")
    counted = spend(records)
    if args.json:
        result: dict[str, Any] = counted.total.to_dict(cost)
        result["price"] = None if cost is None else float(cost)
        if args.by:
            result["days"] = {day: spent.to_dict(cost) for day, spent in counted.days.items()}
        print(json.dumps(result))
        return EXIT_OK
    print(_rows(counted.total, cost))
    if args.by:
        for day, spent in counted.days.items():
            print(f"\n{day}\n{_rows(spent, cost)}")
    return EXIT_OK


def _rows(spent: Spent, cost: Decimal | None) -> str:
    lines = [f"{name + ':':<11}{getattr(spent, name):>6}  {words}" for name, words in _ROWS]
    lines.append(f"{'billed:':<11}{spent.billed:>6}  generation(s) that may have been billed")
    if cost is not None:
        lines.append(f"{'cost:':<11}{usd(spent.billed * cost):>10} at {usd(cost)} a generation "
                     f"({usd(spent.paid * cost)} for the paid ones)")  # fmt: skip
    return "\n".join(lines)
