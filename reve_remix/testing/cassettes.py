"""Recorded real exchanges: call the API once (with a key, at your cost), replay offline forever.

Built on vcrpy (in the ``testing`` extra). What lands in a cassette is made safe and small:

- the ``Authorization`` header is removed;
- every ``data:`` URL in a request body is replaced by its SHA-256, size and media type, so an
  8 MB inline image becomes one short line;
- unless ``keep_images=True``, each generated image (a ``b64_json`` field, or the body of the
  download of a result URL) is replaced by a tiny placeholder PNG; result URLs are kept.

A replayed request matches a recorded one on its method, path and meaning: the JSON body compared
as data (prompt, image URLs or hashes, options), not as bytes, and not on host or port, so a
cassette recorded against the real API replays whatever base URL a test uses.

Example::

    from reve_remix import ReveRemix
    from reve_remix.testing.cassettes import use_cassette

    with use_cassette("tests/cassettes/watercolour.yaml", record_mode="once"):
        with ReveRemix() as client:
            client.remix("<img>0</img> as a watercolour", ["cat.png"]).save("out.png")
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Callable
from typing import Any

try:
    import vcr  # type: ignore[import-untyped]
    from vcr.record_mode import RecordMode  # type: ignore[import-untyped]
except ImportError as exc:  # pragma: no cover - exercised by the plugin's install hint
    raise ImportError(
        "cassettes need vcrpy, which is not installed: pip install 'reve-remix[testing]'"
    ) from exc

from reve_remix._client import API_KEY_ENV
from reve_remix._images import sniff_format
from reve_remix.testing._data_url import decode_data_url
from reve_remix.testing._png import gradient_png

__all__ = ["replay_environment", "use_cassette", "vcr_config"]

_PLACEHOLDER_SIDE = 8  # pixels: a placeholder image is about 100 bytes
_REPLAY_KEY = "sk-test-cassette-replay"


def vcr_config(*, keep_images: bool = False) -> dict[str, Any]:
    """The vcrpy settings for reve-remix cassettes, for ``vcr.VCR(**...)`` or pytest-recording.

    Example (a ``conftest.py`` of a project that uses pytest-recording)::

        @pytest.fixture(scope="module")
        def vcr_config():
            return reve_remix.testing.cassettes.vcr_config()
    """
    shorten: list[Callable[[dict[str, Any]], dict[str, Any]]] = (
        [] if keep_images else [_shorten_images]
    )
    return {
        "filter_headers": ["authorization"],
        "before_record_request": _hash_data_urls,
        "before_record_response": shorten,
        "decode_compressed_response": True,
        "match_on": ("method", "path", "body"),
    }


def use_cassette(
    path: str | os.PathLike[str], *, record_mode: str = "none", keep_images: bool = False
) -> Any:  # noqa: ANN401 - vcrpy ships no types
    """A context manager that replays (and, by ``record_mode``, records) the exchanges at ``path``.

    vcrpy's record modes: ``none`` only replays (use it in CI), ``once`` records a cassette that
    does not exist yet, ``new_episodes`` adds requests the cassette lacks, ``all`` records anew.

    Inside it every httpx request, sync or async, is answered from the cassette; with
    ``record_mode="none"`` a request the cassette lacks raises instead of reaching the network.
    vcrpy filters what it loads as well as what it records, so replay a cassette recorded with
    ``keep_images=True`` with ``keep_images=True`` to get the full images back.

    Example::

        with use_cassette("cassettes/cat.yaml") as cassette:
            client.remix("<img>0</img> as a watercolour", [CAT])
        assert cassette.all_played
    """
    modes = [mode.value for mode in RecordMode]
    if record_mode not in modes:
        raise ValueError(f"record_mode: {record_mode!r} is not one of {', '.join(modes)}")
    recorder = vcr.VCR(**vcr_config(keep_images=keep_images))
    return recorder.use_cassette(os.fspath(path), record_mode=record_mode)


def replay_environment() -> dict[str, str]:
    """What to set so clients can be created for a replay: a placeholder key if none is set.

    A replay sends nothing anywhere, but a client refuses to start without a key; CI has none.
    """
    return {} if os.environ.get(API_KEY_ENV) else {API_KEY_ENV: _REPLAY_KEY}


def _hash_data_urls(request: Any) -> Any:  # noqa: ANN401 - a vcrpy Request (a copy)
    """Replace every ``data:`` URL in a JSON body by ``sha256:<hex>;size=<n>;type=<mime>``.

    vcrpy runs this on the request it records and on each request it looks up, so both sides
    of a match carry the same hashes.
    """
    body = request.body
    if not body:
        return request
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return request
    request.body = json.dumps(_walk(payload, _hashed), separators=(",", ":")).encode()
    return request


def _hashed(value: str) -> str:
    data = decode_data_url(value)
    if data is None:
        return value
    mime = value[5:].split(",", 1)[0].split(";", 1)[0] or "text/plain"
    return f"sha256:{hashlib.sha256(data).hexdigest()};size={len(data)};type={mime}"


def _shorten_images(response: dict[str, Any]) -> dict[str, Any]:
    """Swap each generated image in a recorded response for a tiny placeholder PNG."""
    body = response["body"]["string"]
    if isinstance(body, str):
        body = body.encode()
    if sniff_format(body[:32]) is not None:  # the download of a result URL
        response["body"]["string"] = _placeholder(body)
        headers = response["headers"]
        for name in list(headers):
            if name.lower() in ("content-length", "content-type"):
                del headers[name]
        headers["Content-Type"] = ["image/png"]
        headers["Content-Length"] = [str(len(response["body"]["string"]))]
        return response
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return response
    items = payload.get("data") if isinstance(payload, dict) else None
    if isinstance(items, list):
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("b64_json"), str):
                original = item["b64_json"].encode()
                item["b64_json"] = base64.b64encode(_placeholder(original)).decode("ascii")
        shortened = json.dumps(payload, separators=(",", ":")).encode()
        response["body"]["string"] = shortened
        for name, values in response["headers"].items():
            if name.lower() == "content-length":
                values[:] = [str(len(shortened))]
    return response


def _placeholder(original: bytes) -> bytes:
    """A tiny PNG whose colours come from ``original``: different images stay different."""
    seed = hashlib.sha256(original).digest()
    return gradient_png(_PLACEHOLDER_SIDE, _PLACEHOLDER_SIDE, seed=seed)


def _walk(value: Any, change: Callable[[str], str]) -> Any:  # noqa: ANN401 - any JSON value
    """``value`` with ``change`` applied to every string in it."""
    if isinstance(value, str):
        return change(value)
    if isinstance(value, list):
        return [_walk(item, change) for item in value]
    if isinstance(value, dict):
        return {key: _walk(item, change) for key, item in value.items()}
    return value
