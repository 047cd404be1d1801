"""What a Pipe channel streams, and its objects' bytes as ordered pieces.

:class:`PipeSource` is the channel's data as a frozen, validated value (the
source URI and type, compression, record wrapper, shuffle seed and
distribution); :func:`iter_pieces` turns a host's refs for one epoch into the
decompressed bytes of each object, in plan order, through one transport
stream. The Pipe reader frames those pieces into records; the FIFO server
writes them to a FIFO.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from channels.listing import DATA_TYPES, S3_PREFIX, ObjectRef
from channels.records import GzipDecoder
from channels.sharding import strategy_name
from channels.transport import Transport

COMPRESSIONS = ("None", "Gzip")
RECORD_WRAPPERS = ("None", "RecordIO")
#: Most bytes one inflated piece of a Gzip object holds.
GZIP_PIECE = 1 << 20


@dataclass(frozen=True)
class PipeSource:
    """One channel's data, as the job definition describes it.

    Attributes:
        uri: the S3Uri: a prefix, or a manifest's URL (any fsspec URL works).
        data_type: S3Prefix | ManifestFile | AugmentedManifestFile.
        attribute_names: the attributes streamed from an augmented manifest.
        compression: "None" or "Gzip" (each object is inflated as a stream).
        record_wrapper: "None" or "RecordIO" (each object is one record).
        shuffle_seed: ShuffleConfig's seed; None keeps the listing order.
        distribution: FullyReplicated | ShardedByS3Key, or one of
            :data:`channels.sharding.STRATEGIES` (e.g. "size-balanced").
        name: the channel's name, for messages and FIFO names.
    """

    uri: str
    data_type: str = S3_PREFIX
    attribute_names: tuple[str, ...] = ()
    compression: str = "None"
    record_wrapper: str = "None"
    shuffle_seed: int | None = None
    distribution: str = "FullyReplicated"
    name: str = ""

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.uri, str) or not self.uri:
            problems.append(f"uri must be a non-empty URL string, got {self.uri!r}")
        if self.data_type not in DATA_TYPES:
            problems.append(f"data_type {self.data_type!r} is not one of {', '.join(DATA_TYPES)}")
        if self.compression not in COMPRESSIONS:
            problems.append(f"compression {self.compression!r} is not one of {', '.join(COMPRESSIONS)}")
        if self.record_wrapper not in RECORD_WRAPPERS:
            problems.append(f"record_wrapper {self.record_wrapper!r} is not one of "
                            f"{', '.join(RECORD_WRAPPERS)}")
        seed = self.shuffle_seed
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            problems.append(f"shuffle_seed must be an int or None, got {seed!r}")
        try:
            strategy_name(self.distribution)
        except ValueError as exc:
            problems.append(str(exc))
        if problems:
            raise ValueError("invalid Pipe source: " + "; ".join(problems))
        object.__setattr__(self, "attribute_names", tuple(self.attribute_names))

    @property
    def strategy(self) -> str:
        """The sharding strategy's canonical name."""
        return strategy_name(self.distribution)

    @property
    def label(self) -> str:
        """The channel's name, else its URI: how messages name it."""
        return self.name or self.uri

    @classmethod
    def from_channel(cls, channel) -> PipeSource:
        """The source of a :class:`channels.spec.Channel`."""
        ds = channel.data_source
        return cls(uri=ds.s3_uri, data_type=ds.s3_data_type, attribute_names=tuple(ds.attribute_names),
                   compression=channel.compression or "None",
                   record_wrapper=channel.record_wrapper or "None",
                   shuffle_seed=channel.shuffle_seed, distribution=ds.distribution or "FullyReplicated",
                   name=channel.name)


@dataclass(frozen=True, slots=True)
class Piece:
    """A run of one object's (decompressed) bytes.

    Attributes:
        ref: the object.
        offset: where ``data`` starts in the object's (decompressed) bytes.
        data: the bytes; valid until the next piece is requested.
        last: True on the object's final piece; an object always ends with
            one piece marked last (empty for an empty object, and for a Gzip
            object, whose end is only known once its stream ends).
    """

    ref: ObjectRef
    offset: int
    data: memoryview
    last: bool


def iter_pieces(transport: Transport, refs: Iterable[ObjectRef | tuple[ObjectRef, int]], *, gzip: bool = False,
                counts: dict[str, int] | None = None) -> Iterator[Piece]:
    """Every byte of ``refs``, object by object, as :class:`Piece` s.

    Objects are fetched through one ``transport.stream`` that reads ahead
    across objects within its budget. Inline refs (augmented-manifest values)
    carry their bytes and make no request: they are left out of the stream
    and slotted back in at their place, so they never stall its lookahead.
    With ``gzip``, each fetched object is inflated as a stream, in pieces of
    at most :data:`GZIP_PIECE` bytes (inline values are never compressed).

    Closing the generator (or dropping it) closes the transport stream.

    Args:
        transport: the engine that fetches.
        refs: the objects, in the order to deliver them; ``(ref, offset)``
            for an object's bytes from ``offset`` on (a resumed read; not
            with ``gzip``, whose objects are inflated from their start).
        gzip: inflate fetched objects.
        counts: when given, ``objects``, ``bytes_in`` (fetched or inline) and
            ``bytes_out`` (delivered) are added to it as pieces go out.

    Raises:
        RecordError: a Gzip object is corrupt or truncated (url and offset).
        TransportError, SourceNotFoundError, ObjectChangedError: as the
            transport raises them, when the object is reached.
    """
    targets = [t if isinstance(t, tuple) else (t, 0) for t in refs]
    counts = counts if counts is not None else {}
    for key in ("objects", "bytes_in", "bytes_out"):
        counts.setdefault(key, 0)
    if gzip and any(offset for _, offset in targets):
        raise ValueError("a Gzip object cannot be read from an offset: inflate it from its start")
    # A list, not a generator: a cache learns the size of the whole epoch up front (ObjectCache.expect).
    stream = transport.stream([(r, o) if o else r for r, o in targets if r.inline is None])
    try:
        for ref, _ in targets:
            counts["objects"] += 1
            if ref.inline is not None:
                counts["bytes_in"] += len(ref.inline)
                counts["bytes_out"] += len(ref.inline)
                yield Piece(ref, 0, memoryview(ref.inline), True)
                continue
            if gzip:
                yield from _inflate(stream, ref, counts)
                continue
            while True:
                chunk = next(stream)
                n = len(chunk.data)
                counts["bytes_in"] += n
                counts["bytes_out"] += n
                yield Piece(ref, chunk.offset, chunk.data, chunk.last)
                if chunk.last:
                    break
    finally:
        stream.close()


def _inflate(stream: Iterator, ref: ObjectRef, counts: dict[str, int]) -> Iterator[Piece]:
    """One Gzip object's inflated pieces; the stream is positioned at its first chunk."""
    decoder = GzipDecoder(ref.url, max_out=GZIP_PIECE)
    offset = 0
    while True:
        chunk = next(stream)
        counts["bytes_in"] += len(chunk.data)
        for out in decoder.feed(chunk.data):
            counts["bytes_out"] += len(out)
            yield Piece(ref, offset, memoryview(out), False)
            offset += len(out)
        if chunk.last:
            break
    decoder.finish()
    yield Piece(ref, offset, memoryview(b""), True)
