"""The public surface: which names ``reve_remix`` exports, where they say they live, and the
sync/async twins keeping the same signatures."""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import inspect
import pickle
import pkgutil
import re
import traceback
from pathlib import Path
from typing import get_args

import pytest

import reve_remix
from reve_remix import (
    AspectRatio,
    AspectRatioValue,
    AsyncReveRemix,
    OutputFormat,
    OutputFormatValue,
    RemixImage,
    RemixResult,
    ReveRemix,
    ValidationError,
)
from reve_remix._spec import spec
from reve_remix.review import prompt_grid

PUBLIC_NAMES = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AdaptiveRate",
    "AspectRatio",
    "AspectRatioValue",
    "AsyncReveRemix",
    "AuthenticationError",
    "BadRequestError",
    "BatchProgress",
    "Budget",
    "BudgetExceededError",
    "ContentPolicyError",
    "Hold",
    "ImageInput",
    "ImageNotSavedError",
    "InternalServerError",
    "JobRecord",
    "JobState",
    "LedgerError",
    "NotFoundError",
    "OutputFormat",
    "OutputFormatValue",
    "PaidStore",
    "PayloadTooLargeError",
    "PaymentRequiredError",
    "PermissionDeniedError",
    "RateLimitError",
    "RateLimiter",
    "Recipe",
    "RemixImage",
    "RemixJob",
    "RemixResult",
    "RequestTimeoutError",
    "RetryEvent",
    "ReveRemix",
    "ReveRemixError",
    "RowOutcome",
    "SteadyRate",
    "TagProblem",
    "UnprocessableEntityError",
    "Uploader",
    "ValidationError",
    "__version__",
    "bind_images",
    "find_tag_problems",
    "img",
    "read_recipe",
    "referenced_indices",
    "reindex",
    "remix_rows",
]
# The generated package's enums, re-exported: their home stays ``reve_remix_api``.
GENERATED = {"AspectRatio", "OutputFormat"}


def _public_objects() -> list[tuple[str, object]]:
    """Every exported class and function (not the version string or the type aliases)."""
    values = [(name, getattr(reve_remix, name)) for name in reve_remix.__all__]
    return [(name, v) for name, v in values if inspect.isclass(v) or inspect.isfunction(v)]


PUBLIC_OBJECTS = _public_objects()
# Named by the public name: a function's repr holds its address, which differs between the
# pytest-xdist workers, and every worker must collect the same test ids.
PUBLIC_IDS = [name for name, _ in PUBLIC_OBJECTS]


def test_all_is_pinned():
    """Adding or removing a public name is a decision: this list changes with it."""
    assert sorted(reve_remix.__all__) == PUBLIC_NAMES
    assert reve_remix.__all__ == sorted(reve_remix.__all__)


@pytest.mark.parametrize("name", PUBLIC_NAMES)
def test_every_public_name_resolves(name):
    assert getattr(reve_remix, name) is not None


def test_custom_uploaders_can_name_their_types():
    from reve_remix._images import ImageInput, Uploader

    assert reve_remix.Uploader is Uploader
    assert reve_remix.ImageInput is ImageInput


@pytest.mark.parametrize(("name", "value"), PUBLIC_OBJECTS, ids=PUBLIC_IDS)
def test_public_names_say_they_live_in_reve_remix(name, value):
    if name in GENERATED:
        assert value.__module__.startswith("reve_remix_api.")
    else:
        assert value.__module__ == "reve_remix"


@pytest.mark.parametrize(("name", "value"), PUBLIC_OBJECTS, ids=PUBLIC_IDS)
def test_public_names_pickle_by_their_public_name(name, value):
    """The new ``__module__`` must still lead pickle (and so multiprocessing) to the object."""
    assert pickle.loads(pickle.dumps(value)) is value


def test_an_error_prints_with_the_package_name():
    error = ValidationError("prompt: must not be empty or blank")
    assert traceback.format_exception_only(error) == [
        "reve_remix.ValidationError: prompt: must not be empty or blank\n"
    ]
    assert isinstance(pickle.loads(pickle.dumps(error)), ValidationError)


# --- sync and async twins -------------------------------------------------------------------


def _methods(cls: type) -> dict[str, object]:
    """Public methods, plus the constructor and the context-manager protocol."""
    protocol = {"__init__", "__enter__", "__exit__", "__aenter__", "__aexit__"}
    return {
        name: member
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_") or name in protocol
    }


def _is_async(function: object) -> bool:
    """A coroutine function, an async generator, or a function returning an async iterator."""
    if inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function):
        return True
    returns = inspect.signature(function).return_annotation  # type: ignore[arg-type]
    return str(returns).startswith("AsyncIterator[")


def _async_name(name: str, async_methods: dict[str, object]) -> str:
    for candidate in (f"a{name}", name.replace("__", "__a", 1), name):
        if candidate in async_methods:
            return candidate
    raise AssertionError(f"AsyncReveRemix has no twin of ReveRemix.{name}")


