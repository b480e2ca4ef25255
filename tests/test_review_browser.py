"""The contact sheet in a real browser: headless Chromium, the network refused, driven over the
DevTools protocol (``tests/browser.py``).

Skipped when Chromium is not installed (``apt-get install chromium``), unless
``REVE_REMIX_TEST_BROWSER=required`` (``.ci/run`` sets it after installing Chromium), when a
missing browser fails instead. ``pytest -m browser`` runs these alone.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from reve_remix._manifest import read_history
from reve_remix.review import STATUS_ORDER, cards_from_ledger, contact_sheet
from tests.browser import CHROMIUM, Browser
from tests.review_batch import LOCAL_REFERENCES, make_batch

pytestmark = pytest.mark.browser
REQUIRED = os.environ.get("REVE_REMIX_TEST_BROWSER") == "required"


@pytest.fixture(scope="module")
def sheet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A real batch's contact sheet, and each job's expected status."""
    folder = tmp_path_factory.mktemp("sheet")
    expected = make_batch(folder)
    contact_sheet(folder / "out", jobs_file=folder / "jobs.jsonl", price=0.04)
    return folder / "out" / "index.html", expected


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if CHROMIUM is None:
        message = "needs Chromium (apt-get install chromium); .ci/run installs it"
        if REQUIRED:
            pytest.fail(f"REVE_REMIX_TEST_BROWSER=required, but no Chromium: {message}")
        pytest.skip(message)
    with Browser() as running:
        yield running


@pytest.fixture
def page(browser: Browser, sheet: tuple[Path, dict[str, str]]) -> Browser:
    """The sheet freshly opened (so each test starts with the default filter and order)."""
    browser.open(sheet[0].as_uri())
    return browser


VISIBLE_CARDS = """[...document.querySelectorAll('article.card')]
    .filter(card => card.getClientRects().length)
    .map(card => ({id: card.dataset.id, status: card.dataset.status,
                   shown: card.querySelector('.status').textContent}))"""


def test_every_job_of_the_ledger_has_a_card_showing_its_status(
    page: Browser, sheet: tuple[Path, dict[str, str]]
) -> None:
    _, expected = sheet
    cards = page.evaluate(VISIBLE_CARDS)
    out = sheet[0].parent
    ledger = {record.id for record in read_history(out)[0]}
    assert set(ledger) <= {card["id"] for card in cards}  # every job of the ledger...
    assert [card["id"] for card in cards] == list(expected)  # ...and of the jobs file, by line
    assert {card["id"]: card["shown"] for card in cards} == expected
    # The same statuses as the ledger's own reading (the adapter), not only the fixture's word.
    assert {c.id: c.status for c in cards_from_ledger(out, out.parent / "jobs.jsonl")} == {
        card["id"]: card["status"] for card in cards
    }


def test_every_image_loads_and_nothing_comes_from_the_network(page: Browser) -> None:
    images = page.images_loaded()
    assert len(images) == 3 + LOCAL_REFERENCES  # 3 results and the local references
    for image in images:
        assert image["decoded"], image
        assert image["width"] > 0
        assert image["height"] > 0
        assert image["alt"]
    requested = page.requested()
    assert requested
    assert all(url.startswith("file://") for url in requested), requested
    # A URL reference is a link the user may follow, never a request the page makes.
    links = page.evaluate("[...document.links].map(a => a.href)")
    assert "https://example.com/street.png" in links
    assert not any("example.com" in url for url in requested)


def test_a_screenshot_of_the_sheet_is_not_blank(page: Browser, tmp_path: Path) -> None:
    page.images_loaded()
    data = page.screenshot(tmp_path / "sheet.png")
    with Image.open(io.BytesIO(data)) as shot:
        assert shot.width == 1280
        assert shot.height > 900  # the whole page: ten cards do not fit the first screen
        stats = ImageStat.Stat(shot.convert("L"))
        assert stats.stddev[0] > 20  # text, badges and pictures, not one flat colour
        colours = shot.convert("RGB").getcolors(maxcolors=1 << 20)
        assert colours is not None
        assert len(colours) > 500


def test_filtering_by_status_shows_only_those_cards(
    page: Browser, sheet: tuple[Path, dict[str, str]]
) -> None:
    _, expected = sheet
    for status in ("failed", "done"):
        page.evaluate(f"document.getElementById('show-{status}').click()")
        shown = page.evaluate(VISIBLE_CARDS)
        assert [card["id"] for card in shown] == [
            job for job, written in expected.items() if written == status
        ]
    page.evaluate("document.getElementById('show-all').click()")
    assert len(page.evaluate(VISIBLE_CARDS)) == len(expected)


def test_the_order_by_status_groups_cards_under_headings(
    page: Browser, sheet: tuple[Path, dict[str, str]]
) -> None:
    _, expected = sheet
    page.evaluate("document.getElementById('sort-status').click()")
    shown = page.evaluate(VISIBLE_CARDS)
    order = [status for status in STATUS_ORDER if status in expected.values()]
    assert [card["status"] for card in shown] == sorted(
        expected.values(), key=order.index
    )  # the ones that need a decision first
    headings = page.evaluate(
        "[...document.querySelectorAll('.group h2')].filter(h => h.getClientRects().length)"
        ".map(h => h.textContent)"
    )
    assert headings == [f"{status} ({list(expected.values()).count(status)})" for status in order]


def test_the_filter_works_from_the_keyboard(
    page: Browser, sheet: tuple[Path, dict[str, str]]
) -> None:
    _, expected = sheet
    first = next(status for status in STATUS_ORDER if status in expected.values())
    page.evaluate("document.getElementById('show-all').focus()")
    page.press("ArrowRight", "ArrowRight", 39)  # a radio group moves, and checks, with arrows
    assert page.evaluate("document.activeElement.id") == f"show-{first}"
    shown = page.evaluate(VISIBLE_CARDS)
    assert {card["status"] for card in shown} == {first}
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"  # the focus is drawn


def test_every_card_is_named_by_its_heading(page: Browser) -> None:
    unnamed = page.evaluate(
        """[...document.querySelectorAll('article')].filter(article => {
             const heading = document.getElementById(article.getAttribute('aria-labelledby'));
             return !heading || !/^H[23]$/.test(heading.tagName) || !heading.textContent.trim();
           }).length"""
    )
    assert unnamed == 0
    ids = page.evaluate("[...document.querySelectorAll('[id]')].map(e => e.id)")
    assert len(ids) == len(set(ids))
