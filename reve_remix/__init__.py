"""Python SDK for the Reve Remix image-to-image API (``POST /v1/images/edits``).

Example::

    from reve_remix import ReveRemix

    client = ReveRemix()  # reads ONEROUTER_API_KEY
    client.remix("<img>0</img> as a watercolour", ["cat.png"]).save("watercolour.png")

The offline mock server for tests lives in :mod:`reve_remix.testing`.
"""

from reve_remix_api.models import AspectRatio, OutputFormat

from ._batch import BatchProgress, RemixJob
from ._client import AsyncReveRemix, ReveRemix
from ._exceptions import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ContentPolicyError,
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
from ._results import RemixImage, RemixResult
from ._tags import (
    TagProblem,
    bind_images,
    find_tag_problems,
    img,
    referenced_indices,
    reindex,
)
from ._version import __version__

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AspectRatio",
    "AsyncReveRemix",
    "AuthenticationError",
    "BadRequestError",
    "BatchProgress",
    "ContentPolicyError",
    "InternalServerError",
    "NotFoundError",
    "OutputFormat",
    "PayloadTooLargeError",
    "PaymentRequiredError",
    "PermissionDeniedError",
    "RateLimitError",
    "RemixImage",
    "RemixJob",
    "RemixResult",
    "RequestTimeoutError",
    "ReveRemix",
    "ReveRemixError",
    "TagProblem",
    "UnprocessableEntityError",
    "ValidationError",
    "__version__",
    "bind_images",
    "find_tag_problems",
    "img",
    "referenced_indices",
    "reindex",
]
