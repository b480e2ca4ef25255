"""Reading ``data:`` URLs back into bytes, for assertions on what was sent and for cassettes."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import unquote_to_bytes

__all__ = ["decode_data_url"]


def decode_data_url(url: object) -> bytes | None:
    """The bytes a ``data:`` URL carries (base64 or percent-encoded); None for anything else.

    Example::

        >>> decode_data_url("data:image/png;base64,iVBORw==")
        b'\\x89PNG'
        >>> decode_data_url("https://example.com/cat.png") is None
        True
    """
    if not isinstance(url, str) or url[:5].lower() != "data:":
        return None
    header, comma, payload = url[5:].partition(",")
    if not comma:
        return None
    if header.lower().endswith(";base64"):
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            return None
    return unquote_to_bytes(payload)
