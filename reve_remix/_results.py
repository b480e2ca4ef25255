"""What a remix returns: the images of a paid 2xx, read tolerantly, and ways to get them to disk.

A 2xx is money spent, so ``parse_response`` reads it to find the images and never lets a field
the SDK does not need lose one: ``created`` may be a float, a string or missing, unknown fields
and nulls are fine. Only a 2xx whose images cannot be found at all (not JSON, no ``data``, no item
with a ``url`` or ``b64_json`` string) is an ``APIResponseValidationError``, carrying the raw
body. An error object in a 2xx body (``{"error": {...}}`` and no image) is raised as the status
error it describes (``ContentPolicyError`` when flagged), an ``APIResponseValidationError`` too.
The parsed body is kept as the generated models (``RemixResult.raw``,
``RemixImage.raw``: unknown fields in their ``additional_properties``); the ``httpx.Response`` is
not, so finished results hold no sockets or request bodies.

Every error after the 2xx (a download that fails after its retries, bytes that are not an image,
a disk error) is an ``ImageNotSavedError`` naming the request id and URL.
"""

from __future__ import annotations

import binascii
import functools
import json
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import httpx

from ._download import Downloader, not_an_image
from ._exceptions import (
    APIError,
    APIResponseValidationError,
    ImageNotSavedError,
    ReveRemixError,
    request_id_of,
    status_error,
)
from ._files import write_atomic
from ._lifecycle import JobState
from ._recipe import Recipe, SentRecipe, write_with_recipe
from ._spec import DATA_FIELD, conforms, spec

if TYPE_CHECKING:
    from reve_remix_api.models import RemixImage as RawImage
    from reve_remix_api.models import RemixResponse as RawResponse


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class RemixImage:
    """One generated image: a ``url`` or inline ``b64_json``, and the prompt the model used.

    ``raw`` is the generated ``reve_remix_api.models.RemixImage``, with any field the spec does
    not name in ``raw.additional_properties``.

    Example::

        result = client.remix("<img>0</img> as a watercolour", ["cat.png"])
        image = result.image
        print(image.url or "inline", image.revised_prompt)
        image.save("cat-watercolour.png")
    """

    raw: RawImage
    request_id: str | None
    _downloader: Downloader
    _request: SentRecipe | None = None  # what was sent: the recipe without the answer's parts
    _created: int | None = None  # the response's, for the recipe

    @property
    def recipe(self) -> Recipe | None:
        """What made this image (the request and the answer), written into the files it is
        saved as; ``None`` for an image rebuilt from a record (``paid_image``).

        Completed with the answer's parts when read, not for every paid image: most are never
        saved with it.
        """
        if self._request is None:
            return None
        return self._request.answered(self.revised_prompt, self.request_id, self._created)

    @property
    def url(self) -> str | None:
        """Where the image can be downloaded (without the API key), if the API sent a URL."""
        return _string(_read(self.raw, "url"))

    @property
    def b64_json(self) -> str | None:
        """The image as base64, if the API sent it inline."""
        return _string(_read(self.raw, "b64_json"))

    @property
    def revised_prompt(self) -> str | None:
        """The prompt the model actually used, if the API said."""
        return _string(_read(self.raw, "revised_prompt"))

    def __repr__(self) -> str:
        inline = f"<{len(self.b64_json):,} chars>" if self.b64_json is not None else None
        return (
            f"RemixImage(url={self.url!r}, b64_json={inline}, "
            f"revised_prompt={self.revised_prompt!r}, request_id={self.request_id!r})"
        )

    def read(self) -> bytes:
        """The image's bytes: decoded from base64, or downloaded (retried, without the API key).

        Works after the client is closed. Raises ``ImageNotSavedError`` (request id, URL, cause)
        if the bytes cannot be had or are not an image.

        Example::

            png = result.image.read()
        """
        try:
            if self.b64_json is not None:
                return _decode_b64(self.b64_json)
            return self._downloader.download(self._require_url())
        except ReveRemixError as exc:
            raise self._not_saved(exc) from exc

    async def aread(self) -> bytes:
        """Async twin of :meth:`read`.

        Example::

            png = await result.image.aread()
        """
        try:
            if self.b64_json is not None:
                return _decode_b64(self.b64_json)
            return await self._downloader.adownload(self._require_url())
        except ReveRemixError as exc:
            raise self._not_saved(exc) from exc

    def save(self, path: str | os.PathLike[str], *, metadata: bool = True) -> Path:
        """Write the image to ``path`` atomically (no half-written file, ever) and return it.

        The file carries the image's :class:`Recipe` (a PNG ``iTXt`` chunk, JPEG XMP, else a
        sidecar ``NAME.json``), with the image's bytes otherwise untouched; ``metadata=False``
        writes the bytes exactly as the API sent them. Raises ``ImageNotSavedError`` for any
        failure, a disk error included.

        Example::

            saved = result.image.save("out/cat.png")
        """
        return self.write(path, self.read(), metadata=metadata)

    async def asave(self, path: str | os.PathLike[str], *, metadata: bool = True) -> Path:
        """Async twin of :meth:`save`.

        Example::

            saved = await result.image.asave("out/cat.png")
        """
        import asyncio  # imported on first use, like everything async (see _client)

        data = await self.aread()
        return await asyncio.to_thread(self.write, path, data, metadata=metadata)

    def write(self, path: str | os.PathLike[str], data: bytes, *, metadata: bool = True) -> Path:
        """Write this image's ``data`` (from :meth:`read`) to ``path`` atomically, with its recipe
        unless ``metadata=False`` (see :meth:`save`).

        For callers that choose the path from the bytes; an ``OSError`` becomes an
        ``ImageNotSavedError`` naming the request id and URL.

        Example::

            data = image.read()
            image.write(choose_path(data), data)
        """
        try:
            if metadata and self.recipe is not None:
                return write_with_recipe(path, data, self.recipe)
            return write_atomic(path, data)
        except OSError as exc:
            raise self._not_saved(exc) from exc

    def _not_saved(self, cause: BaseException) -> ImageNotSavedError:
        """The error saying this paid image is not on disk because of ``cause``."""
        if isinstance(cause, ImageNotSavedError):
            return cause
        return ImageNotSavedError(cause, request_id=self.request_id, url=self.url)

    def _require_url(self) -> str:
        if self.url is None:
            raise ReveRemixError("the response gave this image neither a url nor b64_json")
        return self.url


