"""``reve-remix batch``: run every job of a JSONL file, resumable, never paying twice.

The batch layer decides (``_batch_plan.plan_batch``: an action per job, and the problems) and
runs (``_batch_run.BatchRun``: each job through the one runner, the manifest as its ledger);
this module checks the command line, takes the folder's lock, renders, and turns SIGINT, SIGTERM
and SIGHUP into "finish what is running, then exit".
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from .._batch_plan import BatchPlan, Defaults, plan_batch
from .._batch_run import BatchRun
from .._client import DEFAULT_MODEL
from .._jobs_file import JobLine, LineProblem, read_jobs, remove_stale_parts, unwritable
from .._lifecycle import GENERATED_NOT_SAVED, MAY_HAVE_BEEN_GENERATED, JobState
from .._manifest import Holder, LockHeld, Manifest
from .._runner import Action, Policy
from .._sheet import SHEET_NAME
from . import _signals
from ._batch_dry_run import dry_run
from ._batch_report import Report, announce
from ._console import ACCOUNT_HINTS, EXIT_API_ERROR, EXIT_OK, EXIT_USAGE, PROG, Console, UsageError
from ._options import (
    NO_METADATA_HELP,
    Commands,
    SharedOptions,
    caps,
    client,
    folder,
    number,
    request_fields,
)
from ._review import refresh_sheet

MAX_CONCURRENCY = 256
"""The most jobs in flight: past this, requests only queue behind the API's rate limit, and
each holds a thread and a connection."""


def add(commands: Commands, shared: SharedOptions) -> None:
    """Add the ``batch`` command."""
    summary = "Run every job of a JSONL file; resumable, never paying twice."
    batch = shared.command(
        commands, "batch", summary, _EXAMPLES, shared.generation, shared.connection,
        shared.spending,
    )  # fmt: skip
    batch.add_argument("jobs", metavar="JOBS.jsonl", help="one JSON job per line")
    add_run_options(batch)
    batch.add_argument(
        "--strict", action="store_true", help="stop before sending anything if any line is invalid"
    )
    batch.set_defaults(run=run)


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--out``, ``--concurrency``, how a run treats what the manifest knows, ``--dry-run``
    and ``--no-review``: the options of every command whose jobs run as a batch (``batch``,
    ``grid``)."""
    parser.add_argument(
        "--out", required=True, type=folder, metavar="DIR", help="folder for images and manifest"
    )
    parser.add_argument(
        "--concurrency",
        type=number(int, 1, MAX_CONCURRENCY),
        metavar="N",
        default=4,
        help=f"jobs in flight at once (default: 4, at most {MAX_CONCURRENCY}; OneRouter's "
        "community tier allows 30 at once and 600 requests a minute per key)",
    )
    flags = {
        "--force": "overwrite files in DIR that no finished job wrote",
        "--wait": "wait for another run on the same DIR to end, rather than stop",
        "--resend-ambiguous": "send again the jobs whose last run may have been billed without "
        "an answer",
        "--regenerate-paid": "generate again (pay again) paid jobs whose image cannot be "
        "downloaded",
        "--resend-flagged": "send again the jobs refused by content policy",
        "--replace-changed": "send a job whose id the manifest knows with another request, "
        "replacing it (billed)",
        "--no-metadata": NO_METADATA_HELP,
        "--no-review": f"do not write the contact sheet DIR/{SHEET_NAME} at the end",
        "--dry-run": "send nothing, write nothing, take no lock: check every job as a run does "
        "and print what it would do and cost",
        "--json": "with --dry-run: print one JSON object",
    }
    for flag, text in flags.items():
        parser.add_argument(flag, action="store_true", help=text)


_EXAMPLES = """\
Examples:
  reve-remix batch jobs.jsonl --out results/ --concurrency 8
  reve-remix batch jobs.jsonl --out results/ --dry-run --price 0.04   # sends nothing
  reve-remix batch jobs.jsonl --out results/ --max-cost 5 --price 0.04

jobs.jsonl holds one job per line; image paths are relative to the file's folder:
  {"prompt": "<img>0</img> as a watercolour", "images": ["cat.jpg"], "id": "cat"}
  {"prompt": "Put {cat} on {sofa}", "images": {"cat": "cat.jpg", "sofa": "sofa.png"}}
  {"prompt": "<img>0</img> at dusk", "images": ["city.jpg"], "aspect_ratio": "16:9"}

Each job is recorded in DIR/manifest.jsonl when sent, when paid (a 2xx, before the download)
and when saved. Run the same command again after a failure, a crash or Ctrl-C: done jobs are
skipped, paid ones downloaded again (never generated again), unsent or failed ones sent. Jobs
that may have been billed without an answer are held: --resend-ambiguous sends them. One run
at a time per DIR. Ctrl-C, SIGTERM and SIGHUP finish the running jobs first.
--max-generations N and --max-cost USD cap what this run may spend: when the cap is reached no
further job is sent, the rest stays pending for the next run. 'reve-remix spend DIR' reads back
what the manifest says was spent. At the end of every run DIR/index.html shows every job on
one page ('reve-remix review'); --no-review leaves it as it was.
Exit code 0 when every job is done, 1 when some are not or some lines are invalid.
"""


