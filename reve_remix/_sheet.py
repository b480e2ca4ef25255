"""The contact sheet of a batch: one card per job, written as a static ``DIR/index.html``.

A :class:`Card` is what the sheet shows of a job (``review.cards_from_ledger`` makes them from a
batch's ledger); :func:`write_sheet` writes the page. The page is self-contained so that it opens
from ``file://`` with the network off and can be zipped with the folder: its CSS is inline, it
has no script and no web font, and every image it shows is a file under ``DIR`` (results are
there already; local references are copied into ``DIR/.review/``, as small thumbnails when
Pillow is installed). A reference given as a URL is a link, never loaded.

Filtering by status and the choice of order work without a script: radio buttons and CSS
``:has()`` show one set of cards or another. The order by status is a second list, grouped under
a heading per status, rather than the same cards moved by CSS, so that the reading and focus
order of a screen reader or a keyboard is the order on screen.
"""

from __future__ import annotations

import hashlib
import html
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from ._exceptions import ValidationError
from ._files import write_atomic
from ._images import url_scheme
from ._lifecycle import GENERATED_NOT_SAVED, MAY_HAVE_BEEN_GENERATED
from ._money import usd
from ._tags import marked_spans

SHEET_NAME = "index.html"
ASSETS_DIR = ".review"
"""Where the sheet's copies of references live, under ``DIR``; no job's output can be here (a
batch refuses hidden output names)."""
THUMBNAIL_PIXELS = 256  # the longer side of a reference's thumbnail

CardStatus = Literal["failed", "flagged", "ambiguous", "sent", "held", "paid", "pending", "done"]
"""What a card says of its job; in this order when the sheet groups cards by status (the ones
that need a decision first)."""

STATUS_ORDER: tuple[CardStatus, ...] = (
    "failed",
    "flagged",
    "ambiguous",
    "sent",
    "held",
    "paid",
    "pending",
    "done",
)
STATUS_MEANING: dict[CardStatus, str] = {
    "done": "the image is saved",
    "paid": f"{GENERATED_NOT_SAVED}: the next run saves it, from its URL or its spooled "
    "bytes (not generated again)",
    "held": "generated, but its response had no image: --regenerate-paid generates it again "
    "(billed again)",
    "ambiguous": f"{MAY_HAVE_BEEN_GENERATED}: not sent again unless --resend-ambiguous",
    "sent": "the request went out and no outcome is recorded: still running, or the run ended "
    f"without one ({MAY_HAVE_BEEN_GENERATED}: not sent again unless --resend-ambiguous)",
    "flagged": "refused by the content policy: change the prompt or the images",
    "failed": "nothing was generated: the next run sends it again",
    "pending": "not sent yet",
}
BILLED: dict[CardStatus, Literal["yes", "maybe"]] = {
    "done": "yes",
    "paid": "yes",
    "held": "yes",
    "ambiguous": "maybe",
    "sent": "maybe",
    "flagged": "maybe",
}
"""The statuses whose job was, or may have been, paid for (as ``JobState.may_have_been_billed``
says: a provider may generate first and moderate after, so a refusal may have been billed)."""


@dataclass(frozen=True, slots=True)
class Reference:
    """A reference image of a job: its ``label`` in the prompt and where it is.

    ``label`` is ``<img>N</img>`` for a list of images, ``{name}`` for named ones; ``source`` is
    a local path or a URL, as the job gave it.
    """

    label: str
    source: str


@dataclass(frozen=True, slots=True)
class Card:
    """What the contact sheet shows of one job.

    ``status`` is one of :data:`STATUS_ORDER`; ``image`` the saved result (a path, inside the
    sheet's folder or not); ``url`` where a paid image not saved yet can be fetched; ``cost`` the
    job's cost in USD when a price is known and the job was (or may have been) paid for.

    Example::

        Card(id="cat", status="done", line=1, prompt="<img>0</img> as ink",
             references=(Reference("<img>0</img>", "cat.png"),), image=Path("out/cat.png"))
    """

    id: str
    status: CardStatus
    line: int | None = None
    prompt: str | None = None
    references: tuple[Reference, ...] = ()
    image: Path | None = None
    url: str | None = None
    revised_prompt: str | None = None
    request_id: str | None = None
    error: str | None = None
    cost: Decimal | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUS_MEANING:
            raise ValidationError(
                f"Card status: one of {', '.join(STATUS_ORDER)}; got {self.status!r}"
            )


