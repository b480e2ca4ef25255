"""A griffe extension: the API reference's signatures in the types and values a user can see.

The code names things a reader of the reference cannot look up: a default that is a private
module's constant (``concurrency: int = DEFAULT_CONCURRENCY``), a private type alias
(``images: Images``), a ``TypeVar`` (``Iterable[JobT]``), a generic private base whose type
argument fills a parameter (``_BaseClient[httpx.Client]``, whose ``__init__`` takes
``http_client: HttpClient``). Copying the values into the docs would give them a second home;
this reads them from the code as griffe loaded it and rewrites what the reference shows:

- a name that resolves to a module attribute of a private module, and that no public module
  exports, is replaced by the attribute's value (a constant's ``4``, an alias's
  ``Sequence[ImageInput] | ...``), and a ``TypeVar`` by its bound (or its constraints joined by
  ``|``; ``object`` when it has neither), again and again until only public names are left;
- a private base class is replaced by its own bases, with its type parameters filled in
  (``Generic[...]`` left out), and its public members are shown on the class, the ``TypeVar``
  of the base replaced by the class's type argument;
- the value of an attribute set in a method (``self.price = _config.price(price)``) is dropped:
  it is an expression of the method's arguments, not a value.

The code and its docstrings stay as they are.
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import griffe

# An annotation, default or value as griffe holds it: an expression, source text, or nothing.
Value = griffe.Expr | str | None
Rewrite = Callable[[griffe.ExprName], Value]

_TYPE_VAR = "typing.TypeVar"
_GENERIC = "typing.Generic"
_DEPTH = 20  # aliases of aliases: far more than any chain the code has; stops a cycle


class RealSignatures(griffe.Extension):
    """Rewrite the package's signatures once griffe has loaded the whole of it."""

    def on_package(
        self,
        *,
        pkg: griffe.Module,
        loader: griffe.GriffeLoader,
        **kwargs: Any,  # noqa: ANN401
    ) -> None:
        public = _public_paths(pkg)
        expand = _Expander(loader.modules_collection, public)
        classes = [obj for obj in _objects(pkg) if isinstance(obj, griffe.Class)]
        # Every class's public bases first, from the bases as written (a private base's own
        # ``Generic[T]`` says what its type argument fills), then all of them set.
        bases = {cls.path: _public_bases_of(cls, expand) for cls in classes}
        for cls in classes:
            cls.bases = bases[cls.path]
        for obj in _objects(pkg):
            _rewrite_object(obj, expand)


def _objects(module: griffe.Module) -> Iterator[griffe.Object]:
    """Every object defined in ``module`` and its submodules (not the names they import)."""
    for member in list(module.members.values()):
        if isinstance(member, griffe.Alias):
            continue
        yield member
        if isinstance(member, griffe.Module):
            yield from _objects(member)
        elif isinstance(member, griffe.Class):
            yield from _class_objects(member)


def _class_objects(cls: griffe.Class) -> Iterator[griffe.Object]:
    for member in list(cls.members.values()):
        if not isinstance(member, griffe.Alias):
            yield member
            if isinstance(member, griffe.Class):
                yield from _class_objects(member)


def _is_private(path: str) -> bool:
    return any(part.startswith("_") and not part.endswith("__") for part in path.split("."))


def _public_paths(pkg: griffe.Module) -> set[str]:
    """The canonical paths of what the package's public modules export."""
    public: set[str] = set()
    modules = [pkg, *(obj for obj in _objects(pkg) if isinstance(obj, griffe.Module))]
    for module in modules:
        if _is_private(module.path):
            continue
        if module.exports is not None:  # ``__all__``: what it lists is public, dunders too
            names = [str(name) for name in module.exports]
            members = [module.members[name] for name in names if name in module.members]
        else:
            members = [m for name, m in module.members.items() if not name.startswith("_")]
        for member in members:
            try:
                target = member.final_target if isinstance(member, griffe.Alias) else member
                public.add(target.path)
            except (griffe.AliasResolutionError, griffe.CyclicAliasError):
                continue  # exported from a package not loaded: never expanded either
    return public


