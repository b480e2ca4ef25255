"""Make ``--doctest-modules`` run the examples on the methods of ``reve_remix``'s public classes.

``reve_remix/__init__.py`` sets each public class's ``__module__`` to ``reve_remix`` (so errors
print as ``reve_remix.ValidationError``). The doctest finder then meets those classes in
``reve_remix/__init__.py`` only, and skips their methods there, because a method still names the
private module it is written in. This counts those methods as the package's too, so each example
runs exactly once; ``tests/test_public_api.py`` checks that no ``>>>`` example goes unfound.
"""

from __future__ import annotations

import doctest
import importlib.util
import inspect
import types

_PACKAGE = "reve_remix"
_from_module = doctest.DocTestFinder._from_module


def _from_module_or_public_class(
    self: doctest.DocTestFinder, module: types.ModuleType | None, obj: object
) -> bool:
    in_package = module is not None and module.__name__ == _PACKAGE
    owner = getattr(obj, "__module__", None) or ""
    if in_package and inspect.isroutine(obj) and owner.startswith(f"{_PACKAGE}."):
        return True
    return bool(_from_module(self, module, obj))


doctest.DocTestFinder._from_module = _from_module_or_public_class  # type: ignore[method-assign]

# The engine adapters import their engine when loaded; without the extra they have nothing to run.
collect_ignore = [
    f"reve_remix/{adapter}.py"
    for adapter, engine in (("ray", "ray"), ("spark", "pyspark"))
    if importlib.util.find_spec(engine) is None
]
