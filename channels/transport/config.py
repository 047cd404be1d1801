"""How the transport moves bytes: one frozen, validated configuration."""

from __future__ import annotations

from dataclasses import dataclass

from channels.cache.config import CacheConfig
from channels.units import MIB


@dataclass(frozen=True)
class TransportConfig:
    """Tuning and safety knobs of the transport engine.

    The defaults were measured on a 2-core machine against moto on loopback
    (see benchmarks/test_bench_transport.py) and follow the design notes:
    ranged GETs of a few MiB, many in flight, a bounded memory budget.

    Attributes:
        part_size: bytes per ranged GET of a large object, and the default
            small-object threshold. 16 MiB (AWS suggests 8 or 16 MB ranges):
            per-request cost (signing, headers, a connection) is noise at this
            size, and objects up to 16 MiB, a common shard size, take one GET
            rather than two. Measured here on 16 MiB objects: whole GETs
            2,900 MB/s, two 8 MiB ranges 1,800 MB/s (moto reads the whole
            object for every ranged GET; real S3 does not, but requests halve).
        budget_bytes: the most bytes of part buffers one stream holds at once,
            in flight plus delivered to the consumer and not yet released.
            Must hold at least one part and one whole small object. The
            default holds 32 parts, one per worker: with large objects up to
            32 GETs in flight, about 2.9 GB/s from S3 at its ~90 MB/s per
            connection. Measured here through the bench proxy's ``s3-like``
            profile (20 ms to first byte, 90 MB/s per connection), Pipe on
            64 x 16 MiB kept 0.54x of its pass-through MB/s with 256 MiB (16
            GETs cap it at 1.44 GB/s) and 0.78x with 512 MiB, pass-through
            unchanged. A sink stream (File mode) needs 1 MiB per part in
            flight instead; FastFile has its own budget.
        max_workers: threads per stream, so the most GETs in flight at once.
        small_object_threshold: objects of at most this many bytes are fetched
            whole, in one GET each; larger ones in ``part_size`` ranges.
            None means ``part_size``.
        retries: further attempts after a failed one (so ``retries + 1``
            attempts). An attempt that made progress resets the count: a read
            resumes at the failed offset, so progress is never lost.
        backoff_base: seconds; the n-th consecutive retry sleeps a uniformly
            random time in ``[0, min(backoff_max, backoff_base * 2**(n-1))]``
            ("full jitter").
        backoff_max: seconds; the cap of one backoff sleep.
        connect_timeout: seconds to open a connection.
        read_timeout: seconds a response may stall (no byte arriving) before
            the attempt is abandoned and retried.
        verify_etag: send ``If-Match`` with the listed ETag and check the ETag
            of every response, so that an object overwritten between listing
            and reading raises ObjectChangedError instead of mixing versions.
        region: S3 region for signing; None means AWS_REGION,
            AWS_DEFAULT_REGION, the AWS config file, then ``us-east-1``.
        s3_backend: backend name for ``s3://`` URLs: ``"s3"`` (the fast
            http.client + SigV4 path) or ``"fsspec"`` (s3fs, slower, for stores the fast
            path cannot talk to).
        first_part_size: the most bytes of a stream's first part (of its
            first object), so that the first bytes arrive after one short GET
            rather than a whole part: at S3's ~90 MB/s per connection a
            16 MiB part takes ~190 ms to arrive, 1 MiB ~30 ms (measured
            through the bench proxy's ``s3-like`` profile: time to first byte
            218 ms with whole parts). 0 turns it off.
        max_connections: the most GETs one stream keeps in flight when the
            store is far (see :mod:`channels.transport.link`): as many as
            Little's law asks for the consumer's rate at the measured time
            to first byte and per-connection rate, never fewer than
            ``max_workers``, buffers within ``budget_bytes``. Threads start
            only as needed. None means 4 x ``max_workers`` (128 by default:
            at S3's ~90 MB/s per connection, about 11 GB/s). On a near
            store (one connection faster than the consumer) a stream keeps
            to ``max_workers``, as before.
        target_rate: bytes/s a consumer is assumed to take until its rate is
            measured, and the most readahead is sized for: a File-mode sink
            does nothing with its bytes, and would otherwise ask for
            infinite readahead. 4 GB/s: a little above the most one process
            took here (Pipe on loopback, 2.9-3.4 GB/s on an idle 2-core VM).
        min_part_size: the least bytes of a ranged part cut so that bytes
            land in time (on a far store). 8 MiB, the low end of AWS's
            advice (ranged GETs of 8-16 MB): a 16 MiB object is at most two
            GETs. Each cut costs a request; on moto, a pass over the whole
            object (measured here through the ``s3-like`` proxy, 32 x 16 MiB:
            cuts down to 2 MiB took Pipe from 1,004 to 472 MB/s, moto's CPU
            from 0.6 to 2+ s/GB).
        cache: a local cache of whole objects for later epochs (directory and
            size limit); None (the default) reads everything from the store
            every time. Objects with an ETag and a size, read through the S3
            fast path with ``verify_etag``, are kept; see
            :mod:`channels.transport.cached`.
    """

    part_size: int = 16 * MIB
    budget_bytes: int = 512 * MIB
    max_workers: int = 32
    small_object_threshold: int | None = None
    retries: int = 4
    backoff_base: float = 0.1
    backoff_max: float = 5.0
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    verify_etag: bool = True
    region: str | None = None
    s3_backend: str = "s3"
    first_part_size: int = 1 * MIB
    max_connections: int | None = None
    target_rate: int = 4_000_000_000
    min_part_size: int = 8 * MIB
    cache: CacheConfig | None = None

    def __post_init__(self) -> None:
        problems = []
        for name in ("part_size", "budget_bytes", "max_workers", "target_rate", "min_part_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                problems.append(f"{name} must be a positive int, got {value!r}")
        for name in ("retries", "first_part_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                problems.append(f"{name} must be an int >= 0, got {value!r}")
        threshold = self.small_object_threshold
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, int)
                                      or threshold < 0):
            problems.append(f"small_object_threshold must be an int >= 0 or None, got {threshold!r}")
        for name in ("connect_timeout", "read_timeout"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not value > 0:
                problems.append(f"{name} must be a number of seconds > 0, got {value!r}")
        if not isinstance(self.backoff_base, (int, float)) or self.backoff_base < 0:
            problems.append(f"backoff_base must be >= 0 seconds, got {self.backoff_base!r}")
        elif not isinstance(self.backoff_max, (int, float)) or self.backoff_max < self.backoff_base:
            problems.append(f"backoff_max must be >= backoff_base ({self.backoff_base}), "
                            f"got {self.backoff_max!r}")
        conns = self.max_connections
        if conns is not None and (isinstance(conns, bool) or not isinstance(conns, int) or conns < 1):
            problems.append(f"max_connections must be a positive int or None, got {conns!r}")
        elif not problems and conns is not None and conns < self.max_workers:
            problems.append(f"max_connections ({self.max_connections}) must be >= max_workers "
                            f"({self.max_workers})")
        if self.cache is not None and not isinstance(self.cache, CacheConfig):
            problems.append(f"cache must be a channels.cache.CacheConfig or None, got {self.cache!r}")
        if problems:
            raise ValueError("invalid TransportConfig: " + "; ".join(problems))
        # Every part must fit the budget on its own, or the head of the stream
        # could never be fetched.
        if self.part_size > self.budget_bytes:
            raise ValueError(f"invalid TransportConfig: part_size ({self.part_size}) exceeds "
                             f"budget_bytes ({self.budget_bytes}); raise the budget or lower the part size")
        if self.threshold > self.budget_bytes:
            raise ValueError(f"invalid TransportConfig: small_object_threshold ({self.threshold}) exceeds "
                             f"budget_bytes ({self.budget_bytes}); a whole object must fit the budget")

    @property
    def threshold(self) -> int:
        """The effective small-object threshold in bytes."""
        return self.part_size if self.small_object_threshold is None else self.small_object_threshold

    @property
    def connections(self) -> int:
        """The effective ``max_connections``."""
        return 4 * self.max_workers if self.max_connections is None else self.max_connections

    @property
    def max_part(self) -> int:
        """The largest single buffer a stream ever needs."""
        return max(self.part_size, self.threshold)
