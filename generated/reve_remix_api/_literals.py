"""The values of the request's enums as ``Literal`` types. Written by scripts/regenerate.py
from the spec: do not edit."""

from typing import Literal, TypeAlias

AspectRatioValue: TypeAlias = Literal[
    "16:9",
    "9:16",
    "3:2",
    "2:3",
    "4:3",
    "3:4",
    "1:1",
]
"""``aspect_ratio`` as a string: a value of ``AspectRatio``, as the spec lists them."""

OutputFormatValue: TypeAlias = Literal[
    "url",
    "b64_json",
]
"""``output_format`` as a string: a value of ``OutputFormat``, as the spec lists them."""