class _Expander:
    """Replaces a name by what it stands for, where a reader could not look the name up."""

    def __init__(self, collection: griffe.ModulesCollection, public: set[str]) -> None:
        self.collection = collection
        self.public = public

    def target(self, name: griffe.ExprName) -> griffe.Object | None:
        """The object ``name`` resolves to, if it is loaded."""
        try:
            found = self.collection.get_member(name.canonical_path)
            return found.final_target if isinstance(found, griffe.Alias) else found
        except (KeyError, ValueError, griffe.AliasResolutionError, griffe.CyclicAliasError):
            return None

    def __call__(self, name: griffe.ExprName) -> Value:
        """What ``name`` stands for, or ``None`` to keep the name."""
        found = self.target(name)
        if (
            not isinstance(found, griffe.Attribute)
            or not isinstance(found.parent, griffe.Module)
            or found.value is None
            or found.path in self.public
            or not _is_private(found.path)
        ):
            return None
        value = found.value
        if isinstance(value, griffe.ExprCall) and _is(value.function, _TYPE_VAR, self):
            return _type_var_bound(value, found.parent)
        return value


def _is(expr: Value, path: str, expand: _Expander) -> bool:
    """Whether ``expr`` names the object at ``path`` (``typing.TypeVar``, ``typing.Generic``)."""
    if isinstance(expr, griffe.ExprAttribute):
        expr = expr.last
    return isinstance(expr, griffe.ExprName) and expr.canonical_path == path


def _type_var_bound(call: griffe.ExprCall, module: griffe.Module) -> Value:
    """A ``TypeVar``'s bound, or its constraints joined by ``|``, or ``object``."""
    bound = next(
        (arg.value for arg in call.arguments if isinstance(arg, griffe.ExprKeyword)
         and arg.name == "bound"),
        None,
    )  # fmt: skip
    constraints = [arg for arg in call.arguments[1:] if not isinstance(arg, griffe.ExprKeyword)]
    if isinstance(bound, str):  # a forward reference: parse the text in the TypeVar's module
        bound = griffe.get_annotation(ast.parse(ast.literal_eval(bound), mode="eval").body, module)
    if bound is not None:
        return bound
    if not constraints:
        return griffe.ExprName("object", module)
    union = constraints[0]
    for constraint in constraints[1:]:
        union = griffe.ExprBinOp(union, "|", constraint)
    return union


def rewrite(value: Value, replace: Rewrite, depth: int = _DEPTH) -> Value:
    """``value`` with every name ``replace`` has a replacement for replaced, recursively."""
    if not isinstance(value, griffe.Expr) or depth == 0:
        return value
    if isinstance(value, griffe.ExprName):
        replacement = replace(value)
        return value if replacement is None else rewrite(replacement, replace, depth - 1)
    if isinstance(value, griffe.ExprAttribute):  # ``httpx.Client``: the whole path is one name
        replacement = replace(value.last)
        return value if replacement is None else rewrite(replacement, replace, depth - 1)
    changes: dict[str, Any] = {}
    for field in dataclasses.fields(value):
        if field.name in ("parent", "function") and isinstance(value, griffe.ExprKeyword):
            continue
        old = getattr(value, field.name)
        if isinstance(old, list):
            new: Any = [rewrite(item, replace, depth) for item in old]
        else:
            new = rewrite(old, replace, depth)
        if new is not old:
            changes[field.name] = new
    return dataclasses.replace(value, **changes) if changes else value


