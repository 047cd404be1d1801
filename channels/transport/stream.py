"""Ordered, prefetching delivery of many objects as chunks: the hot path.

A stream turns object refs into a plan of parts (whole small objects, fixed
ranges of large ones) and keeps a sliding window over that plan: parts enter
the window in plan order, each with a buffer from a budgeted pool, and are
fetched by a thread pool; the consumer takes them from the head, in order.
The stream is given what it reads through (a
:class:`~channels.transport.fetch.Fetcher`) and where it leaves its buffers
when done (its Transport's :class:`~channels.memory.pool.SpareShelf`), never
the Transport itself.

How much is in flight, and in what pieces, the stream's
:class:`~channels.transport.inflight.Inflight` decides at each admission from
the link the fetcher measures and the rate the consumer takes bytes at: on a
near store, whole planned parts with ``max_workers`` threads; on a far one,
as many GETs as cover the bandwidth-delay product (up to
``max_connections``), the parts due soon cut into ranges fetched in
parallel, all within ``budget_bytes``; and at the stream's end, the back of
a part still arriving handed to a GET of its own (:meth:`ChunkStream._split_tail`).

Why it cannot deadlock: the only part the consumer ever waits for is the
window's head, and the head was admitted (so it is in flight or done) unless
the window is empty. An empty window with nothing lent to the consumer means
every buffer is free, and a free pool serves any part of at most
``max_part <= budget`` bytes (:meth:`BufferPool.try_take` drops kept
buffers to make room); so the next part is always admitted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from channels.listing import ObjectRef
from channels.memory.pool import BufferPool, SpareShelf, size_class
from channels.transport.config import TransportConfig
from channels.transport.errors import Cancelled, Truncated
from channels.transport.inflight import Inflight
from channels.transport.link import RateMeter
from channels.transport.stats import TransportStats

if TYPE_CHECKING:
    from channels.transport.fetch import Fetcher

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Chunk:
    """A run of bytes of one object, delivered in plan order.

    Attributes:
        ref: the object.
        offset: where ``data`` starts in the object.
        data: the bytes. Valid until the consumer asks for the next chunk:
            the buffer behind it is then reused and this view released
            (using it raises ValueError). Copy (``bytes(data)``) what must
            outlive the step. Empty when the stream has a sink, which took
            the bytes already.
        last: True on the object's final chunk (an empty object yields one
            empty chunk with ``last=True``).
        nbytes: how many of the object's bytes this chunk covers:
            ``len(data)``, or with a sink, the bytes the sink took.
    """

    ref: ObjectRef
    offset: int
    data: memoryview
    last: bool
    nbytes: int


#: What a stream takes: an object, or ``(object, start)`` for its bytes from ``start`` on
#: (a resumed read: the next record's byte offset).
Target = ObjectRef | tuple[ObjectRef, int]


def plan_parts(refs: Iterable[Target], part_size: int, threshold: int,
               first_part: int = 0) -> Iterator[tuple[ObjectRef, int, int, bool]]:
    """``(ref, offset, length, last)`` per part, in delivery order.

    Objects of at most ``threshold`` bytes are one whole part; larger ones
    are cut into ``part_size`` ranges (the last one shorter). With
    ``first_part`` > 0, the first object's first part is at most that long
    (the rest of that object follows from there), so that the stream's first
    bytes arrive after one short GET rather than a whole part. A
    ``(ref, start)`` pair plans only the bytes from ``start`` on (ranges
    counted from there; ``start == size`` gives one empty last part).
    """
    first = first_part
    for target in refs:
        ref, start = target if isinstance(target, tuple) else (target, 0)
        size = ref.size
        if size < 0:
            raise ValueError(f"object {ref.url} has a negative size ({size})")
        if not 0 <= start <= size:
            raise ValueError(f"start {start} is outside object {ref.url} ({size} bytes)")
        rest = size - start
        whole = rest <= threshold
        # The head: only of the stream's first object, and only if shorter than its first part.
        head = first if first < (rest if whole else part_size) else 0
        first = 0
        if head:
            yield ref, start, head, False
        if whole:
            yield ref, start + head, rest - head, True
            continue
        for offset in range(start + head, size, part_size):
            length = min(part_size, size - offset)
            yield ref, offset, length, offset + length == size


#: ``sink(ref, offset, data)``: called on a worker thread with each run of
#: bytes as it arrives, before its part is delivered (see
#: :meth:`Transport.stream`).
Sink = Callable[[ObjectRef, int, memoryview], None]
#: Bytes of landing buffer per part in flight when a sink takes the bytes:
#: one socket read's worth (the S3 backend reads at most 1 MiB at a time).
SINK_BUFFER = 1024 * 1024


class _Slot:
    """One admitted part: its buffer and, once fetched, its view or error.

    A part is fetched by one GET (its *first read*) unless the stream's end
    hands the unread rest of it to further GETs (:meth:`ChunkStream._split_tail`):
    the first read then stops at ``stop``, and the part is done once every
    read of it has ended.
    """

    __slots__ = ("ref", "offset", "length", "last", "buf", "view", "done", "error", "got", "stop", "reads")

    def __init__(self, ref, offset=0, length=0, last=True, buf=None, *, done=False, error=None):
        self.ref = ref
        self.offset = offset
        self.length = length
        self.last = last
        self.buf: bytearray | None = buf
        self.view: memoryview | None = None
        self.done = done
        self.error: BaseException | None = error
        # Invariant: bytes [0, got) have landed from the first read, which
        # reads [0, stop) (stop <= length); [stop, length) belongs to other
        # reads. reads == the reads of this part not yet ended.
        self.got = 0
        self.stop = length
        self.reads = 1


class ChunkStream(Iterator[Chunk]):
    """Iterator of :class:`Chunk` over many objects; made by ``Transport.stream``.

    Close it (or use it as a context manager) when stopping early: that
    cancels outstanding reads and lets its worker threads end.

    Args:
        refs: the objects, in delivery order.
        config: part sizes, budget and workers.
        fetcher: reads a range with retries (``read``, and ``read_to`` for a sink).
        stats: counters; the stream raises ``buffer_peak``.
        spare: free buffers to start from, and where this stream's go when it ends.
        sink: takes the bytes on the worker threads (see ``Transport.stream``).
    """

    def __init__(self, refs: Iterable[Target], config: TransportConfig, fetcher: Fetcher,
                 stats: TransportStats, *, spare: SpareShelf | None = None, sink: Sink | None = None) -> None:
        self._sink = sink
        self._fetcher = fetcher
        self._stats = stats
        self._max_part = config.max_part
        # A sink's consumer does nothing with its bytes: its demand is the configured target.
        self._demand = RateMeter(config.target_rate)
        self._inflight_rules = Inflight(config, fetcher.link, self._demand)
        self._plan = plan_parts(refs, config.part_size, config.threshold, config.first_part_size)
        self._cond = threading.Condition()
        self._cancel = threading.Event()
        # Threads start as parts are submitted: max_workers of them on a near store.
        self._executor = ThreadPoolExecutor(config.connections, thread_name_prefix="channels-transport")
        # Invariant: the pool's lent plus kept bytes <= budget_bytes; every
        # admitted slot's buffer and the held slot's buffer are lent out of
        # this pool (with a sink, only slots in flight have one: a fetched
        # part's goes back). It starts with the spare buffers: no page faults.
        self._pool = BufferPool(config.budget_bytes, spare=spare)
        self._stats.peak("buffer_peak", self._pool.peak_held)
        # Invariant: slots in plan order; window[0] is the next to deliver;
        # window_bytes == the sum of their lengths. len(window) <=
        # window_limit bounds the slots of empty objects too.
        self._window: deque[_Slot] = deque()
        self._window_bytes = 0
        self._window_limit = max(64, 8 * config.connections)
        # Invariant: inflight == slots submitted and not done, inflight_bytes
        # their lengths; inflight <= the Inflight limit when each was admitted.
        self._inflight = 0
        self._inflight_bytes = 0
        # Invariant: later_reads == reads of admitted parts beyond their first, not yet ended
        # (_split_tail, which keeps inflight + later_reads <= connections).
        self._later_reads = 0
        self._later_waiting = 0  # of those, the ones no bytes have landed from yet
        self._connections = config.connections
        # The latest time a part admitted so far is expected to land (on a far store).
        self._landing = 0.0
        self._first_ref: ObjectRef | None = None  # the stream's first object: its head came first
        self._handed_at = 0.0  # when the consumer got the held chunk
        self._pending: tuple | None = None  # next part, planned but waiting for budget
        self._planned_all = False
        self._held: _Slot | None = None  # the slot whose view the consumer holds
        self._closed = False

    # ------------------------------------------------------------ consumer side

    def __iter__(self) -> ChunkStream:
        return self

    def __next__(self) -> Chunk:
        called = time.perf_counter()
        with self._cond:
            busy = (self._held.length, called - self._handed_at) if self._held is not None else None
            self._release_held()
            if self._closed:
                raise StopIteration
            self._admit()
            if not self._window:  # see the module docstring: the plan is spent
                self._close_locked()
                raise StopIteration
            head = self._window[0]
            while not head.done:
                self._cond.wait()
                if self._closed:  # closed from another thread while we waited
                    raise StopIteration
            self._window.popleft()
            self._window_bytes -= head.length
            if head.error is not None:
                self._close_locked()
                raise head.error
            self._held = head
            data = head.view if head.view is not None else memoryview(b"")
            head.view = data
            self._handed_at = time.perf_counter()
            if busy is not None and self._sink is None:  # its own time with the last chunk
                self._demand.add(*busy)
        return Chunk(head.ref, head.offset, data, head.last, head.length)

    def close(self) -> None:
        """Cancel outstanding reads and free every buffer; idempotent."""
        with self._cond:
            self._close_locked()

    @property
    def buffer_peak(self) -> int:
        """The most buffer bytes this stream held at once (<= budget_bytes)."""
        return self._pool.peak_held

    def __enter__(self) -> ChunkStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass

    # ------------------------------------------------------------ internals (lock held)

    def _release_held(self) -> None:
        slot, self._held = self._held, None
        if slot is None:
            return
        if slot.view is not None:
            try:
                slot.view.release()
            except BufferError:  # the consumer exported it (np.frombuffer...): its problem
                pass
        if slot.buf is not None and not self._closed:
            self._pool.release(slot.buf)

    def _admit(self) -> None:
        """Admit parts in plan order while workers, window and budget allow."""
        rules = self._inflight_rules
        while not self._closed and len(self._window) < self._window_limit:
            part, self._pending = self._pending, None
            if part is None:
                if self._planned_all:
                    return
                try:
                    part = next(self._plan)
                except StopIteration:
                    self._planned_all = True
                    return
                except BaseException as exc:  # bad ref or failing listing: raise it in order
                    self._planned_all = True
                    self._window.append(_Slot(None, done=True, error=exc))
                    return
            ref, offset, length, last = part
            if length == 0:
                self._window.append(_Slot(ref, done=True))
                continue
            if self._inflight >= rules.limit(length):
                self._pending = part
                return
            # With a sink, a part needs only a landing buffer for one run.
            room = None if self._sink is not None else self._pool.limit - self._pool.in_use
            if self._first_ref is None:
                self._first_ref = ref
            now = time.perf_counter()
            # The first object is not cut: its head (first_part_size) brings the first bytes,
            # and the rest lands with the parts admitted beside it.
            n = length if ref is self._first_ref else rules.piece(
                length, self._window_bytes, max(0.0, self._landing - now), room, self._inflight_bytes)
            size = size_class(n if self._sink is None else min(n, SINK_BUFFER), self._max_part)
            buf = self._pool.try_take(size)
            if buf is None:
                self._pending = part
                return
            if n < length:  # the rest of the part is admitted next, the same way
                self._pending = (ref, offset + n, length - n, last)
                self._stats.add(splits=1)
            self._stats.peak("buffer_peak", self._pool.peak_held)
            slot = _Slot(ref, offset, n, last and n == length, buf)
            self._window.append(slot)
            self._window_bytes += n
            try:
                self._executor.submit(self._fetch, slot)
            except RuntimeError as exc:  # interpreter shutting down: fail in order, never hang
                slot.done, slot.error = True, exc
                return
            self._inflight += 1
            self._inflight_bytes += n
            est = rules.far()
            if est is not None:
                self._landing = max(self._landing, now + est.seconds(n))
            self._stats.peak("inflight_peak", self._inflight)
            self._stats.peak("inflight_bytes_peak", self._inflight_bytes)

    def _close_locked(self) -> None:
        if self._closed:
            return
        self._release_held()
        for slot in self._window:  # fetched but not delivered: nobody writes these
            if slot.done and slot.buf is not None:
                self._pool.release(slot.buf)
        self._closed = True
        self._cancel.set()
        self._window.clear()
        self._window_bytes = 0
        self._pending = None
        self._pool.close()  # its free buffers go to the spare shelf, for the next stream
        self._cond.notify_all()
        # Queued parts never start; running ones stop at their next cancel
        # check. Not waiting keeps close() prompt even on a stalled socket.
        self._executor.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------ worker side

    def _on_data(self, ref: ObjectRef):
        sink, cancel = self._sink, self._cancel

        def on_data(offset: int, data: memoryview) -> None:
            if cancel.is_set():  # closed: the sink's work is no longer wanted
                raise Cancelled()
            sink(ref, offset, data)

        return on_data

    def _fetch(self, slot: _Slot) -> None:
        """A part's first read (see :class:`_Slot`)."""
        error = None
        try:
            ref = slot.ref
            if self._sink is None:
                view = memoryview(slot.buf)[: slot.length]
                self._fetcher.read(ref.url, slot.offset, view, ref.size, ref.etag, self._cancel,
                                   self._first_read(slot))
            else:
                scratch = memoryview(slot.buf)[: min(slot.length, SINK_BUFFER)]
                self._fetcher.read_to(ref.url, slot.offset, slot.length, scratch, self._on_data(ref),
                                      ref.size, ref.etag, self._cancel)
        except Cancelled:  # the stream closed, or the rest of the part is read elsewhere (Truncated)
            pass
        except BaseException as exc:  # delivered to the consumer in plan order
            error = exc
        self._read_ended(slot, error)

    def _fetch_rest(self, slot: _Slot, start: int, end: int) -> None:
        """A later read of a part: bytes ``[start, end)`` of it (see :meth:`_split_tail`)."""
        error = None
        waiting = [True]  # no bytes landed yet

        def landed(_end: int) -> None:
            if waiting[0]:
                waiting[0] = False
                with self._cond:
                    self._later_waiting -= 1
                    self._split_tail()

        try:
            ref = slot.ref
            view = memoryview(slot.buf)[start:end]
            self._fetcher.read(ref.url, slot.offset + start, view, ref.size, ref.etag, self._cancel, landed)
        except Cancelled:
            pass
        except BaseException as exc:
            error = exc
        self._read_ended(slot, error, later=waiting)

    def _first_read(self, slot: _Slot):
        """The ``progress`` of a part's first read: notes the bytes landed, and ends the read once
        it has landed the bytes before ``slot.stop`` (the rest being another read's)."""
        base = slot.offset

        def landed(end: int) -> None:
            got, begun = end - base, slot.got > 0
            slot.got = got
            if got >= slot.stop < slot.length:
                raise Truncated(got)
            if not begun and self._planned_all:  # maybe the last GET of the stream to begin
                with self._cond:
                    self._split_tail()

        return landed

    def _read_ended(self, slot: _Slot, error: BaseException | None, later: list[bool] | None = None) -> None:
        """One read of ``slot`` ended (``later``: a later read, and whether it is still waiting for
        its first bytes)."""
        with self._cond:
            slot.reads -= 1
            if later is not None:
                self._later_reads -= 1
                if later[0]:
                    later[0] = False
                    self._later_waiting -= 1
            if error is not None and slot.error is None:
                slot.error = error
            if not slot.reads:
                slot.done = True
                self._inflight -= 1
                self._inflight_bytes -= slot.length
                if self._sink is not None:  # the landing buffer is free at once
                    if not self._closed:
                        self._pool.release(slot.buf)
                    slot.buf = None
                    slot.view = memoryview(b"")  # the sink took the bytes
                elif slot.error is None and not self._closed:
                    slot.view = memoryview(slot.buf)[: slot.length]
            if not self._closed:
                self._admit()
                self._split_tail()
            self._cond.notify_all()

    def _split_tail(self) -> None:
        """At the end of a stream from a far store, hand the back of a part still arriving to a GET
        of its own (lock held): the part with the most bytes still to come on its first read, cut
        where :meth:`Inflight.hand_over` says.

        Only once the plan is spent (a free connection has nothing else to
        fetch) and every read in flight has begun to land, so one hand-over
        at a time: a store that still has requests waiting would serve the
        new one behind them. And only for objects read by their ETag (the S3
        backend's ``If-Match``): the first read may land up to one socket
        read past its cut before it sees it, into bytes the new GET writes
        too (a cache keeps both), which are then the same bytes. Not for a
        sink, which must have each byte once.
        """
        if (self._closed or self._sink is not None or not self._planned_all or self._pending is not None
                or self._later_waiting or self._inflight + self._later_reads >= self._connections):
            return
        best = None
        for slot in self._window:
            if slot.done:
                continue
            if slot.got == 0:
                return  # a GET still waiting for its first bytes
            if best is None or slot.stop - slot.got > best.stop - best.got:
                best = slot
        if best is None:
            return
        cut = self._inflight_rules.hand_over(best.got, best.stop)
        ref = best.ref
        if cut is None or not (ref.etag and self._fetcher.backend_for(ref.url).verifies_etag):
            return
        try:
            self._executor.submit(self._fetch_rest, best, cut, best.stop)
        except RuntimeError:  # interpreter shutting down: the first read goes on to the end
            return
        # The later read cannot end before this: its end takes the lock held here.
        best.stop = cut
        best.reads += 1
        self._later_reads += 1
        self._later_waiting += 1
        self._stats.add(tail_splits=1)
