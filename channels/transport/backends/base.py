"""The backend interface: fill a caller's buffer with a byte range.

A backend knows one kind of store. It does exactly one attempt per call and
reports transient failures as :class:`PartialRead` carrying how many bytes it
had already written; the engine owns retries, backoff and counting.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from typing import ClassVar

from channels.store import Store
from channels.transport.config import TransportConfig
from channels.transport.stats import TransportStats


class Backend(ABC):
    """One store kind. Subclasses write :meth:`_read_into` (and may override
    :meth:`_get`); the public methods validate first (template method).

    Implementations must be thread-safe: the engine calls them from many
    worker threads at once.

    Args:
        store: endpoint rules and fsspec options.
        config: the transport configuration (timeouts, pool sizes).
        stats: counters; a backend adds one ``requests`` per store request.
    """

    name: ClassVar[str] = ""

    def __init__(self, store: Store, config: TransportConfig, stats: TransportStats) -> None:
        self.store = store
        self.config = config
        self.stats = stats

    def read_into(self, url: str, start: int, buf: memoryview, *, size: int | None = None,
                  etag: str | None = None, cancel: threading.Event | None = None) -> None:
        """Fill ``buf`` exactly with bytes ``[start, start + len(buf))`` of ``url``.

        Args:
            url: the object.
            start: offset of the first byte.
            buf: a writable, contiguous, byte-format memoryview.
            size: the object's listed size, if known; a store reporting
                another size raises ObjectChangedError.
            etag: the listed ETag, if known and to be verified.
            cancel: when set, the backend may abandon the read early by raising
                :class:`~channels.transport.errors.Cancelled`.

        Raises:
            PartialRead: a transient failure, ``nread`` bytes written.
            SourceNotFoundError, AccessDeniedError, ObjectChangedError,
            TransportError: permanent failures, not worth retrying.
        """
        if start < 0:
            raise ValueError(f"start must be >= 0, got {start} for {url}")
        if size is not None and start + len(buf) > size:
            raise ValueError(f"range [{start}, {start + len(buf)}) is past the end of {url} "
                             f"({size} bytes)")
        if len(buf) == 0:
            return
        self._read_into(url, start, buf, size, etag, cancel)

    def get(self, url: str) -> bytes:
        """The whole object (for manifests and other small files).

        Raises:
            PartialRead: a transient failure (``nread`` is always 0: a whole
                read restarts from scratch).
        """
        return self._get(url)

    @abstractmethod
    def _read_into(self, url: str, start: int, buf: memoryview, size: int | None,
                   etag: str | None, cancel: threading.Event | None) -> None:
        """One attempt at filling ``buf``; see :meth:`read_into`."""

    @abstractmethod
    def _get(self, url: str) -> bytes:
        """One attempt at reading a whole object."""

    def close(self) -> None:
        """Release connections and other resources."""
