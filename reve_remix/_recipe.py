"""Recipes: what made an image, written into the file the SDK saves and read back by ``info``.

A :class:`Recipe` is what was sent (the prompt as written and as sent, model, aspect ratio, output
format, references, extra fields) and what came back (revised prompt, request id, ``created``),
with the SDK's version; never the key. ComfyUI and AUTOMATIC1111 embed theirs in every PNG they
write; this is the same idea, without touching the image:

- **PNG**: one ``iTXt`` chunk, keyword ``reve-remix``, the recipe as JSON, inserted before
  ``IEND``. Every other byte of the file is kept as it was (pixel data and every other chunk),
  so nothing is re-encoded; the chunk's CRC is computed here, in pure Python.
- **JPEG**: an XMP packet in an ``APP1`` segment after the leading ``APP0``/``APP1`` segments
  (JFIF, Exif); the recipe is the JSON text of one property, ``reve:recipe``. The entropy-coded
  data and every other segment are kept as they were.
- **anything else** (WebP, AVIF; or a file whose structure cannot be followed, or a recipe too
  large for a JPEG segment): the image as it came, and a sidecar ``NAME.json`` beside it
  (``out.webp.json``).

Adding a recipe never loses an image: if it cannot be embedded the sidecar is written, and a
sidecar that cannot be written is logged, not raised.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import html
import json
import logging
import os
import re
import struct
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import unquote_to_bytes

from ._files import write_atomic
from ._images import LocalImage, url_scheme
from ._version import __version__

logger = logging.getLogger("reve_remix")

PNG_KEYWORD = "reve-remix"
"""The keyword of the PNG ``iTXt`` chunk that holds a recipe."""
XMP_NAMESPACE = "https://github.com/reve-remix/reve-remix/ns/recipe/1.0/"
"""The XMP namespace of the ``reve:recipe`` property."""
SIDECAR_SUFFIX = ".json"

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
_JPEG_SEGMENT_MAX = 0xFFFF - 2  # a segment's length field counts itself
_XMP_PROPERTY = re.compile(rb"<reve:recipe>(.*?)</reve:recipe>", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Recipe:
    """What made an image: the request as written and as sent, and what the API answered.

    ``references`` has one entry per image sent, in order: ``{"url": ...}`` for an http(s) URL,
    ``{"file": "cat.png", "sha256": ...}`` for a local file (the hash of the bytes sent, which
    ``fit=True`` may have re-encoded), ``{"source": "data: URL", "sha256": ...}`` or
    ``{"source": "bytes", "sha256": ...}`` for other local content; with ``"name"`` when the
    images were named (``{cat}``). ``extra_body`` holds the request fields sent beyond the
    arguments (``seed``, say). Saved images carry it (see ``RemixImage.save``); ``read_recipe``
    reads it back.

    Example::

        result = client.remix("Put {cat} on {sofa}", {"cat": "cat.png", "sofa": "sofa.jpg"})
        print(result.recipe.prompt_sent)  # Put <img>0</img> on <img>1</img>
        result.save("cat-on-sofa.png")  # the recipe goes into the PNG
        print(read_recipe("cat-on-sofa.png").references[0])  # {'name': 'cat', 'file': ...}
    """

    prompt: str
    """The prompt as written (with ``{name}`` references, if any)."""
    prompt_sent: str
    """The prompt as sent (names bound to ``<img>N</img>`` tags)."""
    model: str
    aspect_ratio: str | None
    output_format: str
    references: tuple[Mapping[str, str], ...] = ()
    extra_body: Mapping[str, Any] = field(default_factory=dict)
    revised_prompt: str | None = None
    request_id: str | None = None
    created: int | None = None
    sdk_version: str = __version__

    def to_dict(self) -> dict[str, Any]:
        """The recipe as JSON-ready data: the form files hold.

        Example::

            >>> Recipe("a", "a", "m", None, "url").to_dict()["sdk_version"] == __version__
            True
        """
        data = dataclasses.asdict(self)
        data["references"] = [dict(ref) for ref in self.references]
        data["extra_body"] = dict(self.extra_body)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Recipe:
        """A recipe from :meth:`to_dict`'s form; unknown keys (a newer SDK's) are ignored.

        Raises ``ValueError`` when a required field is missing or not text.

        Example::

            >>> Recipe.from_dict(Recipe("a", "a", "m", "1:1", "url").to_dict()).aspect_ratio
            '1:1'
        """
        for name in ("prompt", "prompt_sent", "model", "output_format"):
            if not isinstance(data.get(name), str):
                raise ValueError(f"a recipe's {name!r} must be text")
        known = {f.name for f in dataclasses.fields(cls)}
        values = {name: value for name, value in data.items() if name in known}
        references = values.get("references") or ()
        values["references"] = tuple(dict(ref) for ref in references if isinstance(ref, dict))
        if not isinstance(values.get("extra_body", {}), dict):
            values["extra_body"] = {}
        return cls(**values)

    def to_json(self, indent: int | None = None) -> bytes:
        """The recipe as JSON in UTF-8: one line, or ``indent``-ed.

        Text stays readable (not ``\\u`` escapes), but a lone surrogate (a server's revised
        prompt may hold one) is written as its JSON escape: never a reason not to save an image.

        Example::

            >>> Recipe("日本", "日本", "m", None, "url").to_json().decode()[:15]
            '{"prompt":"日本",'
        """
        separators = (",", ":") if indent is None else None
        text = json.dumps(self.to_dict(), ensure_ascii=False, indent=indent, separators=separators)
        return text.encode("utf-8", "backslashreplace")


class SentRecipe(NamedTuple):
    """What a request sent, as the recipes of its images tell it: a :class:`Recipe` without the
    answer's parts, which :meth:`answered` adds for one image.

    Every request makes one (a tuple, a fraction of a ``Recipe``'s cost); a ``Recipe`` is made
    only for an image whose recipe is read or saved.

    Example::

        >>> SentRecipe("a", "a", "m", None, "url", (), {}).answered("a cat", "req-1", 7).created
        7
    """

    prompt: str
    prompt_sent: str
    model: str
    aspect_ratio: str | None
    output_format: str
    references: tuple[Mapping[str, str], ...]
    extra_body: Mapping[str, Any]

    def answered(
        self, revised_prompt: str | None, request_id: str | None, created: int | None
    ) -> Recipe:
        """The recipe of one image of this request: what was sent, and what the API answered."""
        return Recipe(*self, revised_prompt, request_id, created)


def reference(item: object, sent: str | LocalImage, name: str | None) -> dict[str, str]:
    """How a recipe names one image: ``item`` as the caller gave it, ``sent`` as it went out.

    Example::

        >>> reference("https://example.com/cat.png", "https://example.com/cat.png", None)
        {'url': 'https://example.com/cat.png'}
    """
    ref = {} if name is None else {"name": name}
    if isinstance(sent, str) and url_scheme(sent) != "data":
        ref["url"] = sent
        return ref
    data = sent.data if isinstance(sent, LocalImage) else data_url_bytes(sent)
    file = _file_name(item)
    if file is not None:
        ref["file"] = file
    elif isinstance(item, str) and url_scheme(item) == "data":
        ref["source"] = "data: URL"
    else:
        ref["source"] = "bytes"
    ref["sha256"] = hashlib.sha256(data).hexdigest()
    return ref


def _file_name(item: object) -> str | None:
    """The name of the file ``item`` came from (a path, or an open file), if it names one."""
    if isinstance(item, str | os.PathLike) and not (
        isinstance(item, str) and url_scheme(item) in ("http", "https", "data")
    ):
        return Path(os.fsdecode(item)).name
    name = getattr(item, "name", None)
    return Path(name).name if isinstance(name, str) and name else None


def data_url_bytes(url: str) -> bytes:
    """The bytes of a ``data:`` URL the request checks have accepted.

    Example::

        >>> data_url_bytes("data:image/png;base64,iVBORw==")
        b'\\x89PNG'
    """
    head, _, payload = url.partition(",")
    if head.lower().endswith(";base64"):
        return base64.b64decode(payload)
    return unquote_to_bytes(payload)


# --- writing ----------------------------------------------------------------------------------


def write_with_recipe(path: str | os.PathLike[str], data: bytes, recipe: Recipe) -> Path:
    """Write the image ``data`` to ``path`` atomically, carrying ``recipe`` (see the module).

    Raises ``OSError`` only if the image itself cannot be written.

    Example::

        write_with_recipe("out.png", png, result.image.recipe)
    """
    image, sidecar = with_recipe(data, recipe)
    target = write_atomic(path, image)
    if sidecar is not None:
        try:
            write_atomic(sidecar_path(target), sidecar)
        except OSError as exc:  # the image is saved; its recipe is a convenience
            logger.warning("could not write the recipe of %s: %s", target, exc.strerror or exc)
    return target


def with_recipe(data: bytes, recipe: Recipe) -> tuple[bytes, bytes | None]:
    """What to save for an image that carries ``recipe``: the image's bytes (the recipe inside
    where the format allows) and, where it does not, the sidecar's bytes (else ``None``).

    Example::

        image, sidecar = with_recipe(png, recipe)  # sidecar is None: the PNG holds it
    """
    try:
        embedded = embed(data, recipe)
    except (ValueError, struct.error) as exc:  # a file this cannot follow: the sidecar, then
        logger.debug("recipe not embedded: %s", exc)
        embedded = None
    if embedded is None:
        return data, recipe.to_json(indent=2) + b"\n"
    return embedded, None


def recipe_of(record_recipe: str | None) -> Recipe | None:
    """The :class:`Recipe` a ledger record keeps (as JSON), or ``None``; one that cannot be read
    is logged and left out, never a reason not to save a paid image."""
    if record_recipe is None:
        return None
    try:
        return Recipe.from_dict(json.loads(record_recipe))
    except (ValueError, TypeError, AttributeError) as exc:
        logger.warning("a recorded recipe cannot be read; the image is saved without it: %s", exc)
        return None


def save_image(path: str | os.PathLike[str], data: bytes, recipe: str | None) -> Path:
    """Save a paid image atomically, carrying ``recipe`` (a ledger record's JSON) when given.

    The way the paid-job destinations on a local disk (a batch's output file, ``remix`` on the
    command line) write an image.

    Example::

        save_image("out/cat.png", png, record.recipe)
    """
    found = recipe_of(recipe)
    return write_atomic(path, data) if found is None else write_with_recipe(path, data, found)


def sidecar_path(image: str | os.PathLike[str]) -> Path:
    """Where the recipe of an image that cannot hold one goes: ``NAME.json`` beside it.

    Example::

        >>> sidecar_path("out/cat.webp").as_posix()
        'out/cat.webp.json'
    """
    path = Path(image)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def embed(data: bytes, recipe: Recipe) -> bytes | None:
    """``data`` with ``recipe`` inside (PNG ``iTXt``, JPEG XMP), or ``None`` if it cannot be
    added without re-encoding (another format, a structure this cannot follow, too large).

    Example::

        png_with_recipe = embed(png, recipe)
    """
    if data.startswith(_PNG_SIGNATURE):
        return _png_with(data, recipe)
    if data.startswith(b"\xff\xd8"):
        return _jpeg_with(data, recipe)
    return None


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, and the CRC-32 of type and data.

    Example::

        >>> png_chunk(b"IEND", b"").hex()
        '0000000049454e44ae426082'
    """
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_with(data: bytes, recipe: Recipe) -> bytes | None:
    # keyword, null, compression flag 0 and method 0, empty language and translated keyword
    text = PNG_KEYWORD.encode("latin-1") + b"\x00\x00\x00\x00\x00" + recipe.to_json()
    for kind, start, _end, _body in _png_chunks(data):
        if kind == b"IEND":
            return data[:start] + png_chunk(b"iTXt", text) + data[start:]
    return None


def _png_chunks(data: bytes) -> Iterator[tuple[bytes, int, int, bytes]]:
    """Each chunk's type, start and end offsets and data; stops where the structure breaks."""
    offset = len(_PNG_SIGNATURE)
    while offset + 12 <= len(data):
        (length,) = struct.unpack_from(">I", data, offset)
        end = offset + 12 + length
        if end > len(data):
            return
        yield data[offset + 4 : offset + 8], offset, end, data[offset + 8 : end - 4]
        offset = end


def _jpeg_with(data: bytes, recipe: Recipe) -> bytes | None:
    segment = _XMP_HEADER + _xmp_packet(recipe)
    if len(segment) > _JPEG_SEGMENT_MAX:
        return None
    at = 2  # after SOI, and after the APP0 (JFIF) and APP1 (Exif) segments that lead
    for marker, start, _end in _jpeg_segments(data):
        if marker not in (0xE0, 0xE1):
            at = start
            break
    else:
        return None  # no frame follows: not a JPEG this can follow
    app1 = b"\xff\xe1" + struct.pack(">H", len(segment) + 2) + segment
    return data[:at] + app1 + data[at:]


def _jpeg_segments(data: bytes) -> Iterator[tuple[int, int, int]]:
    """Each marker segment's marker, start and end, from SOI up to the start of scan (SOS)."""
    offset = 2
    while offset + 4 <= len(data) and data[offset] == 0xFF:
        marker = data[offset + 1]
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            yield marker, offset, len(data)
            return
        (length,) = struct.unpack_from(">H", data, offset + 2)
        end = offset + 2 + length
        if length < 2 or end > len(data):
            return
        yield marker, offset, end
        offset = end


def _xmp_packet(recipe: Recipe) -> bytes:
    text = html.escape(recipe.to_json().decode(), quote=False)  # to_json's bytes are UTF-8
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f'<rdf:Description rdf:about="" xmlns:reve="{XMP_NAMESPACE}">'
        f"<reve:recipe>{text}</reve:recipe>"
        "</rdf:Description></rdf:RDF></x:xmpmeta>"
        '<?xpacket end="w"?>'
    ).encode()


