"""A prompt matrix: the jobs of every combination of a few axes, and their results as one image.

An axis is a ``{NAME}`` placeholder of the prompt (``{style}`` over ``ink, oil``) or a request
field (``aspect_ratio``, ``model``, ``output_format``); the prompt's named images (``{cat}``)
keep their meaning. :func:`prompt_grid` makes the jobs, the cross product of the axes, each with
an id that is the same whenever the job is (its axis values, readable, and a hash of what it
sends: the prompt, the fields, and the content of its local images, so that a moved folder keeps
its ids and an edited prompt gets new ones). ``reve-remix grid`` writes them as a batch file and
runs the batch on it: paid once, resumable. :func:`draw_grid` lays the results out by the first
two axes, with labels, one page per combination of the others (``grid.png``, ``grid-2.png``...).
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from ._client import DEFAULT_MODEL
from ._exceptions import ValidationError
from ._files import write_atomic
from ._identity import fingerprint
from ._images import url_scheme
from ._jobs import RemixJob
from ._jobs_file import JobLine, LineProblem, parse_jobs, slugify
from ._runner import Call
from ._tags import IMAGE_NAME, field_names, fill_fields

if TYPE_CHECKING:
    from PIL import Image, ImageDraw, ImageFont
    from reve_remix_api._literals import AspectRatioValue, OutputFormatValue
    from reve_remix_api.models import AspectRatio, OutputFormat

    from ._sheet import Card

GRID_FIELDS = ("aspect_ratio", "model", "output_format")
"""The request fields an axis may vary, besides the prompt's placeholders."""
GRID_NAME = "grid.png"
"""The drawing's file name in the grid's folder (further pages: ``grid-2.png``, ...)."""
GRID_JOBS = "jobs.jsonl"
"""The batch file ``reve-remix grid`` writes into its folder and runs."""
PILLOW_NEEDED = "drawing a grid needs Pillow: pip install 'reve-remix[pillow]'"

_ID_SLUG_CHARS = 96  # of a job id's readable part; the id is at most 128 characters
_ID_DIGITS = 10  # of the fingerprint, after the readable part


@dataclass(frozen=True, slots=True)
class GridJob:
    """One cell of a grid: its ``values`` (one per axis, in the axes' order) and its job."""

    id: str
    values: tuple[str, ...]
    job: RemixJob

    def line(self) -> dict[str, Any]:
        """The job as a line of a batch file (local image paths absolute)."""
        job = self.job
        line: dict[str, Any] = {"id": self.id, "prompt": job.prompt, "images": job.images}
        for name in (*GRID_FIELDS, "extra_body"):
            if getattr(job, name) is not None:
                line[name] = getattr(job, name)
        return line


@dataclass(frozen=True, slots=True)
class Grid:
    """The jobs of a prompt matrix, and how to draw their results.

    Example::

        grid = prompt_grid("{cat} as {style}", {"cat": "cat.png"},
                           {"style": ["ink", "oil"], "aspect_ratio": ["1:1", "16:9"]})
        len(grid.jobs)  # 4
        grid.write_jobs("out/jobs.jsonl")  # then: reve-remix batch out/jobs.jsonl --out out
        grid.draw(cards_from_ledger("out"), "out/grid.png")
    """

    axes: Mapping[str, tuple[str, ...]]
    jobs: tuple[GridJob, ...]

    def jobs_text(self) -> str:
        """The jobs as a batch file's text (JSONL, one job a line)."""
        return "".join(json.dumps(job.line(), ensure_ascii=False) + "\n" for job in self.jobs)

    def write_jobs(self, path: str | os.PathLike[str]) -> Path:
        """Write the jobs as a batch file (JSONL, one job a line) at ``path``; its path."""
        return write_atomic(path, self.jobs_text().encode("utf-8"))

    def cells(self, cards: Iterable[Card]) -> dict[tuple[str, ...], Card]:
        """The card of each cell that ``cards`` has, by the cell's values."""
        by_id = {card.id: card for card in cards}
        return {job.values: by_id[job.id] for job in self.jobs if job.id in by_id}

    def draw(self, cards: Iterable[Card], path: str | os.PathLike[str]) -> list[Path]:
        """Draw the results of ``cards`` (see :func:`draw_grid`); a cell not done says why."""
        cells = self.cells(cards)
        return draw_grid(
            {
                values: card.image if card.status == "done" else None
                for values, card in cells.items()
            },
            self.axes,
            path,
            notes={values: card.status for values, card in cells.items()},
        )


