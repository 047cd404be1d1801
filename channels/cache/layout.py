"""Where a cache keeps its files, how an entry comes to exist, and the sweep of what crashed writers left.

::

    DIR/index.sqlite             sizes, recency and read counts (channels.cache.index)
    DIR/objects/ab/abcdef...     whole objects, named by sha256 of (URL, ETag)
    DIR/tmp/<key>.<pid>.<rand>   objects being written; the writer holds an flock on each
    DIR/sweep.lock               one sweeper at a time

An entry only ever appears under its final name by ``rename`` of a whole
temporary file, so a reader never sees part of an object there, whatever
happens to the writer. A writer killed mid-object (even by SIGKILL) leaves a
temporary file whose flock the kernel released; the next process that opens
the cache removes it (:meth:`Layout.sweep_temps`). Entries are not fsynced
before the rename: a cache survives any process crash, but after a power
loss a file system may keep a renamed entry without its data, so a cache
directory should not outlive a machine crash (give it a local, scratch
disk); the sizes are checked on every hit, never the bytes.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import secrets
import time
from collections.abc import Iterator

from channels.errors import CacheDirError
from channels.folders import make_dirs

#: A file under objects/ with no index row is removed only when older than
#: this (seconds): a writer renames an entry before its index row is written.
ORPHAN_AGE = 300.0
#: Folder mode: the cache holds copies of the store's objects, for this user only.
CACHE_DIR_MODE = 0o700


def entry_key(url: str, etag: str) -> str:
    """The name of the entry for one version of one object (hex sha256 of URL and ETag)."""
    return hashlib.sha256(f"{url}\n{etag}".encode()).hexdigest()


class Layout:
    """The files of one cache directory.

    Args:
        directory: the cache directory (made, 0700, if missing).

    Raises:
        CacheDirError: the directory cannot be made or written (it names the path).
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.objects = os.path.join(directory, "objects")
        self.tmp = os.path.join(directory, "tmp")
        self.index_path = os.path.join(directory, "index.sqlite")
        try:
            for folder in (self.objects, self.tmp):
                make_dirs(folder, CACHE_DIR_MODE)
            probe = os.path.join(self.tmp, f".probe.{os.getpid()}.{secrets.token_hex(4)}")
            os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            os.unlink(probe)
        except OSError as exc:
            raise unwritable(directory, exc) from exc

    def entry_path(self, key: str) -> str:
        return os.path.join(self.objects, key[:2], key)

    def new_temp(self, key: str) -> tuple[int, str]:
        """A new temporary file for ``key``, open for writing and flocked: ``(fd, path)``."""
        path = os.path.join(self.tmp, f"{key}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            os.unlink(path)
            raise
        return fd, path

    def publish(self, temp: str, key: str) -> str:
        """Rename a whole temporary file to its entry's name (atomic); the entry's path."""
        final = self.entry_path(key)
        try:
            os.rename(temp, final)
        except FileNotFoundError:
            make_dirs(os.path.dirname(final), CACHE_DIR_MODE)
            os.rename(temp, final)
        return final

    def remove(self, path: str) -> None:
        """Unlink ``path`` if it is there (an entry being read stays readable through its open files)."""
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

    def sweep_temps(self) -> int:
        """Remove temporary files whose writer is gone (no flock held on them); how many."""
        removed = 0
        try:
            names = os.listdir(self.tmp)
        except FileNotFoundError:
            return 0
        for name in names:
            path = os.path.join(self.tmp, name)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
                continue  # its writer is alive
            else:
                self.remove(path)
                removed += 1
            finally:
                os.close(fd)
        return removed

    def entries(self) -> Iterator[tuple[str, str, int, float]]:
        """Every entry file: ``(key, path, size, mtime)``."""
        try:
            shards = os.listdir(self.objects)
        except FileNotFoundError:
            return
        for shard in shards:
            folder = os.path.join(self.objects, shard)
            try:
                with os.scandir(folder) as it:
                    for item in it:
                        try:
                            st = item.stat()
                        except FileNotFoundError:
                            continue
                        yield item.name, item.path, st.st_size, st.st_mtime
            except NotADirectoryError:
                continue

    def sweep_lock(self) -> int | None:
        """An fd holding the sweep lock, or None when another process sweeps now."""
        fd = os.open(os.path.join(self.directory, "sweep.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return None
        return fd

    @staticmethod
    def is_orphan_age(mtime: float) -> bool:
        return time.time() - mtime > ORPHAN_AGE


def unwritable(directory: str, exc: BaseException) -> CacheDirError:
    """The error for a cache directory that cannot be used, naming it and the fix."""
    return CacheDirError(
        f"cache directory {directory} cannot be written ({exc.__class__.__name__}: "
        f"{getattr(exc, 'strerror', None) or exc}): give --cache-dir (CacheConfig.directory) a writable "
        f"folder on a local disk, or fix its permissions", path=directory, cause=repr(exc))
