"""Turn the images a caller holds into what the API accepts: URL strings in ``image_urls``.

The API takes each image as an http(s) URL or a ``data:`` URL. Callers hold images as URLs,
file paths, bytes, open files or PIL images; :func:`prepare_image` turns any of those into
either a URL to send unchanged or a :class:`LocalImage` — checked bytes that an uploader
(by default :func:`data_url`) turns into a URL. Every mistake that can be seen locally is
raised here as :class:`~reve_remix.ValidationError`, before a paid request is sent.

What is checked, and what is not:

* The format is sniffed from the content's leading bytes, never from a file name or a
  declared type: PNG, JPEG, WebP, AVIF and HEIF/HEIC are accepted, anything else is
  rejected naming what it is (GIF, BMP, TIFF, or "unknown").
* The accepted formats and the size limit come from the spec's text ("Each image must be less
  than 1.5 MB. Supports PNG, JPEG, WebP, AVIF, and HEIF formats."), read by ``reve_remix._spec``.
  MB is read as 10**6 bytes, the stricter reading next to 2**20, and "less than" as strict:
  1,499,999 bytes pass, 1,500,000 do not.
* Only the signature is checked, not the whole file: a file cut short after its header
  passes, and the API reports it. Decoding every image to find truncation would need Pillow
  and the time to decode, and this default path needs neither.
* A PIL image is sent as PNG: lossless, so the API sees exactly its pixels. To send a JPEG
  file as it is, pass the file (or its bytes) rather than the image opened from it.
* http(s) URLs are checked for shape only: this module does no network I/O.
* Pillow is imported only when a PIL image is passed or ``fit=True`` is asked for.
"""

from __future__ import annotations

import base64
import errno
import importlib
import io
import logging
import math
import os
import re
import stat
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import (
    TYPE_CHECKING,
    BinaryIO,
    NamedTuple,
    Protocol,
    TypeAlias,
    TypeGuard,
    Union,
    runtime_checkable,
)
from urllib.parse import unquote_to_bytes

from reve_remix._exceptions import ValidationError
from reve_remix._spec import spec
from reve_remix._urls import http_url_problem

if TYPE_CHECKING:
    import PIL.Image

__all__ = [
    "ImageInput",
    "LocalImage",
    "Uploader",
    "check_image",
    "check_uploaded_url",
    "data_url",
    "prepare_image",
    "sniff_format",
]

# A Union, not ``|``: the PIL member stays a string so that Pillow is not imported to build it.
ImageInput: TypeAlias = Union[
    str, os.PathLike[str], bytes, bytearray, memoryview, BinaryIO, "PIL.Image.Image"
]
"""One image, in any form ``remix`` accepts (:func:`prepare_image` checks it).

* ``str``: an http(s) URL or a ``data:`` URL (sent as given), or the path of an existing file;
* ``os.PathLike`` (e.g. ``pathlib.Path``): a file to read;
* ``bytes``, ``bytearray``, ``memoryview``: the encoded file content;
* a binary file object (``open(path, "rb")``, ``io.BytesIO``): read from its current position;
* a ``PIL.Image.Image``: encoded as PNG (needs Pillow, which is then already installed).
"""

Uploader: TypeAlias = Callable[[bytes, str], str | Awaitable[str]]
"""Turns local image content into a URL the API can fetch: ``(data, mime) -> url``.

It may be a plain or an ``async`` function. The default, :func:`data_url`, inlines the image
as a ``data:`` URL; a custom uploader might put it in a bucket and return a signed https URL::

    def upload(data: bytes, mime: str) -> str:
        key = hashlib.sha256(data).hexdigest()
        bucket.put_object(Key=key, Body=data, ContentType=mime)
        return bucket.presigned_url(key)
"""

_log = logging.getLogger("reve_remix")


class ImageFormat(NamedTuple):
    """A format ``sniff_format`` knows: its name, its file extension, and the media types the
    SDK sends it as (the first is the one sent; none: never sent). Which of them the API accepts
    is the spec's business (``spec().image_formats``)."""

    name: str
    extension: str
    media_types: tuple[str, ...] = ()


