"""Adaptive readahead over a fetch callable: the file objects of FastFile mode.

A :class:`ReadaheadFile` is a real :class:`io.RawIOBase` over one object. It
knows nothing about S3: it calls ``fetch(start, buf, cancel, progress)``, which
must fill the writable memoryview ``buf`` with the object's bytes
``[start, start + len(buf))`` (FastFile wires it to ``Transport.read_into``;
tests use a function over bytes). ``cancel`` is None or a
:class:`threading.Event` set once nobody wants the bytes any more (the window
was dropped): fetch may then stop early by raising. ``progress``, when not
None, is called with how far ``buf`` is filled, so that a reader can copy
the front of a part while the rest is in flight.

How much it fetches (Mountpoint's prefetcher works so):

- The first read after ``open`` fetches ``initial_window`` (1 MiB) bytes;
  but an object of at most ``whole_object_bytes`` (16 MiB) whose first read
  starts at 0 and asks for 64 KiB or more is fetched whole, in one request:
  for such objects the cost of a request (on moto, a pass over the whole
  object per GET) outweighs the bytes, and Pipe fetches them so too.
- Each further read that goes on where the last one ended (a *sequential*
  read) doubles the window, up to ``max_window`` (64 MiB); so does each
  window fetched (the next one is at least twice as large).
- From the second sequential read on (from open: once the reader has used
  half of the first window), the next ``prefetch_depth`` (2) windows are
  fetched in the background while the reader consumes the current one, so
  reads overlap the network. A window that would leave a runt shorter than
  itself before the end of the object stretches to the end instead.
- A read anywhere else (a *seek*) drops the windows and fetches just what
  was asked (at least ``seek_window``, 4 KiB); windows double again from
  there if the reader goes on sequentially. So random 4 KiB reads fetch
  about the bytes they return.
- A window is fetched as parts of about ``part_size`` bytes, concurrently;
  a read waits only for the part it needs.
- Every window's buffer is granted by one byte budget (a
  :class:`~channels.memory.pool.BufferPool`, by default a
  :class:`~channels.memory.budget.ByteBudget`) shared by all files of a
  view. When the budget is short a window shrinks to what is left; when
  nothing is left, the read goes straight into the caller's buffer (no
  readahead) instead of waiting, so that a single thread reading many
  files round-robin can never deadlock on the budget.
- Across files: :func:`~channels.modes.fastfile.ahead.fetch_ahead` starts
  the first window of an object nobody has opened yet, and a
  ``ReadaheadFile`` given that window (``first=``) reads from it, so a
  reader going from file to file does not wait a round trip at the start
  of each. Which files, and when, is the caller's choice: the file says
  when it is being read on from its start (``on_reading_on``); FastFile's
  view then fetches the next files ahead.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from channels.memory.budget import ByteBudget
from channels.memory.pool import BufferPool
from channels.modes.fastfile.config import ReadaheadConfig
from channels.modes.fastfile.pacing import Pacing, ReaderClock
from channels.modes.fastfile.stats import ReadStats
from channels.modes.fastfile.window import Fetch, Lent, Window, fetch_direct
from channels.units import KIB, MIB

# KIB and MIB stay importable from here for the scripts that size a ReadaheadConfig.
__all__ = ["KIB", "MIB", "ReadaheadConfig", "ReadaheadFile"]


def _writable(b) -> memoryview:
    view = memoryview(b)
    if view.readonly:
        raise TypeError(f"readinto() needs a writable buffer, not a read-only {type(b).__name__}")
    return view.cast("B")


class ReadaheadFile(io.RawIOBase):
    """A read-only, seekable file over ``fetch``, with adaptive readahead.

    Thread-safe: one lock serialises reads and seeks (FUSE may call
    :meth:`pread` from several threads for one open handle).

    Args:
        fetch: fills a buffer with bytes of the object from an offset.
        size: the object's size in bytes.
        name: what ``repr`` and errors show (the path in the view).
        config: readahead knobs.
        budget: the byte budget shared with other files (default: a private one).
        executor: threads for parts and prefetch (default: a private pool,
            shut down by :meth:`close`).
        stats: counters to add to (a view's); the file also keeps its own.
        first: a window of this object from :func:`fetch_ahead`, to read
            from (and drop at close); it must start at 0.
        on_reading_on: called once (with the file's lock held), the first
            time the file is read on from its start: a first read from 0 of
            ``whole_object_hint`` bytes or more, or a second sequential read
            with no seek before it. Random reads never call it.
        on_close: called once, when the file is closed.
        pacing: the view's readahead sizes on a far store (None: as on a near
            one): how many parallel parts a first window needs, and where
            the reader's rate goes.
    """

    def __init__(self, fetch: Fetch, size: int, *, name: str = "", config: ReadaheadConfig | None = None,
                 budget: BufferPool | None = None, executor: ThreadPoolExecutor | None = None,
                 stats: ReadStats | None = None, first: Window | None = None,
                 on_reading_on: Callable[[], None] | None = None,
                 on_close: Callable[[], None] | None = None, pacing: Pacing | None = None) -> None:
        super().__init__()
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size} for {name!r}")
        self._fetch = fetch
        self.size = size
        self.name = name
        self.mode = "rb"
        self.config = cfg = config or ReadaheadConfig()
        self._budget = budget or ByteBudget(cfg.budget_bytes)
        self._own_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(cfg.max_workers, thread_name_prefix="channels-readahead")
        self.stats = ReadStats(stats)
        self._lock = threading.RLock()
        self._pos = 0
        # Invariant: windows are disjoint, sorted by start, and none ends after
        # ``_fetched_end``; at most one lies wholly behind the last read (kept
        # for reads that arrive slightly out of order).
        self._windows: list[Window] = []
        # Invariant: ``_expected`` is where the last read ended (0 after open);
        # ``_fetched_end`` is the end of the furthest byte fetched in the
        # current sequential run; ``_next_size`` is the size of the next window.
        self._expected = 0
        self._fetched_end = 0
        self._next_size = cfg.initial_window
        self._run = 0  # consecutive sequential reads, the current one included
        self._from_open = True  # the run began at open, not at a seek
        self._on_reading_on = on_reading_on  # None once due
        self._reading_on_due: Callable[[], None] | None = None  # due, to call once this read's window is asked for
        self._on_close = on_close
        self._pacing = pacing
        self._clock = ReaderClock(pacing)
        if first is not None:
            if first.start != 0 or first.end > size:
                first.drop()
                raise ValueError(f"a first window must lie at the start of {name!r}, got "
                                 f"[{first.start}, {first.end}) of {size} bytes")
            self._windows.append(first)
            self._fetched_end = first.end
            self._grow(first.end)

    # ------------------------------------------------------------ io protocol

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def write(self, b) -> int:
        raise io.UnsupportedOperation(f"{self.name!r} is read-only (FastFile views cannot be written)")

    def tell(self) -> int:
        self._check_closed()
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move the position; fetching happens (and adapts) at the next read."""
        self._check_closed()
        with self._lock:
            if whence == io.SEEK_SET:
                pos = offset
            elif whence == io.SEEK_CUR:
                pos = self._pos + offset
            elif whence == io.SEEK_END:
                pos = self.size + offset
            else:
                raise ValueError(f"invalid whence {whence!r}: use 0 (SEEK_SET), 1 (SEEK_CUR) or 2 (SEEK_END)")
            if pos < 0:
                raise OSError(22, f"negative seek position {pos} in {self.name!r}")
            self._pos = pos
            return pos

    def readinto(self, b) -> int:
        """Read up to ``len(b)`` bytes into ``b``; 0 at the end of the object."""
        self._check_closed()
        view = _writable(b)
        with self._lock:
            n = self._read_at(self._pos, view)
            self._pos += n
            return n

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes (all the rest when negative or None)."""
        self._check_closed()
        if size is None or size < 0:
            return self.readall()
        with self._lock:
            data = self._pread(self._pos, size)
            self._pos += len(data)
            return bytes(data)

    def readall(self) -> bytes:
        self._check_closed()
        with self._lock:
            buf = bytearray(max(0, self.size - self._pos))
            n = self._read_at(self._pos, memoryview(buf))
            self._pos += n
            del buf[n:]
            return bytes(buf)

    def pread(self, offset: int, size: int) -> bytes | memoryview:
        """Bytes at ``offset`` without moving the position (a view when no copy is needed).

        The view stays valid for as long as the caller holds it.
        """
        self._check_closed()
        with self._lock:
            return self._pread(offset, size)

    def preadinto(self, offset: int, buf) -> int:
        """Fill ``buf`` from ``offset`` without moving the position; bytes read."""
        self._check_closed()
        view = _writable(buf)
        with self._lock:
            return self._read_at(offset, view)

    def pread_views(self, offset: int, size: int) -> Lent:
        """The bytes at ``offset`` (up to ``size``; none at the end) as views of the windows that
        hold them, one per window, without a copy and without moving the position.

        Release the result once sent: its windows' buffers are pinned until then. Bytes no
        window could hold (the budget was short) come in a buffer of their own.
        """
        self._check_closed()
        lent = Lent()
        with self._lock:
            try:
                self._read_at(offset, None, size=size, lent=lent)
            except BaseException:
                lent.release()  # a failed part: unpin what was lent before it
                raise
        return lent

    def close(self) -> None:
        """Drop every window (their budget goes back) and stop private threads."""
        if self.closed:
            return
        with self._lock:
            for w in self._windows:
                w.drop()
            self._windows.clear()
            if self._own_executor:
                self._executor.shutdown(wait=False, cancel_futures=True)
        super().close()
        if self._on_close is not None:
            self._on_close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"pos={self._pos}"
        return f"<ReadaheadFile {self.name!r} size={self.size} {state}>"

    def _check_closed(self) -> None:
        if self.closed:
            raise ValueError(f"I/O operation on closed file {self.name!r}")

    # ------------------------------------------------------------ the policy (lock held)

    def _pread(self, pos: int, size: int) -> bytes | memoryview:
        n = max(0, min(size, self.size - pos))
        if n == 0:
            return b""
        self._note_read(pos, n)
        w = self._window_at(pos)
        if w is not None and w.ready(pos, n) == n:  # the common case: no copy
            self._reading_on()
            t_in = time.perf_counter()
            self._after_read(pos + n)
            self._clock.account(t_in, n, 0.0)
            return w.lend(pos, n)
        buf = bytearray(n)
        self._read_at(pos, memoryview(buf), noted=True)
        return buf

    def _read_at(self, pos: int, dest: memoryview | None, noted: bool = False, *, size: int = 0,
                 lent: Lent | None = None) -> int:
        """Copy into ``dest``; or, given ``lent`` (and ``size``, no ``dest``), lend views into it."""
        n = max(0, min(size if dest is None else len(dest), self.size - pos))
        if n == 0:
            return 0
        if not noted:
            self._note_read(pos, n)
        t_in = time.perf_counter()
        waited = 0.0  # seconds of this read spent waiting for bytes (fetching inline included)
        done = 0
        while done < n:
            p = pos + done
            w = self._window_at(p)
            if w is None:
                t = time.perf_counter()
                into = dest[done:n] if lent is None else memoryview(bytearray(n - done))
                w = self._miss(p, into)
                waited += time.perf_counter() - t
                if w is None:  # read straight into dest
                    if lent is not None:
                        lent.add(into)
                    break
            before = w.waited
            try:
                if lent is None:
                    done += w.copy_into(p, dest[done:n])
                else:
                    done += w.pin_landed(p, n - done, lent)
            except BaseException:
                # A failed part: forget the windows so that a later read fetches anew.
                self._drop_windows()
                self._fetched_end = p
                raise
            finally:
                waited += w.waited - before
        self._reading_on()  # if no window was asked for (a direct read of a past window)
        self._after_read(pos + n)
        self._clock.account(t_in, n, waited)
        return n

    def _note_read(self, pos: int, n: int) -> None:
        """Classify a read as sequential or a seek, before serving it."""
        self.stats.add(bytes_read=n)
        tolerance = max(self.config.forward_tolerance, 4 * n,
                        self._windows[-1].end - self._windows[-1].start if self._windows else 0)
        sequential = (self._window_at(pos) is not None
                      or self._expected <= pos <= self._expected + tolerance and (self._run or pos == 0))
        if sequential:
            self._run += 1
            if self._run >= 2:  # each further sequential read doubles the window
                self._next_size = min(2 * self._next_size, self.config.max_window)
            if self._on_reading_on is not None and self._from_open and (
                    self._run >= 2 or pos == 0 and n >= min(self.config.whole_object_hint, self.size)):
                # Called once this read's own window is asked for (see _reading_on): the
                # bytes the reader needs first go to the store first.
                self._reading_on_due, self._on_reading_on = self._on_reading_on, None
                if self._window_at(pos) is not None:
                    self._reading_on()
            return
        self.stats.add(seeks=1)
        self._drop_windows()
        self._run = 1
        self._from_open = False
        self._next_size = self.config.seek_window
        self._fetched_end = pos

    def _reading_on(self) -> None:
        callback, self._reading_on_due = self._reading_on_due, None
        if callback is not None:
            callback()

    def _after_read(self, end: int) -> None:
        self._expected = end
        # Keep at most one window wholly behind the reader.
        behind = [w for w in self._windows if w.end <= end]
        for w in behind[:-1]:
            w.drop()
            self._windows.remove(w)
        self._maybe_prefetch(end)

    def _window_at(self, pos: int) -> Window | None:
        for w in self._windows:
            if w.contains(pos):
                return w
        return None

    def _drop_windows(self) -> None:
        for w in self._windows:
            w.drop()
        self._windows.clear()

    def _window_size(self, start: int, minimum: int = 0) -> int:
        """The next window from ``start``: ``_next_size``, stretched to the end of the
        object rather than leave a runt shorter than itself (one request fewer)."""
        want = max(minimum, self._next_size)
        rest = self.size - start
        return rest if rest - want < want and rest <= max(want, self.config.max_window) else min(want, rest)

    def _grow(self, fetched: int) -> None:
        self._next_size = min(max(2 * fetched, self._next_size), self.config.max_window)

    def _miss(self, pos: int, dest: memoryview) -> Window | None:
        """Fetch for a read at ``pos`` that no window covers: a new window, or into ``dest``."""
        need = min(len(dest), self.size - pos)
        if pos != self._fetched_end:  # a tolerated skip forward: the run goes on from here
            self._drop_windows()
        cfg = self.config
        whole = (pos == 0 and self._from_open and self._run == 1 and self.size <= cfg.whole_object_bytes
                 and need >= min(cfg.whole_object_hint, self.size))
        want = self.size if whole else self._window_size(pos, need)
        part = max(cfg.part_size, self.size) if whole else cfg.part_size
        if whole and self._pacing is not None and self._pacing.alone():
            # Wanted now, and no walk's files ahead land beside it: in parallel parts on a far store.
            part = -(-want // self._pacing.parts(want, 0))
        buf = None if need >= want else self._budget.try_take(want, need)
        if buf is None:
            if need < want:
                self.stats.add(budget_denied=1)
            self._fetch_direct(pos, dest[:need], part)
            self._fetched_end = pos + need
            self._grow(need)
            return None
        # A reader going on to other files: its window is asked for before theirs (not inline).
        w = self._start_window(pos, buf, inline_first=self._reading_on_due is None, part_size=part)
        self._reading_on()
        self._grow(w.end - w.start)
        return w

    def _maybe_prefetch(self, pos: int) -> None:
        """Once the run is sequential, keep the next window fetching in the background."""
        if self._fetched_end >= self.size:
            return
        if self._run < 2 and not (self._from_open and 2 * pos >= self._fetched_end):
            # One read proves nothing after a seek; from open, using half the
            # first window does (cat, tar, a checksum), and a header read does not.
            return
        # Windows wholly ahead of the reader (the one it is in does not count).
        ahead = sum(1 for w in self._windows if w.start > pos)
        while ahead < self.config.prefetch_depth and self._fetched_end < self.size:
            want = self._window_size(self._fetched_end)
            buf = self._budget.try_take(want, min(want, self.config.initial_window))
            if buf is None:
                return
            self.stats.add(prefetches=1)
            w = self._start_window(self._fetched_end, buf, inline_first=False)
            self._grow(w.end - w.start)
            ahead += 1

    def _start_window(self, start: int, buf, *, inline_first: bool, part_size: int = 0) -> Window:
        w = Window(start, buf, self._budget)
        self._windows.append(w)
        self._fetched_end = w.end
        self.stats.add(windows=1)
        w.fill(self._fetch, self.stats, self._executor, part_size or self.config.part_size,
               inline_first=inline_first)
        return w

    def _fetch_direct(self, pos: int, dest: memoryview, part_size: int) -> None:
        """Fill the caller's buffer (no budget used). A reader going on to other files has
        all its parts asked for before theirs (none in this thread)."""
        fetch_direct(self._fetch, self.stats, self._executor, pos, dest, part_size,
                     inline_first=self._reading_on_due is None, started=self._reading_on)
