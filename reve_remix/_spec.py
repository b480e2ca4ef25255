"""Every limit and name the SDK takes from the API spec, read in one place.

The generated package ships the corrected spec it was generated from
(``reve_remix_api/openapi.json``). :func:`spec` reads it once into a :class:`Spec`: the
operation's method and path, how many images a request carries, the per-image size limit and
formats (stated only in prose), the aspect ratios and output formats, and the request's property
schemas. The facade, the CLI and ``MockServer`` read these values here and nowhere else, so a
regenerated spec moves them all.

``scripts/regenerate.py`` runs :func:`read` on every new spec before generating: a spec this
module cannot read stops the regeneration naming what is missing, rather than a user's first
call. For that reason this module imports nothing from the rest of the package.

Example::

    >>> spec().method, spec().path.endswith("/images/edits")
    ('POST', True)
    >>> spec().images_text()  # doctest: +ELLIPSIS
    '1 to ...'
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

REQUEST = "RemixRequest"
IMAGES_FIELD = "image_urls"
"""The request property that carries the images (``remix(images=...)``)."""
DATA_FIELD = "data"
"""The response property that carries the generated images."""
ARGUMENT_FIELDS = {
    "model": "model",
    "prompt": "prompt",
    IMAGES_FIELD: "images",
    "aspect_ratio": "aspect_ratio",
    "output_format": "output_format",
}
"""Request properties that ``remix`` sets from its own arguments, by the argument's name."""
ARGUMENT_TYPES = {"model": "string", "prompt": "string", IMAGES_FIELD: "array",
                  "aspect_ratio": "string", "output_format": "string"}  # fmt: skip
"""The JSON type ``remix`` sends each of those properties as: the spec must still allow it."""
RESPONSE_READS = {DATA_FIELD: "RemixResult.images", "created": "RemixResult.created"}
"""Response properties the facade reads, by what reads them (``data`` is required of the spec;
a missing ``created`` reads as the time the response arrived)."""
IMAGE_READS = {
    "url": "RemixImage.url",
    "b64_json": "RemixImage.b64_json",
    "revised_prompt": "RemixImage.revised_prompt",
}
"""Properties of a ``data`` item the facade reads, by what reads them. Each is optional to the
facade: one the spec drops reads what the response still sends under that name, else ``None``.
``scripts/change_report.py`` marks a change to any of these (or the above) breaking."""

_SIZE_LIMIT = re.compile(r"less than\s+(\d+(?:\.\d+)?)\s*([KMG]i?B)\b", re.IGNORECASE)
_UNITS = {"kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}
_FORMATS = re.compile(r"Supports\s+(.+?)\s+formats", re.IGNORECASE)
_LIST_SEPARATOR = re.compile(r",\s*(?:and\s+|or\s+)?|\s+(?:and|or)\s+")
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list, tuple),
    "object": (Mapping,),
    "null": (type(None),),
}


# What ``problem`` checks besides ``type``; a schema with none of them is a type check alone.
_CHECKED_KEYWORDS = frozenset(
    ("enum", "const", "minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems",
     "items", "properties", "required")
)  # fmt: skip
# Types whose check is ``isinstance`` alone (numbers exclude ``bool``; integers take 2.0).
_PLAIN_TYPES = ("string", "array", "object")


class SpecError(Exception):
    """The spec lacks something the SDK reads from it (raised by :func:`read`)."""


@dataclass(frozen=True, slots=True)
class Spec:
    """What the SDK reads from the spec; see the module docstring.

    ``image_formats`` are lower-case names as the prose lists them (``"png"``, ``"jpeg"``, …);
    ``max_image_bytes`` is an exclusive bound ("less than 1.5 MB": 1,499,999 bytes pass), MB
    read as 10**6 bytes, the stricter reading next to 2**20.
    """

    method: str
    path: str
    min_images: int
    max_images: int
    max_image_bytes: int
    image_formats: tuple[str, ...]
    aspect_ratios: tuple[str, ...]
    output_formats: tuple[str, ...]
    default_output_format: str
    """The ``output_format`` a request asks for when the caller names none (the spec's default)."""
    request_properties: Mapping[str, Mapping[str, Any]] = field(repr=False)
    """Every property schema of the request body, ``$ref`` resolved, by name."""
    request_required: tuple[str, ...] = field(repr=False)
    """The request properties the spec requires, in its order."""
    response_properties: Mapping[str, Mapping[str, Any]] = field(repr=False)
    """Every property schema of the success response body, ``$ref`` resolved, by name."""
    image_properties: Mapping[str, Mapping[str, Any]] = field(repr=False)
    """Every property schema of one item of the response's ``data``, ``$ref`` resolved."""

    def images_text(self) -> str:
        """How many images a request takes, for help texts and errors: ``"1 to 4"``."""
        return f"{self.min_images} to {self.max_images}"


