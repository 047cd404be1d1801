"""Ray Data: a channel as a :class:`ray.data.Dataset` (``pip install 'channels[ray]'``).

::

    import ray
    from channels.adapters.ray import read_channel
    from channels.spec import Job

    job = Job.load("job.json")
    ds = read_channel(job, "train", framing="tfrecord", plan="s3://bucket/plan.parquet")
    a, b = ds.streaming_split(2, equal=True)        # one per Ray Train worker

The channel is listed once, on the driver (or read from a job plan, one
GET), and cut into ``shares`` with the size-balanced plan of
:mod:`channels.sharding`: one read task per share, so every task reads about
the same bytes whatever the object sizes. A task reads its objects in order
through the channel's own path: the transport (ranged GETs, ETags checked),
Gzip inflated as a stream, records framed as the channel says
(``tfrecord``, ``recordio``, ``lines``, ``parquet``, ``object``, ``raw``),
and yields Arrow tables: a ``bytes`` column (plus ``path``, with
``include_paths``), or the Parquet objects' own columns. Each record is read
exactly once per dataset.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import ray.data
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from channels.listing import Listing, ObjectRef, list_source
from channels.modes.pipe.reader import PARQUET, PipeReader
from channels.modes.pipe.source import PipeSource
from channels.sharding import SIZE_BALANCED, plan
from channels.store import Store

#: Records per Arrow block a task yields (blocks also end at ``block_bytes``).
BLOCK_ROWS = 4096
#: Bytes of records per Arrow block at most (a larger record makes a block of its own).
BLOCK_BYTES = 64 << 20


class ChannelDatasource(Datasource):
    """A channel's records for Ray Data; see the module docstring.

    Args:
        source: the channel (a :class:`channels.spec.Channel`, a
            :class:`~channels.modes.pipe.PipeSource`, or a prefix URI).
        framing: what a record is (PipeReader's framings); default
            ``object`` with the RecordIO wrapper, else ``raw``.
        plan: a job plan (URL or :class:`channels.plan.JobPlan`) to read
            instead of listing.
        shuffle_seed: the order in which each task reads its objects (default:
            the channel's ShuffleConfig), for ``epoch``.
        epoch: the epoch whose order the tasks follow.
        include_paths: add a ``path`` column (the object's URL).
        store: endpoint and options (default: from the environment, on the
            driver; the workers get this one).
        **reader_kwargs: PipeReader's other options (``compression``,
            ``record_wrapper``, ``check_crc``, ``config``).
    """

    def __init__(self, source: Any, *, framing: str | None = None, plan: Any = None,
                 shuffle_seed: int | None = None, epoch: int = 0, include_paths: bool = False,
                 store: Store | None = None, **reader_kwargs: Any) -> None:
        super().__init__()
        self.source = source if isinstance(source, (PipeSource, str)) else PipeSource.from_channel(source)
        self.store = store if store is not None else Store.from_env()
        self.framing = framing
        self.plan_ = plan
        self.shuffle_seed = shuffle_seed
        self.epoch = epoch
        self.include_paths = include_paths
        self.reader_kwargs = reader_kwargs
        self._listing: Listing | None = None

    def _source(self) -> PipeSource:
        return self.source if isinstance(self.source, PipeSource) else PipeSource(self.source)

    def listing(self) -> Listing:
        """The channel's objects: listed once, on the driver (or read from the plan)."""
        if self._listing is None:
            s = self._source()
            if self.plan_ is not None:
                from channels.plan import listing_from

                self._listing = listing_from(self.plan_, s, store=self.store)
            else:
                self._listing = list_source(s.uri, s.data_type, attribute_names=s.attribute_names,
                                            store=self.store)
        return self._listing

    def shares(self, count: int) -> list[list[ObjectRef]]:
        """The objects of each of ``count`` size-balanced shares, each in the epoch's order."""
        listing = self.listing()
        seed = self.shuffle_seed if self.shuffle_seed is not None else self._source().shuffle_seed
        p = plan(listing.unit_sizes(), count, SIZE_BALANCED, seed=seed, epoch=self.epoch)
        return [listing.expand(p.units_for(i)) for i in range(count)]

    def estimate_inmemory_data_size(self) -> int | None:
        return self.listing().total_bytes

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                       data_context: Any = None) -> list[ReadTask]:
        count = max(1, min(parallelism, self.listing().unit_count))
        tasks = []
        for refs in self.shares(count):
            if not refs:
                continue
            meta = BlockMetadata(num_rows=None, size_bytes=int(sum(r.size for r in refs)),
                                 input_files=[r.url for r in refs], exec_stats=None)
            tasks.append(ReadTask(_reader(self, refs), meta, per_task_row_limit=per_task_row_limit))
        return tasks

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_listing"] = None  # the tasks carry their own objects, not the whole listing
        return state


def _reader(ds: ChannelDatasource, refs: list[ObjectRef]):
    s = ds._source()
    source = PipeSource(s.uri, s.data_type, s.attribute_names, s.compression, s.record_wrapper, None,
                        "FullyReplicated", s.name)
    share = Listing(s.uri, tuple(refs))
    args = (source, share, ds.framing, ds.store, ds.include_paths, ds.reader_kwargs)
    return lambda: _read(*args)


def _read(source: PipeSource, share: Listing, framing: str | None, store: Store, include_paths: bool,
          reader_kwargs: dict) -> Iterator[pa.Table]:
    """One task: its share's objects, in order, as Arrow tables."""
    with PipeReader(source, framing=framing, store=store, plan=share, **reader_kwargs) as reader:
        if reader.framing == PARQUET:
            for batch in reader.epoch(0):
                yield pa.Table.from_batches([batch])
            return
        rows: list[bytes] = []
        paths: list[str] = []
        size = 0
        for record, url in _records(reader, include_paths):
            rows.append(record)
            if include_paths:
                paths.append(url)
            size += len(record)
            if len(rows) >= BLOCK_ROWS or size >= BLOCK_BYTES:
                yield _block(rows, paths, include_paths)
                rows, paths, size = [], [], 0
        if rows:
            yield _block(rows, paths, include_paths)


def _records(reader: PipeReader, include_paths: bool) -> Iterator[tuple[bytes, str]]:
    if not include_paths:
        return ((bytes(r), "") for r in reader.epoch(0))
    return _records_with_paths(reader)


def _records_with_paths(reader: PipeReader) -> Iterator[tuple[bytes, str]]:
    for ref in reader.refs(0):  # one object at a time, to know each record's object
        one = PipeReader(reader.source, framing=reader.framing, store=reader.store,
                         plan=Listing(reader.source.uri, (ref,)), transport=reader.transport)
        for r in one.epoch(0):
            yield bytes(r), ref.url


def _block(rows: list[bytes], paths: list[str], include_paths: bool) -> pa.Table:
    columns = {"bytes": pa.array(rows, pa.binary())}
    if include_paths:
        columns["path"] = pa.array(paths, pa.string())
    return pa.table(columns)


def read_channel(channel_or_job: Any, name: str | None = None, *, shares: int | None = None,
                 **kwargs: Any) -> ray.data.Dataset:
    """A channel as a :class:`ray.data.Dataset`, one read task per size-balanced share.

    Args:
        channel_or_job: a :class:`channels.spec.Job` (with ``name``), a
            :class:`channels.spec.Channel`, a PipeSource or a prefix URI.
        name: the channel's name, with a job.
        shares: read tasks (default: Ray's choice of parallelism, at most one
            per object).
        **kwargs: :class:`ChannelDatasource`'s options (``framing``, ``plan``,
            ``shuffle_seed``, ``epoch``, ``include_paths``, ``store``...).

    Raises:
        ValueError: a job without a channel name; PlanError: a plan for another job.
    """
    source = channel_or_job
    if hasattr(channel_or_job, "channels"):
        if not name:
            raise ValueError("give the channel's name with a job: read_channel(job, 'train')")
        plan_arg = kwargs.get("plan")
        if plan_arg is not None:
            from channels.plan import load_plan

            kwargs["plan"] = load_plan(plan_arg, store=kwargs.get("store"))
            kwargs["plan"].check(channel_or_job)
        source = channel_or_job.channel(name)
    ds = ChannelDatasource(source, **kwargs)
    extra = {"override_num_blocks": shares} if shares else {}
    return ray.data.read_datasource(ds, **extra)
