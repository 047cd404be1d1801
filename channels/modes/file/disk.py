"""File mode's dealings with the destination filesystem, apart from writing.

Free space before the first byte, and removal of temporary files a killed
run left behind (space is reserved by :func:`channels.filewrite.preallocate`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from channels.errors import InsufficientSpaceError
from channels.listing import ObjectRef
from channels.modes.file.keys import TMP_MARK
from channels.units import GIB, human_bytes


def check_space(dest: Path, need: int, share_bytes: int, volume_size_gb: float | None,
                disk_free: Callable[[Path], int] | None = None) -> None:
    """Fail before any download when the data will not fit.

    Args:
        dest: the destination (may not exist yet: its nearest existing parent
            is measured).
        need: bytes this run will write.
        share_bytes: bytes of this host's whole share (what the volume holds).
        volume_size_gb: VolumeSizeInGB (GiB), or None.
        disk_free: bytes free at a path (default: ``shutil.disk_usage``).

    Raises:
        InsufficientSpaceError: naming how much is needed and how much is free.
    """
    if volume_size_gb is not None and share_bytes > volume_size_gb * GIB:
        raise InsufficientSpaceError(
            f"this host's share is {human_bytes(share_bytes)} ({share_bytes} bytes), more than "
            f"VolumeSizeInGB {volume_size_gb:g} ({human_bytes(volume_size_gb * GIB)}) holds; raise "
            "VolumeSizeInGB, use more hosts with a sharded distribution, or use FastFile/Pipe mode",
            needed=share_bytes, free=int(volume_size_gb * GIB), path=str(dest))
    probe = dest
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = (disk_free or (lambda p: shutil.disk_usage(p).free))(probe)
    if need > free:
        raise InsufficientSpaceError(
            f"{dest} needs {human_bytes(need)} ({need} bytes) for the objects to fetch, but {probe} has "
            f"{human_bytes(free)} ({free} bytes) free; free {human_bytes(need - free)} there or choose "
            "another destination", needed=need, free=free, path=str(dest))


def remove_stale_tmp(dest: Path, todo: list[ObjectRef]) -> None:
    """Remove temporary files left by a killed run (whose process is gone)."""
    for folder in {os.path.dirname(os.path.join(dest, r.key)) for r in todo}:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            name = entry.name
            mark = name.rfind(TMP_MARK)
            if not name.startswith(".") or mark < 0:
                continue
            pid = name[mark + len(TMP_MARK):].partition("-")[0]
            if pid.isdigit() and not _alive(int(pid)):
                try:
                    os.unlink(entry.path)
                except OSError:
                    pass


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # another download in this process: it cleans up after itself
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