@functools.cache
def spec() -> Spec:
    """The :class:`Spec` of the shipped ``reve_remix_api/openapi.json``, read once.

    The file is found without importing ``reve_remix_api``, which is imported on first use.
    """
    found = importlib.util.find_spec("reve_remix_api")
    if found is None or not found.submodule_search_locations:
        raise SpecError("the generated package reve_remix_api is not installed")
    path = Path(next(iter(found.submodule_search_locations))) / "openapi.json"
    return read(json.loads(path.read_text(encoding="utf-8")))


def read(document: Mapping[str, Any]) -> Spec:
    """Read a corrected spec document; raise ``SpecError`` naming the first thing missing.

    Example::

        read(json.loads(Path("openapi/corrected.openapi.json").read_text())).max_images  # 4
    """
    method, path, operation = _operation(document)
    request = _resolve(document, _json_schema(operation.get("requestBody"), "the request body"))
    properties = {
        name: _resolve(document, schema)
        for name, schema in _get(request, "properties", REQUEST).items()
    }
    missing = [name for name in ARGUMENT_FIELDS if name not in properties]
    if missing:
        raise SpecError(
            f"{REQUEST} has no {', '.join(missing)} (set from remix's arguments); "
            f"it has {', '.join(properties)}"
        )
    for name, kind in ARGUMENT_TYPES.items():
        types = properties[name].get("type", kind)
        if kind not in ([types] if isinstance(types, str) else types):
            raise SpecError(
                f"{REQUEST}.{name} is of type {types}, but remix's "
                f"{ARGUMENT_FIELDS[name]}= argument sends {kind}"
            )
    required = request.get("required", [])
    response, image = _response_properties(document, operation)
    images = properties[IMAGES_FIELD]
    where = f"{REQUEST}.{IMAGES_FIELD}"
    description = _get(images, "description", where, str)
    return Spec(
        method=method.upper(),
        path=path,
        min_images=_get(images, "minItems", where, int),
        max_images=_get(images, "maxItems", where, int),
        max_image_bytes=size_limit(description, where),
        image_formats=formats(description, where),
        aspect_ratios=_enum(properties["aspect_ratio"], f"{REQUEST}.aspect_ratio"),
        output_formats=_enum(properties["output_format"], f"{REQUEST}.output_format"),
        default_output_format=_default(properties["output_format"], f"{REQUEST}.output_format"),
        request_properties=properties,
        request_required=tuple(name for name in required if isinstance(name, str)),
        response_properties=response,
        image_properties=image,
    )


def _response_properties(
    document: Mapping[str, Any], operation: Mapping[str, Any]
) -> tuple[dict[str, Mapping[str, Any]], dict[str, Mapping[str, Any]]]:
    """The property schemas of the success body and of one of its ``data`` items."""
    responses = _get(operation, "responses", "the operation")
    success = [code for code in responses if str(code).startswith("2")]
    if not success:
        raise SpecError("the operation has no 2xx response")
    where = f"the {success[0]} response"
    body = _resolve(document, _json_schema(responses[success[0]], where))
    response = {
        name: _resolve(document, schema) for name, schema in _get(body, "properties", where).items()
    }
    data = _get(response, DATA_FIELD, f"{where}'s properties")
    items = _resolve(document, _get(data, "items", f"{where}.{DATA_FIELD}"))
    image = {
        name: _resolve(document, schema)
        for name, schema in _get(items, "properties", f"{where}.{DATA_FIELD}[]").items()
    }
    return response, image


def size_limit(description: str, where: str = "the description") -> int:
    """The byte limit stated in prose as "less than <n> <unit>".

    Example::

        >>> size_limit("Each image must be less than 1.5 MB.")
        1500000
    """
    match = _SIZE_LIMIT.search(description)
    if match is None:
        raise SpecError(f"{where}: no size limit ('less than <n> MB') in {description!r}")
    number, unit = match.groups()
    return int(Decimal(number) * _UNITS[unit.lower()])


def formats(description: str, where: str = "the description") -> tuple[str, ...]:
    """The image formats stated in prose as "Supports A, B, and C formats", lower case.

    Example::

        >>> formats("Supports PNG, JPEG, WebP, AVIF, and HEIF formats.")
        ('png', 'jpeg', 'webp', 'avif', 'heif')
    """
    match = _FORMATS.search(description)
    if match is None:
        raise SpecError(f"{where}: no formats ('Supports A, B and C formats') in {description!r}")
    return tuple(name.lower() for name in _LIST_SEPARATOR.split(match.group(1)) if name)


def problem(value: object, schema: Mapping[str, Any]) -> str | None:
    """What is wrong with ``value`` under a property ``schema``, or ``None`` if nothing is.

    Checks the keywords this spec uses (``type``, ``enum``, ``const``, number and length
    bounds, ``items``, ``properties`` and ``required``); the server has the last word on others.

    Example::

        >>> problem(2, spec().request_properties["n"])
        'must be one of [1], got 2'
    """
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else list(types)
        if not any(_is_type(value, name) for name in names):
            return f"must be of type {' or '.join(names)}, got {type(value).__name__}"
    if "enum" in schema and value not in schema["enum"]:
        return f"must be one of {schema['enum']}, got {value!r}"
    if "const" in schema and value != schema["const"]:
        return f"must be {schema['const']!r}, got {value!r}"
    return _bounds_problem(value, schema)


