"""The one rule that keeps the API key out of text: :func:`redact`.

Exceptions, the command line's output (its log lines included) and the batch manifest all pass
their text through it. A key can reach text in more shapes than the one the user set: with the
newline ``$(cat key.txt)`` kept or lost, quoted by ``repr`` (``'sk-…\\n'``), as bytes
(``b'Bearer sk-…'``), escaped by JSON or percent-encoded in a URL. Every one is replaced.
"""

from __future__ import annotations

import functools
import json
from urllib.parse import quote

REDACTED = "<redacted>"
# Shorter "keys" are not redacted: replacing every "abc" would garble every line, and no real key
# is that short.
MIN_SECRET_LENGTH = 8


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with every form of each secret replaced by ``<redacted>``.

    Example::

        >>> redact("Illegal header value b'Bearer sk-0123456789\\\\n'", "sk-0123456789\\n")
        "Illegal header value b'Bearer <redacted>'"
        >>> redact("no secret here", None)
        'no secret here'
    """
    for secret in secrets:
        if secret:
            for form in _forms(secret):
                text = text.replace(form, REDACTED)
    return text


@functools.lru_cache(maxsize=8)
def _forms(secret: str) -> tuple[str, ...]:
    """Every way ``secret`` may be written out, the longest first (so none is left half done)."""
    forms: set[str] = set()
    for value in {secret, secret.strip()}:
        encoded = value.encode("utf-8", "surrogatepass")
        forms |= {
            value,
            repr(value)[1:-1],
            json.dumps(value)[1:-1],
            json.dumps(value, ensure_ascii=False)[1:-1],
            repr(encoded)[2:-1],
            quote(encoded, safe=""),
        }
    return tuple(sorted((f for f in forms if len(f) >= MIN_SECRET_LENGTH), key=len, reverse=True))
