"""The ``reve-remix`` command: ``remix``, ``batch``, ``spend``, ``fetch``, ``info``, ``demo``,
``mock``.

Exit codes: 0 success, 1 an API or network error (or, for ``batch``, any job not done), 2 a usage
or validation error (nothing was sent), 130 interrupted (143 SIGTERM, 129 SIGHUP). Errors are one
line on stderr with a hint; ``--debug`` adds the traceback and the library's debug log. The API
key is read from the environment only (never from an option, which ``ps`` would show) and never
printed.

One module per command; each has ``add(commands, shared)``, which adds its parser and sets
``run``. To add a command, write its module and list its ``add`` in :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TextIO

from .._spec import spec
from .._version import __version__
from . import _batch, _demo, _fetch, _info, _remix, _signals, _spend
from ._console import EXIT_INTERRUPTED, EXIT_USAGE, PROG, Console
from ._options import CommandParser, Commands, SharedOptions

COMMANDS: tuple[Callable[[Commands, SharedOptions], None], ...] = (
    _remix.add,
    _batch.add,
    _spend.add,
    _fetch.add,
    _info.add,
    _demo.add_demo,
    _demo.add_mock,
)
"""Every command, in the order ``--help`` lists them."""

__all__ = ["COMMANDS", "Console", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``reve-remix`` command with ``argv`` (default: ``sys.argv[1:]``); the exit code.

    Example::

        main(["remix", "<img>0</img> as a watercolour", "-i", "cat.png"])  # 0 on success
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error argparse has reported
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if not hasattr(args, "run"):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    console = Console(sys.stderr, debug=args.debug)
    with console.library_logs(), _file_names_printable(sys.stdout):
        try:
            code: int = args.run(args, console)
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP raised as one
            console.say(f"{PROG}: interrupted")
            if isinstance(exc, _signals.Interrupted):
                return _signals.exit_code(exc.signum)
            return EXIT_INTERRUPTED
        except Exception as exc:  # the command line reports every error itself
            return console.fail(exc, getattr(args, "images", None))
        return code


def _parser() -> argparse.ArgumentParser:
    """The ``reve-remix`` parser: one sub-parser per command, each added by its module."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=f"Remix images with the Reve Remix API ({spec().method} {spec().path}).",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(
        title="commands", metavar="COMMAND", parser_class=CommandParser
    )
    shared = SharedOptions()
    for add in COMMANDS:
        add(commands, shared)
    return parser


_EXAMPLES = """\
Examples:
  reve-remix demo                     # offline: no key, no network, writes reve-remix-demo.png
  reve-remix remix "Put {cat} on {sofa}" -i cat=cat.jpg -i sofa=sofa.png
  reve-remix batch jobs.jsonl --out results/

The API key is read from ONEROUTER_API_KEY. Run 'reve-remix COMMAND --help' for details.
Exit codes: 0 success, 1 API or network error, 2 usage or validation error, 130 interrupted
(143 on SIGTERM, 129 on SIGHUP).
"""


@contextlib.contextmanager
def _file_names_printable(stream: TextIO) -> Iterator[None]:
    """Print file names on ``stream`` as the bytes they are.

    A name that is not UTF-8 (``-o $'\\xff.png'``) reaches Python with a surrogate in it
    (PEP 383), which a strict UTF-8 stdout refuses: after the paid image was saved, printing its
    path would fail. ``surrogateescape`` writes the original bytes back, as the shell gave them.
    """
    reconfigure = getattr(stream, "reconfigure", None)
    errors = getattr(stream, "errors", None)
    if reconfigure is None or errors is None:
        yield
        return
    reconfigure(errors="surrogateescape")
    try:
        yield
    finally:
        reconfigure(errors=errors)
