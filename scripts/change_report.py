"""What changed between two specs, classified as breaking or additive for SDK users.

Written for this spec's shape, because no packaged diff tool reads it: openapi-diff refuses
OpenAPI 3.1 and misses enum changes. It compares every operation (the one the SDK wraps, located
as ``openapi/corrections.json`` locates it, as ``request.…``/``response.…``; any other by its
method and path), the security they require, every property of their requests and responses
(presence, ``required``, type, enum, bounds, defaults, and the limits stated only in prose: size,
formats, listed values) and every component (added, removed; one no operation uses, in full).

A change is *breaking* when code written against the current SDK may stop working or the
pipeline needs a hand edit (a removed property, a new required one, a narrower enum or limit, a
moved operation, any change to a field the facade reads: ``reve_remix/_spec.py`` declares them);
*additive* when it only adds (an optional property, a wider enum or limit, an operation).

``scripts/regenerate.py`` compares the corrected specs (what users get) and shows the vendor's
own difference beside it where the two differ (:func:`side_by_side`).

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
# What the facade reads of a response, by where the report says it is.
_FACADE_READS = {
    **{f"response.{name}": reader for name, reader in _spec.RESPONSE_READS.items()},
    **{
        f"response.{_spec.DATA_FIELD}[].{name}": reader
        for name, reader in _spec.IMAGE_READS.items()
    },
}
# What the report of the vendor's specs says when the corrected ones cannot be compared.
VENDOR_ONLY = (
    "Compared as the vendor publishes it: openapi/corrections.json does not apply to the new "
    "spec yet (the last line says what to edit)."
)
# Where a child's name continues its parent's: ``request.seed``, ``response.data[]``, and any
# other operation's ``operation POST /x: request.prompt``.
_CHILD = (".", "[", ": ")


@dataclass
class Report:
    """The classified changes; ``exit_code`` is 0 (none), 3 (additive only) or 4 (breaking).

    ``vendor_only`` holds the lines of the vendor's own difference that the corrected one lacks
    (see :func:`side_by_side`); ``header`` says what was compared, when not the corrected specs.
    """

    breaking: list[str] = field(default_factory=list)
    additive: list[str] = field(default_factory=list)
    vendor_only: list[str] = field(default_factory=list)
    header: str = ""

    @property
    def exit_code(self) -> int:
        return 4 if self.breaking else 3 if self.additive else 0

    def text(self) -> str:
        """The report as Markdown, the body of the spec-drift pull request."""
        if self.exit_code == 0:
            lines = ["No change to the operations, their requests, responses and security."]
        else:
            verdict = BREAKING if self.breaking else ADDITIVE
            lines = [f"Vendor spec change: {verdict} ({len(self.breaking)} breaking, "]
            lines[0] += f"{len(self.additive)} additive)"
        if self.header:
            lines += ["", self.header]
        for title, items in (("Breaking", self.breaking), ("Additive", self.additive)):
            if items:
                lines += ["", f"{title}:", *(f"- {item}" for item in items)]
        if self.vendor_only:
            lines += ["", "As the vendor publishes it (before openapi/corrections.json):"]
            lines += [f"- {item}" for item in self.vendor_only]
        return "\n".join(lines) + "\n"

    def add(self, kind: str, line: str) -> None:
        (self.breaking if kind == BREAKING else self.additive).append(line)

    def lines(self) -> list[str]:
        """Every change, each with its kind: ``request.seed: added (...) [additive]``."""
        return [f"{line} [{BREAKING}]" for line in self.breaking] + [
            f"{line} [{ADDITIVE}]" for line in self.additive
        ]


def side_by_side(corrected: Report, vendor: Report) -> Report:
    """The corrected report, with the vendor's lines that it does not have in ``vendor_only``.

    The corrected specs are what users get; the vendor's difference (a real enum where we had
    one from prose, say) is what the maintainer compares the corrections with.
    """
    seen = set(corrected.lines())
    corrected.vendor_only = [line for line in vendor.lines() if line not in seen]
    return corrected


def compare(old: dict[str, Any], new: dict[str, Any], locator: dict[str, str]) -> Report:
    """Every change from spec ``old`` to spec ``new``; ``locator`` names the SDK's operation.

    The operation is where ``locator`` says in either spec; where it is not, it is the one
    operation the other spec lacks (a moved operation: breaking, with the edit to make).
    """
    report = Report()
    wanted = (locator["method"].lower(), locator["path"])
    old_op, new_op = _locate(old, new, wanted), _locate(new, old, wanted)
    if new_op is None or old_op is None:
        report.add(BREAKING, f"operation {_name(wanted)}: removed")
        return report
    if old_op != new_op:
        report.add(
            BREAKING,
            f"operation {_name(old_op)}: moved to {_name(new_op)} "
            '(update "operation" in openapi/corrections.json)',
        )
    before, after = facts(old, old_op), facts(new, new_op)
    gone: list[str] = []  # an added or removed property: its own properties go without saying
    for where in sorted(before.keys() | after.keys(), key=_order):
        if not any(where.startswith(tuple(parent + s for s in _CHILD)) for parent in gone):
            if (where in before) != (where in after):
                gone.append(where)
            _compare(report, where, before.get(where), after.get(where))
    return report


def facts(document: dict[str, Any], main: tuple[str, str]) -> dict[str, dict[str, Any]]:
    """What the report compares, by where it is (``request.seed``, ``response.data[].url``).

    ``main`` is the SDK's operation; any other is prefixed ``operation METHOD PATH: ``.
    """
    found: dict[str, dict[str, Any]] = {"security": {"top level": document.get("security")}}
    used: set[str] = set()
    for operation in operations(document):
        head = "operation" if operation == main else f"operation {_name(operation)}"
        prefix = "" if operation == main else f"{head}: "
        op = document["paths"][operation[1]][operation[0]]
        found[head] = {"operationId": op.get("operationId"), "security": op.get("security")}
        for parameter in op.get("parameters", []):
            parameter = _resolve(document, parameter, used)
            where = f"{prefix}{parameter.get('in')} parameter {parameter.get('name')}"
            found[where] = {
                "required": bool(parameter.get("required")),
                **parameter.get("schema", {}),
            }
        request = _json_schema(_resolve(document, op.get("requestBody"), used))
        if request is not None:
            _walk(document, request, f"{prefix}request", True, found, used)
        for code, response in op.get("responses", {}).items():
            schema = _json_schema(_resolve(document, response, used))
            if schema is not None:
                where = "response" if str(code) == "200" else f"response {code}"
                _walk(document, schema, prefix + where, True, found, used)
    for section, members in document.get("components", {}).items():
        for name, member in (members or {}).items():
            where = f"components.{section}.{name}"
            if section != "schemas":
                found[where] = {"value": member}
            elif f"#/components/schemas/{name}" in used:
                found[where] = {}  # its properties are an operation's, compared there
            else:  # used by no operation: compared in full
                _walk(document, member, where, True, found, set())
                found.get(where, {}).pop("required", None)
    return found


def _walk(
    document: dict[str, Any],
    schema: Any,  # noqa: ANN401 - any JSON value
    where: str,
    required: bool,
    found: dict[str, dict[str, Any]],
    used: set[str],
) -> None:
    schema = _resolve(document, schema, used)
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
        _walk(document, sub, f"{where}.{name}", name in names, found, used)
    if isinstance(schema.get("items"), dict):
        _walk(document, schema["items"], f"{where}[]", True, found, used)


def _compare(report: Report, where: str, old: dict | None, new: dict | None) -> None:
    request = not where.split(": ", 1)[-1].startswith(("response", "components", "operation"))
    reader = _FACADE_READS.get(where)
    if old is None and new is not None:
        if "required" not in new:
            report.add(ADDITIVE, f"{where}: added")
            return
        required = new["required"] and request
        kind = f"{new.get('type', 'any')}, {'required' if new['required'] else 'optional'}"
        line = f"{where}: added ({kind})"
        if required and where.startswith("request."):
            name = where.removeprefix("request.")
            line += (
                f": remix has no argument for it; callers must pass extra_body={{{name!r}: ...}} "
                f"(the CLI: --field {name}=JSON)"
            )
        report.add(BREAKING if required else ADDITIVE, line)
        return
    if new is None:
        note = f" ({reader} reads it: now what the response sends, else None)" if reader else ""
        report.add(BREAKING, f"{where}: removed{note}")
        return
    assert old is not None
    for key in [*dict.fromkeys([*old, *new])]:
        before, after = old.get(key), new.get(key)
        if before != after:
            kind = _kind(key, before, after, request)
            line = f"{where}: {_change(key, before, after)}"
            if reader and key != "required":
                kind, line = BREAKING, f"{line} (read by {reader})"
            report.add(kind, line)


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
    return "(none)" if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


def _values(values: list[Any] | None) -> str:
    return "(none)" if values is None else ", ".join(str(value) for value in values)


def _order(where: str) -> tuple[int, str]:
    rank = {"security": 0, "operation": 1, "request": 2, "response": 3, "components": 5}
    first = where.split(".")[0].split(" ")[0]
    if where.startswith("operation "):
        return 4, where
    return rank.get(first, 1), where


def _locate(
    document: dict[str, Any], other: dict[str, Any], wanted: tuple[str, str]
) -> tuple[str, str] | None:
    """``wanted`` if ``document`` has it, else its one operation that ``other`` lacks."""
    found = operations(document)
    if wanted in found:
        return wanted
    own = [op for op in found if op not in operations(other)]
    return own[0] if len(own) == 1 else None


def _name(operation: tuple[str, str]) -> str:
    return f"{operation[0].upper()} {operation[1]}"


def _json_schema(part: Any) -> Any:  # noqa: ANN401
    if not isinstance(part, dict):
        return None
    return part.get("content", {}).get("application/json", {}).get("schema")


def _resolve(document: dict[str, Any], schema: Any, used: set[str]) -> Any:  # noqa: ANN401
    """``schema``, following local ``$ref`` (each recorded in ``used``); ``None`` if dangling."""
    ref = schema.get("$ref") if isinstance(schema, dict) else None
    if not isinstance(ref, str):
        return schema
    used.add(ref)
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node.get(part) if isinstance(node, dict) else None
    return _resolve(document, node, used)
