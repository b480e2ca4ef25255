"""Turning a caller's arguments into a checked request, before anything goes on the wire.

Everything here is pure: it raises ``ValidationError`` for any argument the API would reject, so a
mistake costs neither a network round trip nor a paid generation. The allowed aspect ratios and
output formats are the generated enums, so they follow the spec when it is regenerated.

The generated package (and attrs under it) is imported at the first remix rather than with
``reve_remix``: it is a fifth of the import time, which a CLI or a cold start pays for nothing.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import cache
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from ._exceptions import ValidationError
from ._images import ImageInput, LocalImage, prepare_image
from ._tags import MAX_IMAGES, bind_images, check_prompt, refuse_image_names

if TYPE_CHECKING:
    from reve_remix_api.models import AspectRatio, OutputFormat, RemixRequest

logger = logging.getLogger("reve_remix")

Images: TypeAlias = Sequence[ImageInput] | Mapping[str, ImageInput] | ImageInput
"""A list of images, a mapping of names used as ``{name}`` in the prompt, or a single image."""

E = TypeVar("E", bound=Enum)


@cache
def aspect_ratios() -> tuple[str, ...]:
    """The aspect ratios the spec allows, from the generated ``AspectRatio`` enum.

    Example::

        >>> "16:9" in aspect_ratios()
        True
    """
    from reve_remix_api.models import AspectRatio

    return tuple(ratio.value for ratio in AspectRatio)


@cache
def output_formats() -> tuple[str, ...]:
    """The output formats the spec allows, from the generated ``OutputFormat`` enum.

    Example::

        >>> sorted(output_formats())
        ['b64_json', 'url']
    """
    from reve_remix_api.models import OutputFormat

    return tuple(fmt.value for fmt in OutputFormat)


# What httpx's ``json=`` sends: compact UTF-8, and no NaN (which is not JSON).
_JSON_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
# Image URLs longer than this in total (inline images) make encode_body save memory over speed.
_STREAMED_URL_CHARS = 64 * 1024


@dataclass(slots=True)  # internal and short-lived: not frozen, which costs a microsecond a call
class PreparedRemix:
    """A validated remix whose local images still have to become URLs (see ``LocalImage``)."""

    model: str
    prompt: str
    images: list[str | LocalImage]
    aspect_ratio: AspectRatio | None
    output_format: OutputFormat

    def body(self, image_urls: list[str]) -> RemixRequest:
        """The request body as the generated ``RemixRequest`` model."""
        from reve_remix_api.models import RemixRequest

        request = RemixRequest(
            model=self.model,
            prompt=self.prompt,
            image_urls=image_urls,
            output_format=self.output_format,
        )
        if self.aspect_ratio is not None:
            request.aspect_ratio = self.aspect_ratio
        return request


def prepare_remix(
    prompt: object,
    images: object,
    *,
    model: object,
    aspect_ratio: object = None,
    output_format: object = "url",
    fit: bool = False,
) -> PreparedRemix:
    """Check every argument of a remix and load local images; raise ``ValidationError`` if any fail.

    Example::

        prepared = prepare_remix("<img>0</img> at dusk", ["https://example.com/a.png"],
                                 model="reve-remix-image-to-image")
    """
    from reve_remix_api.models import AspectRatio, OutputFormat

    if not isinstance(prompt, str):
        raise ValidationError(f"prompt: expected a string, got {type(prompt).__name__}")
    sendable(prompt, "prompt")
    model = check_model(model)
    ratio = None if aspect_ratio is None else _member(AspectRatio, aspect_ratio, "aspect_ratio")
    fmt = _member(OutputFormat, output_format, "output_format")
    if isinstance(images, Mapping):
        # Bind the names themselves: the order they come back in orders both images and labels.
        prompt, names = bind_images(prompt, {name: name for name in images})
        items = [images[name] for name in names]
        labels = [f"image {name!r}" for name in names]
    else:
        refuse_image_names(prompt)
        items = list(images) if isinstance(images, list | tuple) else [images]
        labels = [f"image {index}" for index in range(len(items))]
    if not 1 <= len(items) <= MAX_IMAGES:
        raise ValidationError(f"images: give between 1 and {MAX_IMAGES} images, got {len(items)}")
    for warning in check_prompt(prompt, len(items)):
        logger.warning("prompt: %s", warning)
    return PreparedRemix(
        model=model,
        prompt=prompt,
        images=[
            prepare_image(item, label, fit=fit) for item, label in zip(items, labels, strict=True)
        ],
        aspect_ratio=ratio,
        output_format=fmt,
    )


def check_model(model: object) -> str:
    """``model`` if it can name a model: a non-empty string that can be sent.

    Example::

        check_model("reve-remix-image-to-image")  # returned as is
        check_model("")  # ValidationError: model: expected a non-empty string
    """
    if not isinstance(model, str) or not model.strip():
        raise ValidationError("model: expected a non-empty string")
    return sendable(model, "model")


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


def encode_body(payload: Mapping[str, Any]) -> bytes:
    """A request body as the exact bytes httpx's ``json=`` would send, at bounded memory cost.

    Only inline images (``data:`` URLs) make a body large, and for those
    ``json.dumps(...).encode()`` holds three copies of the images at once: the URLs, every
    encoded piece and the joined text (then the URLs, the text and the bytes). Written one piece
    at a time, the body holds the URLs, the output and a single piece; ``BytesIO.getvalue()``
    hands its buffer over without a copy. A small body, the common case, takes the faster
    single ``json.dumps`` call.

    Example::

        encode_body({"prompt": "<img>0</img> at dusk", "image_urls": ["https://example.com/a.png"]})
        # b'{"prompt":"<img>0</img> at dusk","image_urls":["https://example.com/a.png"]}'
    """
    if sum(len(url) for url in payload.get("image_urls", ())) < _STREAMED_URL_CHARS:
        return _JSON_ENCODER.encode(payload).encode()
    out = io.BytesIO()
    for piece in _JSON_ENCODER.iterencode(payload):
        out.write(piece.encode())
    return out.getvalue()
