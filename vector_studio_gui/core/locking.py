"""A per-library writer lock, so two processes never write the same library at once.

The lock is an OS file lock (released by the kernel if the process dies, even by SIGKILL), not
a pid file that a crash would leave behind.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from vector_studio_gui.core.errors import (
    LibraryError,
    LibraryLockedError,
    LibraryReadOnlyError,
)

if os.name == "nt":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False

    def _unlock(fd: int) -> None:
        with contextlib.suppress(OSError):
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            return False

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


class WriterLock:
    def __init__(self, root: Path) -> None:
        self.path = root / "writer.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise LibraryReadOnlyError(
                    f"the library at {self.path.parent} cannot be changed: {exc.strerror} "
                    f"(a read-only folder or disk); it can still be searched read-only"
                ) from None
            raise LibraryError(
                f"cannot open the library at {self.path.parent}: {exc.strerror or exc}"
            ) from None
        if not _try_lock(fd):
            try:
                holder = os.read(fd, 64).decode("ascii", "replace").strip()
            finally:
                os.close(fd)
            who = f" (process {holder})" if holder else ""
            raise LibraryLockedError(
                f"the library at {self.path.parent} is being changed by another Vector Studio "
                f"process{who}; close it first, or search read-only"
            )
        with contextlib.suppress(OSError):  # the pid is only informative (a full disk is fine)
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            _unlock(self._fd)
            os.close(self._fd)
            self._fd = None
