"""Lock files beside a SQLite database, for flock: the writer lock and the projector lease."""

from __future__ import annotations

import os


def open_lock_file(path: str, like: str) -> int:
    """A descriptor to flock ``path`` with, created with the permissions of ``like``.

    ``like`` is the database the lock guards: SQLite gives its own side files
    (-wal, -shm) the database's permissions too. Read-only, which is all a flock
    needs, so a lock file another user created (root at the command line, say)
    still serves the service.
    """
    try:
        mode = os.stat(like).st_mode & 0o666
    except FileNotFoundError:
        mode = 0o600
    return os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, mode)
