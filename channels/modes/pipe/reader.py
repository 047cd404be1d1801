"""Pipe mode in process: a channel's objects as a stream of records.

The Python API a training script imports instead of reading a FIFO::

    from channels.modes.pipe.reader import PipeReader

    with PipeReader("s3://bucket/train/", framing="tfrecord", shuffle_seed=7,
                    hosts=4, host_index=rank) as reader:
        for epoch in range(10):
            for record in reader.epoch(epoch):     # memoryview, see below
                step(record)

What one epoch is: the source is listed once per reader (the listing is
reused by every epoch), planned for (hosts, host_index, shuffle seed, epoch)
with :func:`channels.sharding.plan`, expanded to this host's objects in the
epoch's order, and streamed through the reader's one
:class:`~channels.transport.Transport`, which reads ahead across objects
within its memory budget. Gzip objects are inflated as streams, never whole.

Framing (``framing=``) says what a record is:

* ``"raw"``: the bytes as they arrive, in chunks of no meaning (a chunk never
  spans two objects); use it to copy bytes somewhere.
* ``"object"``: each object whole, one record per object. The default with
  ``record_wrapper="RecordIO"``, where SageMaker's FIFO carries each object
  as one RecordIO record. An object that arrives in one chunk (up to the
  transport's ``part_size``) is not copied; a larger one is joined into one
  buffer, so memory then holds the largest object.
* ``"recordio"``, ``"tfrecord"``, ``"lines"``: records framed inside each
  object by :func:`channels.records.framer` (every object framed from its
  own start). Corruption raises :class:`~channels.errors.RecordError` naming
  the object URL and byte offset (in the inflated bytes for Gzip objects).
* ``"parquet"``: :class:`pyarrow.RecordBatch` es of each object. Parquet
  needs random access (its footer comes last), so each object is gathered
  into memory first.

Record lifetime: a record is a ``memoryview`` into the transport's reusable
buffers, valid until the next record is requested; it is released after
that (touching it then raises ValueError). Copy (``bytes(record)``) what
must outlive the step, or iterate ``reader.records(copy=True)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from channels.listing import Listing, ObjectRef, list_source
from channels.modes.pipe.source import Piece, PipeSource, iter_pieces
from channels.records import framer, framer_names
from channels.sharding import check_host, plan
from channels.store import Store
from channels.transport import Transport, TransportConfig

RAW = "raw"
OBJECT = "object"
PARQUET = "parquet"
#: Every framing the reader takes.
FRAMINGS = (RAW, OBJECT, "recordio", "tfrecord", "lines", PARQUET)


class PipeReader:
    """One host's records of one channel, epoch after epoch.

    Args:
        channel_or_uri: a :class:`channels.spec.Channel`, a
            :class:`~channels.modes.pipe_source.PipeSource`, or the URI of a
            prefix (or of a manifest, with ``data_type``).
        host_index: this host's 0-based index.
        hosts: how many hosts share the channel.
        epoch: the epoch ``iter(reader)`` reads.
        framing: what a record is (see the module docstring); default
            ``"object"`` with the RecordIO wrapper, else ``"raw"``.
        compression: "None" | "Gzip"; overrides the channel's.
        record_wrapper: "None" | "RecordIO"; overrides the channel's.
        shuffle_seed: overrides the channel's ShuffleConfig seed.
        distribution: FullyReplicated | ShardedByS3Key (or a strategy name);
            overrides the channel's.
        data_type: S3Prefix | ManifestFile | AugmentedManifestFile, for a URI.
        attribute_names: the augmented manifest's streamed attributes, for a URI.
        check_crc: check checksums where the framing has them (TFRecord).
        store: endpoint and options (default: from the environment).
        config: transport tuning (budget, part size, workers).
        transport: a transport to share (the reader then does not close it);
            by default the reader makes and owns one.
        plan: read the objects from a job plan instead of listing the
            source: its URL (one GET), a :class:`channels.plan.JobPlan`
            already read, or a :class:`~channels.listing.Listing`.

    Raises:
        ValueError: an unknown framing, compression, wrapper or distribution
            (the message lists the valid ones), or a framing that
            contradicts the RecordIO wrapper.
        ShardingError: host_index out of range for hosts.
    """

    def __init__(self, channel_or_uri: Any, *, host_index: int = 0, hosts: int = 1, epoch: int = 0,
                 framing: str | None = None, compression: str | None = None,
                 record_wrapper: str | None = None, shuffle_seed: int | None = None,
                 distribution: str | None = None, data_type: str | None = None,
                 attribute_names: tuple[str, ...] | None = None, check_crc: bool = True,
                 store: Store | None = None, config: TransportConfig | None = None,
                 transport: Transport | None = None, plan: Any = None) -> None:
        self.source = _source(channel_or_uri, compression=compression, record_wrapper=record_wrapper,
                              shuffle_seed=shuffle_seed, distribution=distribution, data_type=data_type,
                              attribute_names=attribute_names)
        wrapped = self.source.record_wrapper == "RecordIO"
        framing = framing or (OBJECT if wrapped else RAW)
        if framing not in FRAMINGS:
            raise ValueError(f"unknown framing {framing!r}: use one of {', '.join(FRAMINGS)}")
        if wrapped and framing not in (OBJECT, RAW):
            raise ValueError(f"framing {framing!r} contradicts RecordWrapperType RecordIO, which makes "
                             f"each object one record: use framing='object' (or 'raw' for the bytes)")
        if framing not in (RAW, OBJECT, PARQUET) and framing not in framer_names():  # pragma: no cover
            raise ValueError(f"framing {framing!r} has no framer registered in channels.records")
        check_host(host_index, hosts)
        self.framing = framing
        self.host_index = host_index
        self.hosts = hosts
        self.default_epoch = epoch
        self.check_crc = check_crc
        self.store = store if store is not None else Store.from_env()
        self._owns_transport = transport is None
        self.transport = transport if transport is not None else Transport(self.store, config)
        self._listing: Listing | None = None
        self._plan = plan
        #: Work counters: objects, bytes_in (fetched), bytes_out (inflated), records.
        self.counts: dict[str, int] = {"objects": 0, "bytes_in": 0, "bytes_out": 0, "records": 0}

    @classmethod
    def from_channel(cls, channel: Any, **kwargs: Any) -> PipeReader:
        """A reader of a job's :class:`channels.spec.Channel`; kwargs as for the constructor."""
        return cls(PipeSource.from_channel(channel), **kwargs)

    # ------------------------------------------------------------ planning

    @property
    def listing(self) -> Listing:
        """The source's objects, listed (or read from the plan) on first use, then reused by every epoch."""
        if self._listing is None and self._plan is not None:
            from channels.plan import listing_from

            self._listing = listing_from(self._plan, self.source, store=self.store)
        if self._listing is None:
            s = self.source
            self._listing = list_source(s.uri, s.data_type, attribute_names=s.attribute_names, store=self.store)
        return self._listing

    def refs(self, epoch: int | None = None) -> list[ObjectRef]:
        """This host's objects for ``epoch``, in the order they are read."""
        epoch = self.default_epoch if epoch is None else epoch
        listing = self.listing
        p = plan(listing.unit_sizes(), self.hosts, self.source.strategy, seed=self.source.shuffle_seed,
                 epoch=epoch)
        return listing.expand(p.units_for(self.host_index))

    # ------------------------------------------------------------ reading

    def __iter__(self) -> Iterator[Any]:
        return self.epoch(self.default_epoch)

    def epoch(self, epoch: int) -> Iterator[Any]:
        """The records of ``epoch`` (memoryviews valid until the next record).

        Stopping early is fine: closing the iterator (or dropping it) cancels
        the reads still in flight.
        """
        pieces = self.pieces(epoch)
        if self.framing == RAW:
            return self._raw(pieces)
        if self.framing == OBJECT:
            return self._objects(pieces)
        if self.framing == PARQUET:
            return self._parquet(pieces)
        return self._framed(pieces)

    def records(self, epoch: int | None = None, *, copy: bool = True) -> Iterator[Any]:
        """The records of ``epoch`` as ``bytes`` the caller keeps (``copy=True``).

        Parquet batches pass through unchanged.
        """
        it = self.epoch(self.default_epoch if epoch is None else epoch)
        if not copy or self.framing == PARQUET:
            return it
        return (bytes(r) for r in it)

    def pieces(self, epoch: int | None = None) -> Iterator[Piece]:
        """The (inflated) bytes of ``epoch``'s objects, with object boundaries."""
        refs = self.refs(epoch)
        return iter_pieces(self.transport, refs, gzip=self.source.compression == "Gzip",
                           counts=self.counts)

    def stats(self) -> dict[str, int]:
        """The reader's counters and its transport's (requests, retries, buffer_peak...)."""
        out = {f"transport_{k}": v for k, v in self.transport.stats.snapshot().items()}
        out.update(self.counts)
        return out

    def close(self) -> None:
        """Close the transport (when the reader owns it); idempotent."""
        if self._owns_transport:
            self.transport.close()

    def __enter__(self) -> PipeReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"PipeReader({self.source.label!r}, framing={self.framing!r}, "
                f"host_index={self.host_index}, hosts={self.hosts})")

    # ------------------------------------------------------------ framings

    def _raw(self, pieces: Iterator[Piece]) -> Iterator[memoryview]:
        counts = self.counts
        with _closing(pieces):
            for piece in pieces:
                if piece.data:
                    counts["records"] += 1
                    yield piece.data

    def _objects(self, pieces: Iterator[Piece]) -> Iterator[memoryview]:
        counts = self.counts
        with _closing(pieces):
            joined: bytearray | None = None
            for piece in pieces:
                if joined is None:
                    if piece.last:  # the whole object in one piece: no copy
                        counts["records"] += 1
                        yield piece.data
                        continue
                    joined = bytearray()
                joined += piece.data
                if piece.last:
                    record, joined = joined, None
                    counts["records"] += 1
                    yield memoryview(record)

    def _framed(self, pieces: Iterator[Piece]) -> Iterator[memoryview]:
        counts = self.counts
        name, check_crc = self.framing, self.check_crc
        with _closing(pieces):
            f = None
            for piece in pieces:
                if f is None:
                    f = framer(name, piece.ref.url, check_crc=check_crc)
                for record in f.feed(piece.data):
                    counts["records"] += 1
                    yield record
                if piece.last:
                    for record in f.finish():
                        counts["records"] += 1
                        yield record
                    f = None

    def _parquet(self, pieces: Iterator[Piece]) -> Iterator[Any]:
        import pyarrow as pa

        from channels.records import iter_parquet_batches

        counts = self.counts
        with _closing(pieces):
            buf = bytearray()
            for piece in pieces:
                buf += piece.data
                if piece.last:
                    data, buf = pa.BufferReader(pa.py_buffer(buf)), bytearray()  # no copy
                    for batch in iter_parquet_batches(data, url=piece.ref.url):
                        counts["records"] += 1
                        yield batch


class _closing:
    """Close a generator on exit, so an abandoned epoch cancels its reads."""

    def __init__(self, gen: Iterator[Any]) -> None:
        self.gen = gen

    def __enter__(self) -> Iterator[Any]:
        return self.gen

    def __exit__(self, *exc: object) -> None:
        close = getattr(self.gen, "close", None)
        if close is not None:
            close()


def _source(channel_or_uri: Any, **overrides: Any) -> PipeSource:
    """A PipeSource from a Channel, a PipeSource or a URI, with overrides applied."""
    if isinstance(channel_or_uri, PipeSource):
        base = channel_or_uri
    elif isinstance(channel_or_uri, str):
        base = None
    elif hasattr(channel_or_uri, "data_source"):
        base = PipeSource.from_channel(channel_or_uri)
    else:
        raise TypeError(f"PipeReader needs a Channel, a PipeSource or a URI string, "
                        f"not {type(channel_or_uri).__name__}")
    given = {k: v for k, v in overrides.items() if v is not None}
    if base is None:
        return PipeSource(channel_or_uri, **given)
    if not given:
        return base
    fields = {k: getattr(base, k) for k in base.__dataclass_fields__}
    fields.update(given)
    return PipeSource(**fields)
