"""A window of an object: one budgeted buffer, fetched in parts, read as the bytes land.

The unit of :mod:`channels.modes.fastfile.readahead`: a :class:`ReadaheadFile` reads
from its windows, and FastFile's view fetches windows of files nobody has
opened yet (:func:`~channels.modes.fastfile.ahead.fetch_ahead`). A window's parts
are fetched concurrently; each part's fetch tells how far it has filled the
buffer, and a reader copies what has landed and waits only for the rest.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from functools import partial

import numpy as np

from channels.memory.budget import unexported
from channels.memory.pool import BufferPool
from channels.modes.fastfile.stats import ReadStats
from channels.units import KIB, MIB

#: A reader that has caught up with a part still in flight waits until this
#: much more of it (or the rest) has landed: one wake-up per few reads.
STREAM_MARGIN = 4 * MIB

#: Copies of at least this many bytes let other threads run (see copy_bytes).
GIL_FREE_COPY = 64 * KIB

#: ``progress(end)``: the buffer of a fetch holds the object's bytes up to offset ``end``.
Progress = Callable[[int], None]

#: ``fetch(start, buf, cancel, progress)``: fill ``buf`` with bytes
#: ``[start, start + len(buf))``; ``cancel`` (None or an Event) is set when the
#: bytes are no longer wanted; ``progress`` (None or a :data:`Progress`), if
#: given, is to be told how far ``buf`` is filled as bytes land, rising (at
#: the least once, at the end: a reader waits for what it has not been told of).
Fetch = Callable[[int, memoryview, "threading.Event | None", "Progress | None"], None]


def split_parts(start: int, end: int, part_size: int) -> list[tuple[int, int]]:
    """``[start, end)`` as equal parts of about ``part_size`` (none a runt).

    Example:
        >>> split_parts(0, 9, 8)
        [(0, 9)]
        >>> split_parts(0, 15, 8)
        [(0, 8), (8, 15)]
    """
    n = max(1, round((end - start) / part_size))
    step = -(-(end - start) // n)
    return [(lo, min(lo + step, end)) for lo in range(start, end, step)]


class _Part:
    """One request of a window: bytes ``[start, end)``, in place up to ``filled``."""

    __slots__ = ("end", "filled", "wanted", "future")

    def __init__(self, start: int, end: int) -> None:
        self.end = end
        self.filled = start  # rises as the bytes land (the fetch's progress)
        self.wanted = end + 1  # a reader waits until filled reaches this (none: past the end)
        self.future: Future = Future()


class Window:
    """Bytes ``[start, start + len(buf))`` of the object in ``buf``, fetched in parts.

    A reader may copy a part's front while its back is still in flight: each
    part's fetch reports how far it has filled the buffer, so a reader waits
    only for the bytes it needs, not for a whole part (a 16 MiB object is
    one part).

    ``buf`` came from ``budget`` (:meth:`BufferPool.try_take`) and goes back
    to it once the window is dropped and no part is still writing into it;
    dropping also sets ``cancel``, which stops the parts still fetching.
    """

    __slots__ = ("start", "end", "buf", "cancel", "waited", "_view", "_budget", "_parts", "_cond",
                 "_pending", "_dropped", "_lent", "_pins")

    def __init__(self, start: int, buf, budget: BufferPool) -> None:
        self.start = start
        self.end = start + len(buf)
        # Invariant: buf is lent out of budget until _free gives it back (then None).
        self.buf = buf
        self.cancel = threading.Event()
        self.waited = 0.0  # seconds readers spent waiting for this window's bytes to land
        self._view = memoryview(self.buf)
        self._budget = budget
        self._parts: list[_Part] = []  # in offset order; set once, by fill
        self._cond = threading.Condition(threading.Lock())
        # Invariant: pending == parts whose future is not done yet.
        self._pending = 0
        self._dropped = False
        self._lent = False  # a view of buf went to a caller (pread)
        # Invariant: pins == views lent by pin_landed whose Lent is not released yet.
        self._pins = 0

    def fill(self, fetch: Fetch, stats: ReadStats, executor: ThreadPoolExecutor, part_size: int, *,
             inline_first: bool) -> None:
        """Fetch the window as parts on ``executor`` (the first in this thread if ``inline_first``)."""
        parts = [_Part(lo, hi) for lo, hi in split_parts(self.start, self.end, part_size)]
        self._pending = len(parts)
        self._parts = parts
        for i, part in enumerate(parts):
            if i == 0 and inline_first:
                part.future.add_done_callback(partial(self._part_done, part))
                continue
            lo = part.filled
            try:
                part.future = executor.submit(fetch_part, fetch, stats, lo, self._slice(lo, part.end),
                                              self.cancel, partial(self._progress, part))
            except BaseException as exc:  # the executor is shut down: a failed part, not a lost one
                part.future.set_exception(exc)
            part.future.add_done_callback(partial(self._part_done, part))
        if inline_first:
            part = parts[0]
            try:
                fetch_part(fetch, stats, self.start, self._slice(self.start, part.end), self.cancel,
                           partial(self._progress, part))
            except BaseException as exc:
                part.future.set_exception(exc)
            else:
                part.future.set_result(None)

    def _slice(self, lo: int, hi: int) -> memoryview:
        return self._view[lo - self.start:hi - self.start]

    def _progress(self, part: _Part, end: int) -> None:
        # Lock-free unless a reader waits for these bytes: the reader sets
        # ``wanted`` before it reads ``filled``, this sets ``filled`` before it
        # reads ``wanted`` (each in order, under the GIL), so one of the two
        # sees the other's write and no wake-up is lost.
        part.filled = end
        if end >= part.wanted:
            with self._cond:
                self._cond.notify_all()

    def _part_done(self, part: _Part, future: Future) -> None:
        with self._cond:
            self._pending -= 1
            if not future.cancelled() and future.exception() is None:
                part.filled = part.end
            self._cond.notify_all()
            free = self._dropped and self._pending == 0 and self._pins == 0
        if free:
            self._free()

    def drop(self) -> None:
        """Stop caring about this window: cancel its parts, free the buffer when idle."""
        self.cancel.set()
        for part in self._parts:
            part.future.cancel()
        with self._cond:
            if self._dropped:
                return
            self._dropped = True
            free = self._pending == 0 and self._pins == 0
        if free:
            self._free()

    def landing(self) -> bool:
        """Whether a part is still being fetched (its bytes have not all landed)."""
        return self._pending > 0

    def failed(self) -> bool:
        """Whether a part has already ended in an error (or was cancelled)."""
        return any(p.future.done() and (p.future.cancelled() or p.future.exception() is not None)
                   for p in self._parts)

    def _free(self) -> None:
        buf, view = self.buf, self._view
        self.buf = self._view = None  # type: ignore[assignment]
        if buf is not None:
            try:
                view.release()
            except BufferError:  # pragma: no cover - a view of the view is alive
                pass
            # Once every part is done nothing writes into buf any more; views a
            # finished fetch still holds are dropped unused. A view lent to a
            # caller is another matter: buf is reused only once no view is left.
            self._budget.release(buf, reuse=not self._lent or unexported(buf))

    def lend(self, pos: int, n: int) -> memoryview:
        """A view of bytes ``[pos, pos + n)`` for a caller to keep (no copy)."""
        self._lent = True
        return memoryview(self.buf)[pos - self.start:pos - self.start + n]

    def contains(self, pos: int) -> bool:
        return self.start <= pos < self.end

    def ready(self, pos: int, n: int) -> int:
        """Bytes from ``pos`` (at most ``n``, within one part) in place now, without waiting."""
        for part in self._parts:
            if pos < part.end:
                f = part.future
                if f.done() and (f.cancelled() or f.exception() is not None):
                    return 0
                return max(0, min(n, part.filled - pos))
        return 0

    def copy_into(self, pos: int, dest: memoryview) -> int:
        """Copy from ``pos`` into ``dest``, up to the window's end, as the bytes land."""
        n = min(len(dest), self.end - pos)
        done = 0
        for part in self._parts:
            while done < n and pos + done < part.end:
                p = pos + done
                filled = part.filled
                if filled <= p:  # wait for all this read needs: one wake-up, not one per socket read
                    filled = self._wait(part, p, min(max(pos + n, p + STREAM_MARGIN), part.end))
                k = min(filled, pos + n) - p
                lo = p - self.start
                copy_bytes(dest[done:done + k], self._view[lo:lo + k])
                done += k
            if done >= n:
                break
        return n

    def pin_landed(self, pos: int, n: int, lent: Lent) -> int:
        """Add to ``lent`` a view of bytes ``[pos, pos + n)`` (up to the window's end) once they
        have all landed (no copy); how many bytes it holds. Until ``lent`` is released the
        buffer stays this window's: a drop meanwhile frees it only then, for reuse."""
        end = min(pos + n, self.end)
        p = pos
        for part in self._parts:
            if p >= end:
                break
            want = min(end, part.end)
            while p < want:
                p = min(part.filled, want) if part.filled > p else self._wait(part, p, want)
        with self._cond:
            self._pins += 1
        lent.add(self._view[pos - self.start:end - self.start], self)
        return end - pos

    def unpin(self) -> None:
        """A :class:`Lent` holding a view of this window let it go."""
        with self._cond:
            self._pins -= 1
            free = self._dropped and self._pending == 0 and self._pins == 0
        if free:
            self._free()

    def _wait(self, part: _Part, pos: int, want: int) -> int:
        """Wait until ``part`` holds the bytes up to ``want`` (or has ended: if it
        failed before the byte at ``pos``, raise its error); how far it is filled."""
        with self._cond:
            part.wanted = want
            t0 = time.perf_counter()
            while part.filled < want and not part.future.done():
                self._cond.wait()
            self.waited += time.perf_counter() - t0
            part.wanted = part.end + 1
            if part.filled > pos:
                return part.filled
        part.future.result()  # raises the part's fetch error
        return part.end  # done, though its callback has not run yet