def job_lines(grid: Grid) -> tuple[list[JobLine], list[LineProblem]]:
    """The grid's jobs as the batch reads them from the file ``Grid.write_jobs`` writes: what a
    dry run plans with, the same lines a real run has (a helper of ``reve-remix grid``, kept off
    ``Grid``, whose users get public types only)."""
    return parse_jobs(grid.jobs_text(), Path.cwd())  # every local image path is absolute


def prompt_grid(
    prompt: str,
    images: Sequence[str | os.PathLike[str]] | Mapping[str, str | os.PathLike[str]],
    axes: Mapping[str, Sequence[str]],
    *,
    aspect_ratio: AspectRatio | AspectRatioValue | None = None,
    output_format: OutputFormat | OutputFormatValue | None = None,
    model: str | None = None,
    fit: bool = False,
    extra_body: Mapping[str, Any] | None = None,
) -> Grid:
    """The jobs of a prompt matrix: one per combination of the values of ``axes``.

    An axis is the name of a ``{NAME}`` placeholder of ``prompt`` or one of ``aspect_ratio``,
    ``model`` and ``output_format``; the other fields take the value given here (or the
    client's default); ``extra_body`` is sent with every job, as ``remix`` sends it. ``images``
    are paths or URLs, a list (``<img>N</img>`` in the prompt) or a mapping of names
    (``{name}``). Every job is checked as ``remix`` would check it (with
    ``fit``, as ``remix(..., fit=True)`` would), local images by their size and leading bytes;
    raises ``ValidationError`` before anything is sent.

    Example::

        grid = prompt_grid("{cat} painted in {style}", {"cat": "cat.png"},
                           {"style": ["ink", "oil"], "aspect_ratio": ["1:1", "16:9"]})
        [job.values for job in grid.jobs]
        # [('ink', '1:1'), ('ink', '16:9'), ('oil', '1:1'), ('oil', '16:9')]
    """
    if not isinstance(prompt, str):
        raise ValidationError(f"prompt: expected a string, got {type(prompt).__name__}")
    named = isinstance(images, Mapping)
    sources = _sources(images)
    if isinstance(extra_body, Mapping):  # written into the jobs file as JSON; else refused below
        extra_body = dict(extra_body) or None
    fixed = {"aspect_ratio": aspect_ratio, "output_format": output_format, "model": model}
    checked = _checked_axes(prompt, axes, fixed, names=list(sources) if named else [])
    jobs: list[GridJob] = []
    for values in itertools.product(*checked.values()):
        cell = dict(zip(checked, values, strict=True))
        fields = {name: cell.get(name, fixed[name]) for name in GRID_FIELDS}
        text = fill_fields(
            prompt, {k: v for k, v in cell.items() if k not in GRID_FIELDS}, escape_braces=named
        )
        job_images: list[str] | dict[str, str] = sources if named else list(sources.values())
        # An axis's values are any strings: typed as the spec's values here because the
        # fingerprint just below checks them as remix does, before a job is made of them.
        ratio = cast("AspectRatioValue | None", fields["aspect_ratio"])
        output = cast("OutputFormatValue | None", fields["output_format"])
        chosen = fields["model"]
        call = Call(text, job_images, ratio, output, chosen, fit=fit, extra_body=extra_body)
        try:
            # checked as remix checks it, and identified as the batch identifies it
            identity = fingerprint(call, DEFAULT_MODEL)
        except ValidationError as exc:
            where = ", ".join(f"{name}={value}" for name, value in cell.items())
            raise ValidationError(f"grid cell {where}: {exc}") from None
        assert identity is not None  # paths and URLs always have one
        jobs.append(
            GridJob(
                # by axis name, not flag order: the same cell keeps its id (and is not paid for
                # again) when the axes are given the other way round to turn the grid
                id=_job_id([cell[name] for name in sorted(cell)], identity),
                values=values,
                job=RemixJob(text, job_images, ratio, output, chosen, extra_body=extra_body),
            )
        )
    return Grid(axes=checked, jobs=tuple(jobs))


def _sources(images: object) -> dict[str, str]:
    """The images as strings by name (by index for a list), local paths made absolute."""
    if isinstance(images, str | bytes) or not isinstance(images, Mapping | Sequence):
        raise ValidationError(
            "images: a grid takes a list of paths or URLs, or a mapping of names to them; "
            f"got {type(images).__name__}"
        )
    items = images.items() if isinstance(images, Mapping) else enumerate(images)
    sources: dict[str, str] = {}
    for key, item in items:
        if not isinstance(item, str | os.PathLike):
            raise ValidationError(
                f"images[{key!r}]: a grid's images are paths or URLs (its jobs are written to a "
                f"batch file), got {type(item).__name__}"
            )
        text = os.fspath(item)
        sources[str(key)] = text if url_scheme(text) else str(Path(text).absolute())
    return sources


