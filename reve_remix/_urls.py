"""What an http(s) URL must be to go on the wire: one rule for the base URL and image URLs.

Both a client's ``base_url`` (``_config``) and a reference image given as a URL (``_images``)
are sent as they are written, so both are checked here, before anything is sent, rather than
fail inside httpx at the first (paid) call.
"""

from __future__ import annotations

import functools
import re
from urllib.parse import urlsplit

# Whitespace, C0/C1 controls and lone surrogates: httpx refuses them, or a server reads another URL.
_BAD_URL_CHARS = re.compile(r"[\s\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def http_url_problem(url: str) -> str | None:
    """What is wrong with an http(s) URL to send (its characters, host or port), or ``None``.

    Remembered for the last URLs of up to 2,048 characters asked about: a batch or a grid sends
    the same reference images with job after job, and the answer depends on the URL alone.

    Example::

        >>> http_url_problem("https://example.com/cat.png") is None
        True
        >>> http_url_problem("https://example.com:99999/cat.png")
        'is not a valid URL (Port out of range 0-65535)'
    """
    if len(url) > _REMEMBERED_CHARS:  # a cache must not keep megabytes of text alive
        return _http_url_problem(url)
    return _remembered_problem(url)


_REMEMBERED_CHARS = 2048


def _http_url_problem(url: str) -> str | None:
    if _BAD_URL_CHARS.search(url):
        return "contains whitespace, control characters or lone surrogates; percent-encode them"
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
    return None if host else "has no host"


_remembered_problem = functools.lru_cache(maxsize=1024)(_http_url_problem)
