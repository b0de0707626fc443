"""An exclusive lock on a run directory for the life of the process that writes it.

``train``, ``search`` and ``evolve`` hold ``RUNDIR/.lock`` with ``fcntl.flock`` while they run and
write their PID into it.  A second process is refused with a :class:`CheckpointError` naming the
holder's PID.  The kernel drops a flock when its process dies, so the lock of a killed run (a
"stale" lock file naming a dead PID) is simply taken over.  Where flock is not supported (some
network file systems) the PID in the file decides: a live PID refuses, a dead one is taken over.

The lock file is never deleted (deleting it would let a third process lock a fresh file while a
second one holds the old inode); releasing it empties it.  Pure Python, no torch.
"""
from __future__ import annotations

import errno
import os

from spacelang.errors import CheckpointError, OutputError
from spacelang.util.atomic import os_error_message

from .outputs import ensure_dir

LOCK_NAME = ".lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _read_pid(fd: int) -> int | None:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 64).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


class RunLock:
    """``with RunLock(rundir):`` — hold ``rundir`` exclusively (creating the folder if needed)."""

    def __init__(self, rundir: str):
        self.rundir = rundir
        self.path = os.path.join(rundir, LOCK_NAME)
        self.fd: int | None = None

    def acquire(self) -> "RunLock":
        import fcntl
        ensure_dir(self.rundir)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise OutputError(f"cannot use {self.rundir} as a run directory: {os_error_message(e)}") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self._refuse(_read_pid(fd))
            except OSError as e:
                if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                    raise OutputError(f"cannot lock {self.path}: {os_error_message(e)}") from None
                holder = _read_pid(fd)  # no flock here: trust the PID, take over a dead one
                if holder is not None and holder != os.getpid() and _alive(holder):
                    self._refuse(holder)
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, f"{os.getpid()}\n".encode("ascii"))
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        return self

    def _refuse(self, pid: int | None) -> None:
        who = f"process {pid}" if pid is not None else "another process"
        raise CheckpointError(f"{self.rundir} is in use by {who} (lock file {self.path}); "
                              f"wait for it to finish or choose another output directory")

    def release(self) -> None:
        if self.fd is None:
            return
        import fcntl
        try:
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        except OSError:
            pass
        finally:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


__all__ = ["RunLock", "LOCK_NAME"]
