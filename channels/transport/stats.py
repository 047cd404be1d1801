"""Counters of the transport's own work, read by tests and reports."""

from __future__ import annotations

from channels.memory.stats import Counters


class TransportStats(Counters):
    """Thread-safe counters of one :class:`~channels.transport.Transport`.

    Attributes (read through :meth:`snapshot`):
        requests: backend read operations issued (HTTP GETs and HEADs for S3,
            reads for the local and fsspec backends), retries included.
        bytes: payload bytes written into buffers (resumed reads count each
            byte once).
        retries: attempts made after a transient failure.
        errors: reads that failed for good (raised to the caller).
        buffer_peak: the most part-buffer bytes one stream held at once
            (allocated, free or lent); never above ``budget_bytes``.
        inflight_peak: the most GETs one stream had in flight at once.
        inflight_bytes_peak: the most bytes one stream had asked for and not
            yet received, at once (its bytes in flight).
        splits: planned parts a stream cut into ranged pieces, one per cut,
            so that they land in time on a far store.
        tail_splits: at a stream's end on a far store, parts in flight
            whose unread rest was handed to a GET of its own, one per hand-over.
    """

    FIELDS = ("requests", "bytes", "retries", "errors", "buffer_peak", "inflight_peak", "inflight_bytes_peak",
              "splits", "tail_splits")
