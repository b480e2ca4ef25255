"""A job's identity: a fingerprint of what would be sent, so that a ledger never pays twice.

Two jobs are the same job when they would send the same request: the prompt after named images
are bound to tags, the images by content (a local file by the SHA-256 of its bytes, a URL by its
text), the model, aspect ratio and extra fields, with every default filled in. The output format
is not part of it: ``url`` or ``b64_json`` is how the same image is delivered, so a resume with
another ``--format`` never pays for an image it already has.
So key order, ``"cat.png"`` vs ``./cat.png`` vs its absolute path, an explicit ``null`` equal to
the default, or a new output name are the same job, and a ledger that knows the job's id with
another fingerprint reports a conflict instead of calling it done.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os

from ._exceptions import ValidationError
from ._images import url_scheme
from ._request import default_fields, prepare_remix
from ._runner import Call

FINGERPRINT_CHARS = 32
"""Hex digits kept of the SHA-256 (128 bits: no two jobs of any real ledger share one)."""


def fingerprint(call: Call, model: str) -> str | None:
    """The fingerprint of ``call`` with ``model`` as the client's default, or ``None``.

    ``None`` when an image has no stable identity (a file object, a PIL image): such a job is
    run, never compared. Raises ``ValidationError`` for a call ``remix`` would refuse.

    Example::

        >>> a = fingerprint(Call("<img>0</img> at dusk", ["https://example.com/a.png"]), "m")
        >>> b = fingerprint(Call("<img>0</img> at dusk", ["https://example.com/a.png"],
        ...                      output_format="url"), "m")
        >>> a == b, len(a)
        (True, 32)
    """
    prepared = prepare_remix(
        call.prompt,
        call.images,
        model=call.model if call.model is not None else model,
        aspect_ratio=call.aspect_ratio,
        output_format=call.output_format,
        fit=call.fit,
        extra_body=call.extra_body,
        load_images=False,
    )
    images = [image_identity(source) for source in prepared.sources]
    if any(image is None for image in images):
        return None
    what = {
        "model": prepared.model,
        "prompt": prepared.prompt,
        "images": images,
        "aspect_ratio": None if prepared.aspect_ratio is None else prepared.aspect_ratio.value,
        "fields": {**default_fields(), **prepared.extra_body},
        "fit": call.fit,
    }
    text = json.dumps(what, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return digest[:FINGERPRINT_CHARS]


def image_identity(image: object) -> str | None:
    """What identifies one image: a URL's text, or ``sha256:<hex>`` of a file's or bytes' content.

    Example::

        >>> image_identity("https://example.com/a.png")
        'https://example.com/a.png'
        >>> image_identity(b"abc")
        'sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'
    """
    if isinstance(image, bytes | bytearray | memoryview):
        return "sha256:" + hashlib.sha256(image).hexdigest()
    if isinstance(image, str) and url_scheme(image) in ("http", "https"):
        return image
    if isinstance(image, str) and url_scheme(image) == "data":
        return "sha256:" + hashlib.sha256(image.encode("utf-8", "surrogatepass")).hexdigest()
    if isinstance(image, str | os.PathLike):
        path = os.path.realpath(os.fspath(image))
        try:
            stat = os.stat(path)
            return "sha256:" + _file_digest(path, stat.st_size, stat.st_mtime_ns)
        except OSError as exc:  # checked a moment ago: it went away or became unreadable
            raise ValidationError(f"image {os.fspath(image)!r}: cannot read it: {exc}") from None
    return None


@functools.lru_cache(maxsize=4096)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    """SHA-256 of a file, read once per (path, size, mtime): a batch reuses its references."""
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()