def run(args: argparse.Namespace, console: Console) -> int:
    """Run ``batch``: the summary on stdout; 0 only when every job is done."""
    check_out(args)
    lines, problems = read_jobs(Path(args.jobs))
    if args.dry_run:
        return plan_only(args, console, lines, problems)
    return run_lines(args, console, lines, problems)


def check_out(args: argparse.Namespace) -> None:
    """Refuse an ``--out`` no run could write in, and ``--json`` without ``--dry-run``."""
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir}: not a folder")
    blocked = unwritable(out_dir)
    if blocked:
        raise UsageError(f"--out {out_dir}: {blocked}; nothing was sent")
    if args.json and not args.dry_run:
        raise UsageError("--json goes with --dry-run (a run prints its summary line)")


def run_lines(
    args: argparse.Namespace,
    console: Console,
    lines: list[JobLine],
    problems: list[LineProblem],
    *,
    locked: Callable[[], object] = lambda: None,
) -> int:
    """Run the jobs of ``lines`` as ``batch`` runs ``args.jobs``; the exit code.

    ``locked`` is called once the folder's lock is held, before anything else is written or
    sent (``grid`` writes its jobs file there: a run refused by the lock writes nothing); an
    ``OSError`` from it stops the run with nothing sent.
    """
    out_dir = Path(args.out)
    policy = policy_of(args)
    report = Report(console, out_dir)
    with client(args, console) as remixer, Manifest(out_dir) as manifest:
        batch = BatchRun(remixer, manifest, policy, concurrency=args.concurrency,
                         on_settled=report.settled)  # fmt: skip
        signalled: list[int] = []
        running = False

        def first(signum: int) -> None:
            signalled.append(signum)
            if not running:  # nothing in flight (waiting for the lock, planning): stop now
                raise _signals.Interrupted(signum)
            batch.stop(_signals.name(signum))
            console.say(
                f"{PROG}: {_signals.name(signum)}: starting no more jobs; finishing "
                f"{len(batch.running())} running job(s) so that what was paid is saved "
                "(a second signal quits now: they would be held as possibly billed)"
            )

        # From the lock to the summary: a signal never cuts a paid request short.
        with _signals.finishing(first, lambda signum: _quit_now(batch, signum)):
            plan = _plan(args, console, manifest, lines, problems, policy, remixer.model, locked)
            if isinstance(plan, int):
                return plan
            remove_stale_parts(out_dir)
            jobs = plan.to_run
            report.total = len(jobs)
            running = True
            with console.quiet(), console.status(report.render):
                batch.run(jobs)
    if batch.account_status is not None:
        console.say(
            f"{PROG}: stopped: {ACCOUNT_HINTS[batch.account_status]}; every other job would "
            "fail the same way, so those not started yet are left pending"
        )
    if batch.unsaveable is not None:
        console.say(
            f"{PROG}: stopped: images cannot be saved ({batch.unsaveable}); every later job "
            f"would be paid for and not saved, so {batch.not_started} job(s) not started are left "
            f"pending; the {report.ended[JobState.PAID]} paid image(s) not saved are kept (each "
            "one's URL or spooled bytes are in the manifest): fix that, then run the same "
            "command again to save them without generating them again"
        )
    if batch.budget_reached:
        console.say(
            f"{PROG}: budget reached ({caps(args)}): {remixer.budget.spent} generation(s) may "
            f"have been billed in this run; {batch.capped} job(s) left pending, not sent: run "
            "again to send them"
        )
    held = plan.having(Action.HOLD)
    flagged = [p for p in held if p.previous and p.previous.status is JobState.FLAGGED]
    print(
        report.summary(
            before=len(plan.having(Action.SKIP)),
            held=len(held),
            flagged=len(flagged),
            conflicts=len(plan.having(Action.CONFLICT)),
            invalid=len(plan.problems),
            not_started=batch.not_started,
            capped=batch.capped,
            stopped="interrupted" if signalled else batch.stopped,
            manifest=manifest.path,
        )
    )
    refresh_sheet(args, out_dir, Path(args.jobs), console)
    if signalled:
        return _signals.exit_code(signalled[0])
    complete = report.done == len(jobs) and not plan.having(Action.HOLD, Action.CONFLICT)
    complete = complete and not plan.problems
    return EXIT_OK if complete else EXIT_API_ERROR


