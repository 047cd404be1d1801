"""Reads through a local cache: hits from its files, misses from the store, teed into it as they arrive.

:class:`CachingFetcher` is the :class:`~channels.transport.fetch.Fetcher`
a :class:`~channels.transport.Transport` uses when its config has a
``cache``; streams (Pipe, File, the adapters) and single reads (FastFile)
call it exactly as they call the plain one, so every mode inherits the cache.

What is cached: whole objects, by URL and ETag, and only objects with both
an ETag and a size from their listing, read through a backend that checks
the ETag of every read (:attr:`Backend.verifies_etag`: the S3 fast path,
which sends ``If-Match``, unless ``verify_etag`` is off), so an entry never
holds a mix of two versions. Local files (``file://``, plain paths) are on
a local disk already; fsspec's stores do not check ETags. A whole object is
written while it is read: a stream reaches it (not a resumed read from the
middle), or FastFile reads it from offset 0 on; every range read from the
store is written into its temporary file, whatever its order, and once the
last byte is in, the file is renamed to its entry's name. A FastFile reader
that reads a file only in part (a header, a seek) leaves no entry. Any
range of a kept object is then served from its file: a stream's parts,
FastFile's windows, and resumed reads alike, with no request to the store.

How a hit is validated: not at all beyond its key. The entry is the bytes
of the version the reader's listing names (the ETag it carries; the store
checks it with ``If-Match`` when the entry is written), so a hit costs no
request. A later epoch learns a new ETag from a new listing:
:class:`~channels.modes.pipe.PipeReader` lists the source again at the start
of each later epoch when it has a cache (one LIST request per 1,000
objects: about 20 ms each on S3, against one GET per object saved), and an
object overwritten between epochs then misses and is fetched again. A
conditional GET per object (``If-None-Match``) would cost one round trip to
the store per object per epoch, which is what the cache is there to save.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence

from channels.cache import ObjectCache
from channels.listing import ObjectRef
from channels.store import Store
from channels.transport.backends.base import OnData, Progress
from channels.transport.config import TransportConfig
from channels.transport.errors import Truncated
from channels.transport.fetch import Fetcher
from channels.transport.stats import TransportStats


class CachingFetcher(Fetcher):
    """A fetcher that serves kept objects from a local cache and keeps what it reads whole.

    Args:
        store, config, stats: as :class:`~channels.transport.fetch.Fetcher`.
        cache: the open cache.
    """

    def __init__(self, store: Store, config: TransportConfig, stats: TransportStats, cache: ObjectCache) -> None:
        super().__init__(store, config, stats)
        self.cache = cache

    def cacheable(self, url: str, size: int | None, etag: str | None) -> bool:
        """Whether reads of this object go through the cache: an ETag, a size, a backend that checks ETags."""
        return bool(etag) and size is not None and size > 0 and self.backend_for(url).verifies_etag

    def access(self, ref: ObjectRef) -> None:
        """A whole-object read of ``ref`` begins (see :meth:`ObjectCache.access`)."""
        if ref.inline is None and self.cacheable(ref.url, ref.size, ref.etag):
            self.cache.access(ref.url, ref.size, ref.etag)

    def accessing(self, targets: Iterable) -> Iterator:
        """``targets`` as they are, each whole object announced before any of its parts is read.

        With ``CacheConfig(fill="paid")``, a list of targets (a stream's
        epoch) is first announced as a whole (:meth:`ObjectCache.expect`: its
        cacheable objects read from their start), so that a scan the cache
        cannot hold writes only what its hits pay for; a lazy iterable is not.
        """
        if self.cache.paid and isinstance(targets, Sequence):
            self.cache.expect((t.url, t.size, t.etag) for t in map(_whole, targets)
                              if t is not None and t.inline is None and self.cacheable(t.url, t.size, t.etag))
        for target in targets:
            ref = _whole(target)
            if ref is not None:
                self.access(ref)
            yield target

    def read(self, url: str, start: int, view: memoryview, size: int | None, etag: str | None,
             cancel: threading.Event | None, progress: Progress | None = None) -> None:
        if not self.cacheable(url, size, etag):
            super().read(url, start, view, size, etag, cancel, progress)
            return
        if self.cache.read(url, etag, size, start, view):
            if progress is not None:
                progress(start + len(view))
            return
        try:
            super().read(url, start, view, size, etag, cancel, progress)
        except Truncated as cut:  # the rest comes from another read, which writes it too
            self.cache.write(url, etag, start, view[:min(cut.nread, len(view))])
            raise
        self.cache.write(url, etag, start, view)

    def read_to(self, url: str, start: int, n: int, scratch: memoryview, on_data: OnData,
                size: int | None, etag: str | None, cancel: threading.Event | None) -> None:
        if not self.cacheable(url, size, etag):
            super().read_to(url, start, n, scratch, on_data, size, etag, cancel)
            return
        done = self.cache.read_to(url, etag, size, start, n, scratch, on_data)
        if done == n:
            return
        cache = self.cache

        def tee(offset: int, data: memoryview) -> None:
            cache.write(url, etag, offset, data)
            on_data(offset, data)

        done = max(done, 0)
        super().read_to(url, start + done, n - done, scratch, tee, size, etag, cancel)


def _whole(target) -> ObjectRef | None:
    """The object a stream's target reads from its start, or None (a resumed read)."""
    if isinstance(target, ObjectRef):
        return target
    if isinstance(target, tuple) and len(target) == 2 and target[1] == 0:
        return target[0]
    return None
