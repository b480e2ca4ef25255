"""Python SDK for the Reve Remix image-to-image API (OneRouter's image edits endpoint).

Example::

    from reve_remix import ReveRemix

    client = ReveRemix()  # reads ONEROUTER_API_KEY
    client.remix("<img>0</img> as a watercolour", ["cat.png"]).save("watercolour.png")

The offline mock server for tests lives in :mod:`reve_remix.testing`.

``AspectRatio``, ``OutputFormat`` and their values as ``Literal`` types, ``AspectRatioValue`` and
``OutputFormatValue`` (all from the generated package, which regeneration writes from the spec),
``RemixJob`` and ``BatchProgress`` are loaded when first used, to keep ``import reve_remix`` fast.

Every public name says it lives here (``reve_remix.ValidationError``, not
``reve_remix._exceptions.ValidationError``): the private modules are free to move.
"""

import types
from typing import TYPE_CHECKING

from ._budget import Budget, Hold
from ._client import AsyncReveRemix, ReveRemix
from ._exceptions import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    ContentPolicyError,
    ImageNotSavedError,
    InternalServerError,
    NotFoundError,
    PayloadTooLargeError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitError,
    RequestTimeoutError,
    ReveRemixError,
    UnprocessableEntityError,
    ValidationError,
)
from ._images import ImageInput, Uploader
from ._ledger import JobRecord, LedgerError
from ._lifecycle import JobState
from ._recipe import Recipe, read_recipe
from ._results import RemixImage, RemixResult
from ._retry import AdaptiveRate, RateLimiter, RetryEvent, SteadyRate
from ._tags import (
    TagProblem,
    bind_images,
    find_tag_problems,
    img,
    referenced_indices,
    reindex,
)
from ._version import __version__

if TYPE_CHECKING:
    from reve_remix_api._literals import AspectRatioValue, OutputFormatValue
    from reve_remix_api.models import AspectRatio, OutputFormat

    from ._engine import RowOutcome, remix_rows
    from ._jobs import BatchProgress, RemixJob
    from ._store import PaidStore

_LAZY = {
    "AspectRatio": "reve_remix_api.models",
    "AspectRatioValue": "reve_remix_api._literals",
    "OutputFormat": "reve_remix_api.models",
    "OutputFormatValue": "reve_remix_api._literals",
    "BatchProgress": "reve_remix._jobs",
    "RemixJob": "reve_remix._jobs",
    "PaidStore": "reve_remix._store",
    "RowOutcome": "reve_remix._engine",
    "remix_rows": "reve_remix._engine",
}


def _claim(value: object) -> None:
    """Make a public class or function name ``reve_remix`` as its module, as httpx does."""
    if isinstance(value, type | types.FunctionType):
        value.__module__ = __name__


def __getattr__(name: str) -> object:
    """Load the names of ``_LAZY`` on first use (PEP 562)."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        if _LAZY[name].startswith(f"{__name__}."):  # not the generated enums: reve_remix_api's
            _claim(value)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'reve_remix' has no attribute {name!r}")


__all__ = [
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

for _name in __all__:
    _claim(globals().get(_name))
del _name
