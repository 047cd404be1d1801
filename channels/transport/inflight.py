"""How many parts a stream keeps in flight, and how long each one is: sized by the link.

A stream (:class:`~channels.transport.stream.ChunkStream`) asks its
:class:`Inflight` two things each time it admits a part, in plan order:

* :meth:`Inflight.limit`: how many GETs may be in flight. Little's law: to
  hand the consumer ``demand`` bytes/s of parts that each take
  ``link.seconds(part)`` to land, ``demand * link.seconds(part) / part``
  must be in flight. Never fewer than ``max_workers`` (what a near store
  gets, as before), never more than ``max_connections``.
* :meth:`Inflight.piece`: how much of the next planned part to fetch in one
  GET. All of it on a near store, and whenever it lands about when the
  consumer gets to it: after the parts before it have landed and it has
  taken their bytes. Otherwise (a part admitted late, when the budget freed
  room near the end of a stream, behind parts that have all landed) a
  front piece, cut at a power of two of at least ``min_part_size`` so that
  its ranges, fetched in parallel, land in time
  (:func:`~channels.transport.link.parts_needed`), or to fit the budget's
  room now rather than wait for a whole part's; the rest of the part comes
  next, the same way. Each cut is one more request (on moto, one more pass
  over the whole object), so parts are cut only where one would be late.

* :meth:`Inflight.hand_over`: at a stream's end, where a part's GET still
  arriving should stop so that a new GET takes the back of its bytes.

The store is *far* when its connections are capped each on its own (more
connections carry more bytes) and one carries less than the consumer takes
(:meth:`~channels.transport.link.LinkEstimate.far`); only then does anything
here differ from fetching whole planned parts with ``max_workers`` threads.
"""

from __future__ import annotations

import math

from channels.transport.config import TransportConfig
from channels.transport.link import LinkEstimate, LinkMonitor, RateMeter, parts_needed


#: Where :meth:`Inflight.hand_over` cuts: a multiple of this.
HAND_OVER_ALIGN = 64 * 1024
#: The least bytes :meth:`Inflight.hand_over` gives a new GET: the stream's end then comes sooner
#: by their transfer time on one connection (about 23 ms at 90 MB/s), for one more request.
HAND_OVER_MIN = 2 * 1024 * 1024


def floor_pow2(n: int) -> int:
    """The largest power of two at most ``n`` (``n`` >= 1).

    Example:
        >>> floor_pow2(5 << 20) == 4 << 20, floor_pow2(1)
        (True, 1)
    """
    return 1 << (n.bit_length() - 1)


class Inflight:
    """The sizing rules of one stream; see the module docstring.

    Args:
        config: ``max_workers``, ``max_connections``, ``min_part_size``.
        link: the transport's measurements of the store.
        demand: how fast the consumer takes bytes (a File-mode sink: the
            configured ``target_rate``).
    """

    def __init__(self, config: TransportConfig, link: LinkMonitor, demand: RateMeter) -> None:
        self._workers = config.max_workers
        self._connections = config.connections
        self._min_part = config.min_part_size
        self.link = link
        self.demand = demand

    def far(self) -> LinkEstimate | None:
        """The link's estimate when the store is far (see the module docstring), else None."""
        est = self.link.estimate()
        return est if est is not None and est.far(self.demand.rate) else None

    def limit(self, length: int) -> int:
        """The most GETs in flight while parts of about ``length`` bytes are fetched."""
        est = self.far()
        if est is None or length <= 0:
            return self._workers
        need = math.ceil(self.demand.rate * est.seconds(length) / length)
        return min(self._connections, max(self._workers, need))

    def piece(self, length: int, ahead: int, wait: float, room: int | None, inflight: int = 0) -> int:
        """Bytes to fetch now from the front of a planned part of ``length`` bytes.

        The consumer reaches the part once the parts before it have landed
        (``wait``) and it has taken their bytes (``ahead``, at its rate),
        whichever is later; it needs the part's last byte ``length / demand``
        after that. A part that would land later, fetched whole, is cut.

        Args:
            length: the planned part's bytes.
            ahead: bytes the consumer takes before it reaches this part.
            wait: seconds until the parts before this one are expected to have landed.
            room: buffer bytes the budget could grant now (None: no budget
                applies, as for a sink's landing buffers).
            inflight: bytes the stream has asked for and not received.

        Returns:
            ``length``, or less (a front piece); a result whose buffer does
            not fit ``room`` means: wait for room.
        """
        est = self.far()
        if est is None or length <= self._min_part:
            return length
        demand = self.demand.rate
        due = max(wait, ahead / demand) + length / demand
        queued = est.queued(max(self.link.pending, inflight))
        k = parts_needed(length, due, demand, est, min_part=self._min_part, max_parts=length // self._min_part,
                         queued=queued)
        piece = length if k == 1 else max(self._min_part, floor_pow2(-(-length // k)))
        if k > 1 and room is not None and piece > room >= self._min_part:
            # Late already: bytes in flight now beat a whole piece after the wait for its room.
            piece = floor_pow2(room)
        return min(piece, length)

    def hand_over(self, got: int, stop: int) -> int | None:
        """Where a GET with bytes ``[got, stop)`` of its part still to come should stop, a new GET
        taking the rest; None to let it run (a near store, or too little to gain).

        At a stream's end nothing is left to fetch but the parts in flight,
        and on a far store each lands at one connection's rate while the
        connections already done sit idle: the last 16 MiB takes some 190 ms
        at S3's ~90 MB/s. Cut where both land together, the new GET after its
        time to first byte (``ttfb * rate`` bytes of head start for the first),
        the stream's end comes sooner by the new GET's bytes' transfer time;
        it is cut only if those are at least :data:`HAND_OVER_MIN`.

        Example:
            >>> link = LinkMonitor()
            >>> for _ in range(8):
            ...     link.observe(0.02, 90e6, receiving=8)
            >>> rules = Inflight(TransportConfig(), link, RateMeter(1e9))
            >>> rules.hand_over(1 << 20, 16 << 20) / 2**20, rules.hand_over(14 << 20, 16 << 20)
            (9.375, None)
        """
        est = self.far()
        if est is None:
            return None
        head_start = est.ttfb * est.rate
        cut = -(-int((got + stop + head_start) / 2) // HAND_OVER_ALIGN) * HAND_OVER_ALIGN
        return cut if stop - cut >= HAND_OVER_MIN else None
