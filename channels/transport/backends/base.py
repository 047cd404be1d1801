"""The backend interface: fill a caller's buffer with a byte range.

A backend knows one kind of store. It does exactly one attempt per call and
reports transient failures as :class:`PartialRead` carrying how many bytes it
had already written; the engine owns retries, backoff and counting.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

from channels.store import Store
from channels.transport.config import TransportConfig
from channels.transport.errors import PartialRead
from channels.transport.stats import TransportStats

#: ``on_data(offset, data)``: a run of an object's bytes, ``offset`` being
#: the object offset of its first byte; ``data`` is valid during the call.
OnData = Callable[[int, memoryview], None]

#: ``progress(end)``: the buffer of a :meth:`Backend.read_into` now holds the
#: object's bytes up to offset ``end`` (called from the reading thread).
Progress = Callable[[int], None]


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
    #: Whether the store is reached over a network: the fetcher times such a
    #: backend's attempts (:mod:`channels.transport.link`); local files are not.
    remote: ClassVar[bool] = True

    def __init__(self, store: Store, config: TransportConfig, stats: TransportStats) -> None:
        self.store = store
        self.config = config
        self.stats = stats

    @property
    def verifies_etag(self) -> bool:
        """Whether a read with an ``etag`` gets that version's bytes or fails (never another's).

        Only such reads are kept in a local cache under that ETag (a store
        that does not check could hand over a mix of two versions).
        """
        return False

    def read_into(self, url: str, start: int, buf: memoryview, *, size: int | None = None,
                  etag: str | None = None, cancel: threading.Event | None = None,
                  progress: Progress | None = None) -> None:
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
            progress: told, in order, how far ``buf`` is filled (see
                :data:`Progress`): after each socket read where the backend
                streams, else once the bytes are in; it must not raise.

        Raises:
            PartialRead: a transient failure, ``nread`` bytes written.
            SourceNotFoundError, AccessDeniedError, ObjectChangedError,
            TransportError: permanent failures, not worth retrying.
        """
        self._check_range(url, start, len(buf), size)
        if len(buf) == 0:
            return
        if progress is None:
            self._read_into(url, start, buf, size, etag, cancel)
        else:
            self._read_into_progress(url, start, buf, size, etag, cancel, progress)

    def read_to(self, url: str, start: int, n: int, scratch: memoryview, on_data: OnData, *,
                size: int | None = None, etag: str | None = None,
                cancel: threading.Event | None = None) -> None:
        """Hand bytes ``[start, start + n)`` of ``url`` to ``on_data``, run by run.

        Each run lands in ``scratch`` (reused for the next run) and goes to
        ``on_data`` while still in the CPU's cache, so a consumer that writes
        the bytes elsewhere (File mode) needs no buffer the size of the range.
        Runs come in order, each byte once; what ``on_data`` raises ends the
        read and propagates (it is not retried).

        Raises:
            PartialRead: a transient failure after ``nread`` bytes went to
                ``on_data``.
            Others: as :meth:`read_into`.
        """
        self._check_range(url, start, n, size)
        if n == 0:
            return
        if len(scratch) == 0:
            raise ValueError("read_to needs a non-empty scratch buffer")
        self._read_to(url, start, n, scratch, size, etag, cancel, on_data)

    def _check_range(self, url: str, start: int, n: int, size: int | None) -> None:
        if start < 0:
            raise ValueError(f"start must be >= 0, got {start} for {url}")
        if size is not None and start + n > size:
            raise ValueError(f"range [{start}, {start + n}) is past the end of {url} ({size} bytes)")

    def _read_to(self, url: str, start: int, n: int, scratch: memoryview, size: int | None,
                 etag: str | None, cancel: threading.Event | None, on_data: OnData) -> None:
        """One attempt of :meth:`read_to`. Here: one :meth:`_read_into` per
        scratch-sized run; streaming backends override it with one request."""
        done = 0
        while done < n:
            run = scratch[:min(len(scratch), n - done)]
            try:
                self._read_into(url, start + done, run, size, etag, cancel)
            except PartialRead as exc:
                if exc.nread:
                    on_data(start + done, run[:exc.nread])
                raise PartialRead(done + exc.nread, exc.cause) from exc.cause
            on_data(start + done, run)
            done += len(run)

    def _read_into_progress(self, url: str, start: int, buf: memoryview, size: int | None,
                            etag: str | None, cancel: threading.Event | None, progress: Progress) -> None:
        """One attempt of :meth:`read_into` that reports ``progress``. Here: once
        the attempt ends; streaming backends override it to report each socket read."""
        try:
            self._read_into(url, start, buf, size, etag, cancel)
        except PartialRead as exc:
            if exc.nread:
                progress(start + exc.nread)
            raise
        progress(start + len(buf))

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
