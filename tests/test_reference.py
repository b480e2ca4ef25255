"""The API reference's signatures: what mkdocstrings renders shows the code's own values, public
names and public bases (``docs/real_signatures.py``), and guides named by path become links
(``docs/rst_docstrings.py``).

The package is loaded as ``mkdocs.yml`` loads it, with both griffe extensions. Griffe comes with
the ``docs`` extra, not ``dev``: without it this file is skipped, and ``.ci/run`` runs it after
installing that extra, before it builds the site.
"""

from __future__ import annotations

import ast
import importlib
import sys

import httpx
import pytest

from tests.regen_tree import ROOT

griffe = pytest.importorskip("griffe")
sys.path.insert(0, str(ROOT / "docs"))
import rst_docstrings  # noqa: E402

# Where the public names live: what the reference renders.
PUBLIC_MODULES = ("reve_remix", "reve_remix.review", "reve_remix.testing")


@pytest.fixture(scope="module")
def loaded():
    extensions = griffe.load_extensions(
        f"{ROOT / 'docs' / 'rst_docstrings.py'}:RestDocstrings",
        f"{ROOT / 'docs' / 'real_signatures.py'}:RealSignatures",
    )
    loader = griffe.GriffeLoader(
        extensions=extensions,
        search_paths=[str(ROOT), str(ROOT / "generated")],
        docstring_parser="sphinx",
    )
    loader.load("reve_remix_api")  # mkdocs.yml's preload_modules: loaded first
    package = loader.load("reve_remix")
    loader.resolve_aliases(implicit=False, external=True)
    return package


def public(loaded, path: str):
    """The object ``path`` names in the reference (``reve_remix.review.Grid``), alias followed."""
    obj = loaded
    for part in path.split(".")[1:]:
        obj = obj[part]
    return obj.final_target if obj.is_alias else obj


def parameters(function) -> dict:
    return {parameter.name: parameter for parameter in function.parameters}


def test_defaults_are_the_codes_values_not_the_names_of_private_constants(loaded):
    from reve_remix import _client, _engine, _pool

    client = parameters(public(loaded, "reve_remix.ReveRemix").members["__init__"])
    assert ast.literal_eval(str(client["model"].default)) == _client.DEFAULT_MODEL
    assert int(str(client["max_retries"].default)) == _client.DEFAULT_MAX_RETRIES
    assert int(str(client["max_connections"].default)) == _pool.DEFAULT_MAX_CONNECTIONS
    timeout = eval(str(client["timeout"].default), {"httpx": httpx})
    assert timeout == _client.DEFAULT_TIMEOUT
    for method in ("remix_many", "iter_remix"):
        function = public(loaded, "reve_remix.ReveRemix").members[method]
        assert int(str(parameters(function)["concurrency"].default)) == (
            _client.DEFAULT_CONCURRENCY
        )
    rows = parameters(public(loaded, "reve_remix.remix_rows"))
    assert int(str(rows["concurrency"].default)) == _engine.DEFAULT_CONCURRENCY


def test_type_vars_and_private_aliases_become_the_types_they_stand_for(loaded):
    iter_remix = public(loaded, "reve_remix.ReveRemix").members["iter_remix"]
    assert (
        str(parameters(iter_remix)["jobs"].annotation) == "Iterable[RemixJob | Mapping[str, Any]]"
    )
    assert str(iter_remix.returns) == (
        "Iterator[tuple[RemixJob | Mapping[str, Any], RemixResult | ReveRemixError]]"
    )
    remix = parameters(public(loaded, "reve_remix.ReveRemix").members["remix"])
    assert str(remix["images"].annotation) == (
        "Sequence[ImageInput] | Mapping[str, ImageInput] | ImageInput"
    )
    client = parameters(public(loaded, "reve_remix.ReveRemix").members["__init__"])
    assert str(client["auth_scheme"].annotation) == "Literal['bearer', 'bare']"


def test_each_client_takes_its_own_http_client_and_shows_no_private_base(loaded):
    for name, http_class in (
        ("ReveRemix", "httpx.Client"),
        ("AsyncReveRemix", "httpx.AsyncClient"),
    ):
        client = public(loaded, f"reve_remix.{name}")
        assert client.bases == []  # _BaseClient[...] and its Generic: nothing a user can look up
        init = parameters(client.members["__init__"])
        assert str(init["http_client"].annotation) == f"{http_class} | None"
        # the shared base's public members are the client's, documented
        assert client.members["paid_image"].docstring is not None
        assert client.members["budget"].docstring is not None


def test_a_private_base_is_replaced_by_its_own_bases(loaded):
    status_error = public(loaded, "reve_remix.APIStatusError")
    assert [str(base) for base in status_error.bases] == ["APIError"]
    assert {"response", "status_code", "body"} <= set(status_error.members)
    rate_limited = public(loaded, "reve_remix.RateLimitError")
    assert [str(base) for base in rate_limited.bases] == ["APIStatusError"]


def _names(expression):
    if isinstance(expression, griffe.ExprName):
        yield expression
    elif isinstance(expression, griffe.Expr):
        yield from (
            part for part in expression.iterate(flat=False) if isinstance(part, griffe.ExprName)
        )


def _signatures(obj):
    """Every annotation, default and return (and base) that the reference shows of ``obj``."""
    if isinstance(obj, griffe.Function):
        for parameter in obj.parameters:
            yield parameter.annotation
            yield parameter.default
        yield obj.returns
    elif isinstance(obj, griffe.Attribute):
        yield obj.annotation
        yield obj.value
    elif isinstance(obj, griffe.Class):
        yield from obj.bases
        for member in obj.members.values():
            if not member.is_alias and (
                not member.name.startswith("_") or member.name == "__init__"
            ):
                yield from _signatures(member)


def test_no_public_signature_names_a_private_constant_alias_or_type_var(loaded):
    """A name that resolves to a private module's attribute must be one a public module exports."""
    exported = set()
    shown = []
    for module_path in PUBLIC_MODULES:
        module = importlib.import_module(module_path)
        for name in module.__all__:
            obj = public(loaded, f"{module_path}.{name}")
            exported.add(obj.path)
            shown.append(obj)
    hidden = set()
    for obj in shown:
        for expression in _signatures(obj):
            for name in _names(expression):
                try:
                    target = loaded.modules_collection.get_member(name.canonical_path)
                except (KeyError, ValueError):
                    continue  # outside the package (typing, httpx)
                target = target.final_target if target.is_alias else target
                private = any(part.startswith("_") for part in target.module.path.split("."))
                constant = target.is_attribute and target.parent.is_module
                if constant and private and target.path not in exported:
                    hidden.add(f"{obj.path}: {name.name} ({target.path})")
    assert not hidden


def test_a_guide_named_by_its_path_becomes_a_link_titled_as_the_page():
    page = ROOT / "docs" / "errors-and-retries.md"
    title = page.read_text(encoding="utf-8").splitlines()[0].removeprefix("# ")
    text = "the retry table in ``docs/errors-and-retries.md#retries``;"
    assert rst_docstrings.to_markdown(text) == (
        f"the retry table in [{title}](errors-and-retries.md#retries);"
    )
    with pytest.raises(ValueError, match=r"docs/no-such-page\.md, which does not exist"):
        rst_docstrings.to_markdown("see ``docs/no-such-page.md``")
