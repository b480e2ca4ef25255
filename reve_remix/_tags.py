"""Helpers for the ``<img>N</img>`` tags with which a prompt points at its reference images.

The API reads ``<img>N</img>`` in a prompt as "image N of ``image_urls``", counting from 0; a
request carries at most :data:`MAX_IMAGES` images (the spec's ``maxItems``), so N runs
from 0 to ``MAX_IMAGES - 1``. A tag the server does not read as meant
fails silently: the model sees odd text, guesses, and the generation is billed all the same. So
this module finds such tags before anything is sent:

- :func:`img` writes a tag, :func:`referenced_indices` reads the tags of a prompt back;
- :func:`find_tag_problems` reports malformed or suspicious tags with their positions, and
  :func:`check_prompt` (run by the client before every request) raises on the errors among them;
- :func:`bind_images` lets a prompt name its images (``"Put {cat} on {sofa}"``) rather than
  number them, and :func:`reindex` renumbers the tags when the list of images changes.

How tags are read
-----------------
A *marker* is ``<img>``, ``</img>``, ``<ref>`` or ``</ref>`` in any letter case, written without
spaces inside the angle brackets (``< img >`` is plain text). An opening marker pairs with the
closing marker right after it; the text between the two is the tag's *body*. An opening marker
followed by another opening marker, or by nothing, is *unclosed*; a closing marker that pairs
with nothing is *stray*. A tag is *well-formed* when both markers are ``img`` (any case) and the
body is a decimal number, optionally with whitespace around it: that is what
:func:`referenced_indices` returns and what :func:`reindex` renumbers. Anything else is left as
written and reported by :func:`find_tag_problems`.

Errors and warnings
-------------------
OneRouter documents exactly one spelling, ``<img>N</img>``, and says nothing of how the server
reads anything else. The rule is therefore about what the writer obviously meant:

- **error**: the server cannot read the tag as a reference to the image the writer meant. The
  tag name or the number is lost (``<ref>``, a body that is not a number, an unclosed or stray
  marker), or the number names an image the request does not have. Sending it would pay for a
  generation whose reference is ignored or points nowhere, so :func:`check_prompt` refuses it.
- **warning**: the tag keeps the documented name and a number, so a lenient reader (one that
  ignores case, as HTML does, and reads `` 01 `` as 1, as ``int()`` does) reads it as meant; but
  it is not the documented spelling. The request is sent; the client logs the warning.

======================  =======  =======================================================
Written                 Outcome  Why, and what to write instead
======================  =======  =======================================================
``<img>1</img>``        fine     the documented spelling
``<img>a</img>``        error    the body is not an image index: ``<img>0</img>``
``<img></img>``         error    same: there is no index at all
``<img>1`` (no closer)  error    unclosed: ``<img>1</img>``
``</img>`` alone        error    stray closer: delete it, or open it with ``<img>``
``<ref>1</ref>``        error    Reve's own API's tag, not OneRouter's: ``<img>1</img>``
``<img>1</ref>``        error    the markers do not match: ``<img>1</img>``
``<img>4</img>``        error    out of range: no request has a fifth image (4 today)
``<img>2</img>``        error    out of range when ``image_count`` is 2 or less
``<IMG>1</IMG>``        warning  not lower case: ``<img>1</img>``
``<img> 1 </img>``      warning  whitespace around the index: ``<img>1</img>``
``<img>01</img>``       warning  leading zero: ``<img>1</img>``
======================  =======  =======================================================

Every function here takes time linear in the length of the prompt (each regular expression in
this module is fixed-length or possessive, so none can backtrack), and a hostile or huge prompt
cannot stall the client.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal, NoReturn, TypeVar

from reve_remix._exceptions import ValidationError
from reve_remix._spec import spec

__all__ = [
    "MAX_IMAGES",
    "MIN_IMAGES",
    "TagProblem",
    "bind_images",
    "check_image_count",
    "check_prompt",
    "find_tag_problems",
    "img",
    "referenced_indices",
    "reindex",
]

MIN_IMAGES = spec().min_images
"""How many reference images a request carries at least (the spec's ``minItems``)."""
MAX_IMAGES = spec().max_images
"""How many reference images a request carries at most (the spec's ``maxItems``); tag indices
run from 0 to ``MAX_IMAGES - 1``."""

_T = TypeVar("_T")

_MARKER = re.compile(r"<(/?)(img|ref)>", re.IGNORECASE | re.ASCII)
_NUMBER_BODY = re.compile(r"\s*+([0-9]++)\s*+", re.ASCII)
_NUMBER_AFTER_UNCLOSED = re.compile(r"\s*+([0-9]++)", re.ASCII)
# int() accepts this many digits under any interpreter setting; a longer "index" is no number.
_MAX_DIGITS = sys.int_info.str_digits_check_threshold
_BLANKS = " \t"

_BRACE = re.compile(r"\{\{|\}\}|\{([^{}]*+)\}|[{}]")
IMAGE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*+")
"""The names ``{name}`` placeholders, ``bind_images`` and the CLI's ``-i NAME=IMAGE`` accept."""
_POSITIONAL = re.compile(r"[0-9]*+")
_NAME_RULE = "names start with a letter or _ and go on with letters, digits, _ or -"

_PREVIEW_CHARS = 40
_LISTED_PROBLEMS = 10


@functools.cache
def _all_tags_fine(count: int) -> re.Pattern[str]:
    """A prompt whose only markers are canonical tags below ``count``: nothing for _scan to report.

    Compiled at first use, for the image count of the call, rather than for every count on import.
    """
    indices = "|".join(map(str, range(count)))
    return re.compile(rf"(?:[^<]++|<(?!/?(?i:img|ref)>)|<img>(?:{indices})</img>)*+", re.ASCII)


@dataclass(frozen=True, slots=True)
class TagProblem:
    """A malformed or suspicious image tag found in a prompt.

    ``prompt[start:end] == text`` (0-based offsets, as for slicing). ``severity`` is ``"error"``
    when the server cannot read the tag as the reference the writer meant (the client refuses to
    send the prompt) and ``"warning"`` when it probably can but the spelling is not the
    documented one. ``message`` says what is wrong and what to write instead; ``str()`` adds the
    severity and the position, ready for a log line.

    >>> problem = find_tag_problems("Put <IMG>1</IMG> here")[0]
    >>> problem.start, problem.end, problem.text, problem.severity
    (4, 16, '<IMG>1</IMG>', 'warning')
    >>> print(problem)
    warning at position 4: `<IMG>1</IMG>`: the tag name is not lower case. Write <img>1</img>.
    """

    start: int
    end: int
    text: str
    severity: Literal["error", "warning"]
    message: str

    def __str__(self) -> str:
        return f"{self.severity} at position {self.start}: {self.message}"


@dataclass(frozen=True, slots=True)
class _Tag:
    """One tag-like construct: a paired tag, or a marker that pairs with nothing.

    ``opening``/``closing`` are the marker names as written (``None`` when that marker is
    missing). ``index`` is the number in the body, or right after an unclosed opener, and
    ``digits`` is where that number is written.
    """

    start: int
    end: int
    opening: str | None
    closing: str | None
    index: int | None = None
    digits: tuple[int, int] = (0, 0)
    padded: bool = False

    @property
    def well_formed(self) -> bool:
        return (
            self.index is not None
            and self.opening is not None
            and self.closing is not None
            and self.opening.lower() == self.closing.lower() == "img"
        )


def img(index: int) -> str:
    """The tag that points at image ``index`` (0-based) of the request's images.

    Safer than typing the tag: a typo or an impossible index fails here, not at the model.

    >>> img(0)
    '<img>0</img>'
    >>> f"Put the cat of {img(0)} on the sofa of {img(1)}"
    'Put the cat of <img>0</img> on the sofa of <img>1</img>'
    >>> img(-1)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
      ...
    reve_remix.ValidationError: img: the index must be an int from 0 to ..., got -1
    """
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < MAX_IMAGES:
        raise ValidationError(
            f"img: the index must be an int from 0 to {MAX_IMAGES - 1}, got {index!r}"
        )
    return f"<img>{index}</img>"


def referenced_indices(prompt: str) -> list[int]:
    """The image indices that the prompt's well-formed tags point at, in order of appearance.

    Repeats are kept. Non-canonical but well-formed tags (``<IMG>1</IMG>``, ``<img> 1 </img>``)
    count; malformed ones (``<img>a</img>``, ``<ref>1</ref>``, an unclosed ``<img>1``) do not.
    Out-of-range indices are returned as written: :func:`find_tag_problems` judges range.

    >>> referenced_indices("Blend <img>1</img> into <img>0</img>, keep <img>1</img>'s light")
    [1, 0, 1]
    >>> referenced_indices("<ref>1</ref> and <img>a</img> are not references")
    []
    """
    return [index for _, index in _references(_text(prompt, "prompt"))]


def find_tag_problems(prompt: str, image_count: int | None = None) -> list[TagProblem]:
    """Every malformed or suspicious image tag in ``prompt``, in order of position.

    Give ``image_count`` (the number of images the request will carry) to also catch tags that
    point past the last image; without it only indices from MAX_IMAGES on are out of range. An
    out-of-range index is always an error. The module docstring lists every case.

    >>> text = "Put <img>0</img> on <img>a</img>, lit like <IMG>1</IMG>"
    >>> [(p.severity, p.start, p.text) for p in find_tag_problems(text)]
    [('error', 20, '<img>a</img>'), ('warning', 43, '<IMG>1</IMG>')]
    >>> print(find_tag_problems("Put <img>0</img> on <img>1</img>", image_count=1)[0].message)
    `<img>1</img>`: there is no image 1: 1 image given, so the only index is 0. Write <img>0</img>.
    """
    text = _text(prompt, "prompt")
    count = _image_count(image_count)
    problems = (_problem(text, tag, count) for tag in _scan(text))
    return [problem for problem in problems if problem is not None]


def check_prompt(prompt: str, image_count: int) -> list[TagProblem]:
    """Refuse a prompt the server cannot read as meant; return its warnings, to be logged.

    The client calls this before every request, so that a malformed tag costs an exception
    rather than a billed generation that ignores the reference. Raises ``ValidationError``
    when the prompt is empty or blank, or lists every error-severity problem with its position
    and its fix.

    >>> check_prompt("Put <img>0</img> on <IMG>1</IMG>", image_count=2)[0].text
    '<IMG>1</IMG>'
    >>> check_prompt("Put <img>0</img> on <img>2</img>", image_count=2)
    Traceback (most recent call last):
      ...
    reve_remix.ValidationError: prompt: at position 20: `<img>2</img>`: there is no \
image 2: 2 images given, so indices run from 0 to 1. Write <img>N</img> with N from 0 to 1.
    """
    text = _text(prompt, "prompt")
    if not text.strip():
        raise ValidationError("prompt: must not be empty or blank")
    count = _image_count(image_count)
    if count is not None and _all_tags_fine(count).fullmatch(text):
        return []  # the common case, in one pass: the client runs this on every call
    problems = find_tag_problems(text, image_count)
    errors = [f"at position {p.start}: {p.message}" for p in problems if p.severity == "error"]
    if errors:
        _fail("prompt", errors)
    return [problem for problem in problems if problem.severity == "warning"]


def bind_images(prompt: str, images: Mapping[str, _T]) -> tuple[str, list[_T]]:
    """Turn a prompt that names its images into one that numbers them, and the images in order.

    ``{name}`` becomes ``<img>N</img>``, N being the order in which names first appear, so a
    prompt can be edited, and images added or reordered, without renumbering anything by hand.
    Images the prompt never names are still sent, after the named ones, in mapping order: an
    untagged reference image still steers the result (its style, its palette).

    The syntax is a strict subset of ``str.format``'s, parsed here rather than by it (no
    attribute lookups, no format specs): ``{{`` and ``}}`` write literal braces; names start
    with a letter or ``_`` and go on with letters, digits, ``_`` or ``-``; a name used twice
    points at the same image. Raises ``ValidationError``, listing every problem with its
    position, for an unknown name (the known ones are listed), a lone ``{`` or ``}``, a
    positional ``{}`` or ``{0}``, a field that is not a name, any ``<img>``/``<ref>`` tag in the
    prompt (numbers and names mixed are ambiguous), an empty prompt, or a mapping that is
    empty, holds more than MAX_IMAGES images or has keys that are not names.

    >>> prompt, images = bind_images(
    ...     "Put {cat} on {sofa}; light {{soft}} like {cat}",
    ...     {"sofa": "sofa.jpg", "cat": "cat.png", "mood": "mood.webp"},
    ... )
    >>> prompt
    'Put <img>0</img> on <img>1</img>; light {soft} like <img>0</img>'
    >>> images
    ['cat.png', 'sofa.jpg', 'mood.webp']
    """
    text = _text(prompt, "prompt")
    names = _image_names(images)
    if not text.strip():
        raise ValidationError("prompt: must not be empty or blank")
    problems = [
        (
            tag.start,
            f"`{_preview(text[tag.start : tag.end])}` at position {tag.start}: numbered tags"
            " cannot be mixed with named images; write {name} for every image",
        )
        for tag in _scan(text)
    ]
    first_seen: dict[str, int] = {}
    pieces: list[str] = []
    last = 0
    for match in _BRACE.finditer(text):
        pieces.append(text[last : match.start()])
        last = match.end()
        token, field = match.group(), match.group(1)
        if token in ("{{", "}}"):
            pieces.append(token[0])
        elif field in names:
            pieces.append(img(first_seen.setdefault(field, len(first_seen))))
        else:
            why = _field_problem(token, field, names)
            problems.append(
                (match.start(), f"`{_preview(token)}` at position {match.start()}: {why}")
            )
    pieces.append(text[last:])
    if problems:
        _fail("prompt", [problem for _, problem in sorted(problems)])
    order = [*first_seen, *(name for name in names if name not in first_seen)]
    return "".join(pieces), [images[name] for name in order]


def refuse_image_names(prompt: str) -> None:
    """Refuse ``{name}`` in a prompt whose images are a list: nothing would replace it.

    Names are bound only when the images are a mapping; with a list, ``{cat}`` would reach the
    model as the five characters ``{cat}``, and the generation would be paid for anyway.

    >>> refuse_image_names("<img>0</img> in {{braces}}")  # no name: fine
    >>> refuse_image_names("Put {cat} on <img>0</img>")
    Traceback (most recent call last):
      ...
    reve_remix.ValidationError: prompt: `{cat}` at position 4 names an image, but \
the images are a list, which names none; pass a mapping of names to images, such as {'cat': ...}
    """
    text = _text(prompt, "prompt")
    if "{" not in text:  # no name without a brace: most prompts, checked on every call
        return
    problems = [
        f"`{_preview(match.group())}` at position {match.start()} names an image, but the images"
        f" are a list, which names none; pass a mapping of names to images, such as"
        f" {{{match[1]!r}: ...}}"
        for match in _BRACE.finditer(text)
        if match[1] is not None and IMAGE_NAME.fullmatch(match[1])
    ]
    if problems:
        _fail("prompt", problems)


def reindex(prompt: str, order: Sequence[int], *, drop_references: bool = False) -> str:
    """Renumber a prompt's tags after its list of images was reordered or shortened.

    ``order`` lists the old indices in their new order: ``[2, 0]`` means the new image 0 is the
    old image 2, the new image 1 the old image 0, and the old image 1 is gone. Only the digits
    of well-formed tags change; their spelling (case, padding, zero-padding) is kept, and
    malformed tags are left as written for :func:`check_prompt` to report.

    A tag pointing at an image that ``order`` leaves out raises ``ValidationError``, unless
    ``drop_references=True``: then the tag is deleted together with the spaces and tabs just
    before it and, if that leaves it at the start of a line, the spaces and tabs just after it,
    so ``"Put <img>1</img> on it"`` becomes ``"Put on it"`` and no double space is left. (If
    deleting a tag would pair an unclosed ``<img>`` before it with a stray ``</img>`` after it,
    this raises ``ValidationError`` instead of creating a tag nobody wrote.)

    >>> reindex("Put <img>0</img> on <img>2</img>", [2, 0])
    'Put <img>1</img> on <img>0</img>'
    >>> reindex("Put <img>0</img> on <img>1</img>, in <img>2</img>'s style", [2, 0],
    ...         drop_references=True)
    "Put <img>1</img> on, in <img>0</img>'s style"
    """
    text = _text(prompt, "prompt")
    new_index = _new_indices(order)
    pieces: list[str] = []
    missing: list[str] = []
    written: list[int] = []
    dropped = False
    last = 0
    strip_next = False
    for tag, old in _references(text):
        between = text[last : tag.start]
        pieces.append(between.lstrip(_BLANKS) if strip_next else between)
        strip_next = False
        last = tag.end
        new = new_index.get(old)
        if new is not None:
            start, end = tag.digits
            digits = str(new).zfill(end - start)
            pieces.append(f"{text[tag.start : start]}{digits}{text[end : tag.end]}")
            written.append(new)
        elif drop_references:
            _strip_trailing_blanks(pieces)
            strip_next = not pieces or pieces[-1].endswith("\n")
            dropped = True
        else:
            missing.append(
                f"`{_preview(text[tag.start : tag.end])}` at position {tag.start} points at old"
                f" image {old}, which order {list(order)} leaves out; delete the tag or pass"
                " drop_references=True"
            )
    if missing:
        _fail("prompt", missing)
    tail = text[last:]
    pieces.append(tail.lstrip(_BLANKS) if strip_next else tail)
    result = "".join(pieces)
    # Deleting a tag can pair an unclosed opener before it with a stray closer after it.
    if dropped and [index for _, index in _references(result)] != written:
        raise ValidationError(
            "prompt: deleting the tags of removed images would turn malformed tags around them"
            " into a new tag; fix the problems find_tag_problems reports first"
        )
    return result


def _field_problem(token: str, field: str | None, names: list[str]) -> str:
    """Why the brace ``token`` (holding ``field``, if it is a field) binds no image."""
    if field is None:
        return f"lone brace; write {token * 2} for a literal {token}"
    if _POSITIONAL.fullmatch(field):
        return "positional fields are not supported; name the image"
    if not IMAGE_NAME.fullmatch(field):
        return f"not an image name ({_NAME_RULE}); write {{{{ and }}}} for literal braces"
    return f"no image is named {field!r}; known names: {', '.join(names)}"


def strip_tags(text: str, replacement: str = " ") -> str:
    """``text`` with every tag-like construct (``<img>0</img>``, a stray ``<ref>``) replaced.

    Example:
        >>> strip_tags("Put <img>0</img> on a <ref>1</ref>!")
        'Put   on a  !'
    """
    pieces: list[str] = []
    last = 0
    for tag in _scan(text):
        pieces += [text[last : tag.start], replacement]
        last = tag.end
    return "".join(pieces) + text[last:]


def marked_spans(text: str) -> list[tuple[int, int]]:
    """Where ``text`` points at an image: every tag-like construct and every ``{name}`` field.

    In order of position, as ``(start, end)`` offsets; ``{{`` and ``}}`` are literal braces, not
    fields. The contact sheet highlights these spans of a prompt as it was written.

    Example:
        >>> marked_spans("Put {cat} on <img>1</img> {{not}} <ref>2</ref>")
        [(4, 9), (13, 25), (34, 46)]
    """
    spans = [(tag.start, tag.end) for tag in _scan(text)]
    spans += [
        match.span()
        for match in _BRACE.finditer(text)
        if match[1] is not None and IMAGE_NAME.fullmatch(match[1])
    ]
    return sorted(spans)


def fill_fields(prompt: str, values: Mapping[str, str], *, escape_braces: bool) -> str:
    """``prompt`` with each ``{name}`` field whose name is in ``values`` replaced by its value.

    Every other field (a named image's ``{cat}``), literal brace (``{{``, ``}}``) and tag is left
    as written, so a prompt can carry placeholders of its own beside its named images. With
    ``escape_braces`` (the images are named, so the prompt's braces are still to be read), braces
    in a value are doubled, so that a value is never read as a field.

    Example:
        >>> fill_fields("{cat} in {style}, {{x}}", {"style": "ink {wash}"}, escape_braces=True)
        '{cat} in ink {{wash}}, {{x}}'
    """
    pieces: list[str] = []
    last = 0
    for match in _BRACE.finditer(prompt):
        if match[1] is None or match[1] not in values:
            continue
        value = values[match[1]]
        if escape_braces:
            value = value.replace("{", "{{").replace("}", "}}")
        pieces += [prompt[last : match.start()], value]
        last = match.end()
    return "".join(pieces) + prompt[last:]


def field_names(prompt: str) -> list[str]:
    """The names of the ``{name}`` fields of ``prompt``, each once, in order of appearance.

    Example:
        >>> field_names("{cat} in {style}; {{not}} {cat} {}")
        ['cat', 'style']
    """
    names = [match[1] for match in _BRACE.finditer(prompt) if match[1] is not None]
    return list(dict.fromkeys(name for name in names if IMAGE_NAME.fullmatch(name)))


def _scan(text: str) -> Iterator[_Tag]:
    """Every tag-like construct of ``text``, in order: one pass over its markers."""
    opener: re.Match[str] | None = None
    for marker in _MARKER.finditer(text):
        if not marker.group(1):
            if opener is not None:
                yield _unclosed(text, opener)
            opener = marker
        elif opener is None:
            yield _Tag(marker.start(), marker.end(), opening=None, closing=marker.group(2))
        else:
            yield _paired(text, opener, marker)
            opener = None
    if opener is not None:
        yield _unclosed(text, opener)


def _paired(text: str, opener: re.Match[str], closer: re.Match[str]) -> _Tag:
    start, end, opening, closing = opener.start(), closer.end(), opener.group(2), closer.group(2)
    body = _NUMBER_BODY.fullmatch(text, opener.end(), closer.start())
    if body is None or len(body.group(1)) > _MAX_DIGITS:
        return _Tag(start, end, opening, closing)
    padded = body.span(1) != (opener.end(), closer.start())
    return _Tag(start, end, opening, closing, int(body.group(1)), body.span(1), padded)


def _unclosed(text: str, opener: re.Match[str]) -> _Tag:
    tag = _Tag(opener.start(), opener.end(), opening=opener.group(2), closing=None)
    number = _NUMBER_AFTER_UNCLOSED.match(text, opener.end())
    if number is None or len(number.group(1)) > _MAX_DIGITS:
        return tag
    return replace(tag, end=number.end(), index=int(number.group(1)), digits=number.span(1))


def _references(text: str) -> Iterator[tuple[_Tag, int]]:
    for tag in _scan(text):
        if tag.well_formed and tag.index is not None:
            yield tag, tag.index


def _problem(text: str, tag: _Tag, count: int | None) -> TagProblem | None:
    """What is wrong with ``tag`` (``None`` when nothing is), judged against ``count`` images."""
    limit = MAX_IMAGES if count is None else count
    errors: list[str] = []
    warnings: list[str] = []
    names = [name for name in (tag.opening, tag.closing) if name is not None]
    if tag.opening is None:
        errors.append(f"`</{tag.closing}>` closes no tag")
    elif tag.closing is None:
        errors.append(f"`<{tag.opening}>` is never closed")
    elif tag.opening.lower() != tag.closing.lower():
        errors.append(f"`<{tag.opening}>` is closed by `</{tag.closing}>`")
    if any(name.lower() == "ref" for name in names):
        errors.append("`<ref>` is the tag of Reve's own API; OneRouter reads `<img>`")
    elif any(name != "img" for name in names):
        warnings.append("the tag name is not lower case")
    if tag.index is None:
        if tag.opening is not None and tag.closing is not None:
            errors.append("the tag does not hold an image index")
    else:
        if tag.index >= limit:
            errors.append(f"there is no image {_preview(str(tag.index))}: {_index_range(count)}")
        if tag.padded:
            warnings.append("whitespace around the index")
        start, end = tag.digits
        if end - start > 1 and text[start] == "0":
            warnings.append("the index has a leading zero")
    if not errors and not warnings:
        return None
    if tag.index is not None and tag.index < limit:
        fix = f"Write {img(tag.index)}"
    elif limit == 1:
        fix = f"Write {img(0)}"
    else:
        fix = f"Write <img>N</img> with N from 0 to {limit - 1}"
    if tag.opening is None:
        fix = f"Delete it, or {fix[0].lower()}{fix[1:]}"
    snippet = text[tag.start : tag.end]
    return TagProblem(
        start=tag.start,
        end=tag.end,
        text=snippet,
        severity="error" if errors else "warning",
        message=f"`{_preview(snippet)}`: {'; '.join(errors + warnings)}. {fix}.",
    )


def _index_range(count: int | None) -> str:
    if count is None:
        return (
            f"a request carries at most {MAX_IMAGES} images, so indices run from 0 to "
            f"{MAX_IMAGES - 1}"
        )
    if count == 1:
        return "1 image given, so the only index is 0"
    return f"{count} images given, so indices run from 0 to {count - 1}"


def _strip_trailing_blanks(pieces: list[str]) -> None:
    """Remove the spaces and tabs at the end of ``"".join(pieces)``, in place."""
    while pieces:
        stripped = pieces[-1].rstrip(_BLANKS)
        if stripped:
            pieces[-1] = stripped
            return
        pieces.pop()


def _text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"{what}: expected a str, got {type(value).__name__}")
    return value


