"""``reve-remix batch --dry-run``: every check a real run makes before sending, then its plan.

The same checks as a real run, in the same code: the output folder, the jobs file, every image
read and checked, tags, output names, the manifest, then ``plan_batch``. What differs is that
nothing is written and nothing is sent, and the lock is never taken, not even for a moment: a
batch running on the folder goes on undisturbed, and one starting meanwhile does not find the
lock held by a dry run. The manifest is read as it stands (``read_history``: a line being
written is left out), and the lock's holder is named from its lock file (``lock_holder``): if a
run holds the folder, a real run now would stop, and the dry run says so.

The exit code is the one a real run would end with if every request succeeded: 0 when every job
would be done, 1 when some would not (held, in conflict, invalid, left pending by a cap, or the
run could not start now: no key, the folder in use), 2 for a usage error or, with ``--strict``,
an invalid line.
"""

from __future__ import annotations

import argparse
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from .. import _config
from .._batch_plan import BatchPlan, Defaults, Planned, plan_batch
from .._exceptions import ReveRemixError
from .._jobs_file import JobLine, LineProblem
from .._manifest import lock_holder, read_history
from .._money import usd
from .._pool import tls_context
from .._runner import Action, Policy
from ._batch_report import announce
from ._console import EXIT_API_ERROR, EXIT_OK, EXIT_USAGE, PROG, Console
from ._options import budget, caps


def dry_run(
    args: argparse.Namespace,
    console: Console,
    lines: list[JobLine],
    problems: list[LineProblem],
    policy: Policy,
    defaults: Defaults,
) -> int:
    """Plan the batch against its manifest without sending, writing or locking; print it."""
    out_dir = Path(args.out)
    spending = budget(args)  # the caps and price are checked as a real run checks them
    records, unreadable = read_history(out_dir)
    for cut in unreadable:
        console.say(f"{PROG}: warning: {out_dir / 'manifest.jsonl'}: line {cut} is unreadable")
    latest = {record.id: record for record in records}
    plan = plan_batch(lines, latest, out_dir, defaults, policy, problems)
    clean = announce(plan, args.jobs, console)
    blocked = _blocked(out_dir)
    send = len(plan.having(Action.SEND))
    limit = spending.limit
    capped = {planned.line.number for planned in plan.capped(limit)}
    generations = send - len(capped)
    price = spending.price
    summary: dict[str, Any] = {
        "dry_run": True,
        "send": send,
        "fetch": len(plan.having(Action.FETCH)),
        "place": len(plan.having(Action.PLACE)),
        "done": len(plan.having(Action.SKIP)),
        "held": len(plan.having(Action.HOLD)),
        "conflicts": len(plan.having(Action.CONFLICT)),
        "invalid": len(plan.problems),
        "generations": generations,
        "limit": limit,
        "left_pending": send - generations,
        "blocked": blocked,
    }
    if price is not None:
        summary["price"] = float(price)
        summary["cost"] = float(generations * price)
    if args.json:
        summary["jobs"] = [_job(planned, planned.line.number in capped) for planned in plan.jobs]
        summary["problems"] = [{"line": p.number, "problem": p.message} for p in plan.problems]
        print(json.dumps(summary))
    else:
        for reason in blocked:
            console.say(f"{PROG}: a real run now would not start: {reason}")
        print(_text(plan, capped, summary, price, caps(args)))
    if args.strict and not clean:
        console.say(
            f"{PROG}: --strict: {len(plan.problems)} invalid line(s); nothing would be sent"
        )
        return EXIT_USAGE
    incomplete = blocked or plan.problems or summary["left_pending"]
    held = plan.having(Action.HOLD, Action.CONFLICT)
    return EXIT_API_ERROR if incomplete or held else EXIT_OK


def _blocked(out_dir: Path) -> list[str]:
    """What would stop a real run from starting now: no key, no certificates, the folder in use."""
    reasons = []
    try:
        if _config.api_key(None) is None:
            reasons.append(str(_config.missing_api_key()))
        tls_context()
    except ReveRemixError as exc:
        reasons.append(str(exc))
    holder = lock_holder(out_dir)
    if holder is not None:
        reasons.append(f"{out_dir} is in use by {holder} (--wait would wait for it)")
    return reasons


def _job(planned: Planned, capped: bool) -> dict[str, Any]:
    """One job of the JSON plan: ``capped`` when the cap leaves it pending, ``copies`` the lines
    its image is also saved for."""
    job: dict[str, Any] = {
        "id": planned.line.id,
        "line": planned.line.number,
        "action": planned.action.value,
    }
    if capped:
        job["capped"] = True
    if planned.copies:
        job["copies"] = [copy.number for copy in planned.copies]
    return job


def _text(
    plan: BatchPlan,
    capped: set[int],
    summary: dict[str, Any],
    price: Decimal | None,
    cap: str,
) -> str:
    """One line per job that a run would touch (those the cap leaves pending said so), then what
    it would cost."""
    rows = []
    for planned in plan.jobs:
        line = planned.line
        also = "".join(f", also line {copy.number}" for copy in planned.copies)
        if line.number in capped:
            rows.append(
                f"{'pending':<8} {line.id} (line {line.number}{also}): left pending by {cap}"
            )
        else:
            rows.append(f"{planned.action.value:<8} {line.id} (line {line.number}{also})")
    send, generations = summary["send"], summary["generations"]
    sending = f"{generations} of {send}" if generations < send else f"{send}"
    cost = f", {usd(generations * price)} at {usd(price)} each" if price is not None else ""
    parts = [
        f"dry run, nothing sent: would send {sending} job(s) ({generations} generation(s){cost})"
    ]
    if generations < send:
        parts.append(f"{send - generations} left pending by {cap}")
    parts.append(f"download {summary['fetch']} paid earlier")
    parts.append(f"copy {summary['place']}")
    parts.append(f"{summary['done']} done already")
    for key, words in (("held", "held"), ("conflicts", "in conflict"), ("invalid", "invalid")):
        if summary[key]:
            parts.append(f"{summary[key]} {words}")
    return "\n".join([*rows, ", ".join(parts)])
