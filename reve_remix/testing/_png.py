"""A tiny PNG encoder (zlib only, no Pillow) for the mock server's placeholder images."""

from __future__ import annotations

import struct
import zlib

from reve_remix._recipe import png_chunk

__all__ = ["gradient_png"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_RGB = 2  # PNG colour type: 8-bit truecolour, no alpha


def gradient_png(width: int, height: int, seed: bytes) -> bytes:
    """Return a ``width`` x ``height`` PNG fading top to bottom between two colours from ``seed``.

    The same arguments always give the same bytes, so a test can compare images for equality.
    ``seed`` needs at least 6 bytes (two RGB colours); a SHA-256 digest is a good one.

    Example::

        png = gradient_png(160, 90, hashlib.sha256(b"request").digest())
        assert png.startswith(b"\\x89PNG")
    """
    top, bottom = seed[0:3], seed[3:6]
    rows = bytearray()
    for y in range(height):
        t = y / (height - 1) if height > 1 else 0.0
        colour = bytes(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True))
        rows += b"\x00" + colour * width  # filter byte 0 ("None"), then the row's pixels
    header = struct.pack(">IIBBBBB", width, height, 8, _RGB, 0, 0, 0)
    return b"".join(
        (
            _SIGNATURE,
            png_chunk(b"IHDR", header),
            png_chunk(b"IDAT", zlib.compress(bytes(rows), 9)),
            png_chunk(b"IEND", b""),
        )
    )