def write_sheet(out_dir: Path, cards: Sequence[Card], *, title: str | None = None) -> Path:
    """Write ``out_dir/index.html`` showing ``cards`` (in the order given); return its path.

    References are copied into ``out_dir/.review/`` (thumbnails with Pillow); copies no card
    uses any more are removed. The page is written atomically: a browser never sees half of it.
    """
    assets = _Assets(out_dir)
    rendered = [_CardHTML(card, index, assets) for index, card in enumerate(cards)]
    assets.remove_unused()
    page = _page(title or f"reve-remix review: {out_dir.resolve().name}", rendered)
    # A server's lone surrogate (a revised prompt) is shown escaped, never a reason to fail.
    return write_atomic(out_dir / SHEET_NAME, page.encode("utf-8", "backslashreplace"))


# --- files the page shows -----------------------------------------------------------------------


class _Assets:
    """The files of one sheet: results linked where they are, references copied under DIR."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.root = out_dir.resolve()
        self.folder = out_dir / ASSETS_DIR
        self.used: set[Path] = set()
        # A reference shared by many jobs is resolved, read and copied once.
        self._references: dict[tuple[Path, bool], str] = {}

    def href(self, path: Path) -> str:
        """A relative URL of ``path`` for the page (a copy under DIR if it is outside)."""
        resolved = path.resolve()
        if not resolved.is_relative_to(self.root):
            resolved = self._copy(resolved, thumbnail=False)
        return _relative_url(resolved.relative_to(self.root))

    def link(self, path: Path) -> str:
        """A URL of ``path`` to link to, not load: relative inside DIR, else ``file://``."""
        if (path, False) not in self._references:
            resolved = path.resolve()
            self._references[path, False] = (
                _relative_url(resolved.relative_to(self.root))
                if resolved.is_relative_to(self.root)
                else resolved.as_uri()
            )
        return self._references[path, False]

    def thumbnail(self, path: Path) -> str:
        """A relative URL of a small copy of the image at ``path``."""
        if (path, True) not in self._references:
            copy = self._copy(path.resolve(), thumbnail=True)
            self._references[path, True] = _relative_url(copy.relative_to(self.root))
        return self._references[path, True]

    def _copy(self, source: Path, *, thumbnail: bool) -> Path:
        data = source.read_bytes()
        digest = hashlib.sha256(data).hexdigest()[:16]
        made = _thumbnail(data) if thumbnail else None
        suffix = made[1] if made else source.suffix.lower()
        target = self.folder.resolve() / f"{digest}{'-thumb' if made else ''}{suffix}"
        self.used.add(target)
        if not target.exists():
            write_atomic(target, made[0] if made else data)
        return target

    def remove_unused(self) -> None:
        if not self.folder.is_dir():
            return
        for path in self.folder.resolve().iterdir():
            if path.is_file() and path not in self.used:
                path.unlink(missing_ok=True)


def _relative_url(path: Path) -> str:
    """``path`` as a relative URL; a file name that is not UTF-8 is quoted as the bytes it is."""
    return quote(path.as_posix(), errors="surrogateescape")


def _thumbnail(data: bytes) -> tuple[bytes, str] | None:
    """A small PNG (with transparency) or JPEG of ``data``, or ``None`` without Pillow or when
    Pillow cannot read it (the browser is then shown the file as it is)."""
    try:
        from PIL import Image, ImageOps
    except ImportError:
        return None
    import io

    try:
        with Image.open(io.BytesIO(data)) as opened:
            image = ImageOps.exif_transpose(opened)
            image.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
            out = io.BytesIO()
            if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                image.save(out, "PNG", optimize=True)
                return out.getvalue(), ".png"
            image.convert("RGB").save(out, "JPEG", quality=85)
            return out.getvalue(), ".jpg"
    except Exception:  # any decoding failure (a bomb, a truncated file): show it as it is
        return None


