"""The cache a transport reads through: whole objects by URL and ETag, within a size limit.

The transport calls three things (:mod:`channels.transport.cached`):

* :meth:`ObjectCache.access` when a whole-object read begins (a stream
  reaches an object, FastFile reads a file from offset 0): counts the read
  and, when the object is not kept and the policy admits it, opens a
  temporary file for it;
* :meth:`ObjectCache.read` for every range: served from the entry when the
  object is kept (no request to the store), else a miss;
* :meth:`ObjectCache.write` with every range read from the store: the bytes
  go into the object's temporary file, in whatever order the parts arrive;
  once every byte is there the file is renamed to its entry's name.

Nothing is read twice: the bytes written are those the reader asked for,
teed as they arrive. An object read only in part (a FastFile reader that
seeks, a stream stopped early) never becomes an entry: its temporary file is
dropped when idle for :data:`FILL_IDLE` seconds, when the cache closes, or
by the next process to open the directory if this one was killed.

A caller that knows what it is about to read whole (a stream's objects)
says so with :meth:`ObjectCache.expect`: while that scan cannot fit, the
cache writes only what its hits pay for (:class:`~channels.cache.policy.Allowance`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable

from channels.cache.config import CacheConfig
from channels.cache.fill import Fill
from channels.cache.index import Batch, Index
from channels.cache.layout import Layout, entry_key, unwritable
from channels.cache.policy import Allowance, choose_victims
from channels.cache.stats import CacheStats
from channels.filewrite import PREALLOCATE_MIN, preallocate

log = logging.getLogger(__name__)

#: Seconds between two batches of news to the index (reads, entries made).
FLUSH_SECONDS = 1.0
#: A batch goes out earlier with this many entries made, or an eighth of the limit in bytes.
FLUSH_ADMITS = 32
#: A temporary file that got no bytes for this long (seconds) is dropped: its reader stopped.
FILL_IDLE = 120.0


class ObjectCache:
    """A bounded local cache of whole objects, shared safely by threads and processes.

    Args:
        config: the directory and the size limit.
        stats: counters to add to (default: new ones, :attr:`stats`).

    Raises:
        CacheDirError: the directory cannot be made, written, or holds an
            index that cannot be opened; the message names it and the fix.
    """

    def __init__(self, config: CacheConfig, stats: CacheStats | None = None) -> None:
        self.config = config
        self.limit = config.size_bytes
        self.stats = stats if stats is not None else CacheStats()
        self.layout = Layout(config.directory)
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._index = self._open_index(sweep=True)
        # Invariant: fill_bytes == sum of the sizes of fills; fills hold the
        # objects being written by this process, each under its own temporary file.
        self._fills: dict[str, Fill] = {}
        self._fill_bytes = 0
        self._pending = Batch()
        # Victims promised to newcomers since the last batch: not offered twice.
        self._claimed: set[str] = set()
        #: Whether streams announce their scans (``fill="paid"``): with "eager" nothing reads them.
        self.paid = config.fill == "paid"
        self._allowance = Allowance(self.limit)
        # Kept objects an announced scan was credited for and that have not been read from the cache since.
        self._credited: set[str] = set()
        self._last_flush = time.monotonic()
        self._closed = False

    # ------------------------------------------------------------ what the transport calls

    def expect(self, objects: Iterable[tuple[str, int, str]]) -> None:
        """A scan of these ``(url, size, etag)`` begins, each object read whole (a stream's epoch).

        While the latest scan is larger than the limit (with
        ``CacheConfig(fill="paid")``), newcomers are written only
        as far as the scan's hits pay for them (the bytes of its objects
        already kept: :class:`~channels.cache.policy.Allowance`); the others
        are counted as ``deferred`` and read from the store alone. A kept
        object pays once per read from the cache: announced again before
        that (a stream restarted in new versions), it earns nothing more.
        With ``fill="eager"`` it does nothing.
        """
        if not self.paid:
            return
        objects = list(objects)
        total = sum(size for _, size, _ in objects)
        keys = {entry_key(url, etag) for url, _, etag in objects} if total > self.limit else set()
        with self._lock:
            self._check_fork()
            if self._closed:
                return
            earned = 0
            if keys:
                self._flush()  # the index then knows this process's entries too
                sizes = self._index.sizes()
                self._credited.intersection_update(sizes)  # evicted entries earn nothing
                fresh = [key for key in keys if key in sizes and key not in self._credited]
                self._credited.update(fresh)
                earned = sum(sizes[key] for key in fresh)
            self._allowance.expect(total, earned)

    def access(self, url: str, size: int, etag: str) -> None:
        """A whole-object read of this version begins: count it; start writing it if worth keeping."""
        key = entry_key(url, etag)
        with self._lock:
            self._check_fork()
            if self._closed:
                return
            if os.path.exists(self.layout.entry_path(key)):
                self._pending.touch(key)
            elif key not in self._fills:
                self._pending.miss(key)
                self._reap_idle()
                if not self._allowance.affords():  # a scan too big to keep, and no hits to pay for it yet
                    self.stats.add(deferred=1)
                elif self._admissible(key, size):
                    self._open_fill(key, url, size)
                else:
                    self.stats.add(rejected=1)
            self._maybe_flush()

    def read(self, url: str, etag: str, size: int, start: int, view: memoryview) -> bool:
        """Fill ``view`` with bytes from ``start`` of the kept object; False (a miss) if not kept."""
        key = entry_key(url, etag)
        fd = self._open_entry(key, size, len(view))
        if fd is None:
            return False
        try:
            done = _pread(fd, view, start)
        finally:
            os.close(fd)
        if done < len(view):  # cut short under our feet: the store fills the whole range again
            self.stats.add(misses=1, miss_bytes=len(view))
            return False
        self._credited.discard(key)
        self.stats.add(hits=1, hit_bytes=len(view))
        return True

    def read_to(self, url: str, etag: str, size: int, start: int, n: int, scratch: memoryview,
                on_data: Callable[[int, memoryview], None]) -> int:
        """Hand bytes ``[start, start + n)`` of the kept object to ``on_data`` through ``scratch``.

        Returns how many bytes went to ``on_data`` (``n`` on a hit; fewer if
        the entry was cut short under our feet), or -1 on a miss.
        """
        key = entry_key(url, etag)
        fd = self._open_entry(key, size, n)
        if fd is None:
            return -1
        done = 0
        try:
            while done < n:
                run = scratch[:min(len(scratch), n - done)]
                got = _pread(fd, run, start + done)
                if got:
                    on_data(start + done, run[:got])
                done += got
                if got < len(run):
                    break
        finally:
            os.close(fd)
        self._credited.discard(key)
        self.stats.add(hits=1, hit_bytes=done)
        return done

    def _open_entry(self, key: str, size: int, nbytes: int) -> int | None:
        """The kept object's file, open; None (a miss, counted) when it is not kept or damaged."""
        path = self.layout.entry_path(key)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            self.stats.add(misses=1, miss_bytes=nbytes)
            return None
        if os.fstat(fd).st_size != size:  # not the listed size: damaged, never served
            os.close(fd)
            self.layout.remove(path)
            self.stats.add(misses=1, miss_bytes=nbytes)
            return None
        return fd

    def write(self, url: str, etag: str, start: int, data: memoryview) -> None:
        """Bytes ``[start, start + len(data))`` of this version, read from the store: into its file."""
        if self._pid != os.getpid():  # a forked child: the fills it sees are its parent's
            return
        key = entry_key(url, etag)
        fill = self._fills.get(key)
        if fill is None:
            return
        try:
            whole = fill.write(start, data)
            if whole:
                fill.finish(lambda path: self.layout.publish(path, key))
        except OSError as exc:
            log.warning("cache: cannot write %s into %s: %s; reading on from the store", url,
                        self.layout.directory, exc)
            self.stats.add(write_errors=1)
            self._end_fill(fill, abandoned=True)
            return
        if whole:
            self._end_fill(fill, admit=True)

    def flush(self) -> None:
        """Send this process's news to the index now (tests and reports call it; batches go anyway)."""
        with self._lock:
            self._check_fork()
            if not self._closed:
                self._flush()

    def close(self) -> None:
        """Drop unfinished writes, send the last news, close the index; idempotent."""
        with self._lock:
            if self._closed:
                return
            if self._pid == os.getpid():
                for fill in list(self._fills.values()):
                    self._end_fill_locked(fill, abandoned=True)
                self._flush()
            self._closed = True
            self._index.close()

    # ------------------------------------------------------------ internals (lock held)

    def _admissible(self, key: str, size: int) -> bool:
        """Whether a newcomer is worth writing: it fits, or the policy lets it evict colder entries.

        An estimate from the last batch's view of the index; the next batch
        decides for good (and removes the entry again if it lost the race).
        """
        if size > self.limit or self._fill_bytes + size > self.limit:
            return False
        expected = self._index.used + self._pending.admit_bytes + self._fill_bytes + size
        if expected <= self.limit:
            return True
        frequency = self._index.frequency(key) + self._pending.misses.get(key, 0)
        touches = self._pending.touches
        lru = ((k, s, f + (touches[k][1] if k in touches else 0)) for k, s, f in self._index.lru)
        victims = choose_victims(lru, expected - self.limit, frequency, self._claimed)
        if victims is None:
            return False
        self._claimed.update(k for k, _ in victims)
        return True

    def _open_fill(self, key: str, url: str, size: int) -> None:
        try:
            fd, path = self.layout.new_temp(key)
        except OSError as exc:
            log.warning("cache: cannot create a file in %s: %s", self.layout.tmp, exc)
            self.stats.add(write_errors=1)
            return
        if size >= PREALLOCATE_MIN:
            try:
                preallocate(fd, size)  # cheaper writes (see channels.filewrite); ENOSPC: keep nothing
            except OSError as exc:
                log.warning("cache: no room for %s (%d bytes) in %s: %s", url, size, self.layout.tmp, exc)
                self.stats.add(write_errors=1)
                with contextlib.suppress(OSError):  # a read never fails for the cache's sake
                    os.unlink(path)
                os.close(fd)
                return
        self._fills[key] = Fill(key, url, size, fd, path)
        self._fill_bytes += size
        self._allowance.spend(size)

    def _end_fill(self, fill: Fill, *, admit: bool = False, abandoned: bool = False) -> None:
        with self._lock:
            self._end_fill_locked(fill, admit=admit, abandoned=abandoned)
            if admit:
                self._maybe_flush()

    def _end_fill_locked(self, fill: Fill, *, admit: bool = False, abandoned: bool = False) -> None:
        if self._fills.get(fill.key) is not fill:
            return
        del self._fills[fill.key]
        self._fill_bytes -= fill.size
        if admit:
            self._pending.admit(fill.key, fill.size)
        if abandoned:
            fill.drop()
            self.stats.add(abandoned=1)

    def _reap_idle(self) -> None:
        cutoff = time.monotonic() - FILL_IDLE
        for fill in [f for f in self._fills.values() if f.touched < cutoff]:
            self._end_fill_locked(fill, abandoned=True)

    def _maybe_flush(self) -> None:
        p = self._pending
        if p and (len(p.admits) >= FLUSH_ADMITS or p.admit_bytes * 8 >= self.limit or p.size >= 4096
                  or time.monotonic() - self._last_flush >= FLUSH_SECONDS):
            self._flush()

    def _flush(self) -> None:
        batch, self._pending = self._pending, Batch()
        self._claimed.clear()
        self._last_flush = time.monotonic()
        if not batch:
            return
        try:
            out = self._index.apply(batch)
        except sqlite3.Error as exc:
            log.warning("cache: index %s: %s; the entries of this batch are dropped", self.layout.index_path, exc)
            self.stats.add(write_errors=1)
            for key, _ in batch.admits:
                self.layout.remove(self.layout.entry_path(key))
            return
        for key, _ in out.evicted + out.rejected:
            self.layout.remove(self.layout.entry_path(key))
        self.stats.add(admitted=len(out.admitted), admitted_bytes=sum(s for _, s in out.admitted),
                       rejected=len(out.rejected), evicted=len(out.evicted),
                       evicted_bytes=sum(s for _, s in out.evicted))

    def _open_index(self, *, sweep: bool) -> Index:
        try:
            index = Index(self.layout, self.limit)
        except sqlite3.Error as exc:
            raise unwritable(self.config.directory, exc) from exc
        if sweep:
            lock = self.layout.sweep_lock()
            if lock is not None:  # else another process sweeps right now
                try:
                    self.layout.sweep_temps()
                    for path in index.reconcile():
                        self.layout.remove(path)
                finally:
                    os.close(lock)
        return index

    def _check_fork(self) -> None:
        """In a forked child, start afresh: the parent's files and connection stay the parent's."""
        if self._pid == os.getpid():
            return
        for fill in self._fills.values():
            fill.forget()
        self._fills, self._fill_bytes, self._pending = {}, 0, Batch()
        self._claimed = set()
        # This process's own seed; its streams say what they scan.
        self._allowance = Allowance(self.limit)
        self._credited = set()
        self._pid = os.getpid()
        self._index = self._open_index(sweep=False)

    def __enter__(self) -> ObjectCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ObjectCache {self.config.describe()}>"


def _pread(fd: int, view: memoryview, offset: int) -> int:
    """Read into ``view`` from ``offset`` until full or at the end of the file; bytes read."""
    done = 0
    while done < len(view):
        got = os.preadv(fd, [view[done:]], offset + done)
        if got <= 0:
            break
        done += got
    return done