IMAGE_FORMATS = {
    "png": ImageFormat("PNG", ".png", ("image/png",)),
    "jpeg": ImageFormat("JPEG", ".jpg", ("image/jpeg", "image/jpg", "image/pjpeg")),
    "webp": ImageFormat("WebP", ".webp", ("image/webp",)),
    "avif": ImageFormat("AVIF", ".avif", ("image/avif",)),
    "heif": ImageFormat(
        "HEIF", ".heic", ("image/heif", "image/heic", "image/heif-sequence", "image/heic-sequence")
    ),
    "gif": ImageFormat("GIF", ".gif"),
    "bmp": ImageFormat("BMP", ".bmp"),
    "tiff": ImageFormat("TIFF", ".tiff"),
}
UNKNOWN_EXTENSION = ".bin"
"""The extension of data no format of ``IMAGE_FORMATS`` recognises."""
_MEDIA_TYPES = {fmt: known.media_types for fmt, known in IMAGE_FORMATS.items() if known.media_types}
_FORMAT_NAMES = {fmt: known.name for fmt, known in IMAGE_FORMATS.items()}

_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
)
_BMP_HEADER_SIZES = frozenset({12, 40, 52, 56, 64, 108, 124})
# ISO BMFF (HEIF family) brands, from the ftyp box: ISO/IEC 23008-12 and the AV1 image format.
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_HEIC_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs"})
_HEIF_GENERIC_BRANDS = frozenset({b"mif1", b"msf1"})
# Enough leading bytes to sniff any of the above, including an ftyp box with many brands.
_HEAD_BYTES = 4096

_SCHEME = re.compile(r"\s*([A-Za-z][A-Za-z0-9+.-]+):")  # 2+ letters: "C:\x.png" is a path
_DATA_URL = re.compile(r"data:([^,]*),", re.IGNORECASE)
_BASE64_LIKE = re.compile(r"[A-Za-z0-9+/=\s]{100,}")
_PREVIEW_CHARS = 60

_FIT_QUALITY = 90
_FIT_ATTEMPTS = 8
_FIT_MAX_STEP = 0.9  # each retry shrinks both sides to at most 90 %
_FIT_MARGIN = 0.95  # aim a little under the limit: encoded size is not exactly ∝ pixels
_WEBP_MAX_SIDE = 16383


@dataclass(frozen=True, slots=True)
class LocalImage:
    """Checked local image content, waiting for an :data:`Uploader` to make it a URL.

    ``data`` is the exact content to send, already known to be a supported format under
    the size limit; ``mime`` is its media type and ``format`` one of ``"png"``, ``"jpeg"``,
    ``"webp"``, ``"avif"``, ``"heif"``. ``label`` names the image in error messages.

    Example::

        image = prepare_image(Path("cat.png"), "image 0")
        assert isinstance(image, LocalImage) and image.mime == "image/png"
        url = data_url(image.data, image.mime)
    """

    label: str
    data: bytes = field(repr=False)
    mime: str
    format: str


def prepare_image(item: object, label: str, *, fit: bool = False) -> str | LocalImage:
    """Check one image and return it as a URL to send, or as :class:`LocalImage` content.

    http(s) and ``data:`` URLs come back unchanged once checked; everything else (paths, bytes,
    file objects, PIL images) comes back as a :class:`LocalImage`. ``label`` is how errors name
    the image (``"image 0"``, ``"image 'cat'"``).

    With ``fit=True`` (needs Pillow), local content that is too large or in an unsupported
    format is re-encoded as WebP, downscaled as needed, and the change is logged at INFO on
    the ``reve_remix`` logger. Content that already fits is returned byte for byte.

    Raises ``ValidationError`` for anything the API would reject that can be seen here, and for
    ``fit=True`` without Pillow.

    Example::

        prepare_image("https://example.com/cat.png", "image 0")  # the same string
        prepare_image(Path("cat.png"), "image 1")  # LocalImage(…, mime='image/png', …)
        prepare_image(Path("huge.png"), "image 2", fit=True)  # LocalImage(…, mime='image/webp', …)
    """
    if fit:
        _require_pillow()
    if isinstance(item, str):
        return _from_str(item, label, fit)
    if isinstance(item, bytes | bytearray | memoryview):
        return _checked(_to_bytes(item), label, fit, source=None)
    if isinstance(item, os.PathLike):
        image = _from_path(item, label, fit)
        if image is None:
            raise ValidationError(f"{label}: no such file: {_preview_path(item)}")
        return image
    pil_image = _as_pil_image(item)
    if pil_image is not None:
        return _from_pil(pil_image, label, fit)
    if isinstance(item, _Reader):
        return _from_reader(item, label, fit)
    raise ValidationError(
        f"{label}: expected an http(s) URL, a data: URL, a file path, bytes, a binary file "
        f"or a PIL image, got {_describe(item)}"
    )


