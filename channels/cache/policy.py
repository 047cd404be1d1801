"""Which entries make room for a newcomer: least recently used first, never one read as often.

Plain LRU fails a training job whose dataset is larger than the cache: each
epoch reads every object once, in (shuffled) order, so by the time an
object comes round again LRU has evicted it to admit the objects read since,
and every read misses while every miss still costs a write (mosaic-streaming
#339 and #507, litdata report such collapses at the limit). Here each object
has a read count (its *frequency*: reads of it as an entry, or while not
kept, halved now and then so that old counts fade). A newcomer may evict an
entry only if it has been read at least :data:`GUARD` + 1 times more than
that entry; candidates are taken least recently used first. In an epoch
loop every object is read once per epoch, so no newcomer beats a kept entry:
the cache keeps a stable resident set (the first objects that fitted) and
serves it every epoch, and the rest of the dataset is read from the store
without being written, as if there were no cache. An object read more often
than the entries (another channel reads it too, a validation set) replaces
the coldest of them, and a dataset no longer read gives way as its counts
fade (:data:`AGING_MIN`).

A scan larger than the cache, with ``CacheConfig(fill="paid")``
(:class:`Allowance`): keeping the first objects that fit costs the epoch
that writes them (each byte written is a copy into the page cache, CPU that
the reads may need too) and no epoch gets it back until a later one reads
them. So while the latest scan announced to the cache cannot fit, it writes
at first only 1/:data:`SEED_PARTS` of its limit, and
after that only what each scan's hits pay for: :data:`EARN_RATIO` byte
written per byte of the scan it already keeps (credited when the scan is
announced, so that the order of its objects does not matter; a kept object
pays once per read from the cache, so a scan announced again before it has
read them, as a restarted stream is, earns nothing more). Every epoch
then spends on writes no more than its own hits save, and the resident set
doubles from epoch to epoch (1/16, 2/16, 4/16, 8/16 of the limit, full in
the fifth). A scan that fits is written whole at once: its next epoch reads
everything from the cache, which pays for the first many times over. With
``fill="eager"`` (the default) every scan is written as far as it fits.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

#: A newcomer must have been read more than GUARD times more often than an
#: entry to evict it. 1 absorbs the order within an epoch: a shuffled epoch
#: may read a newcomer (count k) before an entry (still k - 1 from the
#: epochs before).
GUARD = 1
#: Counts are halved after this many reads, or 8 per entry kept if more:
#: a dataset no longer read fades after a few passes over the current one.
AGING_MIN = 1024
#: While a scan cannot fit, the cache writes at first 1/SEED_PARTS of its limit (at least one object).
SEED_PARTS = 16
#: ... and then, per scan, this many bytes per byte of the scan it keeps already. On the 2-core machine of
#: benchmarks/cache_bench.py (s3-like, moto and the proxy sharing the CPU) a
#: byte served saves 1.4 to 4 times what a byte written costs (about 0.19 s
#: saved per 256 MiB served; 0.05 to 0.13 s spent per 256 MiB written): 1
#: keeps every epoch ahead even at the worst of that.
EARN_RATIO = 1


def choose_victims(lru: Iterable[tuple[str, int, int]], need: int, frequency: int,
                   skip: frozenset[str] | set[str] = frozenset()) -> list[tuple[str, int]] | None:
    """Entries to evict so that ``need`` more bytes fit, or None when they cannot be found.

    Args:
        lru: ``(key, size, frequency)`` of the entries, least recently used first.
        need: bytes to free (> 0).
        frequency: the newcomer's read count, this read included.
        skip: keys that must stay (being admitted now).

    Example:
        >>> choose_victims([("a", 5, 1), ("b", 5, 3), ("c", 5, 0)], 8, 3)
        [('a', 5), ('c', 5)]
        >>> choose_victims([("a", 5, 2)], 5, 3) is None
        True
    """
    chosen: list[tuple[str, int]] = []
    freed = 0
    for key, size, freq in lru:
        if key in skip or freq + GUARD >= frequency:
            continue
        chosen.append((key, size))
        freed += size
        if freed >= need:
            return chosen
    return None


def aging_period(entries: int) -> int:
    """Reads between two halvings of every count."""
    return max(AGING_MIN, 8 * entries)


class Allowance:
    """How many bytes a cache may start writing while the scan it serves cannot fit; thread-safe.

    Args:
        limit: the cache's size limit.

    Example:
        >>> a = Allowance(1600)
        >>> a.expect(1000, 0); a.affords()  # a scan that fits: no bound
        True
        >>> a.expect(3200, 0); a.spend(100); a.affords()  # too big: the seed, 1600 // 16, is spent
        False
        >>> a.expect(3200, 10); a.affords()  # the next holds 10 bytes kept: they pay for a write
        True
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        # Invariant: credit <= limit; writes start only while credit > 0 (the last may overdraw it).
        self._credit = max(1, limit // SEED_PARTS)
        self._bounded = False

    def expect(self, scan_bytes: int, kept_bytes: int) -> None:
        """A scan of ``scan_bytes`` of whole objects begins, ``kept_bytes`` of them kept already
        (and read from the cache since they last paid: :meth:`ObjectCache.expect`).

        Bounded from now on if it cannot fit; its hits-to-be pay for its
        writes up front, whatever their order in the scan (a scan's first
        objects may be its misses, and a stream announces them before any hit
        is served).
        """
        with self._lock:
            self._bounded = scan_bytes > self.limit
            if self._bounded:
                self._credit = min(self.limit, self._credit + EARN_RATIO * kept_bytes)

    def affords(self) -> bool:
        """Whether a newcomer may be written now."""
        with self._lock:
            return not self._bounded or self._credit > 0

    def spend(self, nbytes: int) -> None:
        """A newcomer of ``nbytes`` is being written."""
        with self._lock:
            if self._bounded:
                self._credit -= nbytes
