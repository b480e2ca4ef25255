"""What the engine crash tests share: unique rows, a killer thread, and the counts they print."""

from __future__ import annotations

import collections
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from reve_remix.testing import MockServer
from tests.conftest import IMAGE_URL


def unique_rows(count: int) -> list[dict[str, object]]:
    """Rows whose prompts are all different, so a duplicate generation is visible at the mock."""
    return [
        {"id": f"row-{i:04d}", "prompt": f"<img>0</img> variation {i}", "images": [IMAGE_URL]}
        for i in range(count)
    ]


def processes_named(marker: str) -> list[int]:
    """The pids whose command line contains ``marker`` (Ray titles actors ``ray::<class>``)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in cmdline and int(entry.name) != os.getpid():
            pids.append(int(entry.name))
    return sorted(pids)


class Killer(threading.Thread):
    """SIGKILLs one worker once the mock has received ``after`` POSTs, unless the run ends first.

    Not on a clock: an engine starting its workers on a busy machine may take a minute.
    """

    def __init__(self, server: MockServer, after: int, find: Callable[[], list[int]]) -> None:
        super().__init__(daemon=True)
        self.server, self.after, self.find = server, after, find
        self.killed: int | None = None
        self.posts_at_kill = 0
        self._ended = threading.Event()

    def finish(self) -> None:
        """The run has ended: stop watching (if nothing was killed, the test says so)."""
        self._ended.set()
        self.join()

    def run(self) -> None:
        while not self._ended.is_set():
            posts = sum(1 for r in self.server.requests if r.method == "POST")
            pids = self.find()
            if posts >= self.after and pids:
                os.kill(pids[0], signal.SIGKILL)
                self.killed, self.posts_at_kill = pids[0], posts
                return
            self._ended.wait(0.01)


def assert_paid_once(
    engine: str,
    server: MockServer,
    rows: list[dict[str, object]],
    out: list[Mapping[str, Any]],
    started: float,
    killer: Killer,
    in_flight: int,
) -> None:
    """Print the counts, then check the promise: a crash costs at most the rows in flight."""
    prompts = collections.Counter(r.json["prompt"] for r in server.requests if r.method == "POST")
    generations = sum(prompts.values())
    duplicates = sum(count - 1 for count in prompts.values())
    counts = collections.Counter(row["status"] for row in out)
    ambiguous = counts["ambiguous"]
    downloads = sum(1 for r in server.requests if r.method == "GET")  # > rows: paid, fetched again
    print(
        f"\n{engine}: rows={len(out)} generations={generations} duplicates={duplicates} "
        f"ambiguous={ambiguous} downloads={downloads} statuses={dict(counts)} "
        f"killed pid {killer.killed} after "
        f"{killer.posts_at_kill} POSTs wall={time.monotonic() - started:.1f}s"
    )
    assert killer.killed is not None, "nothing was killed: the test did not test anything"
    assert duplicates == 0
    assert sorted(row["id"] for row in out) == [row["id"] for row in rows]  # one outcome each
    assert ambiguous <= in_flight
    assert set(counts) <= {"done", "ambiguous"}
    assert len(rows) - ambiguous <= generations <= len(rows)  # an ambiguous row may not have left
