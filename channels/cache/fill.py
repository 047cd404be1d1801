"""One object being written into the cache as its bytes arrive, in any order, from many threads."""

from __future__ import annotations

import bisect
import os
import threading
import time
from collections.abc import Callable

from channels.filewrite import pwrite_all


class Coverage:
    """Which bytes of ``[0, size)`` have been written: disjoint, sorted, merged runs.

    Example:
        >>> c = Coverage(10)
        >>> c.add(4, 10); c.add(0, 4); c.whole
        True
    """

    def __init__(self, size: int) -> None:
        self.size = size
        # Invariant: starts and ends sorted, runs disjoint and not touching.
        self._starts: list[int] = []
        self._ends: list[int] = []

    def add(self, start: int, end: int) -> None:
        if end <= start:
            return
        i = bisect.bisect_left(self._ends, start)  # first run that ends at or after start
        j = bisect.bisect_right(self._starts, end)  # runs before j start at or before end
        if i < j:
            start = min(start, self._starts[i])
            end = max(end, self._ends[j - 1])
        self._starts[i:j] = [start]
        self._ends[i:j] = [end]

    @property
    def whole(self) -> bool:
        return self._starts == [0] and self._ends == [self.size]

    @property
    def covered(self) -> int:
        return sum(e - s for s, e in zip(self._starts, self._ends))


class Fill:
    """A temporary file that becomes a cache entry once every byte of the object is in it.

    Thread-safe: parts of one object arrive on many worker threads. Writes
    happen under the fill's lock, so that once :meth:`write` reports the
    object whole, no other thread is writing to (or will write to) its file.

    Args:
        key: the entry's key.
        url: the object (for messages).
        size: its bytes.
        fd: the temporary file, open for writing (and flocked by its creator).
        path: its path.
    """

    def __init__(self, key: str, url: str, size: int, fd: int, path: str) -> None:
        self.key = key
        self.url = url
        self.size = size
        self.path = path
        self._fd = fd
        self._lock = threading.Lock()
        self._coverage = Coverage(size)
        self.touched = time.monotonic()
        # Invariant: once closed, nothing more is written to the file.
        self.closed = False

    def write(self, offset: int, data: memoryview) -> bool:
        """Write ``data`` at ``offset``; True once the object is whole (only that call says so).

        The file stays open (and flocked, so that no sweeper takes it) until
        :meth:`finish` or :meth:`drop`.

        Raises:
            OSError: the write failed (the caller drops the fill).
        """
        view = data if isinstance(data, memoryview) else memoryview(data)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        with self._lock:
            if self.closed:
                return False
            pwrite_all(self._fd, view, offset)
            self._coverage.add(offset, offset + len(view))
            self.touched = time.monotonic()
            if not self._coverage.whole:
                return False
            self.closed = True
            return True

    def finish(self, publish: Callable[[str], object]) -> None:
        """Hand the whole file to ``publish(path)`` (a rename), then close it.

        Renaming before closing keeps the flock held until the file has left
        tmp/, so a sweeper never mistakes it for a crashed writer's.
        """
        try:
            publish(self.path)
        finally:
            self._close()

    def drop(self) -> None:
        """Give up: remove the temporary file, then close it (its bytes never become an entry)."""
        with self._lock:
            self.closed = True
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        self._close()

    def forget(self) -> None:
        """Let go after a fork without touching the file (the parent still writes it)."""
        self.closed = True
        self._fd = -1

    def _close(self) -> None:
        with self._lock:
            fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    @property
    def covered(self) -> int:
        return self._coverage.covered
