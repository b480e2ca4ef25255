"""What the command line shows on stderr while it works: a live line on a terminal, else plain text.

On a terminal, :class:`StatusLine` redraws one line in place (a spinner and the elapsed time for
``remix``, a progress bar for ``batch``) and :class:`RetryNotices` adds the wait of a retry to it
("rate limited, retrying in 4 s"), told by the client's ``on_retry`` hook. When
stderr is not a terminal nothing is drawn: retries and other messages are plain lines.
"""

from __future__ import annotations

import math
import shutil
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from ._retry import RetryEvent

_REDRAW_INTERVAL = 0.1  # seconds
_SPINNER = "|/-\\"
_CLEAR_LINE = "\r\x1b[2K"
_BAR_WIDTH = 24


class RetryNotices:
    """The latest retry wait a client announced through its ``on_retry`` hook, counting down.

    Example::

        notices = RetryNotices()
        client = ReveRemix(on_retry=notices)
        ...
        notices.describe()  # 'rate limited, retrying in 4 s' while the wait lasts, else None
    """

    def __init__(self) -> None:
        self._reason = ""
        self._until = 0.0

    def __call__(self, event: RetryEvent) -> None:
        """Remember the wait ``event`` announces."""
        self._reason = "rate limited" if event.rate_limited else event.reason
        self._until = time.monotonic() + event.delay

    def describe(self) -> str | None:
        """``"<reason>, retrying in N s"`` while a retry wait lasts, else ``None``."""
        left = self._until - time.monotonic()
        if left <= 0:
            return None
        return f"{self._reason}, retrying in {math.ceil(left)} s"


class StatusLine:
    """One line on a terminal, redrawn in place from a background thread while in use.

    ``render(elapsed_seconds)`` gives the line's text. On anything but a terminal nothing is
    drawn; :meth:`message` then just prints its text on a line of its own.

    Example::

        with StatusLine(sys.stderr, lambda elapsed: f"working… {elapsed:.0f} s") as status:
            do_work()
            status.message("halfway there")
    """

    def __init__(self, stream: TextIO, render: Callable[[float], str]) -> None:
        self._stream = stream
        self._render = render
        self.live = is_terminal(stream)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = time.monotonic()

    def __enter__(self) -> StatusLine:
        self._started = time.monotonic()
        if self.live:
            self._thread = threading.Thread(target=self._run, name="reve-remix-status", daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
            with self._lock:
                self._write(_CLEAR_LINE)

    def message(self, text: str) -> None:
        """Print ``text`` on a line of its own (above the live line on a terminal)."""
        with self._lock:
            self._write((_CLEAR_LINE if self.live else "") + text + "\n")
            if self.live:
                self._draw()

    def _run(self) -> None:
        while not self._stop.wait(_REDRAW_INTERVAL):
            with self._lock:
                self._draw()

    def _draw(self) -> None:
        width = shutil.get_terminal_size().columns - 1
        self._write(_CLEAR_LINE + self._render(time.monotonic() - self._started)[:width])

    def _write(self, text: str) -> None:
        self._stream.write(text)
        self._stream.flush()


def spinner_line(elapsed: float, action: str, retry: str | None) -> str:
    """The live line of a single request: ``"| remixing… 3.2 s · rate limited, retrying in 4 s"``.

    Example::

        spinner_line(3.0, "remixing", None)  # '- remixing… 3.0 s'
    """
    frame = _SPINNER[int(elapsed / _REDRAW_INTERVAL) % len(_SPINNER)]
    line = f"{frame} {action}… {elapsed:.1f} s"
    return f"{line} · {retry}" if retry else line


def bar_line(done: int, failed: int, total: int, elapsed: float, retry: str | None) -> str:
    """The live line of a batch: bar, counts, rate and estimated time left.

    Example::

        bar_line(12, 2, 50, 10.0, None)
        # '[######------------------] 14/50 · 2 failed · 1.4/s · ETA 26 s'
    """
    finished = done + failed
    filled = _BAR_WIDTH * finished // total if total else _BAR_WIDTH
    parts = [f"[{'#' * filled}{'-' * (_BAR_WIDTH - filled)}] {finished}/{total}"]
    if failed:
        parts.append(f"{failed} failed")
    if finished and elapsed > 0:
        rate = finished / elapsed
        parts.append(f"{rate:.1f}/s")
        parts.append(f"ETA {format_duration((total - finished) / rate)}")
    if retry:
        parts.append(retry)
    return " · ".join(parts)


def format_duration(seconds: float) -> str:
    """``"42 s"``, ``"3 min 05 s"`` or ``"2 h 10 min"``.

    Example::

        format_duration(185)  # '3 min 05 s'
    """
    whole = math.ceil(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal (``False`` for files, pipes and closed streams)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
