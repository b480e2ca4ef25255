"""A client's configuration, checked when the client is built: the key, the base URL, the timeout.

One home for these rules, so that a mistake in them is a ``ValidationError`` naming the option
at ``ReveRemix(...)``, rather than a network error, a raw httpx exception or a silent surprise at
the first (paid) call. No message ever holds the key, whole or in part.

- **api_key**: surrounding whitespace is stripped (``export KEY=$(cat key.txt)`` and copy-paste
  leave newlines and spaces that are never part of a key); what remains must be printable ASCII
  without spaces, as an HTTP header needs. A key that is empty or blank counts as missing, and a
  missing key is reported at the first call, naming the environment variable.
- **base_url**: an http(s) URL with a host; no credentials (they would replace the key with
  Basic auth), no query or fragment (the endpoint's path is appended), no whitespace or control
  characters. ``""`` is an error, not the default; an empty ``$REVE_REMIX_BASE_URL`` is unset.
- **timeout**: seconds (a finite number above 0 and at most a day), or an ``httpx.Timeout``
  whose parts are such numbers or ``None`` (``httpx.Timeout(None)`` waits forever).
- **price**: what one generation costs, in USD, from ``price=`` or ``$REVE_REMIX_PRICE``: the
  API reports no cost, so the SDK knows a price only when it is told one.
"""

from __future__ import annotations

import math
import os
import re
from decimal import Decimal
from numbers import Real
from urllib.parse import urlsplit

import httpx

from ._exceptions import ValidationError
from ._money import amount
from ._urls import http_url_problem

API_KEY_ENV = "ONEROUTER_API_KEY"
BASE_URL_ENV = "REVE_REMIX_BASE_URL"
PRICE_ENV = "REVE_REMIX_PRICE"
DEFAULT_BASE_URL = "https://image.onerouter.pro"
# Longer is a typo for "forever" (httpx.Timeout(None)); past ~9e9 s the OS cannot represent it.
MAX_TIMEOUT = 86_400.0

_KEY = re.compile(r"[!-~]+")  # printable ASCII, no space: what a header value can carry as is


def missing_api_key(alternative: str = "") -> ValidationError:
    """The error for a missing key: it names the variable, after ``alternative`` ways to give one.

    Example:
        >>> print(missing_api_key("pass api_key=... or "))
        no API key: pass api_key=... or set the ONEROUTER_API_KEY environment variable
    """
    return ValidationError(f"no API key: {alternative}set the {API_KEY_ENV} environment variable")


def api_key(value: object) -> str | None:
    """The key to send: ``value``, else ``$ONEROUTER_API_KEY``, stripped; ``None`` if missing.

    Example::

        >>> api_key("  sk-or-v1-abc123\\n")
        'sk-or-v1-abc123'
        >>> api_key("sk or v1")
        Traceback (most recent call last):
          ...
        reve_remix.ValidationError: api_key: character 3 of 8 is a space; a key is \
printable ASCII without spaces: check that it was copied whole and alone
    """
    source = "api_key"
    if value is None:
        value, source = os.environ.get(API_KEY_ENV), f"${API_KEY_ENV}"
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{source}: expected a str, got {type(value).__name__}")
    key = value.strip()
    if not key:
        return None
    bad = next((index for index, char in enumerate(key) if not _KEY.fullmatch(char)), None)
    if bad is not None:
        raise ValidationError(
            f"{source}: character {bad + 1} of {len(key)} is {_kind(key[bad])}; a key is "
            "printable ASCII without spaces: check that it was copied whole and alone"
        )
    return key


def base_url(value: object) -> str:
    """The API's base URL: ``value``, else ``$REVE_REMIX_BASE_URL``, else OneRouter's; checked.

    Example::

        >>> base_url("http://127.0.0.1:8080/")
        'http://127.0.0.1:8080'
        >>> base_url("127.0.0.1:8080")
        Traceback (most recent call last):
          ...
        reve_remix.ValidationError: base_url: '127.0.0.1:8080' is not an http(s) \
URL; write it with its scheme, e.g. 'http://127.0.0.1:8080'
    """
    source = "base_url"
    if value is None:
        value, source = os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL, f"${BASE_URL_ENV}"
    if not isinstance(value, str):
        raise ValidationError(f"{source}: expected a str, got {type(value).__name__}")
    problem = _url_problem(value)
    if problem:
        raise ValidationError(f"{source}: {problem}")
    return value.rstrip("/")


def timeout(value: object, name: str = "timeout") -> float | httpx.Timeout:
    """``value`` checked as a timeout: seconds, or an ``httpx.Timeout`` (whose parts may be None).

    Example::

        >>> timeout(30)
        30.0
        >>> timeout(float("nan"))
        Traceback (most recent call last):
          ...
        reve_remix.ValidationError: timeout: expected seconds above 0 and at most \
86400, got nan
    """
    if isinstance(value, httpx.Timeout):
        for part in ("connect", "read", "write", "pool"):
            if getattr(value, part) is not None:
                _seconds(getattr(value, part), f"{name}.{part}")
        return value
    return _seconds(value, name)


def price(value: object) -> Decimal | None:
    """The price of one generation in USD: ``value``, else ``$REVE_REMIX_PRICE``; ``None`` if
    neither is set (an empty variable is unset).

    Example::

        >>> price(0.04)
        Decimal('0.04')
        >>> price("-1")
        Traceback (most recent call last):
          ...
        reve_remix.ValidationError: price: expected an amount in USD of 0 or more, got '-1'
    """
    if value is None:
        value = os.environ.get(PRICE_ENV) or None
        if value is None:
            return None
        return amount(value, PRICE_ENV)
    return amount(value, "price")


def _seconds(value: object, name: str) -> float:
    if isinstance(value, Real) and not isinstance(value, bool):
        try:
            seconds = float(value)
        except OverflowError:  # an int past any float: as out of range as infinity
            seconds = math.inf
        if math.isfinite(seconds) and 0 < seconds <= MAX_TIMEOUT:
            return seconds
        shown = repr(seconds)
    else:
        shown = f"{type(value).__name__} {value!r}" if isinstance(value, str) else repr(value)
    raise ValidationError(
        f"{name}: expected seconds above 0 and at most {MAX_TIMEOUT:g}, got {shown}"
    )


def _url_problem(url: str) -> str | None:
    shown = repr(url) if len(url) <= 100 else f"{url[:100]!r}…"
    if not url:
        return "is empty; leave it out (or None) for the default"
    scheme, separator, _ = url.partition("://")
    if not separator or scheme.lower() not in ("http", "https"):
        example = f"http://{url}" if not separator else DEFAULT_BASE_URL
        return f"{shown} is not an http(s) URL; write it with its scheme, e.g. {example!r}"
    problem = http_url_problem(url)  # characters, host and port
    if problem:
        return f"{shown} {problem}"
    if "@" in urlsplit(url).netloc:
        return (
            f"{shown} holds credentials (user:password@), which would replace the API key; "
            "pass the key as api_key"
        )
    if "?" in url or "#" in url:
        return f"{shown} has a query or fragment; the endpoint's path is appended to it"
    try:
        httpx.URL(url)
    except httpx.InvalidURL as exc:
        return f"{shown} is not a valid URL ({exc})"
    return None


def _kind(char: str) -> str:
    """A character described without showing it (it may be a piece of the key)."""
    if char == " ":
        return "a space"
    if char in "\r\n":
        return "a line break"
    if char.isspace():
        return "whitespace"
    if "\ud800" <= char <= "\udfff":
        return "a lone surrogate"
    if not char.isprintable():
        return "a control character"
    return "a non-ASCII character"
