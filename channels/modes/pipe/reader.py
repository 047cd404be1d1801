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

Resuming mid-epoch: :meth:`PipeReader.state_dict` is a small dict (epoch,
seed, plan, a fingerprint of the objects, and the position: object, record,
and the last record boundary passed). :meth:`PipeReader.load_state_dict`
checks it against the channel (another seed, framing or plan, other objects
or changed ETags raise :class:`~channels.errors.ResumeStateError` naming what
differs) and the next iteration of that epoch continues at the next record:
an uncompressed object is fetched with a ranged read from the record
boundary, so nothing delivered is read again beyond one chunk. Resuming on
another host count is the adapters' work (:mod:`channels.adapters`).

With a local cache (``config=TransportConfig(cache=CacheConfig(dir, size))``),
later epochs read kept objects from disk. The cache keys an object by URL
and ETag, so the reader must know each object's current ETag: at the start
of every epoch after the first it reads, a reader that listed the source
itself lists it again (one LIST request per 1,000 objects) and reads each
planned object in its newest version. That listing runs while the epoch's
first objects are already being fetched in the versions known before, and
no record goes out until it has confirmed them (one overwritten since: the
epoch starts again in the new versions; :mod:`channels.modes.pipe.relist`),
so its round trip is not added to the epoch; the plan (which objects, in which
order, on which host) stays that of the first listing, so hosts stay in
step. An object overwritten between epochs is then fetched again; one
unchanged is served from the cache with no request. ``relist=False`` keeps
the first listing's versions (a job plan or a listing given is never
listed again): the cache then serves the version listed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from channels.errors import ResumeStateError
from channels.listing import Listing, ObjectRef, list_source
from channels.modes.pipe.framing import OBJECT, PARQUET, RAW, Item, frame_items
from channels.modes.pipe.relist import speculate
from channels.modes.pipe.resume import (
    STATE_VERSION,
    Cursor,
    Start,
    check_fingerprint,
    check_settings,
    fingerprint,
)
from channels.modes.pipe.source import Piece, PipeSource, iter_pieces
from channels.records import framer_names
from channels.registry import choose
from channels.sharding import check_host, plan
from channels.store import Store
from channels.transport import Transport, TransportConfig

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
        listing: the source's listing, made already (by a parent process:
            a DataLoader worker need not list again); by default listed on
            first use.
        plan: read the objects from a job plan instead of listing the
            source: its URL (one GET), a :class:`channels.plan.JobPlan`
            already read, or a :class:`~channels.listing.Listing`.
        relist: list the source again at the start of each later epoch, to
            read the newest version of each planned object (see the module
            docstring). Default: when the transport has a cache and the
            reader lists the source itself (no ``listing``, no ``plan``).

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
                 transport: Transport | None = None, listing: Listing | None = None,
                 plan: Any = None, relist: bool | None = None) -> None:
        self.source = _source(channel_or_uri, compression=compression, record_wrapper=record_wrapper,
                              shuffle_seed=shuffle_seed, distribution=distribution, data_type=data_type,
                              attribute_names=attribute_names)
        wrapped = self.source.record_wrapper == "RecordIO"
        framing = framing or (OBJECT if wrapped else RAW)
        choose(framing, FRAMINGS, "framing")
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
        self._listing: Listing | None = listing
        self._plan = plan
        self.relist = (self.transport.cache is not None and listing is None and plan is None
                       if relist is None else relist)
        # The epoch the newest versions were listed for, and those versions by URL
        # (None: the first listing's are the newest known).
        self._versions_epoch: int | None = None
        self._versions: dict[str, ObjectRef] | None = None
        self._fingerprint: dict | None = None
        # The epoch and cursor of the latest iteration (what state_dict saves),
        # and a loaded position waiting for the next iteration of its epoch.
        self._position: tuple[int, Cursor] | None = None
        self._resume: tuple[int, Cursor] | None = None
        #: Work counters: objects, bytes_in (fetched), bytes_out (inflated), records,
        #: skipped (framed again after a resume, not yielded), relists (listings made
        #: again for a later epoch), restarts (epochs whose reads began again because
        #: that listing named a new version of a planned object).
        self.counts: dict[str, int] = {"objects": 0, "bytes_in": 0, "bytes_out": 0, "records": 0, "skipped": 0,
                                       "relists": 0, "restarts": 0}

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
        """This host's objects for ``epoch``, in the order they are read (listed again first when due)."""
        epoch = self.default_epoch if epoch is None else epoch
        planned = self._planned(epoch)
        if self._relist_due(epoch):
            self._learn(self._list_again(), epoch)
        return self._versioned(planned)

    def _planned(self, epoch: int) -> list[ObjectRef]:
        """This host's objects for ``epoch`` in the versions of the first listing."""
        listing = self.listing
        p = plan(listing.unit_sizes(), self.hosts, self.source.strategy, seed=self.source.shuffle_seed,
                 epoch=epoch)
        return listing.expand(p.units_for(self.host_index))

    def _relist_due(self, epoch: int) -> bool:
        """Whether ``epoch`` needs a new listing (with :attr:`relist`, every epoch after the first read)."""
        if not self.relist:
            return False
        if self._versions_epoch is None:  # the first listing is the newest for the first epoch read
            self._versions_epoch = epoch
        return epoch != self._versions_epoch

    def _list_again(self) -> Listing:
        s = self.source
        return list_source(s.uri, s.data_type, attribute_names=s.attribute_names, store=self.store)

    def _learn(self, fresh: Listing, epoch: int) -> None:
        """``fresh`` holds the newest versions, those of ``epoch``."""
        self._versions = {r.url: r for r in fresh.refs if r.inline is None}
        self._versions_epoch = epoch
        self.counts["relists"] += 1

    def _versioned(self, refs: list[ObjectRef]) -> list[ObjectRef]:
        """``refs`` in the newest versions known."""
        versions = self._versions
        if versions is None:
            return refs
        # An object gone from the new listing keeps its old version (reading it says what happened).
        return [r if r.inline is not None else versions.get(r.url, r) for r in refs]

    def _through_listing(self, epoch: int, make: Callable[[list[ObjectRef]], Iterator[Any]],
                         restart: Callable[[], None] = lambda: None) -> Iterator[Any]:
        """``make(refs)`` of ``epoch``'s objects; when a listing is due, made while the first bytes are read.

        See :mod:`channels.modes.pipe.relist`: nothing is delivered before
        the listing confirms the versions read (or the read starts again in
        the new ones).
        """
        planned = self._planned(epoch)
        if not self._relist_due(epoch):
            return make(self._versioned(planned))

        def newest(fresh: Listing) -> list[ObjectRef]:
            self._learn(fresh, epoch)
            return self._versioned(planned)

        def again() -> None:
            self.counts["restarts"] += 1
            restart()

        return speculate(self._versioned(planned), self._list_again, newest, make, again)

    # ------------------------------------------------------------ reading

    def __iter__(self) -> Iterator[Any]:
        return self.epoch(self.default_epoch)

    def epoch(self, epoch: int) -> Iterator[Any]:
        """The records of ``epoch`` (memoryviews valid until the next record).

        Stopping early is fine: closing the iterator (or dropping it) cancels
        the reads still in flight. After :meth:`load_state_dict`, the first
        iteration of the saved epoch continues where the state was saved.
        """
        cursor = Cursor()
        if self._resume is not None and self._resume[0] == epoch:
            cursor, self._resume = self._resume[1], None
            count = len(self._planned(epoch))
            if cursor.item > count:
                raise ResumeStateError(f"the state's position (object {cursor.item}) is past this host's "
                                       f"{count} objects of epoch {epoch}", field="position")
        self._position = (epoch, cursor)
        saved = cursor.state()

        def restart() -> None:
            cursor.item, cursor.record, cursor.offset, cursor.before = saved

        return self._through_listing(epoch, lambda refs: self.read([(r, Start()) for r in refs], cursor), restart)

    def read(self, items: list[Item], cursor: Cursor | None = None) -> Iterator[Any]:
        """The records of an explicit list of objects, each from its :class:`Start`.

        ``cursor`` (default: the first object's start) is where to begin, and
        is kept up to date as records go out: save ``cursor.state()``.
        """
        if cursor is None:
            cursor = Cursor()
            if items:
                cursor.at(0, items[0][1])
        gzip = self.source.compression == "Gzip"

        def pieces_of(targets: list[tuple[ObjectRef, int]]) -> Iterator[Piece]:
            return iter_pieces(self.transport, targets, gzip=gzip, counts=self.counts)

        return frame_items(items, cursor, pieces_of, self.framing, gzip=gzip, check_crc=self.check_crc,
                           counts=self.counts)

    # ------------------------------------------------------------ resume

    def fingerprint(self) -> dict:
        """The listing's fingerprint (:func:`channels.modes.pipe.resume.fingerprint`), made once."""
        if self._fingerprint is None:
            self._fingerprint = fingerprint(self.listing.refs)
        return self._fingerprint

    def _settings(self) -> dict:
        s = self.source
        return {"reader": "PipeReader", "seed": s.shuffle_seed, "framing": self.framing,
                "compression": s.compression, "strategy": s.strategy, "hosts": self.hosts,
                "host_index": self.host_index}

    def state_dict(self) -> dict:
        """Where the latest iteration stands (before any: the start of the default epoch).

        A small dict of plain values (picklable, JSON-able): ``version``,
        ``epoch``, the settings that shape the plan (``seed``, ``framing``,
        ``compression``, ``strategy``, ``hosts``, ``host_index``), ``objects``
        (a fingerprint of the listing, about 1 KiB) and ``position``
        (``[object, record, offset, before]``, see
        :class:`~channels.modes.pipe.resume.Cursor`).
        """
        epoch, cursor = self._position or self._resume or (self.default_epoch, Cursor())
        return {"version": STATE_VERSION, "epoch": epoch, **self._settings(), "objects": self.fingerprint(),
                "position": cursor.state()}

    def load_state_dict(self, state: dict) -> None:
        """Continue the saved epoch where ``state`` stood, at its next iteration.

        Sets :attr:`default_epoch` to the saved epoch (``iter(reader)`` resumes it).

        Raises:
            ResumeStateError: the state does not fit this reader or channel:
                another seed, framing, compression, plan or host; other
                objects, or objects whose ETag or size changed (named).
        """
        label = f"this reader of {self.source.label}"
        check_settings(state, self._settings(), label)
        check_fingerprint(state.get("objects"), self.listing.refs, self.source.label)
        epoch = state.get("epoch")
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
            raise ResumeStateError(f"the state's epoch must be an integer >= 0, got {epoch!r}", field="epoch")
        self._resume = (epoch, Cursor.from_state(state.get("position")))
        self._position = None
        self.default_epoch = epoch

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
        epoch = self.default_epoch if epoch is None else epoch
        gzip = self.source.compression == "Gzip"
        return self._through_listing(epoch, lambda refs: iter_pieces(self.transport, refs, gzip=gzip,
                                                                     counts=self.counts))

    def stats(self) -> dict[str, int]:
        """The reader's counters and its transport's (requests, retries, buffer_peak...), and its cache's
        (``cache_hits``, ``cache_hit_bytes``...) when it has one."""
        out = {f"transport_{k}": v for k, v in self.transport.stats.snapshot().items()}
        if self.transport.cache_stats is not None:
            out.update({f"cache_{k}": v for k, v in self.transport.cache_stats.snapshot().items()})
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
