"""Make docs/img/review-sheet.png and docs/img/review-grid.png from real runs, offline.

The sheet: the batch of ``tests/review_batch.py`` (a job in every status, run through
``reve-remix batch`` against the offline mock API), its contact sheet rendered in headless
Chromium (``tests/browser.py``; ``apt-get install chromium``). The grid: ``reve-remix grid`` over
two axes against the mock, its ``grid.png`` as written. The mock's images are gradients, one per
request: the pictures are placeholders, everything around them is what a user sees.

Usage::

    python scripts/review_screenshots.py  # writes docs/img/review-sheet.png, review-grid.png
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for the tests package

from reve_remix._cli import main as reve_remix  # noqa: E402
from reve_remix.review import contact_sheet  # noqa: E402
from reve_remix.testing import MockServer  # noqa: E402
from tests.browser import Browser  # noqa: E402
from tests.review_batch import make_batch  # noqa: E402

IMAGES = ROOT / "docs" / "img"
SHEET_WIDTH = 1280  # three cards a row: the ten jobs in four rows


def sheet(work: Path) -> Path:
    make_batch(work)
    page = contact_sheet(work / "out", jobs_file=work / "jobs.jsonl", price=0.04)
    target = IMAGES / "review-sheet.png"
    with Browser() as browser:
        browser.open(page.as_uri(), width=SHEET_WIDTH)
        browser.images_loaded()  # the page's height, every image loaded
        browser.screenshot(target)
    return target


def grid(work: Path) -> Path:
    cat = work / "cat.png"
    cat.write_bytes((resources.files("reve_remix") / "_samples" / "cat.png").read_bytes())
    with MockServer() as server:
        os.environ.setdefault("ONEROUTER_API_KEY", "sk-placeholder-for-the-mock")
        code = reve_remix(
            [
                "grid",
                "{cat} painted in {style}",
                "-i",
                f"cat={cat}",
                "--axis",
                "style=ink,oil,pencil sketch",
                "--axis",
                "aspect_ratio=1:1,16:9",
                "--out",
                str(work / "grid"),
                "--base-url",
                server.base_url,
            ]
        )
    if code != 0:
        raise SystemExit(f"reve-remix grid exited {code}")
    target = IMAGES / "review-grid.png"
    shutil.copyfile(work / "grid" / "grid.png", target)
    return target


def main() -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        for make in (sheet, grid):
            folder = Path(work) / make.__name__
            folder.mkdir()
            print(make(folder))


if __name__ == "__main__":
    main()