def conforms(schema: Mapping[str, Any]) -> Callable[[object], bool]:
    """A test of ``problem(value, schema) is None``, built once for a schema read many times.

    A schema that asks only for one type of string, array or object (every field of the
    response but ``created``) becomes a bare ``isinstance``; any other runs :func:`problem`.
    The response's fields are checked on every 2xx, so this is the check's per-call cost.

    Example::

        >>> is_text = conforms({"type": "string", "description": "a URL"})
        >>> is_text("https://example.com/a.png"), is_text(7)
        (True, False)
    """
    kind = schema.get("type")
    if kind in _PLAIN_TYPES and not _CHECKED_KEYWORDS.intersection(schema):
        types = _JSON_TYPES[kind]
        return lambda value: isinstance(value, types)
    return lambda value: problem(value, schema) is None


def _bounds_problem(value: object, schema: Mapping[str, Any]) -> str | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            return f"must be >= {schema['minimum']}, got {value}"
        if "maximum" in schema and value > schema["maximum"]:
            return f"must be <= {schema['maximum']}, got {value}"
    if isinstance(value, str | list | tuple):
        kind = "Length" if isinstance(value, str) else "Items"
        if len(value) < schema.get(f"min{kind}", 0):
            return f"must have at least {schema[f'min{kind}']} {kind.lower()}, got {len(value)}"
        if f"max{kind}" in schema and len(value) > schema[f"max{kind}"]:
            return f"must have at most {schema[f'max{kind}']} {kind.lower()}, got {len(value)}"
    if isinstance(value, list | tuple) and isinstance(schema.get("items"), Mapping):
        for index, item in enumerate(value):
            found = problem(item, schema["items"])
            if found:
                return f"[{index}] {found}"
    if isinstance(value, Mapping):
        for name in schema.get("required", ()):
            if name not in value:
                return f"needs {name!r}"
        for name, sub in schema.get("properties", {}).items():
            found = problem(value[name], sub) if name in value else None
            if found:
                return f".{name} {found}"
    return None


def _is_type(value: object, name: str) -> bool:
    if isinstance(value, bool) and name in ("integer", "number"):
        return False
    if name == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _JSON_TYPES.get(name, object))


def _operation(document: Mapping[str, Any]) -> tuple[str, str, Mapping[str, Any]]:
    """The one operation whose JSON request body is the ``RemixRequest`` schema."""
    wanted = f"#/components/schemas/{REQUEST}"
    found = [
        (method, path, operation)
        for path, item in _get(document, "paths", "the spec").items()
        for method, operation in item.items()
        if isinstance(operation, Mapping)
        and _json_schema(operation.get("requestBody"), "", required=False).get("$ref") == wanted
    ]
    if len(found) != 1:
        raise SpecError(
            f"expected one operation whose request body is {wanted}, found {len(found)}"
        )
    return found[0]


def _json_schema(body: object, where: str, *, required: bool = True) -> Mapping[str, Any]:
    """The ``application/json`` schema of a request body or response, ``{}`` if it has none."""
    content = body.get("content") if isinstance(body, Mapping) else None
    media = content.get("application/json") if isinstance(content, Mapping) else None
    schema = media.get("schema") if isinstance(media, Mapping) else None
    if isinstance(schema, Mapping):
        return schema
    if required:
        raise SpecError(f"{where} has no application/json schema")
    return {}


def _resolve(document: Mapping[str, Any], schema: Mapping[str, Any]) -> Mapping[str, Any]:
    """``schema``, following a local ``$ref`` (``#/components/schemas/X``) if it is one."""
    ref = schema.get("$ref")
    if not isinstance(ref, str):
        return schema
    target: Any = document
    for part in ref.removeprefix("#/").split("/"):
        if not isinstance(target, Mapping) or part not in target:
            raise SpecError(f"{ref} points nowhere")
        target = target[part]
    return _resolve(document, target)


def _enum(schema: Mapping[str, Any], where: str) -> tuple[str, ...]:
    return tuple(str(value) for value in _get(schema, "enum", where, list))


def _default(schema: Mapping[str, Any], where: str) -> str:
    default: str = _get(schema, "default", where, str)
    if default not in _enum(schema, where):
        raise SpecError(f"{where}: the default {default!r} is not one of its enum")
    return default


def _get(node: Mapping[str, Any], key: str, where: str, kind: type = Mapping) -> Any:  # noqa: ANN401
    value = node.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise SpecError(f"{where}: no {key} ({kind.__name__}) in the spec")
    return value
