"""Inspect the ``repo.lock`` file of a Kubo repository without taking it over.

Kubo (v0.43.1, through go4.org/lock) holds an exclusive POSIX record lock
(``fcntl`` ``F_SETLK``) on ``repo.lock`` while a daemon or command uses the
repository. The lock goes away with its process, so a ``repo.lock`` file
left behind by a killed daemon is stale and harmless: Kubo takes it again.
This module only tests the lock. It never deletes the file.
"""

from __future__ import annotations

import errno
import os
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

LOCK_FILE_NAME = "repo.lock"


@dataclass(frozen=True)
class RepoLockState:
    """Whether a live process holds a repository's lock, and which one."""

    locked: bool
    holder_pid: int | None = None


def inspect_repo_lock(repo_path: Path) -> RepoLockState:
    """Return whether a live process holds the lock of the repo at ``repo_path``."""
    lock_path = repo_path / LOCK_FILE_NAME
    if sys.platform == "win32" or not lock_path.exists():
        # NOTE: on Windows Kubo locks with LockFileEx, which this does not test.
        return RepoLockState(locked=False)

    import fcntl

    # Opened read-write because a write lock needs a writable descriptor.
    descriptor = os.open(lock_path, os.O_RDWR)
    try:
        try:
            fcntl.lockf(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EAGAIN):
                raise
            return RepoLockState(locked=True, holder_pid=_lock_holder_pid(descriptor))
        fcntl.lockf(descriptor, fcntl.LOCK_UN)
        return RepoLockState(locked=False)
    finally:
        # Closing drops every POSIX lock this process has on the file, which
        # is only the test lock taken above.
        os.close(descriptor)


def _lock_holder_pid(descriptor: int) -> int | None:
    """Return the PID that holds the lock on ``descriptor`` (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None

    import fcntl

    # struct flock on Linux: short l_type, short l_whence, off_t l_start,
    # off_t l_len, pid_t l_pid, padded to the alignment of off_t.
    layout = "hhqqi"
    request = struct.pack(layout, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
    request += b"\0" * (struct.calcsize(layout + "0q") - len(request))
    try:
        reply = fcntl.fcntl(descriptor, fcntl.F_GETLK, request)
    except OSError:
        return None
    lock_type, _, _, _, pid = struct.unpack_from(layout, reply)
    if lock_type == fcntl.F_UNLCK or pid <= 0:
        return None
    return int(pid)
