"""Turning a caller's arguments into a checked request, before anything goes on the wire.

Everything here is pure: it raises ``ValidationError`` for any argument the API would reject, so a
mistake costs neither a network round trip nor a paid generation. The allowed aspect ratios and
output formats are the generated enums and every limit comes from ``_spec``, so they follow the
spec when it is regenerated. ``extra_body`` carries request fields ``remix`` has no argument for
(a field the vendor added since this SDK was written): the ones the spec defines are checked
against its schema, the others are sent as given.

The generated package (and attrs under it) is imported at the first remix rather than with
``reve_remix``, for the reason ``_client`` gives.
"""

from __future__ import annotations

import binascii
import functools
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import httpx

from . import _config
from ._exceptions import ValidationError
from ._images import ImageInput, LocalImage, check_image, data_url_head, prepare_image
from ._recipe import SentRecipe, reference
from ._spec import ARGUMENT_FIELDS, IMAGES_FIELD, problem, spec
from ._tags import bind_images, check_image_count, check_prompt, refuse_image_names

if TYPE_CHECKING:
    from reve_remix_api.models import AspectRatio, OutputFormat


logger = logging.getLogger("reve_remix")

Images: TypeAlias = Sequence[ImageInput] | Mapping[str, ImageInput] | ImageInput
"""A list of images, a mapping of names used as ``{name}`` in the prompt, or a single image."""

E = TypeVar("E", bound=Enum)


# What httpx's ``json=`` sends: compact UTF-8, and no NaN (which is not JSON).
_JSON_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
# An inline image's base64 is written this many bytes of image at a time (a multiple of 3, so
# that the pieces join into the one base64 text): 256 KiB of text, a socket write's worth.
_BASE64_CHUNK = 3 * 64 * 1024
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e]*")
# Headers the client owns: the key has one way in (api_key=), so it has one way to be redacted;
# the body's framing is the body's, and a wrong one would cut off or hang a paid request.
_OWN_HEADERS = {
    "authorization": "the client sets it from api_key= and auth_scheme=",
    "content-length": "the client sets it from the body",
    "transfer-encoding": "the client sets it from the body",
    "host": "the client sets it from base_url=",
}


@dataclass(frozen=True, slots=True)
class RequestOptions:
    """Per-call transport options: headers added to the request and a timeout for it."""

    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float | httpx.Timeout | None = None


_NO_OPTIONS = RequestOptions()  # frozen, so one serves every call without options


@dataclass(slots=True)
class PreparedRemix:
    """A validated remix whose local images still have to become URLs (see ``LocalImage``)."""

    model: str
    prompt: str
    images: list[str | LocalImage]
    aspect_ratio: AspectRatio | None
    output_format: OutputFormat
    extra_body: Mapping[str, Any] = field(default_factory=dict)
    options: RequestOptions = field(default_factory=RequestOptions)
    written_prompt: str = ""
    """The prompt as the caller wrote it (``prompt`` is as sent: names bound to tags)."""
    references: tuple[Mapping[str, str], ...] = ()
    """How the recipe names each image (``_recipe.reference``), in the order sent."""

    def recipe(self) -> SentRecipe:
        """What a saved image's recipe says of this request (the answer's parts added later)."""
        return SentRecipe(
            self.written_prompt or self.prompt,
            self.prompt,
            self.model,
            None if self.aspect_ratio is None else self.aspect_ratio.value,
            self.output_format.value,
            self.references,
            dict(self.extra_body),
        )

    sources: list[object] = field(default_factory=list)
    """The images as the caller gave them, in the order they are sent (for a job's identity)."""

    def body(self, images: Sequence[str | LocalImage]) -> bytes | RequestBody:
        """The request body: the fields, checked by the generated model, and ``images``.

        ``images`` are what the uploader made of :attr:`images`: URLs, or a :class:`LocalImage`
        to send inline as its ``data:`` URL. The other fields, ``extra_body`` included, go
        through the generated ``RemixRequest`` (``from_dict`` then ``to_dict``), so a field the
        spec defines is read as its type and any other kept in ``additional_properties``, and
        fields with a default in the spec are sent with it, as the generated constructor does.
        The images do not go through the model: :func:`encode_body` writes them itself, so what
        the body carries never depends on what a regenerated model does with a string.
        """
        if self.extra_body:
            checked = _through_model(
                {**default_fields(), **self.extra_body, **_own_fields(self.model, self.prompt,
                 self.aspect_ratio, self.output_format)}
            )  # fmt: skip
        else:  # the prompt is only carried: the other fields are checked once for each value
            checked = _checked_fields(self.model, self.aspect_ratio, self.output_format).copy()
            checked["prompt"] = self.prompt
        return encode_body(checked, images)


