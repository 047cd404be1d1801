"""The memory behind FastFile's readahead: one byte budget shared by every open
file of a view, the buffers it lends, and the counters files keep.

Split from :mod:`channels.modes.fastfile.readahead`, which holds the readahead policy.
"""

from __future__ import annotations

import mmap
import threading

from channels.memory.pool import keep_largest
from channels.units import KIB

#: Window buffers at least this large are anonymous memory maps of their own.
MMAP_MIN = 256 * KIB
#: The most bytes of freed window buffers a closed budget leaves for the next
#: one made in this process (see :meth:`ByteBudget.close`).
SPARE_MAX = 256 * 1024 * KIB

# Buffers left by closed budgets. Invariant: their total is <= SPARE_MAX.
_spare_lock = threading.Lock()
_spare: list = []


def allocate(n: int) -> bytearray | mmap.mmap:
    """A zeroed, writable buffer of ``n`` bytes.

    Large ones are private memory maps, so that freeing one gives its pages
    back to the system at once: with malloc, freed windows of many sizes
    would stay in the heap and peak RSS would drift above the budget.
    """
    return mmap.mmap(-1, n) if n >= MMAP_MIN else bytearray(n)


def _unexported(buf) -> bool:
    """Whether ``buf`` is a memory map no memoryview still points into (so it may be reused)."""
    if not isinstance(buf, mmap.mmap):
        return False
    try:
        buf.resize(len(buf))  # refused while a view exists
    except (BufferError, OSError, SystemError, ValueError):
        return False
    return True


class ReadStats:
    """Thread-safe counters of a file's (or a whole view's) work.

    Attributes (read through :meth:`snapshot`):
        requests: fetch calls made (one per part).
        bytes_fetched: bytes those fetches returned.
        bytes_read: bytes handed to readers.
        windows: windows fetched (direct reads included).
        prefetches: windows started in the background.
        seeks: reads that reset the window.
        budget_denied: windows that fell back to a direct read for want of budget.
        files_ahead: first windows fetched for files not open yet (a view's).
        files_ahead_used: of those, windows a file opened later read from.
        files_ahead_dropped: of those, windows dropped unused (their budget given back).
    """

    FIELDS = ("requests", "bytes_fetched", "bytes_read", "windows", "prefetches", "seeks",
              "budget_denied", "files_ahead", "files_ahead_used", "files_ahead_dropped")

    def __init__(self, parent: ReadStats | None = None) -> None:
        self._lock = threading.Lock()
        self._parent = parent
        self._counts = dict.fromkeys(self.FIELDS, 0)

    def add(self, **deltas: int) -> None:
        with self._lock:
            for name, delta in deltas.items():
                self._counts[name] += delta
        if self._parent is not None:
            self._parent.add(**deltas)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def __getattr__(self, name: str) -> int:
        if name in ReadStats.FIELDS:
            with self._lock:
                return self._counts[name]
        raise AttributeError(name)

    def __repr__(self) -> str:
        return f"ReadStats({self.snapshot()})"


class ByteBudget:
    """A byte semaphore: window buffers of all open files stay within ``limit``.

    It never blocks: :meth:`try_acquire` grants what is free (a shrunk window)
    or nothing, and the caller falls back to a smaller read.

    It also keeps freed large buffers for reuse (a fresh buffer costs a page
    fault per 4 KiB on first touch; measured here, in a VM, about 0.6 CPU-s
    per GiB of fresh memory): a buffer of the same size is handed out again;
    kept buffers are dropped whenever a grant needs their room. A closed
    budget leaves its kept buffers (up to SPARE_MAX) to the next budget made
    in the process, as malloc's heap does for Pipe's buffers, so that a view
    opened after another does not start on fresh memory; :func:`drop_spare`
    frees them.
    """

    def __init__(self, limit: int, keep: int | None = None) -> None:
        if limit < 1:
            raise ValueError(f"budget must be a positive number of bytes, got {limit}")
        self.limit = limit
        self.keep = limit if keep is None else keep
        self._lock = threading.Lock()
        # Invariant: in_use == sum of grants not yet released; pooled == bytes of
        # the buffers in _free; in_use + pooled <= limit; pooled <= keep.
        self._in_use = 0
        self._pooled = 0
        self._free: dict[int, list] = {}
        self.peak = 0
        self._closed = False
        with _spare_lock:  # take what fits; the rest stays for another budget
            for buf in sorted(_spare, key=len, reverse=True):
                if self._pooled + len(buf) <= min(self.keep, limit):
                    _spare.remove(buf)
                    self._free.setdefault(len(buf), []).append(buf)
                    self._pooled += len(buf)

    def try_acquire(self, want: int, minimum: int) -> int:
        """Grant ``min(want, free)`` bytes if that is at least ``minimum``, else 0."""
        with self._lock:
            grant = min(want, self.limit - self._in_use)
            if grant < max(minimum, 1):
                return 0
            self._in_use += grant
            self.peak = max(self.peak, self._in_use)
            self._evict(self._in_use + self._pooled - self.limit)
            return grant

    def buffer(self, n: int):
        """A writable buffer of ``n`` bytes for a grant of ``n`` (a kept one if any)."""
        with self._lock:
            kept = self._free.get(n)
            if kept:
                self._pooled -= n
                return kept.pop()
        return allocate(n)

    def release(self, n: int, buf=None) -> None:
        """Give back a grant of ``n`` bytes, and its buffer for reuse if worth keeping."""
        with self._lock:
            if n > self._in_use:
                raise RuntimeError(f"released {n} bytes but only {self._in_use} are in use")
            self._in_use -= n
            if (buf is not None and not self._closed and len(buf) == n >= MMAP_MIN
                    and self._pooled + n <= self.keep):
                self._free.setdefault(n, []).append(buf)
                self._pooled += n

    def close(self) -> None:
        """Leave the kept buffers to the next budget (up to SPARE_MAX); keep no more."""
        with self._lock:
            self._closed = True
            kept = [b for bufs in self._free.values() for b in bufs]
            self._free.clear()
            self._pooled = 0
        with _spare_lock:
            keep_largest(_spare, kept, SPARE_MAX)

    def _evict(self, need: int) -> None:
        for size in sorted(self._free, reverse=True):
            bufs = self._free[size]
            while bufs and need > 0:
                bufs.pop()
                self._pooled -= size
                need -= size

    @property
    def in_use(self) -> int:
        with self._lock:
            return self._in_use


def drop_spare() -> int:
    """Free the window buffers closed budgets left for the next one; the bytes freed."""
    with _spare_lock:
        n = sum(map(len, _spare))
        _spare.clear()
    return n
