"""Counters of a local cache's own work, read by tests, readers' stats and reports."""

from __future__ import annotations

from channels.memory.stats import Counters


class CacheStats(Counters):
    """Thread-safe counters of one :class:`~channels.cache.ObjectCache` (this process's work).

    Attributes (read through :meth:`snapshot`):
        hits: reads (a stream's parts, FastFile's windows) served from the cache.
        misses: reads of cacheable objects that went to the store.
        hit_bytes: bytes served from the cache.
        miss_bytes: bytes of cacheable objects read from the store.
        admitted: objects written whole into the cache.
        admitted_bytes: their bytes.
        rejected: whole-object reads not written to the cache: no room
            without evicting entries read as often (the scan guard), larger
            than the limit, or this process's writes in progress at the limit.
        deferred: whole-object reads not written because the scan they are
            part of cannot fit (``CacheConfig(fill="paid")``) and its hits do not pay for more writes
            (:class:`~channels.cache.policy.Allowance`); a later epoch, with
            more hits, writes more.
        evicted: entries this process removed to make room (least recently
            used first, among those read less often than the newcomer).
        evicted_bytes: their bytes.
        abandoned: objects whose write was dropped before it was whole (read
            only in part, stopped early, idle, or a write error).
        write_errors: writes into the cache that failed (disk full...): the
            read itself goes on from the store.
    """

    FIELDS = ("hits", "misses", "hit_bytes", "miss_bytes", "admitted", "admitted_bytes", "rejected", "deferred",
              "evicted", "evicted_bytes", "abandoned", "write_errors")