def _own_fields(
    model: str, prompt: str, aspect_ratio: AspectRatio | None, output_format: OutputFormat
) -> dict[str, Any]:
    """The request fields ``remix`` has arguments for; the images are :func:`encode_body`'s."""
    fields: dict[str, Any] = {
        "model": model,
        "prompt": prompt,
        IMAGES_FIELD: [],  # required by the model
        "output_format": output_format.value,
    }
    if aspect_ratio is not None:
        fields["aspect_ratio"] = aspect_ratio.value
    return fields


def _through_model(fields: Mapping[str, Any]) -> dict[str, Any]:
    """``fields`` read and written by the generated ``RemixRequest``, without the images."""
    from reve_remix_api.models import RemixRequest

    try:
        checked = RemixRequest.from_dict(fields).to_dict()
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise ValidationError(f"extra_body: does not fit the spec's request: {exc}") from None
    del checked[IMAGES_FIELD]
    return checked


@functools.lru_cache(maxsize=64)
def _checked_fields(
    model: str, aspect_ratio: AspectRatio | None, output_format: OutputFormat
) -> dict[str, Any]:
    """The fields of a request without ``extra_body``, through the model once for each value.

    The generated model only carries the prompt (it has no check for it), so its place is kept
    with an empty one: copied and filled for each request, the fields are what the model makes
    of them, in its order, without reading and writing a model per request. A copy, never this
    dict, is changed.
    """
    return _through_model(
        {**default_fields(), **_own_fields(model, "", aspect_ratio, output_format)}
    )


def prepare_remix(
    prompt: object,
    images: object,
    *,
    model: object,
    aspect_ratio: object = None,
    output_format: object = None,
    fit: bool = False,
    extra_body: object = None,
    extra_headers: object = None,
    timeout: object = None,
    load_images: bool = True,
) -> PreparedRemix:
    """Check every argument of a remix and load local images; raise ``ValidationError`` if any fail.

    ``load_images=False`` checks local files by their size and leading bytes only (see
    ``check_image``) and leaves them out of the result: a check before sending, not a remix.

    Example::

        prepared = prepare_remix("<img>0</img> at dusk", ["https://example.com/a.png"],
                                 model="reve-remix-image-to-image", extra_body={"seed": 7})
    """
    from reve_remix_api.models import AspectRatio, OutputFormat

    if not isinstance(prompt, str):
        raise ValidationError(f"prompt: expected a string, got {type(prompt).__name__}")
    sendable(prompt, "prompt")
    written_prompt = prompt
    model = check_model(model)
    ratio = None if aspect_ratio is None else _member(AspectRatio, aspect_ratio, "aspect_ratio")
    if output_format is None:
        output_format = spec().default_output_format
    fmt = _member(OutputFormat, output_format, "output_format")
    names: list[str] | None = None
    if isinstance(images, Mapping):
        # Bind the names themselves: the order they come back in orders both images and labels.
        prompt, names = bind_images(prompt, {name: name for name in images})
        items = [images[name] for name in names]
        labels = [f"image {name!r}" for name in names]
    else:
        refuse_image_names(prompt)
        items = list(images) if isinstance(images, list | tuple) else [images]
        labels = [f"image {index}" for index in range(len(items))]
    check_image_count(len(items))
    extras = check_extra_body(extra_body)
    check_required(extras)
    options = (
        _NO_OPTIONS
        if extra_headers is None and timeout is None
        else RequestOptions(check_extra_headers(extra_headers), check_timeout(timeout))
    )
    for warning in check_prompt(prompt, len(items)):
        logger.warning("prompt: %s", warning)
    load = prepare_image if load_images else check_image
    loaded = [load(item, label, fit=fit) for item, label in zip(items, labels, strict=True)]
    sent = [image for image in loaded if image is not None]
    return PreparedRemix(
        model=model,
        prompt=prompt,
        images=sent,
        aspect_ratio=ratio,
        output_format=fmt,
        extra_body=extras,
        options=options,
        written_prompt=written_prompt,
        references=_references(items, sent, names) if load_images else (),
        sources=items,
    )


def _references(
    items: list[object], sent: list[str | LocalImage], names: list[str] | None
) -> tuple[dict[str, str], ...]:
    """The recipe's name for each image sent: its URL, or its file name and hash."""

    labels: list[str | None] = list(names) if names is not None else [None] * len(items)
    return tuple(map(reference, items, sent, labels))


