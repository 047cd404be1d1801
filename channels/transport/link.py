"""What the link to the store looks like, measured as bytes arrive, and what readahead must do about it.

On a far store (S3: tens of ms to the first byte, about 90 MB/s per
connection) only bytes in flight give throughput; on a near one (moto or
MinIO on loopback, a LAN) one connection outpaces any reader, and every
extra request is cost. So the transport measures instead of guessing:

* :class:`LinkMonitor` times every attempt the fetcher makes on a remote
  backend: the time from the request to its first bytes (TTFB), and the
  rate at which the rest arrives on that one connection (the S3 backend
  reports every socket read). Like BBR for TCP, the estimate's latency is
  the least TTFB of recent attempts (queueing at a busy endpoint inflates
  the rest); its rate is the median per-connection rate, and its ``peak``
  a high quantile.
* Whether more connections carry more bytes: on a far store each
  connection is capped on its own (S3 paces each at about 90 MB/s), so a
  connection keeps its rate while many others flow; on a near one they
  share one bottleneck (the endpoint's CPU, this machine's), and each gets
  less the more there are. The estimate's ``parallel`` is the median rate
  of attempts that ended while at least :data:`PARALLEL` were receiving,
  over the peak: about 1 when connections are capped on their own
  (measured through the ``s3-like`` proxy: 0.65-0.95), well under 0.5 when
  they share (moto on loopback, 32 parts in flight: 0.08-0.3).
* :class:`RateMeter` measures how fast a consumer takes bytes when it has
  them (its demand): the bandwidth in the bandwidth-delay product.
* :func:`parts_needed` is the one rule both readaheads use (the transport's
  streams and FastFile's windows): into how many ranged GETs, fetched in
  parallel, ``n`` bytes must be cut so that they land before the consumer
  needs them. One, whenever a single connection keeps up with the consumer
  (a near store: nothing changes there) or the bytes are needed late enough.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

#: Recent attempts an estimate is taken from.
SAMPLES = 64
#: Bytes an attempt must move after its first socket read to give a rate sample:
#: below this, one read's timing is noise.
RATE_MIN_BYTES = 512 * 1024
#: Attempts receiving at once for a rate sample to say whether connections share a bottleneck.
PARALLEL = 4
#: The quantile of recent rates taken as the most one connection carries: the very
#: highest are bursts (a client that read late finds the kernel's buffers full).
PEAK_QUANTILE = 0.9
#: The least ``LinkEstimate.parallel`` that says connections are capped each on their own
#: (measured: 0.75-0.95 through the ``s3-like`` proxy once 64 attempts are in; up to 0.44
#: on loopback moto with the machine at a load of 14 on 2 cores).
PARALLEL_MIN = 0.6
#: Bytes are cut into parallel parts only when, fetched in one GET, they would land later
#: than the consumer needs them by more than this share of that GET's time: bytes fetched
#: together (a stream's first wave) land together, and estimates are noisy; every cut is
#: one more request (on moto, one more pass over the whole object).
LATE = 0.25
#: Seconds over which bytes landed on all connections make one throughput sample.
SPAN = 0.1
#: The weight the highest throughput seen keeps per new sample (it fades over a few seconds).
THROUGHPUT_DECAY = 0.98
#: Seconds an attempt must take after its first socket read to give a rate sample.
RATE_MIN_SECONDS = 0.002


@dataclass(frozen=True)
class LinkEstimate:
    """The link as readahead sees it.

    Attributes:
        ttfb: seconds from a request to its first bytes, the least of recent attempts.
        rate: bytes/s on one connection once bytes flow, the median of recent attempts.
        samples: attempts the estimate is taken from.
        peak: bytes/s, the most one connection carries: the :data:`PEAK_QUANTILE`
            quantile of recent attempts' rates.
        parallel: the median rate of attempts that ended while :data:`PARALLEL`
            or more were receiving, over ``peak``: near 1 when each connection
            is capped on its own (more connections, more bytes), low when they
            share a bottleneck; 0 until such attempts were seen.
        throughput: bytes/s landed over all connections together, the most
            of recent spans of :data:`SPAN` seconds or more (0: not measured
            yet): what bytes already asked for drain at, however they are cut.
    """

    ttfb: float
    rate: float
    samples: int
    peak: float = 0.0
    parallel: float = 0.0
    throughput: float = 0.0

    def seconds(self, n: int) -> float:
        """How long one GET of ``n`` bytes takes, from request to last byte."""
        return self.ttfb + n / self.rate

    def queued(self, pending: int) -> float:
        """Seconds until ``pending`` bytes asked for (and not landed) have landed, at ``throughput``."""
        return pending / self.throughput if self.throughput > 0 else 0.0

    def far(self, demand: float) -> bool:
        """Whether readahead must widen for a consumer taking ``demand`` bytes/s: the
        connections are capped each on its own (``parallel`` >= :data:`PARALLEL_MIN`)
        and one carries less than the consumer takes."""
        return self.parallel >= PARALLEL_MIN and self.rate < demand


class LinkMonitor:
    """Times attempts and keeps the link's estimate; thread-safe.

    Args:
        samples: how many recent attempts the estimate is taken from.
    """

    def __init__(self, samples: int = SAMPLES) -> None:
        self._lock = threading.Lock()
        # Invariant: at most ``samples`` entries each, the newest last.
        self._ttfb: deque[float] = deque(maxlen=samples)
        self._rate: deque[tuple[float, int]] = deque(maxlen=samples)  # (bytes/s, attempts receiving)
        self._estimate: LinkEstimate | None = None
        # Invariant: receiving == attempts between their first bytes and their end;
        # pending == bytes attempts under way asked for and have not received;
        # landed == bytes received in all; marks: (time, landed), SPAN / 2 apart or more.
        self.receiving = 0
        self.pending = 0
        self._landed = 0
        self._marks: deque[tuple[float, int]] = deque(maxlen=samples)
        self._throughput = 0.0

    def attempt(self, start: int = 0, n: int = 0) -> Attempt:
        """A timer for one attempt, starting now, for bytes ``[start, start + n)``; tell it
        how far the bytes have landed."""
        return Attempt(self, start, n)

    def _flowed(self, nbytes: int, pending: int) -> None:
        """``nbytes`` landed (``pending`` fewer bytes are awaited): count them toward throughput."""
        now = time.perf_counter()
        with self._lock:
            self._landed += nbytes
            self.pending -= pending
            if not self._marks or now - self._marks[-1][0] >= SPAN / 2:
                self._marks.append((now, self._landed))
                if len(self._marks) >= 3:
                    (t0, b0), (t1, b1) = self._marks[-3], self._marks[-1]
                    self._throughput = max(self._throughput * THROUGHPUT_DECAY, (b1 - b0) / (t1 - t0))

    def observe(self, ttfb: float | None, rate: float | None, receiving: int = 1) -> None:
        """Add one attempt's time to first byte (seconds) and rate (bytes/s), either may be None;
        ``receiving``: the attempts receiving bytes when it ended, itself included."""
        with self._lock:
            if ttfb is not None:
                self._ttfb.append(ttfb)
            if rate is not None and rate > 0:
                self._rate.append((rate, receiving))
            if self._ttfb and self._rate:
                rates = sorted(r for r, _ in self._rate)
                top = rates[int(PEAK_QUANTILE * (len(rates) - 1))]
                crowded = [r for r, n in self._rate if n >= PARALLEL]
                parallel = _median(sorted(crowded)) / top if crowded else 0.0
                self._estimate = LinkEstimate(min(self._ttfb), _median(rates), len(rates), top, parallel,
                                              self._throughput)

    def _receiving(self, delta: int) -> int:
        with self._lock:
            self.receiving += delta
            return self.receiving

    def estimate(self) -> LinkEstimate | None:
        """The current estimate; None until an attempt has given both a TTFB and a rate."""
        return self._estimate

    def snapshot(self) -> dict[str, float | int | None]:
        """The estimate in report units: ``ttfb_ms``, ``rate_mb_s`` (10**6 bytes), ``samples``."""
        est = self._estimate
        if est is None:
            return {"ttfb_ms": None, "rate_mb_s": None, "peak_mb_s": None, "samples": 0, "parallel": None,
                    "throughput_mb_s": None}
        return {"ttfb_ms": est.ttfb * 1000, "rate_mb_s": est.rate / 1e6, "peak_mb_s": est.peak / 1e6,
                "samples": est.samples, "parallel": est.parallel, "throughput_mb_s": est.throughput / 1e6}

    def reset(self) -> None:
        """Forget every sample (the store changed, or a test starts afresh)."""
        with self._lock:
            self._ttfb.clear()
            self._rate.clear()
            self._marks.clear()
            self._throughput = 0.0
            self._estimate = None


class Attempt:
    """The timing of one attempt: made by :meth:`LinkMonitor.attempt`, told each
    offset the bytes have landed up to (:meth:`landed`), closed by :meth:`done`."""

    __slots__ = ("_monitor", "_start", "_first", "_first_end", "_last", "_last_end", "_reported", "_end",
                 "_at")

    def __init__(self, monitor: LinkMonitor, start: int = 0, n: int = 0) -> None:
        self._monitor = monitor
        self._start = time.perf_counter()
        self._first: float | None = None
        self._first_end = self._last_end = 0
        self._last = 0.0
        self._reported = False
        # Invariant: bytes [at, end) are awaited, and counted in the monitor's pending.
        self._at, self._end = start, start + n
        with monitor._lock:
            monitor.pending += n

    def landed(self, end: int) -> None:
        """Bytes have landed up to object offset ``end`` (called after each socket read)."""
        now = time.perf_counter()
        if self._first is None:
            self._first, self._first_end = now, end
            self._monitor._receiving(1)
        got = max(0, end - self._at)
        awaited = max(0, min(end, self._end) - self._at)
        self._at = max(self._at, end)
        self._monitor._flowed(got, awaited)
        self._last, self._last_end = now, end

    def progress(self, then: Callable[[int], None] | None) -> Callable[[int], None]:
        """A ``progress(end)`` callback that notes the bytes landed, then calls ``then`` (if any)."""
        def landed(end: int) -> None:
            self.landed(end)
            if then is not None:
                then(end)

        return landed

    def on_data(self, then: Callable[[int, memoryview], None]) -> Callable[[int, memoryview], None]:
        """An ``on_data(offset, data)`` callback that notes the bytes landed, then calls ``then``."""
        def landed(offset: int, data: memoryview) -> None:
            self.landed(offset + len(data))
            then(offset, data)

        return landed

    def done(self) -> None:
        """Report the attempt (whole or broken) to the monitor, once; bytes that never came report nothing."""
        if self._reported:
            return
        if self._end > self._at:  # bytes that will not come (a broken attempt): no longer awaited
            self._monitor._flowed(0, self._end - self._at)
            self._at = self._end
        if self._first is None:
            return
        self._reported = True
        receiving = self._monitor._receiving(-1) + 1
        moved, took = self._last_end - self._first_end, self._last - self._first
        rate = moved / took if moved >= RATE_MIN_BYTES and took >= RATE_MIN_SECONDS else None
        self._monitor.observe(self._first - self._start, rate, receiving)


class RateMeter:
    """How fast a consumer takes bytes while it has them (its demand), decaying old samples;
    thread-safe. Its waits for bytes are not its time: they are what readahead is for.

    Args:
        default: the rate assumed before any sample, and the most ever reported
            (bytes/s): a consumer that does nothing with its bytes would
            otherwise ask for infinite readahead.
        decay: the weight each older sample keeps per new one.
    """

    def __init__(self, default: float, decay: float = 0.8) -> None:
        self.default = default
        self._decay = decay
        self._lock = threading.Lock()
        # Invariant: the decayed sums of the samples' bytes and seconds.
        self._bytes = 0.0
        self._seconds = 0.0

    def add(self, nbytes: int, seconds: float) -> None:
        """The consumer took ``nbytes`` in ``seconds`` of its own time."""
        with self._lock:
            self._bytes = self._bytes * self._decay + nbytes
            self._seconds = self._seconds * self._decay + max(seconds, 0.0)

    @property
    def rate(self) -> float:
        """Bytes/s: the measured demand, or ``default`` before any sample; never above ``default``."""
        with self._lock:
            b, s = self._bytes, self._seconds
        return self.default if b <= 0 or s <= 0 else min(self.default, b / s)


def parts_needed(n: int, due: float, demand: float, link: LinkEstimate | None, *, min_part: int,
                 max_parts: int, queued: float = 0.0) -> int:
    """Into how many ranged GETs, fetched in parallel, ``n`` bytes should be cut.

    Each of ``k`` parts lands ``link.seconds(n / k)`` after it is asked for;
    the consumer needs the last of the ``n`` bytes ``due`` seconds from now,
    or, if that is too soon to make at all, wants them at least as fast as
    it reads (``demand`` bytes/s). So ``k = n / (rate * max(due - ttfb,
    n / demand, queued))``, rounded up, at most ``max_parts`` and no part
    under ``min_part`` bytes, where ``queued`` is how long the bytes asked
    for before these take to land at the link's throughput over all
    connections: cutting these does not beat that (behind a first wave of
    many parts, on an endpoint that serves them in turn), while their own
    ranges, on connections of their own, add to the throughput. It is 1 without
    an estimate, when one GET lands in time (within :data:`LATE` of its own
    time: a near store, bytes due late enough, far ahead in a stream), and
    when one connection is faster than the consumer.

    Example:
        >>> far = LinkEstimate(ttfb=0.02, rate=90e6, samples=8)
        >>> parts_needed(16 << 20, 0.0, 1e9, far, min_part=1 << 20, max_parts=64)  # wanted now
        12
        >>> parts_needed(16 << 20, 0.5, 1e9, far, min_part=1 << 20, max_parts=64)  # due in 0.5 s
        1
        >>> near = LinkEstimate(ttfb=0.002, rate=1.5e9, samples=8)
        >>> parts_needed(16 << 20, 0.0, 1e9, near, min_part=1 << 20, max_parts=64)
        1
    """
    if link is None or n <= min_part or demand <= 0 or link.seconds(n) * (1 - LATE) <= due:
        return 1
    window = max(due - link.ttfb, n / demand, queued)
    k = math.ceil(n / (link.rate * window) - 1e-9)
    return max(1, min(k, max_parts, n // min_part))


def _median(ordered: list[float]) -> float:
    """The median of a sorted, non-empty list (``statistics`` costs every transport's start-up 3 ms)."""
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
