"""Contains all the data models used in inputs/outputs"""

from .aspect_ratio import AspectRatio
from .error_detail import ErrorDetail
from .error_response import ErrorResponse
from .output_format import OutputFormat
from .remix_image import RemixImage
from .remix_request import RemixRequest
from .remix_request_n import RemixRequestN
from .remix_response import RemixResponse

__all__ = (
    "AspectRatio",
    "ErrorDetail",
    "ErrorResponse",
    "OutputFormat",
    "RemixImage",
    "RemixRequest",
    "RemixRequestN",
    "RemixResponse",
)