def _rewrite_object(obj: griffe.Object, replace: Rewrite) -> None:
    """Rewrite the annotations and defaults of a function, or an attribute's type and value."""
    if isinstance(obj, griffe.Function):
        for parameter in obj.parameters:
            parameter.annotation = rewrite(parameter.annotation, replace)
            parameter.default = rewrite(parameter.default, replace)
        obj.returns = rewrite(obj.returns, replace)
    elif isinstance(obj, griffe.Attribute):
        obj.annotation = rewrite(obj.annotation, replace)
        if "instance-attribute" in obj.labels and "class-attribute" not in obj.labels:
            obj.value = None  # ``self.x = ...`` in a method: an expression, not a value
        else:
            obj.value = rewrite(obj.value, replace)


def _public_bases_of(cls: griffe.Class, expand: _Expander) -> list[griffe.Expr | str]:
    """The bases to show for ``cls``; its private bases' public members are moved onto it."""
    return [
        public
        for base in cls.bases
        for public in _public_bases(cls, base, expand, {})
        if public is not None
    ]


def _public_bases(
    cls: griffe.Class, base: Value, expand: _Expander, filled: dict[str, Value]
) -> list[Value]:
    """``base``'s expression if it is public, else its own bases' (its members moved to ``cls``).

    ``filled`` maps the canonical path of a ``TypeVar`` to the type argument it stands for.
    """
    base = rewrite(base, lambda name: filled.get(name.canonical_path))
    left = base.left if isinstance(base, griffe.ExprSubscript) else base
    name = left.last if isinstance(left, griffe.ExprAttribute) else left
    found = expand.target(name) if isinstance(name, griffe.ExprName) else None
    if not isinstance(found, griffe.Class) or found.path in expand.public:
        return [] if _is(left, _GENERIC, expand) else [base]
    arguments = _arguments(base) if isinstance(base, griffe.ExprSubscript) else []
    parameters = [
        parameter
        for own in found.bases
        if isinstance(own, griffe.ExprSubscript) and _is(own.left, _GENERIC, expand)
        for parameter in _arguments(own)
    ]
    own_filled = {
        parameter.canonical_path: argument
        for parameter, argument in zip(parameters, arguments, strict=False)
        if isinstance(parameter, griffe.ExprName)
    }
    _adopt_members(cls, found, lambda name: own_filled.get(name.canonical_path))
    bases: list[Value] = []
    for own in found.bases:
        bases.extend(_public_bases(cls, own, expand, own_filled))
    return bases


def _arguments(subscript: griffe.ExprSubscript) -> list[Value]:
    index = subscript.slice
    return list(index.elements) if isinstance(index, griffe.ExprTuple) else [index]


def _adopt_members(cls: griffe.Class, base: griffe.Class, fill: Rewrite) -> None:
    """Copy ``base``'s public members that ``cls`` does not define onto ``cls``, rewritten."""
    for name, member in base.members.items():
        if name in cls.members or (name.startswith("_") and name != "__init__"):
            continue
        if isinstance(member, griffe.Function):
            adopted: griffe.Object = griffe.Function(
                name,
                lineno=member.lineno,
                endlineno=member.endlineno,
                parameters=griffe.Parameters(
                    *(
                        griffe.Parameter(
                            parameter.name,
                            annotation=rewrite(parameter.annotation, fill),
                            kind=parameter.kind,
                            default=rewrite(parameter.default, fill),
                            docstring=parameter.docstring,
                        )
                        for parameter in member.parameters
                    )
                ),
                returns=rewrite(member.returns, fill),
                decorators=member.decorators,
            )
        elif isinstance(member, griffe.Attribute):
            adopted = griffe.Attribute(
                name,
                lineno=member.lineno,
                endlineno=member.endlineno,
                value=member.value,
                annotation=rewrite(member.annotation, fill),
            )
        else:
            continue
        adopted.labels = set(member.labels)
        cls.set_member(name, adopted)
        if member.docstring is not None:
            adopted.docstring = griffe.Docstring(
                member.docstring.value,
                lineno=member.docstring.lineno,
                endlineno=member.docstring.endlineno,
                parent=adopted,
                parser=member.docstring.parser,
                parser_options=member.docstring.parser_options,
            )