def check_image(item: object, label: str, *, fit: bool = False) -> None:
    """Raise what :func:`prepare_image` would for ``item``, reading a local file's head only.

    A file is checked by its size and leading bytes, so that checking a batch before sending
    it does not read every image twice. With ``fit=True`` the whole check runs (re-encoding
    needs the content).

    Example::

        check_image("cat.png", "image 0")  # None, or ValidationError naming the problem
    """
    path: str | os.PathLike[str] | None = item if isinstance(item, os.PathLike) else None
    if isinstance(item, str) and url_scheme(item) not in ("http", "https", "data"):
        path = item
    if fit or path is None or _from_path(path, label, fit, peek=True) is None:
        prepare_image(item, label, fit=fit)


def data_url(data: bytes, mime: str) -> str:
    """Inline ``data`` as a base64 ``data:`` URL; the default :data:`Uploader`.

    The URL is about 4/3 the size of the image (1.5 MB of PNG makes 2 MB of URL).

    Example::

        data_url(b"\\x89PNG...", "image/png")  # 'data:image/png;base64,iVBORw0KGgo...'
    """
    return data_url_head(mime) + base64.b64encode(data).decode("ascii")


def data_url_head(mime: str) -> str:
    """What a base64 ``data:`` URL of ``mime`` content holds before the base64.

    Example::

        >>> data_url_head("image/png")
        'data:image/png;base64,'
    """
    return f"data:{mime};base64,"


def check_uploaded_url(url: object, label: str) -> str:
    """Check what an :data:`Uploader` returned: an http(s) URL or a ``data:`` URL string.

    The uploader is trusted with the content: a ``data:`` URL is checked for shape (media type
    and comma), not decoded again.

    Example::

        check_uploaded_url("https://cdn.example.com/a.png", "image 0")  # returned unchanged
        check_uploaded_url(None, "image 0")  # ValidationError: the uploader returned None, …
    """
    if not isinstance(url, str):
        raise ValidationError(
            f"{label}: the uploader returned {_describe(url)}, not an http(s) or data: URL"
        )
    scheme = url_scheme(url)
    if scheme in ("http", "https"):
        problem = http_url_problem(url)
        if problem:
            raise ValidationError(f"{label}: the uploader's URL {_preview(url)} {problem}")
        return url
    if scheme == "data":
        header = _DATA_URL.match(url)
        if header and header.end() < len(url):
            return url
        raise ValidationError(
            f"{label}: the uploader returned a data: URL without data: {_preview(url)}"
        )
    raise ValidationError(
        f"{label}: the uploader returned {_preview(url)}, not an http(s) or data: URL"
    )


def image_extension(data: bytes) -> str:
    """The file extension for image ``data``, sniffed from its bytes (``.bin`` if unknown).

    Example:
        >>> image_extension(b"\\x89PNG\\r\\n\\x1a\\n...")
        '.png'
    """
    known = IMAGE_FORMATS.get(sniff_format(data) or "")
    return known.extension if known else UNKNOWN_EXTENSION


def sniff_format(data: bytes) -> str | None:
    """Name the image format of ``data`` from its leading bytes, or ``None`` if unknown.

    Returns one of the supported formats ``"png"``, ``"jpeg"``, ``"webp"``, ``"avif"``,
    ``"heif"`` (HEIC included), or ``"gif"``, ``"bmp"``, ``"tiff"`` so that errors can say
    what an unsupported file is. Only the header is read; it does not prove the rest is intact.

    Example::

        sniff_format(Path("cat.jpg").read_bytes())  # 'png' if it is really a PNG
    """
    for signature, name in _SIGNATURES:
        if data.startswith(signature):
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:2] == b"BM" and int.from_bytes(data[14:18], "little") in _BMP_HEADER_SIZES:
        return "bmp"
    return _sniff_isobmff(data)


# --- the input forms ---------------------------------------------------------------------------


def _from_str(item: str, label: str, fit: bool) -> str | LocalImage:
    scheme = url_scheme(item)
    if scheme in ("http", "https"):
        problem = http_url_problem(item)
        if problem:
            raise ValidationError(f"{label}: URL {_preview(item)} {problem}")
        return item
    if scheme == "data":
        return _from_data_url(item, label, fit)
    image = _from_path(item, label, fit)
    if image is not None:
        return image
    if not scheme:
        hint = (
            "; to pass base64 image data, make it a data: URL ('data:image/png;base64,' + data)"
            if _BASE64_LIKE.fullmatch(item)
            else ""
        )
        raise ValidationError(
            f"{label}: {_preview(item)} is neither an http(s) URL, a data: URL nor an existing "
            f"file{hint}"
        )
    hint = "; pass the file's path instead of a file: URL" if scheme == "file" else ""
    raise ValidationError(
        f"{label}: {_preview(item)} has the URL scheme '{scheme}:'; only http(s) and data: URLs "
        f"are accepted{hint}"
    )


