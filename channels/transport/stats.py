"""Counters of the transport's own work, read by tests and reports."""

from __future__ import annotations

import threading


class TransportStats:
    """Thread-safe counters.

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

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(self.FIELDS, 0)

    def add(self, **deltas: int) -> None:
        """Add to counters, e.g. ``add(requests=1, bytes=n)``."""
        with self._lock:
            for name, delta in deltas.items():
                self._counts[name] += delta

    def peak(self, name: str, value: int) -> None:
        """Raise a high-water mark to ``value`` if it is higher."""
        with self._lock:
            if value > self._counts[name]:
                self._counts[name] = value

    def snapshot(self) -> dict[str, int]:
        """A consistent copy of every counter."""
        with self._lock:
            return dict(self._counts)

    def reset(self) -> None:
        with self._lock:
            self._counts = dict.fromkeys(self.FIELDS, 0)

    def __getattr__(self, name: str) -> int:
        if name in TransportStats.FIELDS:
            with self._lock:
                return self._counts[name]
        raise AttributeError(name)

    def __repr__(self) -> str:
        return f"TransportStats({self.snapshot()})"