@dataclass(frozen=True, slots=True, eq=False)
class RemixResult:
    """A finished remix: when it was made, the images it produced, and the response's metadata.

    ``read``/``save`` (and the async ``aread``/``asave``) act on the first image, which is all the
    API returns today (``n`` is fixed at 1). ``raw`` is the generated
    ``reve_remix_api.models.RemixResponse``; ``status_code`` and ``headers`` are the response's.
    ``created`` is the API's timestamp, or the time the response arrived if the API's value was
    missing or unreadable.

    Example::

        result = client.remix("<img>0</img> in the snow", ["https://example.com/dog.jpg"])
        print(result.created_at, result.request_id)
        result.save("dog-snow.png")
    """

    created: int
    images: list[RemixImage]
    request_id: str | None = None
    status_code: int = 200
    headers: httpx.Headers = field(default_factory=httpx.Headers, repr=False)
    raw: RawResponse | None = field(default=None, repr=False)

    @property
    def created_at(self) -> datetime:
        """``created`` as an aware UTC datetime."""
        return datetime.fromtimestamp(self.created, tz=UTC)

    @property
    def image(self) -> RemixImage:
        """The first image that has a ``url`` or ``b64_json``: the one that was paid for.

        A client never returns a result without one; an item of ``data`` with neither (a
        server's stray entry) is never chosen over an image that can be had.
        """
        for image in self.images:
            if image.url or image.b64_json:
                return image
        raise ReveRemixError("the response contained no images")

    def read(self) -> bytes:
        """The first image's bytes. Example: ``png = result.read()``."""
        return self.image.read()

    async def aread(self) -> bytes:
        """Async twin of :meth:`read`. Example: ``png = await result.aread()``."""
        return await self.image.aread()

    @property
    def recipe(self) -> Recipe | None:
        """The first image's :class:`Recipe`: what was sent, and what the API answered."""
        return self.image.recipe

    def save(self, path: str | os.PathLike[str], *, metadata: bool = True) -> Path:
        """Save the first image atomically, with its recipe unless ``metadata=False`` (see
        :meth:`RemixImage.save`). Example: ``result.save("out.png")``."""
        return self.image.save(path, metadata=metadata)

    async def asave(self, path: str | os.PathLike[str], *, metadata: bool = True) -> Path:
        """Async twin of :meth:`save`. Example: ``await result.asave("out.png")``."""
        return await self.image.asave(path, metadata=metadata)