class Lent:
    """Views of windows' bytes for a caller to send (no copy), each window pinned until :meth:`release`.

    Attributes:
        views: the bytes in order, one view per window (or per buffer of their own).
    """

    __slots__ = ("_windows", "views")

    def __init__(self) -> None:
        self.views: list[memoryview] = []
        self._windows: list[Window] = []

    def add(self, view: memoryview, window: Window | None = None) -> None:
        self.views.append(view)
        if window is not None:
            self._windows.append(window)

    def release(self) -> None:
        """Release the views (nothing may still point into them), then unpin their windows."""
        views, windows, self.views, self._windows = self.views, self._windows, [], []
        for v in views:
            v.release()
        for w in windows:
            w.unpin()


def copy_bytes(dest: memoryview, src: memoryview) -> None:
    """``dest[:] = src``, letting the fetch threads run during a large copy.

    A memoryview assignment holds the GIL for the whole copy (about 40 us a
    MiB here), and every fetch thread with bytes waiting in its socket stalls
    behind it; numpy's copy releases the GIL. Measured: one view reader of
    64 x 16 MiB went from 0.874x to 0.907x Pipe's MB/s (means of 8 runs,
    interleaved), the CPU's idle share from 0.07-0.12 to 0.04-0.08.
    """
    if len(src) < GIL_FREE_COPY:
        dest[:] = src
    else:
        np.copyto(np.frombuffer(dest, np.uint8), np.frombuffer(src, np.uint8))


