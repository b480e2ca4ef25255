"""The ``python`` blocks of a guide under docs/, to run as the guide shows them."""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"


def python_blocks(name: str) -> list[str]:
    """Every ```python block of ``docs/<name>``, in order."""
    text = (DOCS / name).read_text(encoding="utf-8")
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


def block_importing(name: str, module: str) -> str:
    """The one block of ``docs/<name>`` that imports ``module``."""
    [block] = [b for b in python_blocks(name) if re.search(rf"^(from|import) {module}\b", b, re.M)]
    return block
