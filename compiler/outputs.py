"""Output directories: make one, or say in one line why it cannot be made."""
from __future__ import annotations

import os

from spacelang.errors import OutputError
from spacelang.util.atomic import os_error_message


def ensure_dir(path: str) -> str:
    """Create the folder ``path`` (and its parents); an :class:`OutputError` naming it when it
    cannot be: a file in the way, a read-only or full file system, a name too long."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise OutputError(f"cannot write into {path}: it is a file, not a folder")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create {path}: {os_error_message(e)}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write into {path}: permission denied")
    return path


__all__ = ["ensure_dir"]