@functools.cache
def default_fields() -> dict[str, Any]:
    """The request fields the spec gives a default, with it (``{"n": 1}``)."""
    properties = spec().request_properties
    return {name: schema["default"] for name, schema in properties.items() if "default" in schema}


def check_extra_body(extra_body: object, label: str = "extra_body") -> dict[str, Any]:
    """``extra_body`` as request fields to send, each field the spec defines checked against it.

    Fields ``remix`` has an argument for are refused (pass the argument), and the whole must be
    JSON. Raises ``ValidationError``, its message starting with ``label`` (where the fields came
    from: the CLI's ``--field`` says so).

    Example::

        check_extra_body({"seed": 7, "n": 1})  # {'seed': 7, 'n': 1}
        check_extra_body({"n": 2})  # ValidationError: extra_body: 'n' must be one of [1], got 2
    """
    if extra_body is None:
        return {}
    if not isinstance(extra_body, Mapping):
        raise ValidationError(
            f"{label}: expected a mapping of request fields, got {type(extra_body).__name__}"
        )
    properties = spec().request_properties
    fields: dict[str, Any] = {}
    for name, value in extra_body.items():
        if not isinstance(name, str):
            raise ValidationError(f"{label}: field names must be strings, got {name!r}")
        if name in ARGUMENT_FIELDS:
            raise ValidationError(
                f"{label}: {name!r} is set by remix's {ARGUMENT_FIELDS[name]}= argument"
            )
        found = problem(value, properties[name]) if name in properties else None
        if found:
            raise ValidationError(f"{label}: {name!r} {found}")
        fields[name] = value
    try:
        _JSON_ENCODER.encode(fields).encode()
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError (a lone surrogate) included
        raise ValidationError(f"{label}: cannot be sent as JSON: {exc}") from None
    return fields


def check_required(extras: Mapping[str, Any]) -> None:
    """Refuse a request without a field the spec requires that ``remix`` has no argument for.

    A field the vendor made required since this SDK was written is sent through ``extra_body``
    (on the command line ``--field NAME=JSON``; in a jobs file a line's ``"extra_body"``); the
    error names it, its schema and those ways, rather than let the request model fail on it.

    Example::

        check_required({})  # passes today: remix's arguments set every required field
    """
    fields = spec().request_properties
    for name in spec().request_required:
        if name not in ARGUMENT_FIELDS and name not in extras and name not in default_fields():
            raise ValidationError(
                f"{name}: the API requires this request field and remix has no argument for it "
                f"yet: pass extra_body={{{name!r}: ...}} ({_schema_text(fields.get(name, {}))}); "
                f"on the command line --field {name}=JSON, in a jobs file "
                f'"extra_body": {{"{name}": ...}}'
            )


def _schema_text(schema: Mapping[str, Any]) -> str:
    """A property schema as one short phrase: ``string, one of ['standard', 'high']``."""
    parts = [str(schema.get("type", "any value"))]
    if "enum" in schema:
        parts.append(f"one of {schema['enum']}")
    return ", ".join(parts)


def check_extra_headers(extra_headers: object) -> dict[str, str]:
    """``extra_headers`` checked: token names, one-line printable ASCII values, no Authorization.

    Values are never echoed in errors: a header may carry a secret.

    Example::

        check_extra_headers({"X-Trace-Id": "abc123"})  # {'X-Trace-Id': 'abc123'}
    """
    if extra_headers is None:
        return {}
    if not isinstance(extra_headers, Mapping):
        raise ValidationError(
            f"extra_headers: expected a mapping of header names to values, "
            f"got {type(extra_headers).__name__}"
        )
    headers: dict[str, str] = {}
    for name, value in extra_headers.items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise ValidationError(f"extra_headers: {name!r} is not a valid header name")
        if name.lower() in _OWN_HEADERS:
            raise ValidationError(f"extra_headers: {name!r}: {_OWN_HEADERS[name.lower()]}")
        if not isinstance(value, str) or not _HEADER_VALUE.fullmatch(value):
            raise ValidationError(
                f"extra_headers: the value of {name!r} must be printable ASCII text on one line"
            )
        headers[name] = value
    return headers


def check_timeout(timeout: object) -> float | httpx.Timeout | None:
    """A per-call timeout: ``None`` (the client's), else checked as the client's own timeout.

    Example::

        check_timeout(30)  # 30.0
    """
    return None if timeout is None else _config.timeout(timeout)


