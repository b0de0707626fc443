"""Atomic file writes: readers see the old file or the new one, never half of one.

Every writer of the project goes through :func:`write_bytes` (a temporary file in the same
folder, flushed and fsynced, then ``os.replace``).  A failure to write — a read-only folder, a
full disk, a path that is a file, a name too long — is an :class:`~spacelang.errors.OutputError`
naming the path, and leaves no temporary file behind.
"""
from __future__ import annotations

import errno
import json
import os
from typing import Any, Iterable, Mapping

from ..errors import OutputError

_WHY = {errno.EACCES: "permission denied", errno.EROFS: "read-only file system", errno.ENOSPC: "no space left on device",
        errno.ENAMETOOLONG: "file name too long", errno.ENOTDIR: "a parent is a file, not a folder",
        errno.EISDIR: "is a folder", errno.EDQUOT: "disk quota exceeded"}


def os_error_message(e: OSError) -> str:
    """A short reason for an OSError, without Python's ``[Errno N]`` decoration."""
    return _WHY.get(e.errno, e.strerror or str(e))


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (same-folder temporary file, fsync, rename).

    A file that already exists keeps its permission bits (``fmt`` rewrites users' files)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)[:200]}.{os.getpid()}.tmp")
    try:
        try:
            mode = os.stat(path).st_mode & 0o7777
        except FileNotFoundError:
            mode = None
        os.makedirs(folder, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise OutputError(f"cannot write {path}: {os_error_message(e)}") from None


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 ``text`` atomically."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    """Write ``obj`` as JSON (sorted keys) atomically; ``indent=None`` for one compact line."""
    text = json.dumps(obj, sort_keys=True, indent=indent)
    write_text(path, text + ("\n" if indent is not None else ""))


def write_jsonl(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]]) -> None:
    """Write JSON Lines (one sorted-keys object a line) atomically."""
    write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


def write_figure(path: str | os.PathLike, fig, dpi: int | None = None) -> None:
    """Save a matplotlib figure as PNG atomically, then close it (imports matplotlib only here)."""
    import io

    import matplotlib.pyplot as plt
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    write_bytes(path, buf.getvalue())


__all__ = ["write_bytes", "write_text", "write_json", "write_jsonl", "write_figure", "os_error_message"]
