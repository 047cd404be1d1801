"""Files ahead: the first window of files a reader will open next, fetched before it opens them.

A reader going from file to file (``cat *``, a loop over ``walk``) would
wait a round trip at the start of each file. :func:`fetch_ahead` starts the
first window of an object nobody has opened yet, and a
:class:`~channels.modes.fastfile.readahead.ReadaheadFile` given that window
(``first=``) reads from it. :class:`FilesAhead` decides which files, and
when: once a file is read on from its start, the next
``ReadaheadConfig.prefetch_files`` files at the stride the reader goes from
file to file. Random reads never start this. On a far store the view's
:class:`~channels.modes.fastfile.pacing.Pacing` widens this: more files
ahead, in more of the budget, and the windows due soonest as parallel
ranged GETs. A reader that catches up with the files ahead (opens one still
landing that was not fetched in its walk's first wave) doubles how many are
fetched, within the same budget, whatever the link looks like: connections
that share a bottleneck (a host's network interface) hide a far store from
the link's estimate, not from the reader.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict, deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from channels.listing import ObjectRef
from channels.memory.pool import BufferPool
from channels.modes.fastfile.config import ReadaheadConfig
from channels.modes.fastfile.pacing import Pacing
from channels.modes.fastfile.stats import ReadStats
from channels.modes.fastfile.window import Fetch, Window

#: Files read on from their start that :class:`FilesAhead` remembers, to see the stride.
RECENT_FILES = 16
#: The largest stride (in files of ``walk`` order) taken for a reader going from file to file.
MAX_STRIDE = 8
#: The most files ahead that catching up asks for (the budget bounds them first).
MAX_DEPTH = 256


class View(Protocol):
    """What :class:`FilesAhead` uses of a FastFile view (a
    :class:`~channels.modes.fastfile.view.FastFileView`)."""

    config: ReadaheadConfig
    stats: ReadStats
    budget: BufferPool
    pacing: Pacing

    @property
    def executor(self) -> ThreadPoolExecutor: ...

    def walk(self) -> Iterator[tuple[str, list[str], list[str]]]: ...

    def stat(self, path: str) -> Any: ...  # an Entry, whose ``ref`` is the object

    def fetcher(self, ref: ObjectRef) -> Fetch: ...


def first_window_size(size: int, config: ReadaheadConfig) -> int:
    """What a reader going on from the start of an object of ``size`` bytes fetches first:
    all of a small object (see ``whole_object_bytes``), else ``initial_window``."""
    return size if size <= config.whole_object_bytes else min(size, config.initial_window)


def fetch_ahead(fetch: Fetch, size: int, *, config: ReadaheadConfig, budget: BufferPool,
                executor: ThreadPoolExecutor, stats: ReadStats, parts: int = 1) -> Window | None:
    """Start fetching an unopened object's first window in the background.

    Hand the window to the :class:`ReadaheadFile` that opens the object
    (``first=``), or :meth:`Window.drop` it to give its budget back.

    Args:
        parts: fetch a whole-object window as this many parallel ranged
            GETs (a larger window is in ``config.part_size`` parts anyway).

    Returns:
        The window, or None when the object is empty or the budget cannot
        grant all of it (a fetch ahead never shrinks).
    """
    want = first_window_size(size, config)
    buf = budget.try_take(want) if want else None
    if buf is None:
        return None
    w = Window(0, buf, budget)
    part = -(-want // parts) if want == size else config.part_size
    w.fill(fetch, stats, executor, part, inline_first=False)
    return w


class FilesAhead:
    """Fetches the first window of files a reader will open next, before it opens them.

    When a file is read on from its start (see ``ReadaheadFile``'s
    ``on_reading_on``) and another file at most :data:`MAX_STRIDE` before it
    in ``walk`` order was too, not long ago, the reader is taken to go
    through the files at that stride (the least such distance); the first
    file read on in the view is taken to start a walk at stride 1, and the
    file that walk began with, read on right after the last file, to start
    it over (the next epoch), so that the first file of an epoch is not
    fetched alone. The
    first windows of the next ``prefetch_files`` files at that stride (on a
    far store, as many as the view's pacing asks for; once the reader has
    caught up with them, opening one still landing that the walk fetched
    after its first wave, twice as many as were asked for then, up to
    :data:`MAX_DEPTH`, and half as many again for each stale window dropped
    to make room) are then fetched now,
    nearest first, except files open already or fetched ahead already; a
    file read on with no such file before it (a reader taking files in a
    shuffled order) fetches nothing ahead. ``open`` hands a file its window.
    The windows hold at most half the view's budget (on a far store, all
    but what two largest windows need), and never shrink a grant an open
    file could get. When they are short of
    room, a window nobody took is dropped (its fetch cancelled, its budget
    given back), oldest first, only if it is stale: its file lies before
    the one just read on, or :data:`RECENT_FILES` files have been read on
    since it was fetched (and the reader does not want it now). Otherwise
    fetching ahead stops there: a window a reader is about to take is never
    dropped for one it needs later. The rest are dropped at :meth:`close`.

    Thread-safe.

    Args:
        view: the view whose files these are.
    """

    def __init__(self, view: View) -> None:
        self._view = view
        self._lock = threading.Lock()
        self._order: list[str] | None = None  # every file's path, in walk order (made on first use)
        self._index: dict[str, int] = {}
        # Invariant: held == the bytes of the windows in ready; held <= budget.limit // 2.
        self._ready: OrderedDict[str, Window] = OrderedDict()  # path -> window, oldest first
        self._fetched_at: dict[str, int] = {}  # path -> the count of files read on when fetched
        self._read_on = 0  # files read on so far
        self._held = 0
        self._open: Counter[str] = Counter()  # path -> handles open now
        self._recent: deque[int] = deque(maxlen=RECENT_FILES)  # indexes of files read on
        self._stride = 1  # the stride of the last walk
        self._depth = 0  # files ahead the last walk step asked for
        self._learned = 0  # files ahead the reader showed it needs by catching up (0: none yet)
        self._wave = 0  # the count of files read on when the last walk began (its first wave's fetched_at)
        self._walk_start = 0  # where it began
        self._closed = False

    def opened(self, path: str) -> Window | None:
        """Note a new handle on ``path``; its window fetched ahead, if any (now the caller's)."""
        with self._lock:
            self._open[path] += 1
            w = self._ready.pop(path, None)
            late = False
            if w is not None:
                self._held -= w.end - w.start
                fetched = self._fetched_at.pop(path)
                # A walk's first wave lands together, after the reader wants it: waiting
                # for it says nothing. A file fetched later, still landing, says the
                # reader used up its lead: fetch further ahead from now on.
                late = w.landing() and fetched > self._wave
                if late:
                    self._learned = min(MAX_DEPTH, 2 * max(self._learned, self._depth, 1))
        if w is not None and w.failed():  # fetch it anew rather than fail the read
            w.drop()
            self._view.stats.add(files_ahead_dropped=1)
            return None
        if w is not None:
            self._view.stats.add(files_ahead_used=1, files_ahead_late=int(late))
        return w

    def closed(self, path: str) -> None:
        """Note that a handle on ``path`` was closed."""
        with self._lock:
            self._open[path] -= 1
            if not self._open[path]:
                del self._open[path]

    def reading_on(self, path: str) -> None:
        """``path`` is being read on from its start: fetch ahead the files the reader will open next."""
        with self._lock:
            if self._closed:
                return
            order, i = self._position(path)
            behind = [i - j for j in self._recent if 0 < i - j <= MAX_STRIDE]
            if not self._recent or not behind and i == self._walk_start and (
                    len(order) - self._recent[-1] <= self._stride):
                # The view's first file, or the last walk's first file right after its last
                # one: the walk starting over (the next epoch).
                behind = [self._stride]
                self._walk_start = i
                self._wave = self._read_on + 1
            self._recent.append(i)
            self._read_on += 1
            self._view.pacing.walking = bool(behind)
            if not behind:
                return
            stride = self._stride = min(behind)
            depth = self._depth = max(self._view.pacing.files_ahead(self._view.stat(path).size), self._learned)
            end = min(len(order), i + stride * depth + 1)
            targets = [order[j] for j in range(i + stride, end, stride)]
            missing = [(rank, t) for rank, t in enumerate(targets) if t not in self._ready and t not in self._open]
            for rank, target in missing:
                # Files fetched together land together: only a file fetched alone (the far end of
                # a walk under way) may be cut into parts, if it would land late.
                if not self._fetch_ahead(target, i, targets, rank if len(missing) == 1 else None):
                    return

    def close(self) -> None:
        """Drop every window not taken; idempotent."""
        with self._lock:
            self._closed = True
            for path in list(self._ready):
                self._drop(path)

    def _position(self, path: str) -> tuple[list[str], int]:
        if self._order is None:
            self._order = [f"{d}/{name}" if d else name
                           for d, _, files in self._view.walk() for name in files]
            self._index = {p: i for i, p in enumerate(self._order)}
        return self._order, self._index[path]

    def _fetch_ahead(self, path: str, reader_at: int, wanted: list[str], rank: int | None) -> bool:
        """Fetch ``path``'s first window ahead, making room from stale windows not in
        ``wanted``; False if there is no room (go no further). ``rank``: the file is the
        ``rank``-th after the reader's, fetched alone (in parts if it would land late),
        or None: one of a wave (one GET)."""
        view = self._view
        ref = view.stat(path).ref
        want = first_window_size(ref.size, view.config)
        room = view.pacing.ahead_room(view.budget.limit)
        if want == 0:
            return True
        if want > room:
            return False
        if self._held + want > room:
            stale = [p for p, fetched in self._fetched_at.items() if p not in wanted
                     and (self._index[p] < reader_at or self._read_on - fetched >= RECENT_FILES)]
            for p in stale:  # oldest first
                if self._held + want <= room:
                    break
                self._drop(p)
                self._learned //= 2  # fetched for nothing: catching up asked for too many
            if self._held + want > room:
                return False
        # The reader gets to it after the rest of its own file and the files before it.
        parts = 1 if rank is None else view.pacing.parts(want, (rank + 1) * want)
        w = fetch_ahead(view.fetcher(ref), ref.size, config=view.config, budget=view.budget,
                        executor=view.executor, stats=view.stats, parts=parts)
        if w is None:
            return False
        self._ready[path] = w
        self._fetched_at[path] = self._read_on
        self._held += want
        view.stats.add(files_ahead=1)
        return True

    def _drop(self, path: str) -> None:
        w = self._ready.pop(path)
        del self._fetched_at[path]
        self._held -= w.end - w.start
        w.drop()
        self._view.stats.add(files_ahead_dropped=1)
