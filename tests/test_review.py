"""The contact sheet and the prompt grid: cards from the ledger, a self-contained page, the grid's
jobs and drawing, and the ``review`` and ``grid`` commands (the page in a real browser:
``test_review_browser.py``)."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest
from PIL import Image, ImageStat

from reve_remix import ValidationError
from reve_remix._cli import _review
from reve_remix._cli._console import Console
from reve_remix._grid import CELL_PIXELS, PILLOW_NEEDED, _Layout
from reve_remix._jobs_file import MANIFEST_NAME, STATE_DIR
from reve_remix._ledger import JobRecord
from reve_remix._lifecycle import JobState
from reve_remix._manifest import read_history
from reve_remix._spec import spec
from reve_remix.review import (
    GRID_JOBS,
    JOBS_FILE_NOTE,
    Card,
    Reference,
    cards_from_ledger,
    contact_sheet,
    draw_grid,
    last_jobs_file,
    prompt_grid,
    remember_jobs_file,
)
from reve_remix.testing import MockServer
from tests.conftest import run_cli
from tests.review_batch import (
    LATER_LINES,
    LOCAL_REFERENCES,
    RUN_LINES,
    copy_batch,
    make_batch,
    write_records,
)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    folder = tmp_path_factory.mktemp("batch")
    return folder, make_batch(folder)


@pytest.fixture
def batch(made: tuple[Path, dict[str, str]], tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the batch folder (this test may change it) and each job's expected status."""
    return copy_batch(made[0], tmp_path / "batch"), made[1]