# --- the page ---------------------------------------------------------------------------------


def _text(value: object) -> str:
    return html.escape(str(value), quote=True)


def highlighted(prompt: str) -> str:
    """``prompt`` as HTML, its image tags and ``{name}`` fields wrapped in ``<mark>``.

    Example::

        highlighted("Put {cat} <b>here</b>")
        # 'Put <mark class="tag">{cat}</mark> &lt;b&gt;here&lt;/b&gt;'
    """
    pieces: list[str] = []
    last = 0
    for start, end in marked_spans(prompt):
        pieces += [
            _text(prompt[last:start]),
            f'<mark class="tag">{_text(prompt[start:end])}</mark>',
        ]
        last = end
    return "".join(pieces) + _text(prompt[last:])


class _CardHTML:
    """A card's figure and details, rendered once and placed in both orders of the page."""

    def __init__(self, card: Card, index: int, assets: _Assets) -> None:
        self.card = card
        self.index = index
        self.body = _card_body(card, assets)

    def article(self, view: str, level: int) -> str:
        card = self.card
        key = f"{view}{self.index}"
        where = f"line {card.line}" if card.line is not None else "not in the jobs file"
        return (
            f'<article class="card s-{card.status}" data-id="{_text(card.id)}" '
            f'data-status="{card.status}" aria-labelledby="{key}">'
            f'<h{level} id="{key}"><span class="where">{_text(where)}</span> '
            f'<code class="id">{_text(card.id)}</code> '
            f'<span class="status">{card.status}</span></h{level}>'
            f"{self.body}</article>"
        )


def _card_body(card: Card, assets: _Assets) -> str:
    parts = [_result(card, assets)]
    if card.references:
        items = "".join(_reference(ref, card, assets) for ref in card.references)
        parts.append(f'<ul class="refs" aria-label="reference images">{items}</ul>')
    rows: list[tuple[str, str]] = []
    if card.prompt is not None:
        rows.append(("prompt", f'<span class="prompt">{highlighted(card.prompt)}</span>'))
    else:
        rows.append(("prompt", '<span class="unknown">not recorded in the ledger</span>'))
    if card.revised_prompt:
        rows.append(("revised", _text(card.revised_prompt)))
    if card.status != "done":
        rows.append(("status", _text(STATUS_MEANING[card.status])))
    if card.error:
        rows.append(("error", f'<span class="error">{_text(card.error)}</span>'))
    if card.url and card.status != "done":
        rows.append(("url", f'<a href="{_text(card.url)}" rel="noreferrer">{_text(card.url)}</a>'))
    if card.request_id:
        rows.append(("request id", f"<code>{_text(card.request_id)}</code>"))
    if card.cost is not None and card.status in BILLED:
        maybe = " if it was billed" if BILLED[card.status] == "maybe" else ""
        rows.append(("cost", f"{usd(card.cost)}{maybe}"))
    details = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in rows)
    return f"{''.join(parts)}<dl>{details}</dl>"


def _short(text: str | None, limit: int = 160) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _result(card: Card, assets: _Assets) -> str:
    if card.image is None or not card.image.is_file():
        missing = (
            "the image file is missing"
            if card.image is not None
            else _NO_IMAGE.get(card.status, "no image")
        )
        return f'<div class="result empty" role="img" aria-label="{missing}">{missing}</div>'
    href = assets.href(card.image)
    alt = f"result of {card.id}" + (f": {_short(card.prompt)}" if card.prompt else "")
    return (
        f'<a class="result" href="{href}" title="open the full-size image">'
        f'<img src="{href}" alt="{_text(alt)}" loading="lazy" decoding="async"></a>'
    )