def _image_count(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_IMAGES:
        raise ValidationError(
            f"image_count: expected an int from 1 to {MAX_IMAGES} (the number of images),"
            f" got {value!r}"
        )
    return value


def _image_names(images: object) -> list[str]:
    if not isinstance(images, Mapping):
        raise ValidationError(
            f"images: expected a mapping from names to images, got {type(images).__name__}"
        )
    check_image_count(len(images))
    names = list(images)
    for name in names:
        if not isinstance(name, str) or not IMAGE_NAME.fullmatch(name):
            raise ValidationError(f"images: {name!r} is not a usable name; {_NAME_RULE}")
    return names


def check_image_count(count: int) -> None:
    """Raise ``ValidationError`` unless a request may carry ``count`` images (the spec's limits).

    >>> check_image_count(0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
      ...
    reve_remix.ValidationError: images: give between 1 and ... images, got 0
    """
    if not MIN_IMAGES <= count <= MAX_IMAGES:
        raise ValidationError(
            f"images: give between {MIN_IMAGES} and {MAX_IMAGES} images, got {count}"
        )


def _new_indices(order: object) -> dict[int, int]:
    """``order`` checked, as a map from each kept old index to its new index."""
    if not isinstance(order, Sequence):
        raise ValidationError(
            f"order: expected a sequence of old image indices, got {type(order).__name__}"
        )
    if not 1 <= len(order) <= MAX_IMAGES:
        raise ValidationError(
            f"order: give between 1 and {MAX_IMAGES} old indices, got {len(order)}"
        )
    new_index: dict[int, int] = {}
    for new, old in enumerate(order):
        if isinstance(old, bool) or not isinstance(old, int) or not 0 <= old < MAX_IMAGES:
            raise ValidationError(
                f"order: {old!r} is not an image index (an int from 0 to {MAX_IMAGES - 1})"
            )
        if old in new_index:
            raise ValidationError(f"order: old index {old} appears twice in {list(order)}")
        new_index[old] = new
    return new_index


def _preview(snippet: str) -> str:
    if len(snippet) <= _PREVIEW_CHARS:
        return snippet
    return f"{snippet[: _PREVIEW_CHARS - 1]}…"


def _fail(what: str, problems: Sequence[str]) -> NoReturn:
    """Raise one ``ValidationError`` listing ``problems`` (the first few, if there are many)."""
    if len(problems) == 1:
        raise ValidationError(f"{what}: {problems[0]}")
    listed = [f"  - {problem}" for problem in problems[:_LISTED_PROBLEMS]]
    if len(problems) > _LISTED_PROBLEMS:
        listed.append(f"  … and {len(problems) - _LISTED_PROBLEMS} more")
    raise ValidationError(f"{what}: {len(problems)} problems:\n" + "\n".join(listed))
