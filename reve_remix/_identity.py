"""A job's identity: a fingerprint of what would be sent, so that a ledger never pays twice.

Two jobs are the same job when they would send the same request: the prompt after named images
are bound to tags, the images by content (a local file by the SHA-256 of its bytes, a URL by its
text), the model, aspect ratio and extra fields, with every default filled in. The output format
is not part of it: ``url`` or ``b64_json`` is how the same image is delivered, so a resume with
another ``--format`` never pays for an image it already has.
So key order, ``"cat.png"`` vs ``./cat.png`` vs its absolute path, an explicit ``null`` equal to
the default, or a new output name are the same job, and a ledger that knows the job's id with
another fingerprint reports a conflict instead of calling it done.

A fingerprint cannot say what changed, so a job's :class:`Identity` also keeps each part (the
prompt, each image, the model, ...) digested on its own: a ledger records them with the job,
and :func:`changed_parts` names the parts of a conflict that differ.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

from ._exceptions import ValidationError
from ._images import url_scheme
from ._request import default_fields, prepare_remix
from ._runner import Call

FINGERPRINT_CHARS = 32
"""Hex digits kept of the SHA-256 (128 bits: no two jobs of any real ledger share one)."""


PART_CHARS = 8
"""Hex digits kept of each part's digest: enough to tell a changed part from an equal one."""


@dataclass(frozen=True, slots=True)
class Identity:
    """A job's fingerprint, and the digest of each of its parts (``parts``, compact JSON: the
    part's name to its digest), so that a conflict can say what changed.

    The parts are ``prompt``, ``image 0``, ``image 1``... (in the order sent), ``model``,
    ``aspect_ratio``, ``extra_body.<field>`` (every field sent, defaults included) and ``fit``.
    """

    fingerprint: str
    parts: str


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
    found = identity(call, model)
    return None if found is None else found.fingerprint


def identity(call: Call, model: str) -> Identity | None:
    """The :class:`Identity` of ``call`` (``fingerprint`` and its ``parts``), or ``None`` as for
    :func:`fingerprint`. Raises ``ValidationError`` for a call ``remix`` would refuse.

    Example::

        >>> found = identity(Call("<img>0</img> at dusk", ["https://example.com/a.png"]), "m")
        >>> list(json.loads(found.parts))[:3]
        ['prompt', 'image 0', 'model']
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
    return Identity(_digest(what)[:FINGERPRINT_CHARS], _parts(what))


def _parts(what: dict[str, Any]) -> str:
    """Each part of ``what`` digested on its own, by the name a message gives it."""
    named: dict[str, object] = {"prompt": what["prompt"]}
    named.update((f"image {index}", image) for index, image in enumerate(what["images"]))
    named.update(model=what["model"], aspect_ratio=what["aspect_ratio"])
    named.update((f"extra_body.{name}", value) for name, value in what["fields"].items())
    named["fit"] = what["fit"]
    digests = {name: _digest(value)[:PART_CHARS] for name, value in named.items()}
    return json.dumps(digests, separators=(",", ":"))


def changed_parts(old: str | None, new: str | None) -> list[str] | None:
    """The names of the parts that differ between two records' ``parts``, in ``new``'s order
    (then parts only ``old`` has); ``None`` when it cannot be said: a record written before parts
    were kept, or no part differs (the fingerprint changed in a way no part shows).

    Example::

        >>> changed_parts('{"prompt":"1a","model":"2b"}', '{"prompt":"3c","model":"2b"}')
        ['prompt']
    """
    before, after = _read_parts(old), _read_parts(new)
    if before is None or after is None:
        return None
    names = [*after, *(name for name in before if name not in after)]
    changed = [name for name in names if before.get(name) != after.get(name)]
    return changed or None


def what_changed(old: str | None, new: str | None) -> str:
    """What a conflict's message says changed: ``changed: prompt, image 0``, or only
    ``changed`` with why no more can be said.

    Example::

        >>> what_changed('{"prompt":"1a","model":"2b"}', '{"prompt":"3c","model":"4d"}')
        'changed: prompt, model'
        >>> what_changed(None, '{"prompt":"3c"}')
        'changed; this record is too old to say what'
    """
    names = changed_parts(old, new)
    if names is not None:
        return f"changed: {', '.join(names)}"
    if old is None or new is None:
        return "changed; this record is too old to say what"
    return "changed"


def _read_parts(text: str | None) -> dict[str, object] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _digest(value: object) -> str:
    """SHA-256 of ``value`` as canonical JSON (the text fingerprints have always hashed)."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


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