def _checked_axes(
    prompt: str,
    axes: Mapping[str, Sequence[str]],
    fixed: Mapping[str, str | None],
    *,
    names: Sequence[str],
) -> dict[str, tuple[str, ...]]:
    """``axes`` with each name and value checked; ``ValidationError`` listing what is wrong."""
    if not isinstance(axes, Mapping) or not axes:
        raise ValidationError("axes: give at least one axis, e.g. {'style': ['ink', 'oil']}")
    placeholders = field_names(prompt)
    problems: list[str] = []
    checked: dict[str, tuple[str, ...]] = {}
    for name, values in axes.items():
        where = f"axis {name!r}"
        if not isinstance(name, str) or not IMAGE_NAME.fullmatch(name):
            problems.append(f"{where}: not a name (letters, digits, _ or -, not first a digit)")
            continue
        if name in names:
            problems.append(f"{where} is the name of an image; give the axis another name")
            continue
        if name in GRID_FIELDS and fixed[name] is not None:
            problems.append(f"{where} is also given one value ({fixed[name]!r}); give one or other")
            continue
        if name not in GRID_FIELDS and name not in placeholders:
            problems.append(
                f"{where} is neither a {{{name}}} placeholder of the prompt nor one of "
                f"{', '.join(GRID_FIELDS)}"
            )
            continue
        if isinstance(values, str) or not isinstance(values, Sequence) or not values:
            problems.append(f"{where}: give a list of one or more values")
            continue
        bad = [value for value in values if not isinstance(value, str) or not value.strip()]
        repeated = sorted({value for value in values if list(values).count(value) > 1})
        if bad:
            problems.append(f"{where}: every value must be a non-blank string, got {bad[0]!r}")
        elif repeated:
            problems.append(f"{where}: {repeated[0]!r} is given twice")
        else:
            checked[name] = tuple(values)
    if problems:
        raise ValidationError("; ".join(problems))
    return checked


def _job_id(values: Sequence[str], identity: str) -> str:
    """``<axis values, slugged>-<digits of the job's fingerprint>``: readable and stable."""
    readable = "-".join(slugify(value, 24) for value in values)[:_ID_SLUG_CHARS].strip("-")
    return f"{readable}-{identity[:_ID_DIGITS]}"


# --- drawing -----------------------------------------------------------------------------------

CELL_PIXELS = 256  # the box each result is fitted into
_PAD = 8
_LINE = 22  # a line of label text, 16 px type
_MAX_ROW_LABEL = 200


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where a page's parts go: a title line, column labels, then rows with a label at left."""

    columns: int
    rows: int
    label_width: int
    title_width: int = 0

    @property
    def top(self) -> int:
        return _PAD + 2 * _LINE  # the title line, then the column labels

    def cell(self, column: int, row: int) -> tuple[int, int, int, int]:
        x = self.label_width + _PAD + column * (CELL_PIXELS + _PAD)
        y = self.top + row * (CELL_PIXELS + _PAD)
        return x, y, x + CELL_PIXELS, y + CELL_PIXELS

    def column_label(self, column: int) -> tuple[int, int, int, int]:
        x = self.cell(column, 0)[0]
        return x, self.top - _LINE, x + CELL_PIXELS, self.top

    def row_label(self, row: int) -> tuple[int, int, int, int]:
        y = self.cell(0, row)[1]
        return _PAD, y, self.label_width, y + CELL_PIXELS

    @property
    def size(self) -> tuple[int, int]:
        right, bottom = self.cell(self.columns - 1, self.rows - 1)[2:]
        return max(right, self.title_width + _PAD) + _PAD, bottom + _PAD


