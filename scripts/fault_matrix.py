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

from tests.fault_matrix import MAX_RETRIES, ROWS, run


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
    for mismatch in mismatches:
        print(f"UNEXPECTED: {mismatch}", file=sys.stderr)
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