_NO_IMAGE: dict[CardStatus, str] = {"pending": "not sent yet", "paid": "not saved yet"}


def _reference(ref: Reference, card: Card, assets: _Assets) -> str:
    label = f'<code class="tag">{_text(ref.label)}</code>'
    name = ref.source.rsplit("/", 1)[-1] or ref.source
    if url_scheme(ref.source):
        # A URL is shown, never loaded: the sheet works offline and tells no server it is open.
        shown = _text(_short(ref.source, 60))
        link = (
            f'<a href="{_text(ref.source)}" rel="noreferrer">{shown}</a>'
            if url_scheme(ref.source) in ("http", "https")
            else shown
        )
        return f'<li class="ref url">{label} {link}</li>'
    path = Path(ref.source)
    if not path.is_file():
        return f'<li class="ref missing">{label} {_text(name)} (file not found)</li>'
    try:
        thumb, full = assets.thumbnail(path), assets.link(path)
    except OSError as exc:
        return f'<li class="ref missing">{label} {_text(name)} ({_text(exc.strerror or exc)})</li>'
    alt = f"reference {ref.label} of {card.id}: {name}"
    return (
        f'<li class="ref"><a href="{full}" title="open {_text(name)}">'
        f'<img src="{thumb}" alt="{_text(alt)}" loading="lazy"></a>{label}</li>'
    )


