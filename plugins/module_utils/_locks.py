# Copyright (c) lxcfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# This module_utils file is private to the lxcfleet.lxc collection.
"""Locks on shared files.

``fcntl_lock`` takes a POSIX record lock (``fcntl(F_SETLK)``, what glibc's ``lckpwdf`` takes on
``/etc/.pwd.lock``) on a lock file, waiting up to a timeout. A lock file next to the file it guards
is needed because files are replaced by rename: a lock on the old inode would not guard the new one.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time


class LockTimeout(Exception):
    """The lock was not free within the timeout."""


@contextlib.contextmanager
def fcntl_lock(lock_path: str, timeout: float = 15.0, mode: int = 0o600):
    """Hold an exclusive fcntl lock on ``lock_path`` (created when missing) for the ``with`` block.

    Raises LockTimeout when another process holds it for longer than ``timeout`` seconds.
    """
    fd = os.open(lock_path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, mode)
    try:
        deadline = time.monotonic() + timeout
        delay = 0.01
        while True:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EACCES, errno.EAGAIN):
                    raise
                if time.monotonic() >= deadline:
                    raise LockTimeout("%s is locked by another process (waited %gs)" % (lock_path, timeout))
                time.sleep(delay)
                delay = min(delay * 2, 0.2)
        try:
            yield
        finally:
            fcntl.lockf(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