def _from_data_url(url: str, label: str, fit: bool) -> str | LocalImage:
    match = _DATA_URL.match(url)
    if match is None:
        raise ValidationError(f"{label}: data: URL {_preview(url)} has no ',' before its data")
    params = match[1].split(";")
    media_type = params[0].strip().lower()
    payload = url[match.end() :]
    if len(params) == 1 or params[-1].strip().lower() != "base64":
        data = unquote_to_bytes(payload)
    else:
        try:
            data = base64.b64decode(payload, validate=True)
        except ValueError as exc:  # binascii.Error
            raise ValidationError(
                f"{label}: data: URL {_preview(url)} has invalid base64 data ({exc})"
            ) from exc
    image = _checked(data, label, fit, source="data: URL")
    if image.data is not data:  # fit=True re-encoded it: the declared type no longer applies
        return image
    if media_type not in _MEDIA_TYPES[image.format]:
        mime = _MEDIA_TYPES[image.format][0]
        declared = f"'{media_type}'" if media_type else "no media type"
        raise ValidationError(
            f"{label}: data: URL declares {declared} but holds {_FORMAT_NAMES[image.format]} "
            f"data; start it with 'data:{mime};base64,'"
        )
    return url


def _from_path(
    path: str | os.PathLike[str] | os.PathLike[bytes], label: str, fit: bool, *, peek: bool = False
) -> LocalImage | None:
    """The checked content of the file at ``path``; ``None`` when nothing is there.

    With ``peek`` (and not ``fit``) only the size and the leading bytes are read, and the
    ``LocalImage`` holds only those bytes: enough to check the file, not to send it.
    """
    source = f"file {_preview_path(path)}"
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError, ValueError):  # ValueError: a NUL in the path
        return None
    except OSError as exc:
        if exc.errno in (errno.ENAMETOOLONG, errno.EINVAL):  # cannot name a file at all
            return None
        raise ValidationError(f"{label} ({source}): cannot read it: {exc.strerror}") from exc
    if stat.S_ISDIR(info.st_mode):
        raise ValidationError(f"{label} ({source}): a directory, not an image file")
    if not stat.S_ISREG(info.st_mode):
        raise ValidationError(f"{label} ({source}): not a regular file")
    if not fit and (peek or info.st_size >= spec().max_image_bytes):
        # Checking only, or too large whatever it is: read what names the format, not the file.
        head = _read_file(path, label, source, _HEAD_BYTES)
        fmt = sniff_format(head)
        if peek and fmt in _MEDIA_TYPES and 0 < info.st_size < spec().max_image_bytes:
            return LocalImage(label, head, _MEDIA_TYPES[fmt][0], fmt)
        raise _rejection(fmt, info.st_size, head, label, source)
    return _checked(_read_file(path, label, source), label, fit, source)


def _read_file(
    path: str | os.PathLike[str] | os.PathLike[bytes], label: str, source: str, size: int = -1
) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read(size)
    except OSError as exc:
        raise ValidationError(f"{label} ({source}): cannot read it: {exc.strerror}") from exc


@runtime_checkable
class _Reader(Protocol):
    """Anything with ``read()``: open files, ``io.BytesIO``, HTTP response bodies, ..."""

    def read(self, /) -> object: ...


def _from_reader(reader: _Reader, label: str, fit: bool) -> LocalImage:
    name = getattr(reader, "name", None)
    source = f"file {_preview_path(name)}" if isinstance(name, str) else "file object"
    if isinstance(reader, io.TextIOBase):
        raise ValidationError(f"{label} ({source}): opened in text mode; open it with 'rb'")
    try:
        data = reader.read()
    except UnicodeDecodeError as exc:
        raise ValidationError(
            f"{label} ({source}): opened in text mode; open it with 'rb'"
        ) from exc
    except (OSError, ValueError) as exc:
        raise ValidationError(f"{label} ({source}): cannot read it: {exc}") from exc
    if isinstance(data, str):
        raise ValidationError(
            f"{label} ({source}): read() returned text; open the file in binary mode ('rb')"
        )
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ValidationError(
            f"{label} ({source}): read() returned {type(data).__name__}, not bytes"
        )
    return _checked(_to_bytes(data), label, fit, source)


