"""What changed between two vendor specs, classified as breaking or additive for SDK users.

Written for this spec's shape (one operation, a JSON request body, a JSON 200 response), because
no packaged diff tool reads it: openapi-diff refuses OpenAPI 3.1 and misses enum changes. It
compares the operation (located as ``openapi/corrections.json`` locates it), the security it
requires, and every property of the request and response: presence, ``required``, type, enum,
bounds, defaults, and the limits stated only in prose (size, formats, listed values).

A change is *breaking* when code written against the current SDK may stop working or the
pipeline needs a hand edit (a removed property, a new required one, a narrower enum or limit, a
moved operation); *additive* when it only adds (an optional property, a wider enum or limit).

Example::

    report = compare(old_vendor, new_vendor, {"method": "post", "path": "/v1/images/edits"})
    print(report.text())  # and exit with report.exit_code: 0, 3 or 4
"""

from __future__ import annotations

import json
import re
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from corrections import operations
from facade_spec import spec as _spec

BREAKING, ADDITIVE = "breaking", "additive"
_PROSE_VALUES = re.compile(r"Possible enum values:(.*)", re.IGNORECASE | re.DOTALL)
_BACKTICKED = re.compile(r"`([^`,]+),?`")
_SETS = ("enum", "formats", "listed values")
# Bounds: for a request, raising a max (or lowering a min) is additive.
_MAXIMA = ("maxItems", "maximum", "maxLength", "size limit")
_MINIMA = ("minItems", "minimum", "minLength")
_KEPT = ("type", "enum", "const", "default", *_MAXIMA, *_MINIMA)


@dataclass
class Report:
    """The classified changes; ``exit_code`` is 0 (none), 3 (additive only) or 4 (breaking)."""

    breaking: list[str] = field(default_factory=list)
    additive: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 4 if self.breaking else 3 if self.additive else 0

    def text(self) -> str:
        """The report as Markdown, the body of the spec-drift pull request."""
        if self.exit_code == 0:
            return "No change to the operation, its request, its response or its security.\n"
        verdict = BREAKING if self.breaking else ADDITIVE
        lines = [f"Vendor spec change: {verdict} ({len(self.breaking)} breaking, "]
        lines[0] += f"{len(self.additive)} additive)"
        for title, items in (("Breaking", self.breaking), ("Additive", self.additive)):
            if items:
                lines += ["", f"{title}:", *(f"- {item}" for item in items)]
        return "\n".join(lines) + "\n"

    def add(self, kind: str, line: str) -> None:
        (self.breaking if kind == BREAKING else self.additive).append(line)


def compare(old: dict[str, Any], new: dict[str, Any], locator: dict[str, str]) -> Report:
    """Every change from spec ``old`` to spec ``new`` for the operation ``locator`` names."""
    report = Report()
    wanted = (locator["method"].lower(), locator["path"])
    old_op, new_op = _find(old, wanted), _find(new, wanted)
    if new_op is None:
        moved = [op for op in operations(new) if op not in operations(old)]
        if len(moved) != 1:
            report.add(BREAKING, f"operation {_name(wanted)}: removed")
            return report
        new_op = moved[0]
        report.add(
            BREAKING,
            f"operation {_name(wanted)}: moved to {_name(new_op)} "
            '(update "operation" in openapi/corrections.json)',
        )
    before, after = facts(old, old_op or wanted), facts(new, new_op)
    gone: list[str] = []  # an added or removed property: its own properties go without saying
    for where in sorted(before.keys() | after.keys(), key=_order):
        if not any(where.startswith((f"{parent}.", f"{parent}[")) for parent in gone):
            if (where in before) != (where in after):
                gone.append(where)
            _compare(report, where, before.get(where), after.get(where))
    return report


def facts(document: dict[str, Any], operation: tuple[str, str]) -> dict[str, dict[str, Any]]:
    """What the report compares, by where it is (``request.seed``, ``response.data[].url``)."""
    method, path = operation
    op = document["paths"][path][method]
    found: dict[str, dict[str, Any]] = {
        "security": {"top level": document.get("security"), "operation": op.get("security")},
    }
    for parameter in op.get("parameters", []):
        where = f"{parameter.get('in')} parameter {parameter.get('name')}"
        found[where] = {"required": bool(parameter.get("required")), **parameter.get("schema", {})}
    request = _json_schema(op.get("requestBody"))
    if request is not None:
        _walk(document, request, "request", True, found)
    response = _json_schema(op.get("responses", {}).get("200"))
    if response is not None:
        _walk(document, response, "response", True, found)
    return found