def _page(title: str, cards: Sequence[_CardHTML]) -> str:
    counts = Counter(rendered.card.status for rendered in cards)
    present = [status for status in STATUS_ORDER if counts[status]]
    show = [_radio("show", "all", f"all ({len(cards)})", checked=True)]
    show += [_radio("show", status, f"{status} ({counts[status]})") for status in present]
    sort = [
        _radio("sort", "line", "line", checked=True),
        _radio("sort", "status", "status"),
    ]
    by_line = "".join(rendered.article("l", 2) for rendered in cards)
    groups = "".join(
        f'<section class="group g-{status}" aria-labelledby="g-{status}">'
        f'<h2 id="g-{status}">{status} ({counts[status]})</h2>'
        f'<div class="cards">'
        + "".join(r.article("s", 3) for r in cards if r.card.status == status)
        + "</div></section>"
        for status in present
    )
    empty = "" if cards else '<p class="none">This folder has no jobs yet.</p>'
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="reve-remix">
<title>{_text(title)}</title>
<style>{_css(present)}</style>
</head>
<body>
<header>
<h1>{_text(title)}</h1>
<p class="summary">{_summary(cards, counts)}</p>
<div class="controls">
<fieldset><legend>Show</legend>{"".join(show)}</fieldset>
<fieldset><legend>Order by</legend>{"".join(sort)}</fieldset>
</div>
</header>
<main>
{empty}<div class="cards by-line">{by_line}</div>
<div class="by-status">{groups}</div>
</main>
</body>
</html>
"""


def _radio(name: str, value: str, label: str, *, checked: bool = False) -> str:
    key = f"{name}-{value}"
    mark = " checked" if checked else ""
    return f'<input type="radio" name="{name}" id="{key}" value="{value}"{mark}><label for="{key}">{label}</label>'  # noqa: E501 - one element


def _summary(cards: Sequence[_CardHTML], counts: Counter[CardStatus]) -> str:
    words = ", ".join(f"{counts[status]} {status}" for status in STATUS_ORDER if counts[status])
    text = f"{len(cards)} job{'s' if len(cards) != 1 else ''}" + (f": {words}" if words else "")
    billed = [r.card for r in cards if r.card.cost is not None and r.card.status in BILLED]
    if billed:
        spent = sum((c.cost or Decimal() for c in billed if BILLED[c.status] == "yes"), Decimal())
        maybe = sum((c.cost or Decimal() for c in billed if BILLED[c.status] == "maybe"), Decimal())
        text += f"; cost {usd(spent)}" + (f" (up to {usd(spent + maybe)})" if maybe else "")
    return _text(text)


def _css(statuses: Iterable[CardStatus]) -> str:
    filters = "".join(
        f"body:has(#show-{s}:checked) .card:not(.s-{s}),"
        f"body:has(#show-{s}:checked) .group:not(.g-{s}){{display:none}}"
        for s in statuses
    )
    return _BASE_CSS + filters


# Colours keep a contrast of at least 4.5:1 on their backgrounds; the status is also a word,
# never a colour alone.
_BASE_CSS = """
:root{color-scheme:light;font-family:system-ui,sans-serif;line-height:1.4;color:#1b1b1b;
background:#f4f4f2}
body{margin:0}header{padding:1rem 1.5rem;background:#fff;border-bottom:1px solid #ccc}
h1{font-size:1.3rem;margin:0 0 .3rem}.summary{margin:0 0 .6rem}
.controls{display:flex;flex-wrap:wrap;gap:1rem}
fieldset{border:1px solid #bbb;border-radius:6px;padding:.3rem .6rem;margin:0}
legend{font-weight:600;padding:0 .3rem}
fieldset label{margin:0 .8rem 0 .2rem;cursor:pointer}
main{padding:1rem 1.5rem}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:1rem}
.by-status{display:none}
body:has(#sort-status:checked) .by-line{display:none}
body:has(#sort-status:checked) .by-status{display:block}
.group h2{font-size:1.1rem;margin:1rem 0 .5rem}
.card{background:#fff;border:1px solid #ccc;border-left:6px solid #767676;border-radius:6px;
padding:.6rem;overflow-wrap:anywhere}
.card h2,.card h3{font-size:.95rem;margin:0 0 .5rem;display:flex;gap:.5rem;align-items:center;
flex-wrap:wrap}
.where{color:#555;font-weight:400}.id{font-weight:600}
.status{margin-left:auto;padding:.05rem .5rem;border-radius:1rem;font-size:.8rem;color:#fff;
background:#555}
.s-done{border-left-color:#1e7b34}.s-done .status{background:#1e7b34}
.s-paid{border-left-color:#0b5cad}.s-paid .status{background:#0b5cad}
.s-held{border-left-color:#8a4b00}.s-held .status{background:#8a4b00}
.s-ambiguous{border-left-color:#8a4b00}.s-ambiguous .status{background:#8a4b00}
.s-sent{border-left-color:#8a4b00}.s-sent .status{background:#8a4b00}
.s-flagged{border-left-color:#7a2d8c}.s-flagged .status{background:#7a2d8c}
.s-failed{border-left-color:#b3261e}.s-failed .status{background:#b3261e}
.s-pending .status{background:#555}
.result{display:block;background:#e9e9e6;border-radius:4px;text-align:center}
.result img{display:block;width:100%;height:auto;max-height:260px;object-fit:contain}
.result.empty{padding:3rem 1rem;color:#555}
.refs{list-style:none;display:flex;flex-wrap:wrap;gap:.5rem;padding:0;margin:.5rem 0}
.ref{display:flex;flex-direction:column;align-items:center;gap:.2rem;font-size:.8rem;
max-width:100%}
.ref img{width:64px;height:64px;object-fit:cover;border-radius:4px;border:1px solid #ccc}
.ref.url,.ref.missing{flex-direction:row;flex-wrap:wrap}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem .6rem;margin:.5rem 0 0;
font-size:.9rem}
dt{color:#555}dd{margin:0}
mark.tag,code.tag{background:#fde68a;color:#1b1b1b;border-radius:3px;padding:0 .15rem;
font-family:ui-monospace,monospace;font-size:.85em}
.error{color:#b3261e}.unknown{color:#555;font-style:italic}
a{color:#0b5cad}
a:focus-visible,input:focus-visible{outline:3px solid #0b5cad;outline-offset:2px}
input:focus-visible+label{text-decoration:underline}
@media (prefers-reduced-motion:no-preference){a img{transition:opacity .15s}a:hover img{opacity:.9}}
"""