def _from_pil(image: PIL.Image.Image, label: str, fit: bool) -> LocalImage:
    """Encode as PNG: lossless, so what the caller sees is what the API gets."""
    buffer = io.BytesIO()
    try:
        _png_ready(image).save(buffer, format="PNG")
    except (OSError, ValueError) as exc:
        raise ValidationError(f"{label} (PIL image): cannot encode it as PNG: {exc}") from exc
    data = buffer.getvalue()
    if fit and len(data) >= spec().max_image_bytes:
        return _fit(image, label, f"{_human(len(data))} PNG")
    return _checked(data, label, fit=False, source="PIL image, as PNG")


# --- checking and fitting content ----------------------------------------------------------------


def _checked(data: bytes, label: str, fit: bool, source: str | None) -> LocalImage:
    """``data`` itself when it can be sent as is; else re-encoded (``fit``) or rejected."""
    fmt = sniff_format(data)
    if _accepted(fmt) and len(data) < spec().max_image_bytes:
        return LocalImage(label, data, _MEDIA_TYPES[fmt][0], fmt)
    if fit:
        return _fit_encoded(data, fmt, label, source)
    raise _rejection(fmt, len(data), data, label, source)


def _rejection(
    fmt: str | None, size: int, head: bytes, label: str, source: str | None
) -> ValidationError:
    where = f"{label} ({source})" if source else label
    if size == 0:
        return ValidationError(f"{where}: empty (0 bytes), not an image")
    if fmt is None:
        return ValidationError(
            f"{where}: unknown format ({_size(size)}, starting {head[:16]!r}); "
            f"the API takes {supported_formats_text()}"
        )
    if not _accepted(fmt):
        return ValidationError(
            f"{where}: {_FORMAT_NAMES[fmt]} ({_size(size)}) is not supported; the API takes "
            f"{supported_formats_text()}; pass fit=True to convert it"
        )
    return ValidationError(
        f"{where}: {_FORMAT_NAMES[fmt]} of {_size(size)} is too large; each image must be less "
        f"than {_size(spec().max_image_bytes)}; pass fit=True to shrink it"
    )


def _accepted(fmt: str | None) -> TypeGuard[str]:
    """Whether the API accepts images of format ``fmt`` (a :func:`sniff_format` name)."""
    return fmt in _MEDIA_TYPES and fmt in spec().image_formats


def is_known_image(data: bytes) -> bool:
    """Whether ``data`` starts like an image of a format this SDK knows (PNG, JPEG, WebP, …)."""
    return sniff_format(data) in _MEDIA_TYPES


def supported_formats_text() -> str:
    """The formats the API accepts, for messages: ``PNG, JPEG, WebP, AVIF or HEIF``."""
    names = [_FORMAT_NAMES.get(fmt, fmt.upper()) for fmt in spec().image_formats]
    return " or ".join([", ".join(names[:-1]), names[-1]]) if len(names) > 1 else names[0]


def _fit_encoded(data: bytes, fmt: str | None, label: str, source: str | None) -> LocalImage:
    from PIL import Image

    where = f"{label} ({source})" if source else label
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        what = _FORMAT_NAMES.get(fmt or "", "this content")
        raise ValidationError(f"{where}: fit=True cannot decode {what}: {exc}") from exc
    return _fit(image, label, f"{_human(len(data))} {image.format or 'image'}")


