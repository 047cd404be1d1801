"""Reusable part buffers under a byte budget.

Fresh memory costs page faults (CPU) on every first touch; a stream therefore
keeps its buffers and hands them out again. Buffers come in size classes
(powers of two from 4 KiB, capped at the largest part) so that a buffer freed
by one part fits the next one of similar size.
"""

from __future__ import annotations

MIN_CLASS = 4096


class BufferPool:
    """Buffers for one stream; not thread-safe (the stream's lock guards it).

    Args:
        budget: the most bytes of buffers alive at once.
        max_size: the largest request; must be <= budget.
    """

    def __init__(self, budget: int, max_size: int) -> None:
        if max_size > budget:
            raise ValueError(f"max_size {max_size} exceeds budget {budget}")
        self.budget = budget
        self.max_size = max_size
        # Invariant: allocated == total capacity of every buffer alive, free
        # or lent, and allocated <= budget.
        self.allocated = 0
        self.peak = 0
        self._free: dict[int, list[bytearray]] = {}

    def capacity(self, n: int) -> int:
        """The size class that serves a request of ``n`` bytes."""
        if n > self.max_size:
            raise ValueError(f"buffer of {n} bytes exceeds the largest part {self.max_size}")
        cap = MIN_CLASS
        while cap < n:
            cap <<= 1
        return min(cap, self.max_size)

    def try_acquire(self, n: int) -> bytearray | None:
        """A buffer of at least ``n`` bytes, or None if the budget is spent.

        Free buffers of other sizes are dropped to make room when needed, so
        with nothing lent out every request of at most ``max_size`` succeeds.
        """
        cap = self.capacity(n)
        free = self._free.get(cap)
        if free:
            return free.pop()
        if self.allocated + cap > self.budget:
            self._evict(self.allocated + cap - self.budget)
            if self.allocated + cap > self.budget:
                return None
        self.allocated += cap
        self.peak = max(self.peak, self.allocated)
        return bytearray(cap)

    def release(self, buf: bytearray) -> None:
        """Take a buffer back for reuse."""
        self._free.setdefault(len(buf), []).append(buf)

    def adopt(self, buffers: list[bytearray]) -> None:
        """Take over free buffers (from a finished stream), within the budget."""
        for buf in buffers:
            cap = len(buf)
            if cap > self.max_size or self.allocated + cap > self.budget:
                continue
            self.allocated += cap
            self._free.setdefault(cap, []).append(buf)
        self.peak = max(self.peak, self.allocated)

    def drain(self) -> list[bytearray]:
        """Give up every free buffer (for the next stream to adopt)."""
        out = [b for bufs in self._free.values() for b in bufs]
        self.clear()
        return out

    def free_bytes(self) -> int:
        return sum(len(b) for bufs in self._free.values() for b in bufs)

    def _evict(self, need: int) -> None:
        # Largest classes first: fewest frees for the room needed.
        for cap in sorted(self._free, reverse=True):
            bufs = self._free[cap]
            while bufs and need > 0:
                bufs.pop()
                self.allocated -= cap
                need -= cap
            if need <= 0:
                return

    def clear(self) -> None:
        """Drop the free buffers (lent ones stay counted until released)."""
        for cap, bufs in self._free.items():
            self.allocated -= cap * len(bufs)
        self._free.clear()


def keep_largest(kept: list, offered, limit: int) -> None:
    """Add buffers of ``offered`` to ``kept``, largest first, while their total stays within ``limit``."""
    room = limit - sum(map(len, kept))
    for buf in sorted(offered, key=len, reverse=True):
        if len(buf) <= room:
            kept.append(buf)
            room -= len(buf)