def test_clients_have_the_same_methods_with_the_same_signatures():
    sync, asynchronous = _methods(ReveRemix), _methods(AsyncReveRemix)
    twins = {name: _async_name(name, asynchronous) for name in sync}
    assert sorted(twins.values()) == sorted(asynchronous)
    assert {"remix", "remix_many", "close"} <= set(sync)
    for name, twin in twins.items():
        expected = inspect.signature(sync[name])
        # A sync iterator's twin is an async one: the only difference allowed.
        returns = str(expected.return_annotation).replace("Iterator[", "AsyncIterator[")
        expected = expected.replace(return_annotation=returns)
        assert expected == inspect.signature(asynchronous[twin]), name
        # The shared base's methods do no I/O (paid_image only names an image to fetch later).
        if name != "__init__" and name not in vars(ReveRemix.__mro__[1]):
            assert not _is_async(sync[name]), name
            assert _is_async(asynchronous[twin]), twin


@pytest.mark.parametrize("cls", [RemixResult, RemixImage])
def test_results_read_and_save_have_async_twins_with_the_same_signatures(cls):
    methods = _methods(cls)
    assert {"read", "aread", "save", "asave"} <= set(methods)
    for name in ("read", "save"):
        assert inspect.signature(methods[name]) == inspect.signature(methods[f"a{name}"])
        assert not _is_async(methods[name])
        assert _is_async(methods[f"a{name}"])


# --- docstring examples ---------------------------------------------------------------------

PACKAGE = Path(reve_remix.__file__).parent


# The engine adapters import their engine when loaded; without the extra, conftest.py skips them.
_ENGINES = {"reve_remix.ray": "ray", "reve_remix.spark": "pyspark"}


def _modules() -> list[str]:
    names = ["reve_remix"]
    for module in pkgutil.walk_packages([str(PACKAGE)], prefix="reve_remix."):
        if module.name.endswith("__main__"):  # pytest skips it too: importing runs the CLI
            continue
        engine = _ENGINES.get(module.name)
        if engine is None or importlib.util.find_spec(engine) is not None:
            names.append(module.name)
    return names


def _source(name: str) -> Path:
    module = importlib.util.find_spec(name)
    assert module is not None
    assert module.origin is not None
    return Path(module.origin)


def test_every_docstring_example_is_found():
    """``--doctest-modules`` runs what the doctest finder finds; make sure that is every ``>>>``.

    A public class names ``reve_remix`` as its module, so the finder would skip examples on its
    methods; the repository's ``conftest.py`` puts them back, and this notices if it stops.
    """
    finder = doctest.DocTestFinder()
    found = sum(
        len(test.examples)
        for name in _modules()
        for test in finder.find(importlib.import_module(name), name)
    )
    written = sum(
        len(re.findall(r"^\s*>>>", _source(name).read_text(encoding="utf-8"), re.MULTILINE))
        for name in _modules()
    )
    assert written > 20
    assert found == written


def test_the_api_reference_renders_every_public_name():
    reference = (PACKAGE.parent / "docs" / "reference.md").read_text(encoding="utf-8")
    rendered = set(re.findall(r"^::: reve_remix\.(\w+)$", reference, re.MULTILINE))
    assert sorted(rendered & set(PUBLIC_NAMES)) == PUBLIC_NAMES


# --- aspect_ratio and output_format: the enum, or its value as a Literal an IDE completes ------

# The annotations are strings (PEP 563) naming what their module imports for type checkers only.
_TYPES = {
    "AspectRatio": AspectRatio,
    "AspectRatioValue": AspectRatioValue,
    "OutputFormat": OutputFormat,
    "OutputFormatValue": OutputFormatValue,
}
TAKES_ENUMS = {
    "ReveRemix.remix": ReveRemix.remix,
    "AsyncReveRemix.remix": AsyncReveRemix.remix,
    "RemixJob": reve_remix.RemixJob,
    "prompt_grid": prompt_grid,
}


def test_the_literal_types_are_the_specs_values_as_regeneration_wrote_them():
    assert get_args(AspectRatioValue) == spec().aspect_ratios
    assert get_args(OutputFormatValue) == spec().output_formats
    assert {member.value for member in AspectRatio} == set(spec().aspect_ratios)
    assert {member.value for member in OutputFormat} == set(spec().output_formats)


@pytest.mark.parametrize("name", TAKES_ENUMS)
def test_aspect_ratio_and_output_format_take_the_enum_or_one_of_its_values(name):
    parameters = inspect.signature(TAKES_ENUMS[name]).parameters
    for argument, expected in (
        ("aspect_ratio", AspectRatio | AspectRatioValue | None),
        ("output_format", OutputFormat | OutputFormatValue | None),
    ):
        annotation = parameters[argument].annotation
        assert eval(annotation, dict(_TYPES)) == expected, (argument, annotation)