def fetch_direct(fetch: Fetch, stats: ReadStats, executor: ThreadPoolExecutor, pos: int, dest: memoryview,
                 part_size: int, *, inline_first: bool, started: Callable[[], None]) -> None:
    """Fill ``dest`` with the object's bytes from ``pos``, in concurrent parts on ``executor``
    (the first in this thread if ``inline_first``); ``started`` is called once all are asked for.
    No budget is used: the caller's buffer is the window, and no part outlives this call."""
    stats.add(windows=1)
    parts = split_parts(0, len(dest), part_size)
    inline = parts.pop(0) if inline_first else None
    futures = [executor.submit(fetch_part, fetch, stats, pos + lo, dest[lo:hi], None) for lo, hi in parts]
    started()
    try:
        if inline is not None:
            fetch_part(fetch, stats, pos, dest[inline[0]:inline[1]], None)
    finally:
        # Parts write into the caller's buffer: none may outlive this call.
        wait_futures(futures)
    for future in futures:
        future.result()


def fetch_part(fetch: Fetch, stats: ReadStats, start: int, buf: memoryview,
               cancel: threading.Event | None, progress: Progress | None = None) -> None:
    """One request: ``fetch`` into ``buf``, counted in ``stats``."""
    stats.add(requests=1)
    fetch(start, buf, cancel, progress)
    stats.add(bytes_fetched=len(buf))
