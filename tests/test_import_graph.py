"""The package's modules import each other without circles, read statically from the source.

A circle (``a`` imports ``b``, which imports ``a`` back, directly or through others) works only
while someone remembers which import must stay inside a function; a newcomer moving it to the
top gets an ``ImportError`` at import time. So no module of ``reve_remix`` may import one that
imports it back, ``if TYPE_CHECKING:`` imports included (mypy and a reader follow those too),
and an import inside a function is allowed only where it defers a cost, each with its reason.

Only modules of ``reve_remix`` count: an import of the standard library, of a dependency, of an
optional extra (PIL, fsspec, Ray) or of the generated ``reve_remix_api`` inside a function is
not an edge of this graph and cannot close a circle in it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import reve_remix

PACKAGE = Path(reve_remix.__file__).parent

LAZY_IMPORTS = {
    ("reve_remix._client", "reve_remix._schedule"): (
        "the batch machinery (asyncio, concurrent.futures) loads at the first batch, not with "
        "`import reve_remix`: scripts/bench.py's import row measures that"
    ),
    ("reve_remix._cli._demo", "reve_remix.testing"): (
        "the mock server (http.server, jsonschema) loads only for `reve-remix mock` and `demo`"
    ),
}
"""(importer, imported) -> why the import waits for the first call that needs it."""


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _imported(node: ast.Import | ast.ImportFrom, importer: str) -> Iterator[str]:
    """The package modules an import statement of ``importer`` loads."""
    if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
    else:
        is_package = MODULES[importer].name == "__init__.py"
        package = (importer if is_package else importer.rpartition(".")[0]).split(".")
        base = package[: len(package) - node.level + 1] if node.level else []
        module = ".".join([*base, node.module] if node.module else base)
        # ``from . import _config`` names a module; ``from ._client import ReveRemix`` a name.
        submodules = [f"{module}.{alias.name}" for alias in node.names]
        targets = [name for name in submodules if name in MODULES] or [module]
    yield from (target for target in targets if target in MODULES)


def _imports(module: str) -> Iterator[tuple[str, bool]]:
    """``(imported module, inside a function)`` for every package import of ``module``."""

    def walk(node: ast.AST, in_function: bool) -> Iterator[tuple[str, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield from ((target, in_function) for target in _imported(child, module))
            function = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            yield from walk(child, in_function or function)

    yield from walk(ast.parse(MODULES[module].read_text(encoding="utf-8")), False)


GRAPH = {module: {target for target, _ in _imports(module)} for module in MODULES}


def _circles() -> list[list[str]]:
    """Every import circle, each as the path that closes it (``[a, b, a]``)."""
    circles: list[list[str]] = []
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            circles.append([*path[path.index(module) :], module])
            return
        if module in done:
            return
        for target in sorted(GRAPH[module]):
            visit(target, [*path, module])
        done.add(module)

    for module in sorted(GRAPH):
        visit(module, [])
    return circles


def test_the_graph_is_read():  # the checks below would pass on an empty graph
    assert {"reve_remix", "reve_remix._client", "reve_remix.testing._server"} <= set(GRAPH)
    assert "reve_remix._exceptions" in GRAPH["reve_remix._client"]
    assert "reve_remix._config" in GRAPH["reve_remix._request"]  # ``from . import _config``
    assert ("reve_remix._schedule", True) in set(_imports("reve_remix._client"))


def test_no_module_imports_one_that_imports_it_back():
    assert _circles() == []


def test_a_circle_is_found(monkeypatch):
    monkeypatch.setitem(GRAPH, "reve_remix._lifecycle", {"reve_remix._exceptions"})
    assert ["reve_remix._exceptions", "reve_remix._lifecycle", "reve_remix._exceptions"] in (
        _circles()
    )


def test_imports_inside_functions_only_defer_a_cost():
    local = {
        (module, target)
        for module in MODULES
        for target, in_function in _imports(module)
        if in_function
    }
    assert local - LAZY_IMPORTS.keys() == set(), "a function-local import: move it to the top"
    assert LAZY_IMPORTS.keys() - local == set(), "an allowed lazy import no longer exists"
