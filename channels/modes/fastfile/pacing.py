"""How far a FastFile view reads ahead: sized by the transport's link and the readers' own rate.

On a near store nothing changes: ``prefetch_files`` files ahead, at most
half the budget, each file's first window one GET. On a far store (the
transport measures it, :meth:`~channels.transport.link.LinkEstimate.far`),
bytes in flight must cover the bandwidth-delay product, so:

* **more files ahead**: as many as Little's law asks for (the rate the
  readers could take times the time one first window takes to land, over
  its size), in up to all of the budget but what the open files' windows need
  (:meth:`Pacing.files_ahead`, :meth:`Pacing.ahead_room`);
* **ranged parts**: a window the reader will reach before one GET could
  bring it is fetched as parallel ranged GETs, as many as make it land in
  time (:meth:`Pacing.parts`, through
  :func:`~channels.transport.link.parts_needed`): a file opened with no
  files fetched ahead beside it (a reader in shuffled order), a file ahead
  fetched alone that the reader will reach too soon (the budget held too
  few files ahead). Windows fetched together (the files ahead of a walk's
  start) stay one GET each: they land together, the reader waits for the
  earlier ones anyway, and each cut is one more request (measured on moto
  through ``s3-like``: cutting such waves into 8 MiB parts took a view
  reader from about 550 to 480 MB/s, into 2 MiB parts to 300).

The readers' rate (:class:`~channels.transport.link.RateMeter`) is what
they take while not waiting for bytes: each read's own time and the time
between a handle's reads, less its waits for bytes to land
(:meth:`Pacing.note_read`).
"""

from __future__ import annotations

import math
import threading
import time

from channels.modes.fastfile.config import ReadaheadConfig
from channels.transport.link import LinkEstimate, LinkMonitor, RateMeter, parts_needed

#: A gap between two reads of one handle longer than this is the reader doing
#: something else (or gone), not reading: it does not count as reading time.
IDLE_GAP = 1.0


class Pacing:
    """The view's readahead sizes; thread-safe.

    Args:
        link: the transport's measurements of the store (None: always near).
        config: ``prefetch_files``, ``max_window``.
        target_rate: bytes/s the readers are assumed to take until measured,
            and the most ever assumed.
        min_part: the least bytes of a ranged part.
    """

    def __init__(self, link: LinkMonitor | None, config: ReadaheadConfig, *, target_rate: float,
                 min_part: int) -> None:
        self.link = link
        self.config = config
        self.min_part = min_part
        self.readers = RateMeter(target_rate, decay=0.95)
        self._lock = threading.Lock()
        self._landing = 0.0  # when the windows fetched so far are expected to have landed
        self.walking = True  # the last file read on from its start fetched files ahead (or was the first)

    def far(self) -> LinkEstimate | None:
        """The link's estimate when the store is far for these readers, else None."""
        est = self.link.estimate() if self.link is not None else None
        return est if est is not None and est.far(self.readers.rate) else None

    def files_ahead(self, size: int) -> int:
        """How many files of about ``size`` bytes to fetch ahead of a reader going from file to file."""
        est = self.far()
        n = self.config.prefetch_files
        if est is None or size <= 0 or n == 0:
            return n
        return max(n, math.ceil(self.readers.rate * est.seconds(size) / size))

    def ahead_room(self, limit: int) -> int:
        """Budget bytes files ahead may hold, of a view budget of ``limit``: half on a
        near store; on a far one all but two whole first windows (the files being read
        hold theirs; larger windows shrink to what is left)."""
        if self.far() is None:
            return limit // 2
        return max(limit // 2, limit - 2 * max(self.config.whole_object_bytes, self.config.initial_window))

    def parts(self, n: int, ahead: int) -> int:
        """How many parallel ranged GETs bring a window of ``n`` bytes, fetched now, in time
        for a reader that reaches it after ``ahead`` other bytes, and after the windows
        fetched before it have landed (1 on a near store)."""
        est = self.far()
        if est is None:
            return 1
        rate = self.readers.rate
        now = time.perf_counter()
        with self._lock:
            due = max(self._landing - now, ahead / rate) + n / rate
            k = parts_needed(n, due, rate, est, min_part=self.min_part, max_parts=max(1, n // self.min_part),
                             queued=est.queued(self.link.pending))
            self._landing = max(self._landing, now + est.seconds(-(-n // k)))
        return k

    def alone(self) -> bool:
        """Whether a file read on from its start has no files fetched ahead beside it:
        its readers do not walk from file to file (the last one read on fetched none)."""
        return not self.walking

    def note_read(self, nbytes: int, seconds: float) -> None:
        """A reader took ``nbytes`` in ``seconds`` of its own time (its waits for bytes excluded)."""
        if nbytes > 0 and seconds > 0:
            self.readers.add(nbytes, seconds)


class ReaderClock:
    """Tells a view's :class:`Pacing` (if any) how fast one handle's reader takes bytes."""

    __slots__ = ("_last_read", "pacing")

    def __init__(self, pacing: Pacing | None) -> None:
        self.pacing = pacing
        self._last_read: float | None = None  # when the last read returned (the reader's clock)

    def account(self, t_in: float, n: int, waited: float) -> None:
        """A read that began at ``t_in`` gave ``n`` bytes: tell the pacing the read's own time
        and the gap since the last one (if short: a reader at work), less ``waited`` for bytes."""
        if self.pacing is None:
            return
        now = time.perf_counter()
        gap = t_in - self._last_read if self._last_read is not None else 0.0
        gap = gap if gap < IDLE_GAP else 0.0
        self._last_read = now
        self.pacing.note_read(n, now - t_in - waited + gap)