def _walk(document: dict[str, Any], schema: Any, where: str, required: bool, found: dict) -> None:  # noqa: ANN401
    schema = _resolve(document, schema)
    if not isinstance(schema, dict):
        return
    fact: dict[str, Any] = {key: schema[key] for key in _KEPT if key in schema}
    fact["required"] = required
    description = schema.get("description")
    if isinstance(description, str):
        with suppress(_spec.SpecError):
            fact["size limit"] = _spec.size_limit(description)
        with suppress(_spec.SpecError):
            fact["formats"] = list(_spec.formats(description))
        listed = _PROSE_VALUES.search(description)
        if listed:
            fact["listed values"] = _BACKTICKED.findall(listed.group(1))
    found[where] = fact
    names = schema.get("required", [])
    for name, sub in schema.get("properties", {}).items():
        _walk(document, sub, f"{where}.{name}", name in names, found)
    if isinstance(schema.get("items"), dict):
        _walk(document, schema["items"], f"{where}[]", True, found)


def _compare(report: Report, where: str, old: dict | None, new: dict | None) -> None:
    request = not where.startswith("response")
    if old is None and new is not None:
        required = new["required"] and request
        kind = f"{new.get('type', 'any')}, {'required' if new['required'] else 'optional'}"
        report.add(BREAKING if required else ADDITIVE, f"{where}: added ({kind})")
        return
    if new is None:
        report.add(BREAKING, f"{where}: removed")
        return
    assert old is not None
    for key in [*dict.fromkeys([*old, *new])]:
        before, after = old.get(key), new.get(key)
        if before != after:
            report.add(
                _kind(key, before, after, request), f"{where}: {_change(key, before, after)}"
            )


def _kind(key: str, before: Any, after: Any, request: bool) -> str:  # noqa: ANN401
    """Whether changing ``key`` from ``before`` to ``after`` can break code using the SDK."""
    if key == "required":
        return BREAKING if after == request else ADDITIVE
    if key in _SETS and request:
        if after is None or before is None:
            return ADDITIVE if after is None else BREAKING
        return BREAKING if set(before) - set(after) else ADDITIVE
    if key in _MAXIMA + _MINIMA:
        if not request:
            return ADDITIVE
        if before is None or after is None:
            return BREAKING if after is not None else ADDITIVE
        wider = after > before if key in _MAXIMA else after < before
        return ADDITIVE if wider else BREAKING
    return BREAKING


def _change(key: str, before: Any, after: Any) -> str:  # noqa: ANN401
    if key not in _SETS:
        return f"{key} {_show(before)} → {_show(after)}"
    if before is None or after is None:
        return f"{key} {_values(before)} → {_values(after)}"
    added = [value for value in after if value not in before]
    removed = [value for value in before if value not in after]
    parts = [f"+{_values(added)}" if added else "", f"-{_values(removed)}" if removed else ""]
    return f"{key} {' '.join(part for part in parts if part)}"


def _show(value: object) -> str:
    return "(none)" if value is None else json.dumps(value, ensure_ascii=False)


def _values(values: list[Any] | None) -> str:
    return "(none)" if values is None else ", ".join(str(value) for value in values)


def _order(where: str) -> tuple[int, str]:
    return ({"security": 0, "request": 2, "response": 3}.get(where.split(".")[0], 1), where)


def _find(document: dict[str, Any], wanted: tuple[str, str]) -> tuple[str, str] | None:
    return wanted if wanted in operations(document) else None


def _name(operation: tuple[str, str]) -> str:
    return f"{operation[0].upper()} {operation[1]}"


def _json_schema(part: Any) -> Any:  # noqa: ANN401
    if not isinstance(part, dict):
        return None
    return part.get("content", {}).get("application/json", {}).get("schema")


def _resolve(document: dict[str, Any], schema: Any) -> Any:  # noqa: ANN401
    ref = schema.get("$ref") if isinstance(schema, dict) else None
    if not isinstance(ref, str):
        return schema
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node.get(part) if isinstance(node, dict) else None
    return _resolve(document, node)