def check_model(model: object) -> str:
    """``model`` if it can name a model: a non-empty string that can be sent.

    Example::

        check_model("reve-remix-image-to-image")  # returned as is
        check_model("")  # ValidationError: model: expected a non-empty string
    """
    if not isinstance(model, str) or not model.strip():
        raise ValidationError("model: expected a non-empty string")
    control = _CONTROL.search(model)
    if control is not None:  # a name is one line: a newline in one is a paste gone wrong
        raise ValidationError(
            f"model: character {control.start() + 1} is a control character "
            f"({control.group()!r}); a model name is one line of text"
        )
    return sendable(model, "model")


_CONTROL = re.compile("[\x00-\x1f\x7f]")


def sendable(text: str, name: str) -> str:
    """``text`` if it can go into a request as UTF-8; ``ValidationError`` for a lone surrogate.

    A lone surrogate (``"\\ud800"``) is not text: Python makes one when it decodes bytes that are
    not UTF-8 with ``surrogateescape`` (a file name, a command-line argument) or when JSON holds
    half of a ``"\\ud83d\\ude00"`` pair. It cannot be encoded, so it is refused here, not at send.

    Example::

        sendable("a cat", "prompt")  # 'a cat'
        sendable("a cat\\udcff", "prompt")  # ValidationError: prompt: character 5 is a lone …
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValidationError(
            f"{name}: character {exc.start} is a lone surrogate ({text[exc.start]!r}), which is "
            "not text and cannot be sent; it comes from bytes that are not UTF-8, or half of an "
            "escaped emoji"
        ) from None
    return text


def _member(enum: type[E], value: object, name: str) -> E:
    """``value`` as a member of the generated ``enum``, or a ``ValidationError`` listing them."""
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(str(member.value) for member in enum)
        raise ValidationError(f"{name}: {value!r} is not one of {allowed}") from None


class RequestBody(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A JSON request body as parts: JSON text, and images whose base64 is written as it is sent.

    Like ``httpx.ByteStream`` for both clients, but the body is never joined into one ``bytes``:
    a request holds its images' bytes and one 256 KiB piece of their base64 at a time, not the
    whole base64 (4/3 of the images) as well. It can be iterated again, as a retry of the same
    request does, and yields the same bytes each time; ``length`` is their total, sent as
    ``Content-Length``.

    Example::

        body = encode_body({"prompt": "<img>0</img>"}, [prepare_image(Path("cat.png"), "image 0")])
        assert body.length == len(b"".join(body))
    """

    def __init__(self, parts: list[bytes | LocalImage]) -> None:
        self._parts = parts
        self.length = sum(
            len(part) if isinstance(part, bytes) else 4 * -(-len(part.data) // 3) for part in parts
        )

    def __iter__(self) -> Iterator[bytes]:
        for part in self._parts:
            if isinstance(part, bytes):
                yield part
                continue
            data = memoryview(part.data)
            for start in range(0, len(data), _BASE64_CHUNK):
                yield binascii.b2a_base64(data[start : start + _BASE64_CHUNK], newline=False)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self:
            yield chunk


def encode_body(
    fields: Mapping[str, Any], images: Sequence[str | LocalImage]
) -> bytes | RequestBody:
    """A request body: ``fields`` and ``images`` (under ``image_urls``) as httpx's ``json=`` would
    send them, a :class:`LocalImage` as its ``data:`` URL.

    With only URLs (the common, small case) this is one ``json`` call. Otherwise the fields and
    the URLs are written by ``json`` and each local image's base64, which needs no escaping,
    goes straight from its bytes into a :class:`RequestBody` as the body is sent, so the
    megabytes are never held as text nor scanned by ``json``. The bytes are those of
    ``{**fields, "image_urls": [the URLs, data_url(image.data, image.mime) for a local one]}``.

    Example::

        encode_body({"prompt": "<img>0</img> at dusk"}, ["https://example.com/a.png"])
        # b'{"prompt":"<img>0</img> at dusk","image_urls":["https://example.com/a.png"]}'
    """
    if all(isinstance(image, str) for image in images):
        return _JSON_ENCODER.encode({**fields, IMAGES_FIELD: list(images)}).encode()
    # ``{"a":1}`` less its "}", or "{" alone: the fields, ready for the images after them.
    opening = _JSON_ENCODER.encode(dict(fields))[:-1] + ("," if fields else "")
    text = [opening, _JSON_ENCODER.encode(IMAGES_FIELD), ":["]
    parts: list[bytes | LocalImage] = []
    for index, image in enumerate(images):
        text.append("," if index else "")
        if isinstance(image, str):
            text.append(_JSON_ENCODER.encode(image))
            continue
        text.append(_JSON_ENCODER.encode(data_url_head(image.mime))[:-1])  # no closing quote
        parts += ["".join(text).encode(), image]
        text = ['"']
    text.append("]}")
    parts.append("".join(text).encode())
    return RequestBody(parts)
