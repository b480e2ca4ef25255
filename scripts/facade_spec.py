"""This tree's ``reve_remix/_spec.py``, loaded on its own for the regeneration scripts.

Importing it as ``reve_remix._spec`` would run the package's ``__init__``, which reads the spec
of the generated package installed now: a broken ``generated/`` would then stop the very
regeneration that repairs it. ``_spec`` imports nothing from the package, so it loads alone.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_NAME = "reve_remix_tree_spec"
_PATH = Path(__file__).resolve().parent.parent / "reve_remix" / "_spec.py"

if _NAME not in sys.modules:
    _module_spec = importlib.util.spec_from_file_location(_NAME, _PATH)
    assert _module_spec is not None
    assert _module_spec.loader is not None
    sys.modules[_NAME] = importlib.util.module_from_spec(_module_spec)
    _module_spec.loader.exec_module(sys.modules[_NAME])

spec = sys.modules[_NAME]
