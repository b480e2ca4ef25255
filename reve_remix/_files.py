"""Writing a file whole: a crash or an interrupt leaves the old file or the new one, never half.

Every paid image, spooled inline image and paid-store record is written through
:func:`write_atomic`; ``PART_FILE`` names the temporary files a killed process may leave, so a
later run can remove them.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    A crash or Ctrl-C mid-write leaves the old file (or none), never a truncated image; a
    leftover temporary file is named ``.<name>.<12 hex digits>.part`` (see ``PART_FILE``). The
    file gets the permissions the umask gives a new file (``mkstemp`` would make it 0600).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_name = target.with_name(f".{target.name}.{secrets.token_hex(6)}.part")
    fd = os.open(tmp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target


PART_FILE = r"\..+\.[0-9a-f]{12}\.part"
"""The regular expression a temporary file of :func:`write_atomic` matches (a crash leaves one)."""