# --- reading ----------------------------------------------------------------------------------


def read_recipe(path: str | os.PathLike[str]) -> Recipe | None:
    """The recipe of the image at ``path`` (embedded, or in its sidecar), or ``None``.

    Raises ``OSError`` if the image cannot be read.

    Example::

        recipe = read_recipe("cat-watercolour.png")
        if recipe is not None:
            print(recipe.prompt, recipe.request_id)
    """
    found = find_recipe(path)
    return None if found is None else found[0]


def find_recipe(path: str | os.PathLike[str]) -> tuple[Recipe, str] | None:
    """The recipe of the image at ``path`` and where it was found, or ``None``."""
    data = Path(path).read_bytes()
    texts: list[tuple[bytes, str]] = []
    if data.startswith(_PNG_SIGNATURE):
        texts += [(body, f"PNG iTXt chunk {PNG_KEYWORD!r}") for body in _png_texts(data)]
    elif data.startswith(b"\xff\xd8"):
        texts += [(text, "JPEG XMP (APP1)") for text in _jpeg_texts(data)]
    sidecar = sidecar_path(path)
    if sidecar.is_file():
        texts.append((sidecar.read_bytes(), f"sidecar {sidecar}"))
    for text, where in texts:
        try:
            recipe = Recipe.from_dict(json.loads(text))
        except (ValueError, TypeError, AttributeError):  # not a recipe this SDK can read
            continue
        return recipe, where
    return None


def _png_texts(data: bytes) -> list[bytes]:
    """The text of every ``reve-remix`` iTXt chunk, the last one first."""
    prefix = PNG_KEYWORD.encode("latin-1") + b"\x00\x00"  # uncompressed
    texts = []
    for kind, _start, _end, body in _png_chunks(data):
        if kind == b"iTXt" and body.startswith(prefix):
            _language, _, rest = body[len(prefix) + 1 :].partition(b"\x00")
            _translated, _, text = rest.partition(b"\x00")
            texts.append(text)
    return texts[::-1]


def _jpeg_texts(data: bytes) -> list[bytes]:
    texts = []
    for marker, start, end in _jpeg_segments(data):
        segment = data[start + 4 : end]
        if marker == 0xE1 and segment.startswith(_XMP_HEADER):
            match = _XMP_PROPERTY.search(segment)
            if match:
                texts.append(html.unescape(match[1].decode("utf-8", "replace")).encode())
    return texts[::-1]