def _fit(image: PIL.Image.Image, label: str, before: str) -> LocalImage:
    """Encode ``image`` as WebP, shrinking it until it is under the limit, and log what changed."""
    from PIL import Image, ImageOps

    limit = spec().max_image_bytes
    upright = ImageOps.exif_transpose(image)  # re-encoding drops EXIF, and its orientation
    assert upright is not None  # only in_place=True returns None
    mode = "RGBA" if _has_alpha(upright) else "RGB"
    # A color profile describes the original mode's channels; keep it only if they stay.
    icc_profile = upright.info.get("icc_profile") if upright.mode == mode else None
    pixels = upright if upright.mode == mode else upright.convert(mode)
    width, height = pixels.size
    scale = min(1.0, _WEBP_MAX_SIDE / max(width, height))
    for _ in range(_FIT_ATTEMPTS):
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        candidate = pixels if size == pixels.size else pixels.resize(size, Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        candidate.save(buffer, format="WEBP", quality=_FIT_QUALITY, icc_profile=icc_profile)
        data = buffer.getvalue()
        if len(data) < limit:
            _log.info(
                "%s: %s %dx%d → %s WebP %dx%d",
                label,
                before,
                width,
                height,
                _human(len(data)),
                *size,
            )
            return LocalImage(label, data, "image/webp", "webp")
        scale *= min(_FIT_MAX_STEP, math.sqrt(limit / len(data)) * _FIT_MARGIN)
    raise ValidationError(
        f"{label}: fit=True could not bring {before} {width}x{height} under {_size(limit)}"
    )


# --- small helpers -------------------------------------------------------------------------------


def _sniff_isobmff(data: bytes) -> str | None:
    """AVIF or HEIF from an ISO BMFF ``ftyp`` box: the major brand first, then compatible ones."""
    if data[4:8] != b"ftyp":
        return None
    box_size = int.from_bytes(data[:4], "big")
    if box_size < 16 or box_size % 4 or box_size > len(data):  # malformed or cut short
        return None
    brands = [data[8:12]] + [data[i : i + 4] for i in range(16, box_size, 4)]
    for brand in brands:
        if brand in _AVIF_BRANDS:
            return "avif"
        if brand in _HEIC_BRANDS:
            return "heif"
    # mif1/msf1 only say "some HEIF image"; AVIF files list them too, so they come last.
    return "heif" if _HEIF_GENERIC_BRANDS.intersection(brands) else None


def _to_bytes(data: bytes | bytearray | memoryview) -> bytes:
    """``bytes`` as is; a copy of mutable buffers, so later changes cannot alter what is sent."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, memoryview):
        return data.tobytes()
    return bytes(data)


def _require_pillow() -> None:
    try:
        importlib.import_module("PIL.Image")
    except ImportError as exc:
        raise ValidationError("fit=True needs Pillow: pip install 'reve-remix[pillow]'") from exc


def _as_pil_image(item: object) -> PIL.Image.Image | None:
    """``item`` if it is a PIL image; imports nothing unless ``PIL.Image`` is already loaded."""
    if not any(cls.__module__ == "PIL.Image" for cls in type(item).__mro__):
        return None
    from PIL import Image

    return item if isinstance(item, Image.Image) else None


def _png_ready(image: PIL.Image.Image) -> PIL.Image.Image:
    if image.mode in ("1", "L", "LA", "I;16", "P", "RGB", "RGBA"):
        return image
    return image.convert("RGBA" if _has_alpha(image) else "RGB")


def _has_alpha(image: PIL.Image.Image) -> bool:
    return "A" in image.getbands() or "transparency" in image.info


def url_scheme(text: str) -> str:
    """The lower-case scheme ``text`` starts with (``""`` for a path, even ``C:\\x.png``)."""
    match = _SCHEME.match(text)
    return match[1].lower() if match else ""


def _preview(text: str) -> str:
    """``text`` quoted for an error message, shortened, and never spilling inline image data."""
    if url_scheme(text) == "data":
        header = text.split(",", 1)[0][:_PREVIEW_CHARS]
        return f"'{header},…' ({len(text):,} characters)"
    if len(text) <= _PREVIEW_CHARS:
        return repr(text)
    if _BASE64_LIKE.fullmatch(text):
        return f"a {len(text):,}-character base64-like string"
    return f"{text[:_PREVIEW_CHARS]!r}… ({len(text):,} characters)"


def _preview_path(path: str | os.PathLike[str] | os.PathLike[bytes]) -> str:
    """A path quoted for an error message, shortened from the start to keep the file name."""
    text = os.fsdecode(path)
    return repr(text) if len(text) <= _PREVIEW_CHARS else repr("…" + text[1 - _PREVIEW_CHARS :])


def _describe(item: object) -> str:
    if item is None:
        return "None"
    if isinstance(item, str):
        return f"str {_preview(item)}"
    text = repr(item)
    if len(text) > _PREVIEW_CHARS:
        text = text[:_PREVIEW_CHARS] + "…"
    return f"{type(item).__name__} {text}"


def _human(size: int) -> str:
    if size < 1000:
        return f"{size} bytes"
    if size < 1_000_000:
        return f"{size / 1000:.1f} kB"
    return f"{size / 1_000_000:.1f} MB"


def _size(size: int) -> str:
    return _human(size) if size < 1000 else f"{_human(size)} ({size:,} bytes)"