def no_pillow(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in sys.modules if name == "PIL" or name.startswith("PIL.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "PIL", None)  # import PIL now raises ImportError


class Page(HTMLParser):
    """The parts of a page these tests read: tags with attributes, text, and style text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.style = ""
        self._in_style = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.style += data

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


# --- cards from the ledger ----------------------------------------------------------------------


def test_cards_say_what_the_ledger_says(batch: tuple[Path, dict[str, str]]) -> None:
    folder, expected = batch
    cards = cards_from_ledger(folder / "out", folder / "jobs.jsonl")
    assert {card.id: card.status for card in cards} == expected
    assert [card.line for card in cards] == list(range(1, len(expected) + 1))
    by_id = {card.id: card for card in cards}
    written = {line["id"]: line for line, *_ in (*RUN_LINES, *LATER_LINES)}
    for job_id, card in by_id.items():
        assert card.prompt == written[job_id]["prompt"]  # as written, not as sent
    assert by_id["cat-on-sofa"].references == (
        Reference("{cat}", str(folder / "cat.png")),
        Reference("{sofa}", str(folder / "sofa.jpg")),
    )
    assert by_id["remote-night"].references == (
        Reference("<img>0</img>", "https://example.com/street.png"),
    )
    for card in cards:
        assert (card.image is not None and card.image.is_file()) == (card.status == "done")
    assert by_id["cat-on-sofa"].revised_prompt == "Put image 0 on image 1, as a watercolour"
    assert by_id["cat-on-sofa"].request_id
    assert "403 Forbidden [content_policy_violation]" in (by_id["sofa-flagged"].error or "")
    assert by_id["cat-failed"].error.startswith("400")
    assert by_id["sofa-paid"].url == "https://cdn.example.com/sofa-paid.png"


def test_without_the_jobs_file_every_job_of_the_ledger_still_has_a_card(
    batch: tuple[Path, dict[str, str]],
) -> None:
    folder, expected = batch
    (folder / "out" / STATE_DIR / JOBS_FILE_NOTE).unlink()  # the jobs file gone, or unknown
    cards = cards_from_ledger(folder / "out")
    recorded = {record.id for record in read_history(folder / "out")[0]}
    assert {card.id for card in cards} == recorded == set(expected) - {"cat-pending"}
    written = {line["id"]: line for line, *_ in (*RUN_LINES, *LATER_LINES)}
    for card in cards:  # the ledger records each job's prompt and line; not its references
        assert card.prompt == written[card.id]["prompt"]
        assert card.references == ()
    assert [card.line for card in cards] == sorted(card.line or 0 for card in cards)
    assert {card.id: card.status for card in cards} == {
        job_id: expected[job_id] for job_id in recorded
    }


def test_a_price_costs_the_jobs_that_were_or_may_have_been_paid_for(
    batch: tuple[Path, dict[str, str]],
) -> None:
    folder, expected = batch
    cards = cards_from_ledger(folder / "out", folder / "jobs.jsonl", price=0.04)
    costed = {card.id for card in cards if card.cost == Decimal("0.04")}
    assert costed == {
        job
        for job, status in expected.items()
        if status in ("done", "paid", "held", "ambiguous", "sent", "flagged")
    }
    page = contact_sheet(folder / "out", jobs_file=folder / "jobs.jsonl", price=0.04).read_text()
    # 5 jobs certainly paid for, three more that may have been (ambiguous, sent, flagged)
    assert "cost 0.20 USD (up to 0.32 USD)" in page
    assert "0.04 USD if it was billed" in page


# --- the page ---------------------------------------------------------------------------------


def test_the_sheet_is_self_contained_and_escapes_what_it_shows(
    batch: tuple[Path, dict[str, str]],
) -> None:
    folder, expected = batch
    out = folder / "out"
    path = contact_sheet(out, jobs_file=folder / "jobs.jsonl")
    assert path == out / "index.html"
    text = path.read_text(encoding="utf-8")
    page = Page(text)
    assert not page.all("script")
    assert not page.all("link")
    assert not page.all("iframe")
    assert "url(" not in page.style
    assert "@import" not in page.style
    assert "@font-face" not in page.style
    images = page.all("img")
    # 3 results and the local references (not the URL), once in each order of the page
    assert len(images) == 2 * (3 + LOCAL_REFERENCES)
    for attrs in images:
        src = attrs["src"] or ""
        assert not re.match(r"[a-z]+:", src), src  # relative: a file under out, never a URL
        file = (out / unquote(src)).resolve()
        assert file.is_file()
        assert file.is_relative_to(out.resolve())
        assert attrs["alt"]
    links = {attrs["href"] for attrs in page.all("a")}
    assert "https://example.com/street.png" in links  # a URL reference: a link, not loaded
    # The prompt as written, escaped, its tag highlighted: no <b> element reaches the page.
    assert not page.all("b")
    assert (
        '<mark class="tag">&lt;img&gt;0&lt;/img&gt;</mark> as an ink drawing, '
        "&lt;b&gt;bold&lt;/b&gt; &amp; loose" in text
    )
    assert '<mark class="tag">{cat}</mark> on <mark class="tag">{sofa}</mark>' in text
    statuses = [attrs["data-status"] for attrs in page.all("article")]
    assert statuses[: len(expected)] == list(expected.values())  # by line, then by status
    assert sorted(statuses[len(expected) :]) == sorted(expected.values())


def test_references_are_copied_as_thumbnails_with_pillow(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    Image.new("RGB", (1200, 800), "teal").save(big)
    reference = Reference("<img>0</img>", str(big))
    contact_sheet(tmp_path / "out", [Card("a", "pending", 1, "<img>0</img>", (reference,))])
    (copy,) = (tmp_path / "out" / ".review").iterdir()
    with Image.open(copy) as image:
        assert max(image.size) == 256
        assert image.size == (256, 171)


def test_without_pillow_references_are_copied_as_they_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = tmp_path / "big.png"
    Image.new("RGB", (1200, 800), "teal").save(big)
    no_pillow(monkeypatch)
    reference = Reference("{cat}", str(big))
    contact_sheet(tmp_path / "out", [Card("a", "pending", 1, "{cat}", (reference,))])
    (copy,) = (tmp_path / "out" / ".review").iterdir()
    assert copy.read_bytes() == big.read_bytes()


def test_copies_no_card_uses_are_removed(tmp_path: Path) -> None:
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    Image.new("RGB", (8, 8), "red").save(first)
    Image.new("RGB", (8, 8), "blue").save(second)
    out = tmp_path / "out"
    contact_sheet(out, [Card("a", "pending", references=(Reference("<img>0</img>", str(first)),))])
    contact_sheet(out, [Card("a", "pending", references=(Reference("<img>0</img>", str(second)),))])
    (copy,) = (out / ".review").iterdir()
    with Image.open(copy) as image:
        red, _, blue = image.convert("RGB").getpixel((4, 4))  # type: ignore[misc]
    assert blue > 200
    assert red < 50


def test_a_missing_result_or_reference_is_said_not_broken(tmp_path: Path) -> None:
    card = Card(
        "gone",
        "done",
        3,
        "<img>0</img> at dusk",
        (Reference("<img>0</img>", str(tmp_path / "nowhere.png")),),
        image=tmp_path / "out" / "gone.png",
    )
    text = contact_sheet(tmp_path / "out", [card]).read_text()
    assert "the image file is missing" in text
    assert "nowhere.png (file not found)" in text
    assert not Page(text).all("img")


def test_an_empty_folder_has_a_sheet_that_says_so(tmp_path: Path) -> None:
    text = contact_sheet(tmp_path).read_text()
    assert "This folder has no jobs yet." in text


# --- the grid's jobs ------------------------------------------------------------------------------


@pytest.fixture
def cat(tmp_path: Path) -> Path:
    path = tmp_path / "cat.png"
    Image.new("RGB", (64, 64), "orange").save(path)
    return path


def test_the_jobs_are_the_cross_product_of_the_axes(cat: Path) -> None:
    ratios = spec().aspect_ratios[:2]
    grid = prompt_grid(
        "{cat} painted in {style}, {{literal}}",
        {"cat": cat},
        {"style": ["ink", "oil {thick}"], "aspect_ratio": ratios},
    )
    assert [job.values for job in grid.jobs] == [
        ("ink", ratios[0]),
        ("ink", ratios[1]),
        ("oil {thick}", ratios[0]),
        ("oil {thick}", ratios[1]),
    ]
    first, *_, last = grid.jobs
    # Named images keep their meaning; a value's braces are doubled so they stay text.
    assert first.job.prompt == "{cat} painted in ink, {{literal}}"
    assert last.job.prompt == "{cat} painted in oil {{thick}}, {{literal}}"
    assert last.job.aspect_ratio == ratios[1]
    assert first.job.images == {"cat": str(cat)}
    assert len({job.id for job in grid.jobs}) == 4
    assert "-ink-" in first.id  # its values, by axis name (aspect_ratio before style)


def test_the_order_of_the_axes_turns_the_grid_and_keeps_every_job(cat: Path) -> None:
    # Swapping --axis flags to turn the picture must not make new (paid) jobs of the same cells.
    ratios = spec().aspect_ratios[:2]
    across = prompt_grid(
        "{cat} in {style}", {"cat": cat}, {"style": ["ink", "oil"], "aspect_ratio": ratios}
    )
    down = prompt_grid(
        "{cat} in {style}", {"cat": cat}, {"aspect_ratio": ratios, "style": ["ink", "oil"]}
    )
    assert {job.id for job in across.jobs} == {job.id for job in down.jobs}
    assert [job.values for job in across.jobs] != [job.values for job in down.jobs]


def test_a_job_keeps_its_id_wherever_it_runs_from_and_an_edit_changes_it(
    cat: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    axes = {"style": ["ink", "oil"]}
    ids = [job.id for job in prompt_grid("<img>0</img> in {style}", [cat], axes).jobs]
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    (moved / "same.png").write_bytes(cat.read_bytes())
    monkeypatch.chdir(moved)
    assert [
        job.id for job in prompt_grid("<img>0</img> in {style}", ["same.png"], axes).jobs
    ] == ids
    edited = [job.id for job in prompt_grid("<img>0</img> drawn in {style}", [cat], axes).jobs]
    assert not set(edited) & set(ids)


@pytest.mark.parametrize(
    ("axes", "fixed", "message"),
    [
        ({}, {}, "give at least one axis"),
        ({"mood": ["calm"]}, {}, "axis 'mood' is neither a {mood} placeholder"),
        ({"cat": ["a"]}, {}, "axis 'cat' is the name of an image"),
        ({"aspect_ratio": ["1:1"]}, {"aspect_ratio": "1:1"}, "also given one value"),
        ({"style": ["ink", "ink"]}, {}, "'ink' is given twice"),
        ({"style": []}, {}, "give a list of one or more values"),
        ({"style": "ink"}, {}, "give a list of one or more values"),
        ({"style": ["ink", " "]}, {}, "every value must be a non-blank string"),
        ({"style": ["ink"], "aspect_ratio": ["7:5"]}, {}, "grid cell style=ink, aspect_ratio=7:5"),
    ],
)
def test_bad_axes_are_refused_before_anything_is_sent(
    cat: Path, axes: dict[str, object], fixed: dict[str, str], message: str
) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        prompt_grid("{cat} in {style}", {"cat": cat}, axes, **fixed)  # type: ignore[arg-type]


def test_a_grid_of_unnamed_images_leaves_no_placeholder(cat: Path) -> None:
    grid = prompt_grid("<img>0</img> in {style}", [cat], {"style": ["ink"]})
    assert grid.jobs[0].job.prompt == "<img>0</img> in ink"
    with pytest.raises(ValidationError, match="names an image, but the images are a list"):
        prompt_grid("<img>0</img> in {style} by {artist}", [cat], {"style": ["ink"]})


def test_the_jobs_file_is_a_batch_file(cat: Path, tmp_path: Path) -> None:
    grid = prompt_grid(
        "{cat} in {style}", {"cat": cat}, {"style": ["ink", "oil"]}, output_format="b64_json"
    )
    path = grid.write_jobs(tmp_path / "grid" / GRID_JOBS)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == [
        {
            "id": job.id,
            "prompt": job.job.prompt,
            "images": {"cat": str(cat)},
            "output_format": "b64_json",
        }
        for job in grid.jobs
    ]


# --- drawing the grid -------------------------------------------------------------------------


def _blank(image: Image.Image, box: tuple[int, int, int, int]) -> bool:
    return ImageStat.Stat(image.crop(box).convert("L")).extrema[0][0] > 250


def test_the_grid_is_laid_out_by_the_first_two_axes_with_labels(tmp_path: Path) -> None:
    colours = {("ink", "1:1"): "red", ("ink", "16:9"): "green", ("oil", "1:1"): "blue"}
    cells: dict[tuple[str, ...], Path | None] = {}
    for (style, ratio), colour in colours.items():
        cells[style, ratio] = tmp_path / f"{style}-{ratio.replace(':', 'x')}.png"
        Image.new("RGB", (320, 180) if ratio == "16:9" else (200, 200), colour).save(
            cells[style, ratio]
        )
    axes = {"style": ["ink", "oil"], "aspect_ratio": ["1:1", "16:9"]}
    (path,) = draw_grid(cells, axes, tmp_path / "grid.png", notes={("oil", "16:9"): "failed"})
    with Image.open(path) as image:
        image.load()
    # The row labels' column is as wide as the widest label (16 px type) and some room.
    label_width = image.width - _Layout(columns=2, rows=2, label_width=0).size[0]
    assert 20 < label_width < 100
    layout = _Layout(columns=2, rows=2, label_width=label_width)
    assert layout.size == image.size
    for column in range(2):
        assert not _blank(image, layout.column_label(column))
    for row in range(2):
        assert not _blank(image, layout.row_label(row))
    # each label is its own text
    assert (
        image.crop(layout.column_label(0)).tobytes() != image.crop(layout.column_label(1)).tobytes()
    )
    assert image.crop(layout.row_label(0)).tobytes() != image.crop(layout.row_label(1)).tobytes()
    # across: style; down: aspect_ratio
    centre = [
        (sum(b[0::2]) // 2, sum(b[1::2]) // 2) for b in (layout.cell(0, 1), layout.cell(1, 0))
    ]
    assert image.getpixel(centre[0]) == (0, 128, 0)  # ink, 16:9
    assert image.getpixel(centre[1]) == (0, 0, 255)  # oil, 1:1
    empty = layout.cell(1, 1)  # oil, 16:9: failed, said in grey
    assert image.getpixel((empty[0] + 2, empty[1] + 2)) == (228, 228, 228)
    assert not _blank(image, empty)


def test_further_axes_are_further_pages(tmp_path: Path) -> None:
    axes = {"style": ["ink"], "aspect_ratio": ["1:1"], "model": ["a", "b", "c"]}
    pages = draw_grid({}, axes, tmp_path / "grid.png")
    assert [page.name for page in pages] == ["grid.png", "grid-2.png", "grid-3.png"]
    with Image.open(pages[0]) as one, Image.open(pages[1]) as two:
        assert one.size == two.size
        title = (0, 0, one.width, 8 + 22)
        assert one.crop(title).tobytes() != two.crop(title).tobytes()  # "model = a", "model = b"


def test_without_pillow_the_grid_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_pillow(monkeypatch)
    with pytest.raises(ValidationError, match=re.escape("pip install 'reve-remix[pillow]'")):
        draw_grid({}, {"style": ["ink"]}, tmp_path / "grid.png")


# --- the commands -------------------------------------------------------------------------------


def test_a_grid_of_two_by_two_sends_four_generations_once(cat: Path, tmp_path: Path) -> None:
    ratios = spec().aspect_ratios[:2]
    args = [
        "grid", "{cat} painted in {style}", "-i", f"cat={cat}", "--axis", "style=ink,oil",
        "--axis", f"aspect_ratio={','.join(ratios)}", "--out", tmp_path / "grid",
    ]  # fmt: skip
    with MockServer() as server:
        base = ["--base-url", server.base_url]
        dry = run_cli(*args, *base, "--dry-run", cwd=tmp_path)
        assert dry.returncode == 0, dry
        assert "grid: 2 style x 2 aspect_ratio = 4 job(s)" in dry.stdout
        assert "would send 4 job(s) (4 generation(s))" in dry.stdout
        assert not server.requests
        first = run_cli(*args, *base, cwd=tmp_path)
        assert first.returncode == 0, first
        sent = [request for request in server.requests if request.is_remix]
        assert len(sent) == 4
        assert sorted((r.prompt, r.aspect_ratio) for r in sent) == sorted(
            (f"<img>0</img> painted in {style}", ratio)
            for style in ("ink", "oil")
            for ratio in ratios
        )
        again = run_cli(*args, *base, cwd=tmp_path)
        assert again.returncode == 0, again
        assert len([request for request in server.requests if request.is_remix]) == 4  # none new
        assert "4 done (4 in earlier runs)" in again.stdout
        dry = run_cli(*args, *base, "--dry-run", cwd=tmp_path)
        assert "would send 0 job(s) (0 generation(s))" in dry.stdout
        assert "4 done already" in dry.stdout
    assert f"grid: {tmp_path / 'grid' / 'grid.png'}" in first.stdout
    assert f"review: {tmp_path / 'grid' / 'index.html'}" in first.stdout
    with Image.open(tmp_path / "grid" / "grid.png") as image:
        assert image.size[0] > 2 * CELL_PIXELS
        assert image.size[1] > 2 * CELL_PIXELS
    cards = cards_from_ledger(tmp_path / "grid")  # the grid's jobs file is found in its folder
    assert [card.status for card in cards] == ["done"] * 4
    assert all(card.prompt and "{style}" not in card.prompt for card in cards)


def test_grid_refuses_bad_axes_in_one_line(cat: Path, tmp_path: Path) -> None:
    run = run_cli(
        "grid", "<img>0</img> in {style}", "-i", cat, "--axis", "mood=calm", "--out", tmp_path,
    )  # fmt: skip
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1
    assert "axis 'mood' is neither a {mood} placeholder" in run.stderr
    run = run_cli(
        "grid", "<img>0</img> in {style}", "-i", cat, "--axis", "style", "--out", tmp_path
    )
    assert run.returncode == 2
    assert "--axis style: write NAME=VALUE1,VALUE2" in run.stderr


def test_grid_without_pillow_sends_nothing_and_says_what_to_install(
    cat: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_pillow(monkeypatch)
    with MockServer() as server:
        run = run_cli(
            "grid", "<img>0</img> in {style}", "-i", cat, "--axis", "style=ink", "--out",
            tmp_path / "g", "--base-url", server.base_url,
        )  # fmt: skip
        assert not server.requests
    assert run.returncode == 2
    assert run.stderr == f"reve-remix: error: {PILLOW_NEEDED}\n"


def test_grid_axis_values_may_hold_commas_in_quotes(cat: Path, tmp_path: Path) -> None:
    run = run_cli(
        "grid", "<img>0</img> in {style}", "-i", cat, "--axis", 'style=ink, "pencil, smudged"',
        "--out", tmp_path / "g", "--dry-run",
    )  # fmt: skip
    assert "grid: 2 style = 2 job(s)" in run.stdout


def test_review_writes_the_sheet_of_a_folder(batch: tuple[Path, dict[str, str]]) -> None:
    folder, expected = batch
    run = run_cli("review", "out", "--jobs", "jobs.jsonl", "--price", "0.04", cwd=folder)
    assert run.returncode == 0, run
    assert run.stdout == "out/index.html\n"
    statuses = [
        attrs["data-status"]
        for attrs in Page((folder / "out/index.html").read_text()).all("article")
    ]
    assert statuses[: len(expected)] == list(expected.values())


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: (d / "x").write_text(""), "x: not a folder"),
        (lambda d: (d / "x").mkdir(), "x holds no manifest.jsonl"),
    ],
)
def test_review_refuses_a_folder_that_is_not_a_batch(
    tmp_path: Path, setup: object, message: str
) -> None:
    setup(tmp_path)  # type: ignore[operator]
    run = run_cli("review", "x", cwd=tmp_path)
    assert run.returncode == 2
    assert message in run.stderr


def test_refresh_sheet_prints_its_path_unless_told_not_to(
    batch: tuple[Path, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, _ = batch
    out, jobs = folder / "out", folder / "jobs.jsonl"
    (out / "index.html").unlink(missing_ok=True)  # the batch that made the folder wrote one
    console = Console(sys.stderr, debug=False)
    _review.refresh_sheet(_namespace(no_review=True), out, jobs, console)
    assert not (out / "index.html").exists()
    assert capsys.readouterr().out == ""
    _review.refresh_sheet(_namespace(no_review=False), out, jobs, console)
    assert capsys.readouterr().out == f"review: {out / 'index.html'}\n"
    (out / "index.html").unlink()
    (out / "index.html").mkdir()  # cannot be replaced: a warning, not a failed batch
    _review.refresh_sheet(_namespace(no_review=False), out, jobs, console)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "warning: the contact sheet was not written" in captured.err


def _namespace(**values: object) -> argparse.Namespace:
    return argparse.Namespace(**values)


def test_batch_leaves_a_sheet_behind_unless_told_not_to(
    batch: tuple[Path, dict[str, str]],
) -> None:
    folder, expected = batch
    (folder / "out" / "index.html").unlink()
    closed = ["--base-url", "http://127.0.0.1:9", "--max-retries", 0]  # nothing is generated
    run = run_cli("batch", "jobs.jsonl", "--out", "out", *closed, cwd=folder)
    assert run.stdout.endswith("review: out/index.html\n"), run
    page = Page((folder / "out" / "index.html").read_text())
    assert len(page.all("article")) == 2 * len(expected)  # by line, and grouped by status
    run = run_cli("batch", "jobs.jsonl", "--out", "out2", "--no-review", *closed, cwd=folder)
    assert "review:" not in run.stdout
    assert (folder / "out2" / MANIFEST_NAME).is_file()
    assert not (folder / "out2" / "index.html").exists()


def test_a_cell_whose_image_cannot_be_read_says_so_and_long_labels_are_cut(
    tmp_path: Path,
) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    long = "a very long value " * 8
    axes = {"style": [long], "aspect_ratio": [long]}
    (path,) = draw_grid({(long, long): broken}, axes, tmp_path / "grid.png")
    with Image.open(path) as image:
        image.load()
    layout = _Layout(1, 1, label_width=200)  # the row labels' column at its widest
    assert layout.size == image.size  # a long label is cut, never widens the grid
    cell = layout.cell(0, 0)
    assert image.getpixel((cell[0] + 2, cell[1] + 2)) == (228, 228, 228)  # the grey "unreadable"
    assert not _blank(image, cell)


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (b"cat.png", "a grid takes a list of paths or URLs"),
        ([b"\x89PNG"], "a grid's images are paths or URLs"),
        (["missing.png"], "is neither an http(s) URL, a data: URL nor an existing file"),
    ],
)
def test_a_grid_s_images_are_files_or_urls_it_can_read(
    images: object, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValidationError, match=re.escape(message)):
        prompt_grid("<img>0</img> in {style}", images, {"style": ["ink"]})  # type: ignore[arg-type]


def test_a_grid_s_urls_are_sent_as_they_are(cat: Path) -> None:
    url = "https://example.com/cat.png"
    grid = prompt_grid("{cat} and {dog} in {style}", {"cat": url, "dog": cat}, {"style": ["ink"]})
    assert grid.jobs[0].job.images == {"cat": url, "dog": str(cat)}


def test_the_dry_run_is_the_plan_a_run_would_make_of_each_recorded_state(
    cat: Path, tmp_path: Path
) -> None:
    args = ["grid", "<img>0</img> in {style}", "-i", cat, "--axis", "style=a,b,c,d,e"]
    grid = prompt_grid("<img>0</img> in {style}", [cat], {"style": ["a", "b", "c", "d", "e"]})
    out = tmp_path / "g"
    a, b, c, d, _ = grid.jobs
    write_records(
        out,
        JobRecord(a.id, JobState.PAID, url="https://cdn.example.com/a.png"),
        JobRecord(b.id, JobState.AMBIGUOUS),
        JobRecord(c.id, JobState.FAILED, error="400 Bad Request"),
        JobRecord(d.id, JobState.DONE, fingerprint="0" * 32, file="d.png"),  # another request
    )
    before = (out / MANIFEST_NAME).read_bytes()
    run = run_cli(*args, "--out", out, "--dry-run", "--price", "0.04")
    assert run.returncode == 1, run  # as a run would end: one job held, one in conflict
    assert [row.split()[0] for row in run.stdout.splitlines()[1:6]] == [
        "fetch",
        "hold",
        "send",
        "conflict",
        "send",
    ]
    assert run.stdout.splitlines()[6] == (
        "dry run, nothing sent: would send 2 job(s) (2 generation(s), 0.08 USD at 0.04 USD each)"
        ", download 1 paid earlier, copy 0, 0 done already, 1 held, 1 in conflict"
    )
    assert "--resend-ambiguous" in run.stderr  # why b is held, as batch says it
    assert (out / MANIFEST_NAME).read_bytes() == before  # nothing written, no lock taken
    assert not (out / GRID_JOBS).exists()
    run = run_cli(*args, "--out", out, "--dry-run", "--resend-ambiguous", "--replace-changed")
    assert "would send 4 job(s)" in run.stdout
    run = run_cli(*args, "--out", out, "--dry-run", "--json", "--max-generations", "1")
    summary = json.loads(run.stdout.splitlines()[1])
    assert (summary["send"], summary["generations"], summary["left_pending"]) == (2, 1, 1)


def test_grid_refuses_an_out_that_cannot_be_written(cat: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    run = run_cli(
        "grid", "<img>0</img> in {style}", "-i", cat, "--axis", "style=ink",
        "--out", tmp_path / "file" / "g",
    )  # fmt: skip
    assert run.returncode == 2
    assert "is a file, not a folder; nothing was sent" in run.stderr


def test_a_grid_checks_its_images_as_remix_does_with_or_without_fit(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    side = 720  # noise does not compress: 3 bytes a pixel, more than the API takes
    assert 3 * side * side > spec().max_image_bytes
    Image.frombytes("RGB", (side, side), os.urandom(3 * side * side)).save(big)
    with pytest.raises(ValidationError, match="grid cell style=ink: "):
        prompt_grid("<img>0</img> in {style}", [big], {"style": ["ink"]})
    assert prompt_grid("<img>0</img> in {style}", [big], {"style": ["ink"]}, fit=True).jobs


@pytest.mark.parametrize("price", [-1, float("nan"), float("inf"), "x", True])
def test_a_price_is_an_amount_from_zero_up(price: object, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="price: expected an amount in USD"):
        contact_sheet(tmp_path, price=price)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="price: expected an amount in USD"):
        cards_from_ledger(tmp_path, price=price)  # type: ignore[arg-type]


def test_the_price_defaults_to_the_environment_s(
    batch: tuple[Path, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, _ = batch
    monkeypatch.setenv("REVE_REMIX_PRICE", "0.5")
    costs = {card.cost for card in cards_from_ledger(folder / "out", folder / "jobs.jsonl")}
    assert costs == {None, Decimal("0.5")}


def test_a_card_s_status_is_one_the_sheet_knows() -> None:
    with pytest.raises(ValidationError, match="Card status: one of failed, flagged"):
        Card("a", "lost")  # type: ignore[arg-type]


def test_each_state_of_the_ledger_is_a_card_status(tmp_path: Path) -> None:
    write_records(
        tmp_path,
        JobRecord("a", JobState.FLAGGED, error="refused by content policy: 422 [moderation]"),
        JobRecord("b", JobState.SENT),
        JobRecord("c", JobState.PENDING),
        JobRecord("d", JobState.PAID, spool=str(tmp_path / ".reve-remix/spool/d.png")),
        JobRecord("e", JobState.PAID, url="https://cdn.example.com/e.png"),
        JobRecord("f", JobState.PAID, request_id="req-f"),  # a 2xx without an image
        JobRecord("g", JobState.AMBIGUOUS),
        # written before the flagged state existed: a content-policy refusal was "failed"
        JobRecord("h", JobState.FAILED, error="403 Forbidden [content_policy_violation]: no"),
        JobRecord("i", JobState.FAILED, error="400 Bad Request [invalid_request]: no"),
        JobRecord("j", JobState.DONE, file="j.png"),
    )
    assert {card.id: card.status for card in cards_from_ledger(tmp_path)} == {
        "a": "flagged",
        "b": "sent",
        "c": "pending",
        "d": "paid",
        "e": "paid",
        "f": "held",
        "g": "ambiguous",
        "h": "flagged",
        "i": "failed",
        "j": "done",
    }


def test_a_line_without_an_id_is_the_job_recorded_for_its_line_and_prompt(
    cat: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    jobs = tmp_path / "jobs.jsonl"
    lines = [
        {"prompt": "<img>0</img> in ink", "images": [str(cat)]},
        {"prompt": "<img>0</img> in oil", "images": [str(cat)]},
    ]
    jobs.write_text("".join(json.dumps(line) + "\n" for line in lines))
    write_records(
        out,
        JobRecord("0123456789abcdef", JobState.DONE, line=1, prompt=lines[0]["prompt"]),
        JobRecord("fedcba9876543210", JobState.FAILED, line=1, prompt="an older line 1"),
    )
    cards = cards_from_ledger(out, jobs)
    assert [(card.id, card.status, card.line) for card in cards[:2]] == [
        ("0123456789abcdef", "done", 1),
        (cards[1].id, "pending", 2),
    ]
    assert cards[0].references == (Reference("<img>0</img>", str(cat)),)
    # the pending line is named as a batch with the default model will name it
    assert re.fullmatch("[0-9a-f]{16}", cards[1].id)
    assert [(card.id, card.prompt) for card in cards[2:]] == [
        ("fedcba9876543210", "an older line 1")
    ]


def test_a_lone_surrogate_or_a_file_name_that_is_not_utf8_is_shown_not_fatal(
    tmp_path: Path,
) -> None:
    name = os.fsdecode(b"cat-\xff.png")  # a name the shell gave as bytes: a surrogate in it
    try:
        Image.new("RGB", (8, 8), "orange").save(tmp_path / name)
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system takes only UTF-8 names")
    card = Card("a", "done", 1, "x", image=tmp_path / name, revised_prompt="bad \ud800 text")
    text = contact_sheet(tmp_path, [card]).read_bytes().decode("utf-8")  # valid UTF-8
    assert "bad \\ud800 text" in text
    assert 'src="cat-%FF.png"' in text  # the file's own bytes, which a browser opens


def test_a_bug_in_the_sheet_is_a_warning_after_a_run(
    batch: tuple[Path, dict[str, str]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder, _ = batch

    def broken(*args: object, **kwargs: object) -> Path:
        raise KeyError("a bug")

    monkeypatch.setattr(_review, "contact_sheet", broken)
    console = Console(sys.stderr, debug=False)
    _review.refresh_sheet(_namespace(no_review=False), folder / "out", folder / "jobs", console)
    err = capsys.readouterr().err
    assert err.startswith("reve-remix: warning: the contact sheet was not written: unexpected ")
    assert "KeyError" in err
    assert "--debug" in err
    assert err.count("\n") == 1


def test_the_dry_run_reports_what_would_stop_a_run(cat: Path, tmp_path: Path) -> None:
    grid = prompt_grid("<img>0</img> in {style}", [cat], {"style": ["ink", "oil"]})
    out = tmp_path / "g"
    out.mkdir()
    (out / f"{grid.jobs[0].id}.png").write_bytes(b"not ours")  # no finished job wrote it
    run = run_cli(
        "grid", "<img>0</img> in {style}", "-i", cat, "--axis", "style=ink,oil", "--out", out,
        "--dry-run",
    )  # fmt: skip
    assert run.returncode == 2, run  # as the run would: its lines are checked with --strict
    assert "would send 1 job(s)" in run.stdout
    assert "1 invalid" in run.stdout
    assert "exists but no finished job of this batch wrote it" in run.stderr
    assert "--strict: 1 invalid line(s); nothing would be sent" in run.stderr


def test_review_without_jobs_finds_the_jobs_file_the_batch_ran(tmp_path: Path) -> None:
    # A batch notes its jobs file: 'review DIR' alone keeps the references the batch's sheet had.
    out, jobs = tmp_path / "out", tmp_path / "elsewhere" / "my-jobs.jsonl"
    jobs.parent.mkdir()
    jobs.write_text("")
    assert last_jobs_file(out) is None
    remember_jobs_file(out, jobs)
    assert last_jobs_file(out) == jobs.resolve()
