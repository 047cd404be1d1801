"""The transport: the one engine that moves bytes for every input mode.

``Transport.stream`` delivers many objects as ordered chunks (Pipe, File);
``read_into``/``read_range`` serve single ranges (FastFile readahead);
``get`` reads a small whole object (manifests). All of them read through
one :class:`~channels.transport.fetch.Fetcher`, which holds the backends and
the retry logic: transient failures resume at the failed offset, with
full-jitter exponential backoff, up to ``config.retries`` further attempts.
This module is the public API only.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING

from channels.listing import ObjectRef
from channels.memory.pool import SpareShelf
from channels.store import Store
from channels.transport.backends import Backend, backend_class
from channels.transport.backends.base import Progress
from channels.transport.config import TransportConfig
from channels.transport.fetch import Fetcher
from channels.transport.link import LinkMonitor
from channels.transport.stats import TransportStats
from channels.transport.stream import ChunkStream, Sink, Target

if TYPE_CHECKING:
    from channels.cache import CacheStats


class Transport:
    """Moves bytes from a store into buffers, concurrently and in order.

    Thread-safe: ``read_into``/``read_range``/``get`` may be called from many
    threads; each ``stream`` has its own worker threads and buffer budget.
    Between streams the transport keeps up to ``budget_bytes`` of free
    buffers for the next stream (no fresh page faults per epoch);
    :meth:`close` frees them.

    With ``config.cache``, every read goes through a local cache of whole
    objects (:mod:`channels.transport.cached`): kept objects are served from
    disk, others read from the store and kept as they stream by, within the
    cache's size limit; :attr:`cache_stats` counts hits and misses.

    Args:
        store: endpoint rules and fsspec options (default: from the environment).
        config: tuning knobs (default: ``TransportConfig()``).

    Raises:
        CacheDirError: ``config.cache`` names a directory that cannot be written.

    Example:
        >>> with Transport() as t:                       # doctest: +SKIP
        ...     for chunk in t.stream(refs):
        ...         sink.write(chunk.data)
    """

    def __init__(self, store: Store | None = None, config: TransportConfig | None = None) -> None:
        self.store = store if store is not None else Store.from_env()
        self.config = config if config is not None else TransportConfig()
        backend_class(self.config.s3_backend)  # an unknown name fails here, not mid-stream
        self.stats = TransportStats()
        #: The local cache (None without ``config.cache``).
        self.cache = None
        if self.config.cache is None:
            self._fetcher = Fetcher(self.store, self.config, self.stats)
        else:  # imported here: sqlite3 and the index cost a transport without a cache its start-up
            from channels.cache import ObjectCache
            from channels.transport.cached import CachingFetcher

            self.cache = ObjectCache(self.config.cache)
            self._fetcher = CachingFetcher(self.store, self.config, self.stats, self.cache)
        self._lock = threading.Lock()
        self._streams: weakref.WeakSet[ChunkStream] = weakref.WeakSet()
        # Free buffers a finished stream left for the next one (first touch of
        # fresh memory costs page faults); at most budget_bytes, none once closed.
        self._spare = SpareShelf(self.config.budget_bytes)
        self._closed = False

    # ------------------------------------------------------------ public API

    def stream(self, refs: Iterable[Target], *, sink: Sink | None = None) -> ChunkStream:
        """Every byte of ``refs`` as :class:`Chunk` s, in order.

        An item may be ``(ref, start)``: that object's bytes from ``start`` on
        only (a resumed read), its chunks' offsets counted in the object.
        With a cache, a list (not a lazy iterable) of ``refs`` tells it the
        size of the whole scan first: one it cannot hold is written only as
        far as its hits pay for (:mod:`channels.cache.policy`).

        Objects come in the order given, each one's chunks in offset order;
        reads run ahead across objects within ``config.budget_bytes``. A
        failure is raised when the consumer reaches the chunk it concerns.

        ``sink(ref, offset, data)``, when given, takes the bytes instead of
        the consumer: it is called on the worker thread that fetches a part,
        with each run of bytes as it arrives (one socket read's worth on S3,
        while still in the CPU's cache), so that a consumer which does not
        need order (File mode, writing at offsets) works on every core,
        without a second pass over memory, and with a landing buffer of at
        most ``SINK_BUFFER`` (1 MiB) per part instead of the whole part: up
        to ``max_workers`` parts in flight whatever their size. Each byte
        goes to the sink once, in offset order within a part. The consumer
        still gets every part, in order, once the sink has had all of it, as
        a chunk with empty ``data`` and its length in ``nbytes``; what the
        sink raises is delivered in that part's place, like a failed read.
        The sink is not called once the stream is closed, nor for empty
        objects (nothing to fetch).
        """
        self._check_open()
        if self.cache is not None:  # the fetcher is a CachingFetcher
            refs = self._fetcher.accessing(refs)
        stream = ChunkStream(refs, self.config, self._fetcher, self.stats, spare=self._spare, sink=sink)
        with self._lock:
            self._streams.add(stream)
        return stream

    def read_into(self, ref: ObjectRef | str, start: int, buf, *,
                  cancel: threading.Event | None = None, progress: Progress | None = None) -> None:
        """Fill ``buf`` (any writable, contiguous buffer) with bytes from ``start``.

        ``cancel``, when given and set (from any thread), stops the read at its
        next slice of at most 1 MiB, or during a retry's backoff, by raising
        :class:`~channels.transport.errors.Cancelled`; ``buf`` is then partly
        filled.

        ``progress``, when given, is called with the object offset up to
        which ``buf`` is filled, rising, as the bytes land (for S3: after each
        socket read of at most 1 MiB), so a reader may use the front of the
        buffer while the rest is in flight. It runs on the reading thread and
        must not raise.

        Raises:
            Cancelled: ``cancel`` was set.
            ValueError: the range is past the object's listed end.
            SourceNotFoundError, AccessDeniedError, ObjectChangedError: as the
                store says; not retried.
            TransportError: transient failures outlasted the retries.
        """
        self._check_open()
        view = memoryview(buf)
        if view.readonly or not view.contiguous:
            raise ValueError("read_into needs a writable, contiguous buffer")
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        url, size, etag = _target(ref)
        if start == 0 and self.cache is not None and isinstance(ref, ObjectRef):
            self._fetcher.access(ref)  # a reader from the start: keep the object if it reads on
        self._fetcher.read(url, start, view, size, etag, cancel, progress)

    def read_range(self, ref: ObjectRef | str, start: int, end: int) -> memoryview:
        """Bytes ``[start, end)`` of an object, in a new buffer the caller owns."""
        if not 0 <= start <= end:
            raise ValueError(f"bad range [{start}, {end}) for {_target(ref)[0]}")
        buf = bytearray(end - start)
        self.read_into(ref, start, buf)
        return memoryview(buf)

    def get(self, url: str) -> bytes:
        """A whole object of unknown size (a manifest), retried from scratch."""
        self._check_open()
        return self._fetcher.get(url)

    @property
    def cache_stats(self) -> CacheStats | None:
        """The cache's counters (hits, misses, bytes served...); None without a cache."""
        return None if self.cache is None else self.cache.stats

    def backend_for(self, url: str) -> Backend:
        """The backend serving ``url``: S3 fast path, local files, or fsspec."""
        return self._fetcher.backend_for(url)

    @property
    def link(self) -> LinkMonitor:
        """The store's link as measured from every read so far (time to first byte,
        per-connection rate): what streams size their bytes in flight by."""
        return self._fetcher.link

    def close(self) -> None:
        """Close open streams, free spare buffers, release connections; idempotent."""
        with self._lock:
            self._closed = True
            streams, self._streams = list(self._streams), weakref.WeakSet()
        self._spare.close()
        for stream in streams:
            stream.close()
        self._fetcher.close()
        if self.cache is not None:
            self.cache.close()

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("this Transport is closed")


def _target(ref: ObjectRef | str) -> tuple[str, int | None, str | None]:
    if isinstance(ref, str):
        return ref, None, None
    return ref.url, ref.size, ref.etag