def parse_response(
    response: httpx.Response, downloader: Downloader, recipe: SentRecipe | None = None
) -> RemixResult:
    """Find the images of a 2xx and build the result, tolerating every field it does not need.

    ``recipe`` is what was sent; each image's ``recipe`` completes it with what the API answered.

    Raises ``APIResponseValidationError`` (status, raw body, request id; the message says the
    image may have been billed) only when no image can be found.
    """
    from reve_remix_api.models import RemixResponse

    request_id = request_id_of(response.headers)
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        preview = response.content[:2000].decode("utf-8", errors="replace")
        raise _unreadable(response, "the body is not JSON", preview) from None
    if not isinstance(body, dict):
        raise _unreadable(response, f"expected an object, got {type(body).__name__}", body)
    items = body.get("data")
    if isinstance(items, dict):
        items = [items]  # one image sent bare rather than in a list
    if not isinstance(items, list):
        raise _unreadable(response, "no 'data' array", body)
    image_checks, response_checks = _field_checks()
    data = [_typed_fields(item, image_checks) for item in items if isinstance(item, dict)]
    for item in data:
        if _string(item.get("url")) or _string(item.get("b64_json")):
            break
    else:
        raise _unreadable(response, "no item of 'data' has a 'url' or 'b64_json' string", body)
    # ``data`` and ``created`` were read above; the other fields are checked against the spec.
    rest = {name: value for name, value in body.items() if name not in (DATA_FIELD, "created")}
    fields = _typed_fields(rest, response_checks) if rest else rest
    created = _created(body.get("created"))
    raw = RemixResponse.from_dict({**fields, "created": created, DATA_FIELD: data})
    images = [RemixImage(image, request_id, downloader, recipe, created) for image in raw.data]
    return RemixResult(
        created=created,
        images=images,
        request_id=request_id,
        status_code=response.status_code,
        headers=response.headers,
        raw=raw,
    )


def _unreadable(response: httpx.Response, reason: str, body: object) -> APIError:
    """The error of a 2xx whose images cannot be found, for ``reason``."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        # An error object in a 2xx (OneRouter documents it): the vendor's words and type, in an
        # error that is an APIResponseValidationError too (see status_error).
        return status_error(response)
    return APIResponseValidationError(
        f"the API answered {response.status_code}, so the image was generated "
        f"({JobState.PAID.value}), but its images cannot be found in the response: {reason}",
        response=response,
        body=body,
    )


def paid_image(
    downloader: Downloader, url: str, request_id: str | None, revised_prompt: str | None = None
) -> RemixImage:
    """The image of an earlier 2xx, from what was recorded of it, to download again.

    Example::

        image = paid_image(Downloader(httpx.Client()), record.url, record.request_id)
        image.save("cat.png")
    """
    from reve_remix_api.models import RemixImage as GeneratedImage

    recorded = (
        {"url": url} if revised_prompt is None else {"url": url, "revised_prompt": revised_prompt}
    )
    return RemixImage(GeneratedImage.from_dict(recorded), request_id, downloader)


FieldChecks: TypeAlias = Mapping[str, Callable[[object], bool]]


@functools.cache
def _field_checks() -> tuple[FieldChecks, FieldChecks]:
    """The spec's checks of an item of ``data`` and of the response's own fields, built once."""
    schemas = spec()
    return (
        {name: conforms(schema) for name, schema in schemas.image_properties.items()},
        {name: conforms(schema) for name, schema in schemas.response_properties.items()},
    )


def _typed_fields(item: Mapping[str, Any], checks: FieldChecks) -> dict[str, Any]:
    """``item`` without the fields the spec declares whose value breaks their schema (or is null).

    The generated ``from_dict`` trusts its input; a field of the wrong type is dropped here rather
    than raise deep inside it, and is never a reason to lose the image. Fields the spec does not
    declare stay, for ``additional_properties``.
    """
    return {
        name: value
        for name, value in item.items()
        if (check := checks.get(name)) is None or (value is not None and check(value))
    }


_LAST_SECOND = 253_402_300_799  # 9999-12-31T23:59:59Z, the last second a datetime can show


def _created(value: object) -> int:
    """The API's ``created`` as whole Unix seconds: an int, a float, a numeric or ISO string.

    Anything else (or a time no clock can show) gives the time the response was read: the field
    says when the image was made, which is not a reason to lose it.
    """
    if type(value) is int and 0 <= value <= _LAST_SECOND:  # what the API sends: nothing to fix
        return value
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str):
        try:
            seconds = float(value)
        except ValueError:
            try:
                seconds = datetime.fromisoformat(value).timestamp()
            except ValueError:
                seconds = None
    if seconds is None or not math.isfinite(seconds):
        return int(time.time())
    try:
        datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return int(time.time())
    return int(seconds)


def _read(raw: RawImage, name: str) -> object:
    """The field ``name`` of a generated image (one of ``IMAGE_READS``), declared or not.

    A field the spec stops declaring is no attribute of the regenerated model: what the response
    still sends under its name is then in ``additional_properties``, and nothing else is there
    (``None``), so a vendor's removal never makes a paid result raise (``repr`` included).
    """
    try:
        return getattr(raw, name)
    except AttributeError:
        return raw.additional_properties.get(name)


def _string(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _decode_b64(text: str) -> bytes:
    # binascii reads an ASCII str in place; base64.b64decode would first copy it to bytes.
    try:
        data = binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise ReveRemixError(f"b64_json is not valid base64: {exc}") from None
    problem = not_an_image(data, f"b64_json ({len(data):,} bytes)")
    if problem:
        raise ReveRemixError(problem)
    return data
