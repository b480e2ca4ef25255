"""The fault matrix over loopback HTTP: one test per row of ``tests/fault_matrix.py``.

Each row asserts the exception class (or success) and the exact number of requests the mock
server saw, on the sync and the async client alike; ``python scripts/fault_matrix.py`` prints the
same rows as a table.
"""

from __future__ import annotations

import pytest

from .conftest import CLIENT_KINDS
from .fault_matrix import DOWNLOAD_ROWS, ROWS, DownloadRow, Row, run, run_download


@pytest.mark.parametrize("kind", CLIENT_KINDS)
@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_fault_matrix_row(row: Row, kind: str):
    outcome = run(row, kind)
    assert outcome.mismatch is None


def test_the_matrix_covers_every_status_the_issue_names():
    statuses = {fault.status for row in ROWS for fault in row.faults}
    assert statuses >= {400, 401, 402, 403, 404, 408, 413, 422, 429, 500, 502, 503, 504}


@pytest.mark.parametrize("kind", CLIENT_KINDS)
@pytest.mark.parametrize("row", DOWNLOAD_ROWS, ids=[row.id for row in DOWNLOAD_ROWS])
def test_download_fault_matrix_row(row: DownloadRow, kind: str):
    outcome = run_download(row, kind)
    assert outcome.mismatch is None
