"""What a remix returns: the parsed, type-checked response and ways to get the pixels to disk.

The generated ``RemixResponse.from_dict`` trusts its input, so ``parse_response`` checks every field
against the spec's types first: a body that does not match becomes ``APIResponseValidationError``,
never a KeyError or AttributeError deep inside the caller's code.
"""

from __future__ import annotations

import binascii
import json
import os
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from ._download import Downloader
from ._exceptions import APIResponseValidationError, ReveRemixError, request_id_of


@dataclass(frozen=True, slots=True)
class RemixImage:
    """One generated image: a ``url`` or inline ``b64_json``, and the prompt the model used.

    Example::

        result = client.remix("<img>0</img> as a watercolour", ["cat.png"])
        image = result.image
        print(image.url or "inline", image.revised_prompt)
        image.save("cat-watercolour.png")
    """

    url: str | None
    b64_json: str | None
    revised_prompt: str | None
    _downloader: Downloader = field(repr=False, compare=False)

    def read(self) -> bytes:
        """The image's bytes: decoded from base64, or downloaded without the API key.

        Example::

            png = result.image.read()
        """
        if self.b64_json is not None:
            return _decode_b64(self.b64_json)
        return self._downloader.download(self._require_url())

    async def aread(self) -> bytes:
        """Async twin of :meth:`read`, for results of :class:`AsyncReveRemix`.

        Example::

            png = await result.image.aread()
        """
        if self.b64_json is not None:
            return _decode_b64(self.b64_json)
        return await self._downloader.adownload(self._require_url())

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the image to ``path`` atomically (no half-written file, ever) and return it.

        Example::

            saved = result.image.save("out/cat.png")
        """
        return write_atomic(path, self.read())

    async def asave(self, path: str | os.PathLike[str]) -> Path:
        """Async twin of :meth:`save`.

        Example::

            saved = await result.image.asave("out/cat.png")
        """
        import asyncio  # imported on first use, like everything async (see _client)

        data = await self.aread()
        return await asyncio.to_thread(write_atomic, path, data)

    def _require_url(self) -> str:
        if self.url is None:
            raise ReveRemixError("this image has neither a url nor b64_json to read")
        return self.url


@dataclass(frozen=True, slots=True)
class RemixResult:
    """A finished remix: when it was made and the images it produced.

    ``read``/``save`` (and the async ``aread``/``asave``) act on the first image, which is all the
    API returns today (``n`` is fixed at 1).

    Example::

        result = client.remix("<img>0</img> in the snow", ["https://example.com/dog.jpg"])
        print(result.created_at, result.request_id)
        result.save("dog-snow.png")
    """

    created: int
    images: list[RemixImage]
    request_id: str | None = None
    _response: httpx.Response | None = field(default=None, repr=False, compare=False)

    @property
    def created_at(self) -> datetime:
        """``created`` as an aware UTC datetime."""
        return datetime.fromtimestamp(self.created, tz=UTC)

    @property
    def image(self) -> RemixImage:
        """The first image; ``APIResponseValidationError`` if the API returned none."""
        if not self.images:
            message = "the response contained no images"
            if self._response is None:
                raise ReveRemixError(message)
            raise APIResponseValidationError(message, response=self._response, body=None)
        return self.images[0]

    def read(self) -> bytes:
        """The first image's bytes. Example: ``png = result.read()``."""
        return self.image.read()

    async def aread(self) -> bytes:
        """Async twin of :meth:`read`. Example: ``png = await result.aread()``."""
        return await self.image.aread()

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save the first image atomically. Example: ``result.save("out.png")``."""
        return self.image.save(path)

    async def asave(self, path: str | os.PathLike[str]) -> Path:
        """Async twin of :meth:`save`. Example: ``await result.asave("out.png")``."""
        return await self.image.asave(path)


_IMAGE_FIELDS = ("url", "b64_json", "revised_prompt")  # RemixImage's fields, in order


def parse_response(response: httpx.Response, downloader: Downloader) -> RemixResult:
    """Check a 2xx body against the spec's ``RemixResponse`` and build the result.

    Raises ``APIResponseValidationError`` (with status, body and request id) for anything else.
    """

    def invalid(reason: str, body: object) -> APIResponseValidationError:
        return APIResponseValidationError(
            f"{response.status_code} response does not match the API schema: {reason}",
            response=response,
            body=body,
        )

    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        preview = response.content[:200].decode("utf-8", errors="replace")
        raise invalid("body is not JSON", preview) from None
    if not isinstance(body, dict):
        raise invalid(f"expected an object, got {type(body).__name__}", body)
    created = body.get("created")
    if not isinstance(created, int) or isinstance(created, bool):
        raise invalid("'created' must be an integer", body)
    try:
        datetime.fromtimestamp(created, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise invalid(f"'created' is not a valid timestamp: {created}", body) from None
    data = body.get("data")
    if not isinstance(data, list):
        raise invalid("'data' must be an array", body)
    images = []
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            raise invalid(f"data[{index}] must be an object", body)
        fields = [item.get(name) for name in _IMAGE_FIELDS]
        for name, value in zip(_IMAGE_FIELDS, fields, strict=True):
            if value is not None and not isinstance(value, str):
                raise invalid(f"data[{index}].{name} must be a string", body)
        url, b64_json, revised_prompt = fields
        images.append(RemixImage(url, b64_json, revised_prompt, downloader))
    return RemixResult(
        created=created,
        images=images,
        request_id=request_id_of(response.headers),
        _response=response,
    )


def _decode_b64(text: str) -> bytes:
    # binascii reads an ASCII str in place; base64.b64decode would first copy it to bytes.
    try:
        return binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise ReveRemixError(f"b64_json is not valid base64: {exc}") from None


def write_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    A crash or Ctrl-C mid-write leaves the old file (or none), never a truncated image. The
    file gets the permissions the umask gives a new file (``mkstemp`` would make it 0600).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_name = target.with_name(f".{target.name}.{secrets.token_hex(6)}.part")
    fd = os.open(tmp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target
