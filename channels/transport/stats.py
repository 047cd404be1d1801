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
    """

    FIELDS = ("requests", "bytes", "retries", "errors", "buffer_peak")
