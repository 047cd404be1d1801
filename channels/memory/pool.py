"""The one pool of budgeted buffers, and the shelf a closed pool leaves its buffers on.

Fresh memory costs page faults (CPU) on every first touch, about 0.6 CPU-s
per GiB measured here in a VM; so freed buffers are kept and handed out
again rather than allocated anew. Every budgeted buffer of the process comes
from a :class:`BufferPool`:

- a transport stream's part buffers: one pool per stream, in size classes
  (:func:`size_class`) so that a buffer freed by one part fits the next one
  of similar size; every freed buffer is kept; a finished stream leaves its
  buffers on its Transport's shelf for the next stream;
- FastFile's window buffers: one pool per view, shared by all its files
  (:class:`~channels.memory.budget.ByteBudget`); large buffers are memory
  maps, and a closed view leaves them on the process's shelf.

Like mountpoint-s3's memory limiter, taking never blocks: :meth:`BufferPool.try_take`
grants what is free or nothing, and the caller has a way on without it (a
stream delivers what it has, a file reads straight into the caller's buffer).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

#: The smallest size class.
MIN_CLASS = 4096


def size_class(n: int, largest: int) -> int:
    """The buffer size that serves a request of ``n`` bytes: the next power of two
    from :data:`MIN_CLASS`, capped at ``largest`` (the largest request there is).

    Example:
        >>> size_class(5000, 1 << 20), size_class(700_000, 800_000)
        (8192, 800000)
    """
    if n > largest:
        raise ValueError(f"buffer of {n} bytes exceeds the largest part {largest}")
    cap = MIN_CLASS
    while cap < n:
        cap <<= 1
    return min(cap, largest)


class SpareShelf:
    """Free buffers that a closed pool left for the next one made; thread-safe.

    Args:
        limit: the most bytes of buffers kept on the shelf.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        # Invariant: the bytes of the buffers in _buffers <= limit; none once closed.
        self._buffers: list = []
        self._closed = False

    def give(self, buffers: Iterable) -> None:
        """Keep ``buffers``, largest first, while their total stays within the limit; drop the rest."""
        with self._lock:
            if self._closed:
                return
            room = self.limit - sum(map(len, self._buffers))
            for buf in sorted(buffers, key=len, reverse=True):
                if len(buf) <= room:
                    self._buffers.append(buf)
                    room -= len(buf)

    def take(self, room: int) -> list:
        """Buffers, largest first, while their total fits ``room``; the rest stay for another taker."""
        with self._lock:
            taken, left = [], []
            for buf in sorted(self._buffers, key=len, reverse=True):
                if len(buf) <= room:
                    taken.append(buf)
                    room -= len(buf)
                else:
                    left.append(buf)
            self._buffers = left
        return taken

    def drop(self) -> int:
        """Free every buffer on the shelf; the bytes freed."""
        with self._lock:
            n = sum(map(len, self._buffers))
            self._buffers = []
        return n

    def close(self) -> None:
        """Free the buffers and keep none given from now on; idempotent."""
        with self._lock:
            self._closed = True
            self._buffers = []

    def buffers(self) -> list:
        """The buffers on the shelf now (a copy of the list)."""
        with self._lock:
            return list(self._buffers)


class BufferPool:
    """Buffers under one byte limit, lent out or kept for reuse; thread-safe, never blocks.

    Args:
        limit: the most bytes of buffers alive at once, lent plus kept.
        allocate: makes a fresh, zeroed, writable buffer of ``n`` bytes.
        keep_min: a freed buffer smaller than this is not kept (cheap to make anew).
        spare: the shelf a new pool takes its first kept buffers from (what
            fits its limit) and :meth:`close` leaves them on.
    """

    def __init__(self, limit: int, *, allocate: Callable[[int], object] = bytearray, keep_min: int = 0,
                 spare: SpareShelf | None = None) -> None:
        if limit < 1:
            raise ValueError(f"a buffer pool's limit must be a positive number of bytes, got {limit}")
        self.limit = limit
        self._allocate = allocate
        self._keep_min = keep_min
        self._spare = spare
        self._lock = threading.Lock()
        # Invariant: in_use == bytes of the buffers lent and not yet released;
        # kept == bytes of the buffers in _free (by size); in_use + kept <= limit;
        # nothing is kept once closed.
        self._in_use = 0
        self._kept = 0
        self._free: dict[int, list] = {}
        self._closed = False
        for buf in spare.take(limit) if spare is not None else ():
            self._free.setdefault(len(buf), []).append(buf)
            self._kept += len(buf)
        #: The most bytes lent at once.
        self.peak = 0
        #: The most bytes alive at once, lent plus kept.
        self.peak_held = self._kept

    def try_take(self, want: int, minimum: int | None = None):
        """A buffer of ``min(want, limit - in_use)`` bytes if that is at least
        ``minimum`` (default ``want``), else None at once.

        A kept buffer of that size is handed out again; otherwise kept ones
        are dropped, largest first, as far as the new one needs their room,
        so with nothing lent any request of at most ``limit`` succeeds.
        """
        with self._lock:
            size = min(want, self.limit - self._in_use)
            if size < max(want if minimum is None else minimum, 1):
                return None
            self._in_use += size
            kept = self._free.get(size)
            buf = kept.pop() if kept else None
            if buf is not None:
                self._kept -= size
            else:
                self._evict(self._in_use + self._kept - self.limit)
            self.peak = max(self.peak, self._in_use)
            self.peak_held = max(self.peak_held, self._in_use + self._kept)
        return buf if buf is not None else self._allocate(size)

    def release(self, buf, *, reuse: bool = True) -> None:
        """Give back a buffer :meth:`try_take` lent; it is kept for reuse if ``reuse``
        and it is worth keeping (at least ``keep_min`` bytes, the pool open)."""
        n = len(buf)
        with self._lock:
            if n > self._in_use:
                raise RuntimeError(f"released {n} bytes but only {self._in_use} are in use")
            self._in_use -= n
            if reuse and not self._closed and n >= self._keep_min:
                self._free.setdefault(n, []).append(buf)
                self._kept += n

    def close(self) -> None:
        """Keep no more buffers; leave those kept on the spare shelf (if any).

        Buffers still lent may be released later; they are not kept.
        """
        with self._lock:
            self._closed = True
            kept = [b for bufs in self._free.values() for b in bufs]
            self._free.clear()
            self._kept = 0
        if self._spare is not None:
            self._spare.give(kept)

    @property
    def in_use(self) -> int:
        """Bytes lent now."""
        with self._lock:
            return self._in_use

    @property
    def kept(self) -> int:
        """Bytes of freed buffers kept for reuse now."""
        with self._lock:
            return self._kept

    def _evict(self, need: int) -> None:
        # Largest first: fewest frees for the room needed.
        for size in sorted(self._free, reverse=True):
            bufs = self._free[size]
            while bufs and need > 0:
                bufs.pop()
                self._kept -= size
                need -= size
            if need <= 0:
                return
