"""Print the fault matrix as a Markdown table: each fault, the outcome and the requests it cost.

Runs every row of ``tests/fault_matrix.py`` (the same rows ``tests/test_fault_matrix.py``
asserts) against the mock server over loopback, and exits 1 if any row's outcome differs from
the one it expects.

Usage::

    python scripts/fault_matrix.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for the tests package

from reve_remix._download import DOWNLOAD_MAX_RETRIES
from tests.fault_matrix import DOWNLOAD_ROWS, MAX_RETRIES, ROWS, run, run_download


def main() -> int:
    started = time.monotonic()
    print("| Fault | Policy | Outcome | Requests seen | Elapsed |")
    print("| --- | --- | --- | --- | --- |")
    mismatches = []
    for row in ROWS:
        outcome = run(row)
        mark = "" if outcome.matches else " (UNEXPECTED)"
        print(
            f"| {row.fault} | {row.policy} | {outcome.name}{mark} | {outcome.requests} "
            f"| {outcome.elapsed * 1000:.0f} ms |"
        )
        if not outcome.matches:
            mismatches.append(f"{row.id}: {outcome.mismatch}")
    print(
        f"\n{len(ROWS)} rows, max_retries={MAX_RETRIES} unless stated, backoff shortened to "
        f"milliseconds, {time.monotonic() - started:.1f} s in all."
    )
    started = time.monotonic()
    print("\nDownloads of a paid image (one POST each; the GETs are free and retried):\n")
    print("| Download fault | Outcome | Requests seen | Elapsed |")
    print("| --- | --- | --- | --- |")
    for download in DOWNLOAD_ROWS:
        seen = run_download(download)
        mark = "" if seen.matches else " (UNEXPECTED)"
        print(
            f"| {download.fault} | {seen.name}{mark} | {seen.posts} POST, {seen.gets} GET "
            f"| {seen.elapsed * 1000:.0f} ms |"
        )
        if not seen.matches:
            mismatches.append(f"{download.id}: {seen.mismatch}")
    print(
        f"\n{len(DOWNLOAD_ROWS)} download rows, up to {DOWNLOAD_MAX_RETRIES} retries, backoff "
        f"shortened to milliseconds, {time.monotonic() - started:.1f} s in all."
    )
    for mismatch in mismatches:
        print(f"UNEXPECTED: {mismatch}", file=sys.stderr)
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
