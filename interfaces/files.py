"""The data directory and the SQLite files are the service's alone: 0700 and 0600.

The SQLite files hold the events (password hashes, encrypted secrets) and the
audit log; the data directory holds the keys. SQLite gives a database's -wal
and -shm files (and aero-auth its writers' lock file) the database's own
permissions, so creating the database 0600 before the library opens it, and
narrowing one left wider by an earlier version, covers its side files too.
Modes are only ever narrowed here, never widened.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

PRIVATE_DIRECTORY = 0o700
PRIVATE_FILE = 0o600
SQLITE_SIDE_FILES = ("-wal", "-shm")


def private_directory(path: Path) -> None:
    """Create ``path`` (and its missing parents) 0700; take group and other bits off it."""
    path.mkdir(mode=PRIVATE_DIRECTORY, parents=True, exist_ok=True)
    _narrow(path, PRIVATE_DIRECTORY)


def private_sqlite_files(database: Path, create: bool = True) -> None:
    """Create ``database`` 0600 unless it exists, and narrow it and its -wal, -shm to 0600.

    A missing directory is created 0700; an existing one is left as it is, since
    it may be the working directory (``sqlite:///aero.db``).
    """
    database.parent.mkdir(mode=PRIVATE_DIRECTORY, parents=True, exist_ok=True)
    try:
        if create:
            os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
    except FileExistsError:
        pass
    for path in (database, *(Path(f"{database}{side}") for side in SQLITE_SIDE_FILES)):
        if path.exists():
            _narrow(path, PRIVATE_FILE)


def warn_if_exposed(path: Path, describe: str) -> bool:
    """Say so on stderr when others than the owner may read or write a key file."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if not mode & 0o066:
        return False
    print(
        f"aero-auth: warning: {describe} at {path.resolve()} has mode {mode:04o}: "
        f"others than its owner may read or write it; chmod 600 it",
        file=sys.stderr,
    )
    return True


def _narrow(path: Path, allowed: int) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & ~allowed:
        os.chmod(path, mode & allowed)
