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
"""

from __future__ import annotations

from collections.abc import Iterable

#: A newcomer must have been read more than GUARD times more often than an
#: entry to evict it. 1 absorbs the order within an epoch: a shuffled epoch
#: may read a newcomer (count k) before an entry (still k - 1 from the
#: epochs before).
GUARD = 1
#: Counts are halved after this many reads, or 8 per entry kept if more:
#: a dataset no longer read fades after a few passes over the current one.
AGING_MIN = 1024


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
