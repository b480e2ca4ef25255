"""Apply ``openapi/corrections.json`` to the vendor's spec, never overwriting the vendor silently.

The file is an object: ``operation`` locates the one operation the SDK wraps by its method and
path (so a path change needs one edit, here), and ``corrections`` is a list of RFC 6902 JSON
Patch operations (``test``, ``add``, ``remove``, ``move``) whose pointers may start with
``{operation}`` for that operation. Two rules go beyond JSON Patch:

- an ``add`` (or the target of a ``move``) whose target the vendor already defines fails with
  "the vendor now defines X (correction N): drop or update it" rather than replacing it;
- one whose target already holds exactly the corrected value is skipped, with a note that the
  vendor made it unnecessary.

Every failure is one line naming the correction's number (from 1) and its pointer as written.

Example::

    corrected, notes = apply(vendor, json.loads(Path("openapi/corrections.json").read_text()))
"""

from __future__ import annotations

import copy
from typing import Any

OPERATION = "{operation}"


class CorrectionError(Exception):
    """A correction no longer fits the vendor's spec; the message is one line."""


def apply(vendor: dict[str, Any], corrections: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The corrected spec, and a note for each correction the vendor made unnecessary."""
    document = copy.deepcopy(vendor)
    prefix = operation_pointer(document, corrections["operation"])
    notes: list[str] = []
    for number, correction in enumerate(corrections["corrections"], start=1):
        note = _apply_one(document, correction, number, prefix)
        if note:
            notes.append(note)
    return document, notes


def operation_pointer(document: dict[str, Any], locator: dict[str, str]) -> str:
    """The JSON pointer of the operation ``locator`` names (``/paths/~1v1~1…/post``)."""
    method, path = locator["method"].lower(), locator["path"]
    if not isinstance(document.get("paths", {}).get(path, {}).get(method), dict):
        found = ", ".join(f"{m.upper()} {p}" for m, p in operations(document)) or "none"
        raise CorrectionError(
            f'corrections.json "operation": {method.upper()} {path} is not in the vendor spec '
            f"(it has {found}): update it"
        )
    return f"/paths/{_escape(path)}/{method}"


def operations(document: dict[str, Any]) -> list[tuple[str, str]]:
    """Every (method, path) of a spec, in order."""
    return [
        (method, path)
        for path, item in document.get("paths", {}).items()
        for method, operation in item.items()
        if isinstance(operation, dict)
    ]


def _apply_one(
    document: dict[str, Any], correction: dict[str, Any], number: int, prefix: str
) -> str:
    op, written = correction["op"], correction["path"]
    label = f"correction {number} ({op} {written})"
    path = _parts(written, prefix)
    if op == "test":
        found = _get(document, path, label)
        if found != correction["value"]:
            raise CorrectionError(f"{label}: the vendor changed this value: update or drop it")
        return ""
    if op == "remove":
        parent, key = _parent(document, path, label)
        _get(document, path, label)
        del parent[key]
        return ""
    if op == "add":
        value = copy.deepcopy(correction["value"])
    elif op == "move":
        source = _parts(correction["from"], prefix)
        value = _get(document, source, f"correction {number} ({op} from {correction['from']})")
    else:
        raise CorrectionError(f"{label}: unknown op {op!r} (use test, add, remove or move)")
    parent, key = _parent(document, path, label)
    if isinstance(parent, dict) and key in parent:
        if parent[key] == value and op == "add":
            return f"{label} is unnecessary: the vendor now defines the same value; drop it"
        raise CorrectionError(
            f"the vendor now defines {written} (correction {number}): drop or update it"
        )
    if op == "move":
        source_parent, source_key = _parent(document, source, label)
        del source_parent[source_key]
    if isinstance(parent, list):
        parent.insert(len(parent) if key == "-" else int(key), value)
    else:
        parent[key] = value
    return ""


def _parts(pointer: str, prefix: str) -> list[str]:
    expanded = (
        prefix + pointer.removeprefix(OPERATION) if pointer.startswith(OPERATION) else pointer
    )
    return [part.replace("~1", "/").replace("~0", "~") for part in expanded.split("/")[1:]]


def _get(document: Any, path: list[str], label: str) -> Any:  # noqa: ANN401 - any JSON value
    node = document
    for depth, part in enumerate(path):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            missing = "/" + "/".join(_escape(p) for p in path[: depth + 1])
            raise CorrectionError(
                f"{label}: the vendor spec has no {missing}: update the correction"
            )
    return node


def _parent(document: Any, path: list[str], label: str) -> tuple[Any, Any]:  # noqa: ANN401
    parent = _get(document, path[:-1], label)
    key = path[-1]
    if isinstance(parent, list) and key != "-":
        return parent, int(key)
    return parent, key


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")
