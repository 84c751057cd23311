"""The embedded database is private: a trading journal is nobody else's to read.

SQLite creates its file with the process umask (typically 0644) and gives its ``-wal`` and
``-shm`` companions the main file's mode, so creating the file first, 0600, makes all three
private; the directories the library creates for it are 0700.
"""

from __future__ import annotations

import os
from pathlib import Path

FILE_MODE = 0o600
DIRECTORY_MODE = 0o700


def create_private_file(path: Path) -> None:
    """Create ``path`` (an empty file, which SQLite opens as an empty database) with mode 0600,
    and each missing directory above it with mode 0700. Directories and a file that already
    exist are left as they are: their modes are their owner's choice."""
    missing = [parent for parent in path.parents if not parent.exists()]
    for directory in reversed(missing):
        directory.mkdir(mode=DIRECTORY_MODE, exist_ok=True)
        os.chmod(directory, DIRECTORY_MODE)  # mkdir's mode is filtered by the umask
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return
    os.fchmod(descriptor, FILE_MODE)
    os.close(descriptor)
