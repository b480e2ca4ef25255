"""SIGINT, SIGTERM and SIGHUP: one meaning for all three, "stop, but keep what was paid".

A ``kill`` (SIGTERM, what service managers and ``timeout`` send) or a closed terminal (SIGHUP)
would otherwise end the process at once, and a request in flight, perhaps already generated and
billed, with it. So for the length of a paid command:

- :func:`finishing` (``batch``): the first signal starts no further job and lets the running
  ones answer and save what was paid; the command then exits ``128 + signal`` (130, 143, 129).
  A second signal quits at once, after listing what it leaves held.
- :func:`raising` (``remix``, one request): SIGTERM and SIGHUP raise :class:`Interrupted`, a
  ``KeyboardInterrupt``, as Ctrl-C does: the runner records the request as it stands, and the
  command says what was paid and how to get it.

A signal the process was started with ignored stays ignored: ``nohup`` ignores SIGHUP so that a
command outlives its terminal, and a shell ignores SIGINT for a job it runs in the background.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def exit_code(signum: int) -> int:
    """The shell's code for a process ended by ``signum``: 130, 143, 129."""
    return 128 + signum


def name(signum: int) -> str:
    """``SIGTERM`` for 15."""
    return signal.Signals(signum).name


class Interrupted(KeyboardInterrupt):
    """A SIGTERM or SIGHUP, raised as Ctrl-C is, so that one path handles all three."""

    def __init__(self, signum: int) -> None:
        super().__init__(name(signum))
        self.signum = signum


@contextlib.contextmanager
def finishing(on_first: Callable[[int], None], on_second: Callable[[int], None]) -> Iterator[None]:
    """Call ``on_first(signum)`` on the first of the signals, ``on_second`` on any later one.

    ``on_second`` is expected to exit. Outside the main thread (where signals cannot be
    handled) this does nothing.
    """
    received: list[int] = []

    def handle(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        (on_first if len(received) == 1 else on_second)(signum)

    with _handlers(handle):
        yield


@contextlib.contextmanager
def raising() -> Iterator[None]:
    """SIGTERM and SIGHUP raise :class:`Interrupted` while in use; SIGINT stays Ctrl-C."""

    def handle(signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Interrupted(signum)

    with _handlers(handle):
        yield


@contextlib.contextmanager
def _handlers(handle: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {
        signum: signal.signal(signum, handle)
        for signum in SIGNALS
        if signal.getsignal(signum) != signal.SIG_IGN
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
