"""The API spec shipped with ``reve_remix_api``, and validation of JSON documents against it.

The spec is OpenAPI 3.1, whose schemas are JSON Schema 2020-12, so a stock
``Draft202012Validator`` checks them; ``$ref``s resolve through a ``referencing`` registry that
holds the whole spec document.
"""

from __future__ import annotations

import functools
import json
from importlib.resources import files
from typing import Any, NamedTuple

try:
    from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
    from referencing import Registry
    from referencing.jsonschema import DRAFT202012
except ImportError as exc:  # pragma: no cover - exercised by a test that hides jsonschema
    raise ImportError(
        "reve_remix.testing validates requests against the API spec with jsonschema, "
        "which is not installed; install it with: pip install 'reve-remix[mock]'"
    ) from exc

__all__ = ["Violation", "spec", "validate_request", "validate_response", "violations"]

_SPEC_URI = "urn:reve-remix:openapi"


class Violation(NamedTuple):
    """One way a JSON document breaks a schema.

    Example::

        Violation(field="image_urls", location="$.image_urls", message="[] should be non-empty")
    """

    field: str | None
    """The top-level property at fault (the error envelope's ``param``); None for the root."""
    location: str
    """Where in the document, as a JSON path such as ``$.image_urls[0]``."""
    message: str
    """What is wrong, in jsonschema's words."""

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


@functools.cache
def spec() -> dict[str, Any]:
    """The corrected OpenAPI document that ``reve_remix_api`` was generated from."""
    text = (files("reve_remix_api") / "openapi.json").read_text(encoding="utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


def violations(component: str, instance: object) -> list[Violation]:
    """Every way ``instance`` breaks ``components/schemas/<component>``; empty when it is valid.

    Example::

        violations("RemixRequest", {"model": "m", "prompt": "p", "image_urls": []})
        # [Violation(field='image_urls', location='$.image_urls', message='[] should be ...')]
    """
    found = [
        Violation(
            field=str(error.path[0]) if error.path else None,
            location=str(error.json_path),
            message=str(error.message),
        )
        for error in _validator(component).iter_errors(instance)
    ]
    return sorted(found, key=lambda violation: (violation.location, violation.message))


def validate_request(body: object) -> list[Violation]:
    """Every way a request body breaks the spec's ``RemixRequest``; empty when it is valid.

    ``body`` is the parsed JSON, or the JSON text or bytes as sent. For contract tests of code
    that builds requests itself (an adapter, a queue worker), with no copy of the spec.

    Example::

        >>> from reve_remix.testing import validate_request
        >>> validate_request({"model": "m", "prompt": "<img>0</img>", "image_urls": []})
        [Violation(field='image_urls', location='$.image_urls', message='[] should be non-empty')]
    """
    return _validate("RemixRequest", body)


def validate_response(body: object) -> list[Violation]:
    """Every way a response body breaks the spec's ``RemixResponse``; empty when it is valid.

    ``body`` is the parsed JSON, or the JSON text or bytes as received. For checking a canned
    answer before a test relies on it.

    Example::

        >>> from reve_remix.testing import validate_response
        >>> validate_response({"created": 1700000000, "data": [{"url": "https://cdn.test/a.png"}]})
        []
    """
    return _validate("RemixResponse", body)


def _validate(component: str, body: object) -> list[Violation]:
    if isinstance(body, bytes | bytearray | str):
        try:
            body = json.loads(body)
        except ValueError as exc:
            return [Violation(field=None, location="$", message=f"not valid JSON: {exc}")]
    return violations(component, body)


@functools.cache
def _validator(component: str) -> Any:  # noqa: ANN401 - jsonschema ships no type hints
    """A validator for one component schema, with every ``$ref`` resolvable."""
    resource = DRAFT202012.create_resource(spec())
    registry: Registry[Any] = Registry().with_resource(_SPEC_URI, resource)
    schema = {"$ref": f"{_SPEC_URI}#/components/schemas/{component}"}
    return Draft202012Validator(schema, registry=registry)
