"""Folders made the same way everywhere: missing parents too, never group- or world-writable."""

from __future__ import annotations

import os

#: Mode of every folder channels makes (less the umask's bits): never group- or
#: world-writable, even under umask 000, so that nobody else can plant files or
#: swap a FIFO in them.
DIR_MODE = 0o755


def make_dirs(path: str | os.PathLike, mode: int = DIR_MODE) -> None:
    """Create ``path`` and its missing parents, each with ``mode`` less group and world write.

    ``os.makedirs`` gives intermediate folders 0o777 less the umask. Safe when
    another process makes the same folders at the same time. Where a file
    stands in the way, the first folder that cannot be made below it raises
    (``NotADirectoryError`` naming that folder).
    """
    path = os.fspath(path)
    missing = []
    while not os.path.exists(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, mode & ~0o022)
        except FileExistsError:
            if not os.path.isdir(folder):
                raise