def draw_grid(
    cells: Mapping[tuple[str, ...], str | os.PathLike[str] | None],
    axes: Mapping[str, Sequence[str]],
    path: str | os.PathLike[str],
    *,
    notes: Mapping[tuple[str, ...], str] | None = None,
) -> list[Path]:
    """Draw the images of ``cells`` as a grid PNG at ``path``; the paths of the pages written.

    ``cells`` maps each combination of values (one per axis, in the order of ``axes``) to the
    image to show, or ``None``; a missing or empty cell shows its ``notes`` entry (say,
    ``failed``) or ``not done``. The first axis runs across, the second down, each value labelled;
    every combination of further axes is a page of its own (``grid.png``, ``grid-2.png``...),
    titled with its values. Needs Pillow: without it, ``ValidationError`` says what to install.

    Example::

        draw_grid({("ink", "1:1"): "out/a.png", ("oil", "1:1"): None},
                  {"style": ["ink", "oil"], "aspect_ratio": ["1:1"]}, "out/grid.png",
                  notes={("oil", "1:1"): "failed"})
    """
    image_module, draw_module, font = pillow()
    names = list(axes)
    if not names:
        raise ValidationError("axes: give at least one axis")
    columns, rows = list(axes[names[0]]), list(axes[names[1]]) if len(names) > 1 else [""]
    extra = list(itertools.product(*(axes[name] for name in names[2:])))
    target = Path(path)
    measure = draw_module.Draw(image_module.new("RGB", (1, 1)))
    widest = max((measure.textlength(label, font=font) for label in rows), default=0)
    titles = [_title(names, fixed) for fixed in extra]
    layout = _Layout(
        len(columns),
        len(rows),
        label_width=min(_MAX_ROW_LABEL, int(widest) + 2 * _PAD),
        title_width=int(max(measure.textlength(title, font=font) for title in titles)),
    )
    written: list[Path] = []
    for page, (fixed, title) in enumerate(zip(extra, titles, strict=True), start=1):
        canvas = image_module.new("RGB", layout.size, "white")
        pen = draw_module.Draw(canvas)
        pen.text((_PAD, _PAD), title, "black", font)
        for column, x_value in enumerate(columns):
            _label(pen, layout.column_label(column), x_value, font, centred=True)
            for row, y_value in enumerate(rows):
                if column == 0 and y_value:
                    _label(pen, layout.row_label(row), y_value, font, centred=False)
                key = (x_value, *((y_value,) if len(names) > 1 else ()), *fixed)
                note = (notes or {}).get(key, "not done")
                _paste(canvas, pen, layout.cell(column, row), cells.get(key), note, font)
        out = target if page == 1 else target.with_name(f"{target.stem}-{page}{target.suffix}")
        out.parent.mkdir(parents=True, exist_ok=True)
        canvas.save(out, "PNG")
        written.append(out)
    return written


def _title(names: Sequence[str], fixed: Sequence[str]) -> str:
    """A page's title: which axis runs which way, and the values of the further axes."""
    title = f"across: {names[0]}" + (f"   down: {names[1]}" if len(names) > 1 else "")
    return title + "".join(
        f"   {name} = {value}" for name, value in zip(names[2:], fixed, strict=True)
    )


def pillow() -> tuple[Any, Any, ImageFont.FreeTypeFont | ImageFont.ImageFont]:
    """PIL's Image and ImageDraw modules and the label font, or the one-line error."""
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError as exc:
        raise ValidationError(PILLOW_NEEDED) from exc
    try:
        font: ImageFont.FreeTypeFont | ImageFont.ImageFont = ImageFont.load_default(size=16)
    except TypeError:  # Pillow before 10.1: the small bitmap font
        font = ImageFont.load_default()
    return Image, ImageDraw, font


def _fit(pen: ImageDraw.ImageDraw, text: str, width: float, font: Any) -> str:  # noqa: ANN401
    """``text``, cut with an ellipsis to fit ``width`` pixels."""
    if pen.textlength(text, font=font) <= width:
        return text
    while text and pen.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def _paste(
    canvas: Image.Image,
    pen: ImageDraw.ImageDraw,
    box: tuple[int, int, int, int],
    source: str | os.PathLike[str] | None,
    note: str,
    font: Any,  # noqa: ANN401 - Pillow's two font classes
) -> None:
    """The image at ``source`` scaled to fit ``box``, centred; else a grey box saying ``note``."""
    from PIL import Image, ImageOps

    left, top, right, bottom = box
    if source is not None:
        try:
            with Image.open(source) as opened:
                upright = ImageOps.exif_transpose(opened).convert("RGB")
                image = ImageOps.contain(upright, (right - left, bottom - top))  # up or down
                x = left + (right - left - image.width) // 2
                y = top + (bottom - top - image.height) // 2
                canvas.paste(image, (x, y))
                return
        except Exception:  # unreadable: say so in its cell rather than lose the whole grid
            note = "unreadable image"
    pen.rectangle(box, fill="#e4e4e4", outline="#b0b0b0")
    _label(pen, box, note, font, centred=True, colour="#333")


def _label(
    pen: ImageDraw.ImageDraw,
    box: tuple[int, int, int, int],
    text: str,
    font: Any,  # noqa: ANN401 - Pillow's two font classes
    *,
    centred: bool,
    colour: str = "black",
) -> None:
    """``text`` on one line in ``box``, cut to fit, centred across (or not) and down."""
    left, top, right, bottom = box
    shown = _fit(pen, text, right - left - _PAD, font)
    x = left + (right - left - pen.textlength(shown, font=font)) / 2 if centred else left
    pen.text((x, (top + bottom - _LINE) / 2), shown, colour, font)
