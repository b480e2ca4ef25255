"""A griffe extension: the package's reST-flavoured docstrings, read as Markdown by MkDocs.

The docstrings are written for ``help()`` and a terminal, in the reST habits of the standard
library: ``Example::`` before an indented block, ``:class:`Name``` roles, and ``>>>`` sessions.
Markdown would show the ``::`` and the role names, and read ``>>>`` as nested quotes; this turns
them into a colon, a code span and a ``pycon`` block. A guide named by its path in the repository
(````docs/errors-and-retries.md````, which a terminal reader can open) becomes a link to its page,
titled as the page is. The docstrings themselves stay as they are.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import griffe

_ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj):`(~?)([^`]+)`")
_LITERAL_BLOCK_MARKER = re.compile(r"::$", re.MULTILINE)
_GUIDE = re.compile(r"``docs/([\w-]+\.md)(#[\w-]+)?``")
_DOCS = Path(__file__).resolve().parent


def to_markdown(text: str) -> str:
    """One docstring, reST habits turned into Markdown.

    ``:class:`~reve_remix.ValidationError``` becomes ```ValidationError```, ``Example::`` becomes
    ``Example:``, and a paragraph that starts with ``>>>`` is fenced as ``pycon``.
    """
    text = _ROLE.sub(_code_span, text)
    text = _GUIDE.sub(_guide_link, text)
    text = _LITERAL_BLOCK_MARKER.sub(":", text)
    return "\n\n".join(_fence_doctest(block) for block in text.split("\n\n"))


def _code_span(role: re.Match[str]) -> str:
    """As Sphinx shows a role: the target as written, or its last part after a ``~``."""
    tilde, target = role.groups()
    return f"`{target.rsplit('.', 1)[-1] if tilde else target}`"


def _guide_link(path: re.Match[str]) -> str:
    """A link to the guide at ``docs/<page>``, named by the page's title (its first heading).

    A page that is not there stops the build: the docstring names a guide that does not exist.
    """
    page, anchor = path.group(1), path.group(2) or ""
    try:
        lines = (_DOCS / page).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ValueError(f"a docstring names docs/{page}, which does not exist") from None
    title = next((line[2:].strip() for line in lines if line.startswith("# ")), page)
    return f"[{title}]({page}{anchor})"


def _fence_doctest(block: str) -> str:
    """A paragraph that is a ``>>>`` session (reST's doctest block) as a fenced block."""
    if not block.lstrip("\n").startswith(">>>"):
        return block
    fenced = block.strip("\n")
    return f"```pycon\n{fenced}\n```"


class RestDocstrings(griffe.Extension):
    """Rewrite every docstring once griffe has loaded the package."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:  # noqa: ANN401
        if obj.docstring is not None:
            obj.docstring.value = to_markdown(obj.docstring.value)
