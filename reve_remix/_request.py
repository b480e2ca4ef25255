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
from ._images import ImageInput, JsonSafeText, LocalImage, check_image, prepare_image
from ._tags import MAX_IMAGES, bind_images, check_prompt

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
    load_images: bool = True,
) -> PreparedRemix:
    """Check every argument of a remix and load local images; raise ``ValidationError`` if any fail.

    ``load_images=False`` checks local files by their size and leading bytes only (see
    ``check_image``) and leaves them out of the result: a check before sending, not a remix.

    Example::

        prepared = prepare_remix("<img>0</img> at dusk", ["https://example.com/a.png"],
                                 model="reve-remix-image-to-image")
    """
    from reve_remix_api.models import AspectRatio, OutputFormat

    if not isinstance(prompt, str):
        raise ValidationError(f"prompt: expected a string, got {type(prompt).__name__}")
    if not isinstance(model, str) or not model.strip():
        raise ValidationError("model: expected a non-empty string")
    ratio = None if aspect_ratio is None else _member(AspectRatio, aspect_ratio, "aspect_ratio")
    fmt = _member(OutputFormat, output_format, "output_format")
    if isinstance(images, Mapping):
        # Bind the names themselves: the order they come back in orders both images and labels.
        prompt, names = bind_images(prompt, {name: name for name in images})
        items = [images[name] for name in names]
        labels = [f"image {name!r}" for name in names]
    else:
        items = list(images) if isinstance(images, list | tuple) else [images]
        labels = [f"image {index}" for index in range(len(items))]
    if not 1 <= len(items) <= MAX_IMAGES:
        raise ValidationError(f"images: give between 1 and {MAX_IMAGES} images, got {len(items)}")
    for warning in check_prompt(prompt, len(items)):
        logger.warning("prompt: %s", warning)
    load = prepare_image if load_images else check_image
    loaded = [load(item, label, fit=fit) for item, label in zip(items, labels, strict=True)]
    return PreparedRemix(
        model=model,
        prompt=prompt,
        images=[image for image in loaded if image is not None],
        aspect_ratio=ratio,
        output_format=fmt,
    )


def _member(enum: type[E], value: object, name: str) -> E:
    """``value`` as a member of the generated ``enum``, or a ``ValidationError`` listing them."""
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(str(member.value) for member in enum)
        raise ValidationError(f"{name}: {value!r} is not one of {allowed}") from None


def encode_body(payload: Mapping[str, Any]) -> bytes:
    """A request body as the exact bytes httpx's ``json=`` would send, near the cost of a copy.

    Only inline images (``data:`` URLs) make a body large. Their base64 text needs no JSON
    escaping, so :func:`data_url`'s output (``JsonSafeText``) is written verbatim between quotes
    rather than scanned by ``json`` (half the CPU of a remix with four local images), and the
    body is written piece by piece, so it holds the URLs, the output and one piece at a time
    rather than every encoded piece and the joined text as well. A small body, the common case,
    takes the faster single ``json`` call.

    Example::

        encode_body({"prompt": "<img>0</img> at dusk", "image_urls": ["https://example.com/a.png"]})
        # b'{"prompt":"<img>0</img> at dusk","image_urls":["https://example.com/a.png"]}'
    """
    urls = payload.get("image_urls", ())
    if sum(len(url) for url in urls) < _STREAMED_URL_CHARS:
        return _JSON_ENCODER.encode(payload).encode()
    out = io.BytesIO()
    out.write(b"{")
    for number, (key, value) in enumerate(payload.items()):
        out.write(b"," if number else b"")
        out.write(_JSON_ENCODER.encode(key).encode() + b":")
        if key != "image_urls":
            out.write(_JSON_ENCODER.encode(value).encode())
            continue
        out.write(b"[")
        for index, url in enumerate(value):
            out.write(b"," if index else b"")
            if type(url) is JsonSafeText:
                out.write(b'"')
                out.write(url.encode("ascii"))
                out.write(b'"')
            else:
                out.write(_JSON_ENCODER.encode(url).encode())
        out.write(b"]")
    out.write(b"}")
    return out.getvalue()