def _plan(
    args: argparse.Namespace,
    console: Console,
    manifest: Manifest,
    lines: list[JobLine],
    problems: list[LineProblem],
    policy: Policy,
    model: str,
    locked: Callable[[], object],
) -> BatchPlan | int:
    """Lock the folder, call ``locked``, read the manifest and plan; an exit code if nothing
    may be sent."""
    try:  # before anything is sent; this also cuts off a record a crash left half-written
        unreadable = manifest.open(wait=args.wait, on_wait=lambda who: _waiting(console, who))
    except LockHeld as exc:
        console.say(f"{PROG}: error: {exc}")
        return EXIT_API_ERROR
    except OSError as exc:
        raise UsageError(
            f"cannot write the manifest {manifest.path}: {exc.strerror or exc}; nothing was sent"
        ) from exc
    try:
        locked()
    except OSError as exc:
        raise UsageError(
            f"cannot write in {manifest.out_dir}: {exc.strerror or exc}; nothing was sent"
        ) from exc
    if manifest.took_over:
        console.say(
            f"{PROG}: took over {manifest.out_dir} from {manifest.took_over}, which ended "
            "without letting go of it"
        )
    for cut in unreadable:
        console.say(f"{PROG}: warning: {manifest.path}: line {cut} is cut short; ignored")
    defaults = defaults_of(args, model)
    plan = plan_batch(lines, manifest.records, manifest.out_dir, defaults, policy, problems)
    if not announce(plan, args.jobs, console) and args.strict:
        console.say(f"{PROG}: --strict: {len(plan.problems)} invalid line(s); nothing was sent")
        return EXIT_USAGE
    return plan


def plan_only(
    args: argparse.Namespace, console: Console, lines: list[JobLine], problems: list[LineProblem]
) -> int:
    """``--dry-run``: plan ``lines`` as a run given ``args`` would, and print it; the exit code."""
    model = args.model or DEFAULT_MODEL  # the client's model, as client() makes it
    return dry_run(args, console, lines, problems, policy_of(args), defaults_of(args, model))


def policy_of(args: argparse.Namespace) -> Policy:
    """What a run given ``args`` sends again of the jobs the manifest knows."""
    return Policy(
        resend_ambiguous=args.resend_ambiguous,
        regenerate_paid=args.regenerate_paid,
        resend_flagged=args.resend_flagged,
        replace_changed=args.replace_changed,
    )


def defaults_of(args: argparse.Namespace, model: str) -> Defaults:
    """What a run given ``args`` gives the lines that leave a field out; ``model`` the client's."""
    return Defaults(
        model=model,
        aspect_ratio=args.aspect_ratio,
        output_format=args.output_format,
        line_model=args.model,
        fields=request_fields(args),
        fit=args.fit,
        force=args.force,
        metadata=not args.no_metadata,
    )


def _waiting(console: Console, holder: Holder | None) -> None:
    who = str(holder) if holder else "another process"
    console.say(f"{PROG}: waiting for {who}, which is running a batch on the same folder")


def _quit_now(batch: BatchRun, signum: int) -> None:
    """A second signal: quit at once, listing what the jobs in flight leave behind."""
    lines = [f"{PROG}: {_signals.name(signum)} again: quitting now"]
    for record in batch.running():
        if record.status is JobState.PAID:
            lines.append(f"{PROG}: {record.id}: {GENERATED_NOT_SAVED} ({record.where}): the next "
                         "run saves it")  # fmt: skip
        else:
            lines.append(f"{PROG}: {record.id}: {MAY_HAVE_BEEN_GENERATED} ({record.where}): held; "
                         "--resend-ambiguous sends it again")  # fmt: skip
    sys.stderr.write("\n".join(lines) + "\n")
    sys.stderr.flush()
    os._exit(_signals.exit_code(signum))
