"""Sources: a channel's objects, and their records from any position, for the consumers of an epoch.

Each source is picklable; each process opens its own connections, lazily.
See :mod:`channels.adapters` for which consumers share an epoch. A source
lists its objects (:meth:`Source.listing`) and reads any list of them from
any :class:`~channels.modes.pipe.resume.Start` (:meth:`Source.read`), through
the one framing engine of :mod:`channels.modes.pipe.framing`; the planning,
equal steps and resume live in :mod:`channels.adapters.consumers`.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from channels.adapters.split import SCOPES
from channels.listing import Listing, ObjectRef
from channels.modes.pipe.framing import Item, frame_items
from channels.modes.pipe.resume import Cursor, Start
from channels.modes.pipe.source import Piece
from channels.records import framer_names
from channels.registry import choose

#: Whole objects, one record each.
OBJECT = "object"
#: Framings a source takes besides the framers of channels.records.
OTHER_FRAMINGS = (OBJECT, "parquet")
#: Bytes read per call when framing files.
CHUNK = 1 << 20


def _check_framing(framing: str) -> None:
    if framing not in OTHER_FRAMINGS and framing not in framer_names():
        raise ValueError(f"unknown framing {framing!r}: use {OBJECT!r} (each file one record), 'parquet' or one of "
                         f"{', '.join(framer_names())}")


class Source(ABC):
    """A channel's objects, read from any position.

    Attributes:
        scope: "job" or "host" (see :mod:`channels.adapters`).
        framing: what a record is.
        shuffle_seed: the seed that reshuffles the epoch (None: listing order).
        compression: "None" or "Gzip".
    """

    scope: str = "job"
    framing: str = OBJECT
    shuffle_seed: int | None = None
    compression: str = "None"

    @property
    @abstractmethod
    def label(self) -> str:
        """How messages name the channel."""

    @abstractmethod
    def listing(self) -> Listing:
        """The objects, in key order, listed once per process."""

    @abstractmethod
    def read(self, items: list[Item], cursor: Cursor) -> Iterator[Any]:
        """Records of ``items`` from ``cursor`` on (memoryviews valid until the next; Parquet: batches)."""

    def units(self, epoch: int, host_index: int, hosts: int) -> np.ndarray | None:
        """The units this host's consumers share in ``epoch`` (None: every unit listed)."""
        return None

    def count(self, refs: Sequence[int]) -> np.ndarray:
        """Records in each of the listing's refs ``refs`` (reads them; framing object: 1 each)."""
        listing = self.listing()
        out = np.zeros(len(refs), dtype=np.int64)
        if self.framing == OBJECT:
            out[:] = 1
            return out
        cursor = Cursor()
        for _ in self.read([(listing.refs[i], Start()) for i in refs], cursor):
            out[cursor.item] += 1
        return out


class _TreeSource(Source):
    """Files of a tree, framed file by file."""

    def __init__(self, framing: str, shuffle_seed: int | None, scope: str) -> None:
        _check_framing(framing)
        choose(scope, SCOPES, "scope")
        self.framing = framing
        self.shuffle_seed = shuffle_seed
        self.scope = scope
        self._listing: Listing | None = None

    @abstractmethod
    def _list(self) -> list[tuple[str, int]]:
        """Every file as (relative posix path, size)."""

    @abstractmethod
    def _open(self, path: str) -> Any:
        """A binary file object for ``path``."""

    @abstractmethod
    def _url(self, path: str) -> str:
        """The URL (or path) messages and states name ``path`` by."""

    def listing(self) -> Listing:
        """The files in key order (by the UTF-8 bytes of their paths, as S3 lists keys)."""
        if self._listing is None:
            files = sorted(self._list(), key=lambda e: e[0].encode())
            self._listing = Listing(self.label, tuple(ObjectRef(self._url(p), n, None, p) for p, n in files))
        return self._listing

    def files(self) -> list[tuple[str, int]]:
        """The files in key order, as (relative path, size)."""
        return [(r.key, r.size) for r in self.listing().refs]

    def read(self, items: list[Item], cursor: Cursor) -> Iterator[Any]:
        return frame_items(items, cursor, self._pieces, self.framing)

    def _pieces(self, targets: list[tuple[ObjectRef, int]]) -> Iterator[Piece]:
        for ref, offset in targets:
            with self._open(ref.key) as f:
                if offset:
                    f.seek(offset)
                pos = offset
                while True:
                    data = f.read(CHUNK)
                    pos += len(data)
                    last = not data or pos >= ref.size
                    yield Piece(ref, pos - len(data), memoryview(data), last)
                    if last:
                        break


class DirectorySource(_TreeSource):
    """The files under a directory: a File channel, a FastFile mount, any local tree.

    Args:
        path: the directory.
        framing: ``"object"`` (each file one record), ``"parquet"`` (record
            batches) or a framer name ("lines", "tfrecord", "recordio", "raw").
        shuffle_seed: reshuffle the files each epoch with this seed (None: key order).
        scope: "job" or "host" (see :mod:`channels.adapters`).
    """

    def __init__(self, path: str | os.PathLike, *, framing: str = OBJECT, shuffle_seed: int | None = None,
                 scope: str = "job") -> None:
        super().__init__(framing, shuffle_seed, scope)
        self.path = Path(path)

    @property
    def label(self) -> str:
        return str(self.path)

    def _url(self, path: str) -> str:
        return str(self.path / path)

    @classmethod
    def for_channel(cls, name: str, *, environ: dict[str, str] | None = None, **kwargs: Any) -> DirectorySource:
        """The directory of channel ``name`` in a training container (``SM_CHANNEL_<NAME>``).

        The scope defaults to "host" for a ShardedByS3Key channel (the
        directory holds this host's share), else "job".

        Raises:
            ValueError: the channel is in Pipe mode (its FIFO has one reader:
                use :class:`PipeReaderSource`), or unknown.
        """
        env = os.environ if environ is None else environ
        config = json.loads(env.get("SM_INPUT_DATA_CONFIG") or "{}")
        entry = config.get(name)
        if entry is None:
            raise ValueError(f"no channel {name!r} in SM_INPUT_DATA_CONFIG; channels: {', '.join(config) or 'none'}")
        if entry.get("TrainingInputMode") == "Pipe":
            raise ValueError(f"channel {name!r} is in Pipe mode: its FIFO has a single reader and cannot be "
                             "split among processes and workers; use PipeReaderSource, which reads the store")
        from channels.container import env_name

        kwargs.setdefault("scope", "host" if entry.get("S3DistributionType") == "ShardedByS3Key" else "job")
        return cls(env[f"SM_CHANNEL_{env_name(name)}"], **kwargs)

    def _list(self) -> list[tuple[str, int]]:
        out = []
        for dirpath, _, names in os.walk(self.path):
            for n in names:
                full = os.path.join(dirpath, n)
                out.append((Path(full).relative_to(self.path).as_posix(), os.path.getsize(full)))
        return out

    def _open(self, path: str) -> Any:
        return open(self.path / path, "rb")


class FastFileSource(_TreeSource):
    """A FastFile view of an S3Prefix, read in process (no mount); each process opens its own view.

    Args:
        uri: the S3Prefix (or a :class:`channels.spec.Channel`, whose S3Uri is used).
        framing, shuffle_seed, scope: as :class:`DirectorySource` (a view shows
            the whole prefix, so the scope is "job").
        store: endpoint and options (default: from the environment).
        cache: a :class:`channels.cache.CacheConfig`: each process's view keeps
            the files it reads whole there (processes may share the directory).
    """

    def __init__(self, uri: Any, *, framing: str = OBJECT, shuffle_seed: int | None = None,
                 scope: str = "job", store: Any = None, cache: Any = None) -> None:
        super().__init__(framing, shuffle_seed, scope)
        self.uri = uri if isinstance(uri, str) else uri.data_source.s3_uri
        self.store = store
        self.cache = cache
        self._view: Any = None
        self._pid = -1

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_view"], state["_pid"] = None, -1  # threads and sockets stay in their process
        return state

    def view(self) -> Any:
        """This process's :class:`~channels.modes.fastfile.FastFileView` (after a fork, a new one)."""
        if self._view is None or self._pid != os.getpid():
            from channels.modes.fastfile.view import FastFileView

            self._view, self._pid = FastFileView(self.uri, self.store, cache=self.cache), os.getpid()
        return self._view

    @property
    def label(self) -> str:
        return self.uri

    def _url(self, path: str) -> str:
        return f"{self.uri.rstrip('/')}/{path}"

    def _list(self) -> list[tuple[str, int]]:
        view = self.view()
        out = []
        for dirpath, _, names in view.walk():
            for n in names:
                p = f"{dirpath}/{n}" if dirpath else n
                out.append((p, view.size(p)))
        return out

    def _open(self, path: str) -> Any:
        return self.view().open(path)


class PipeReaderSource(Source):
    """A channel through :class:`~channels.modes.pipe.PipeReader`, from the store (Pipe mode in process).

    Each process reads with one reader of its own (its transport, its
    listing); the consumers plan the epoch themselves. With scope "job" (the
    default) the consumers of the whole job share every object; with scope
    "host" the channel's own distribution (its S3DataDistributionType, or
    ``distribution=``) first picks this host's objects each epoch, as
    SageMaker would (ShardedByS3Key: by count; FullyReplicated: all), and
    this host's processes share those.

    Args:
        channel_or_uri: a :class:`channels.spec.Channel` or a URI, as PipeReader takes it.
        scope: "job" or "host".
        **reader_kwargs: PipeReader's options (``framing``, ``shuffle_seed``,
            ``compression``, ``distribution``, ``store``, ``config``...),
            except the host identity, which the consumers set. A cache goes
            in ``config`` (``TransportConfig(cache=CacheConfig(dir, size))``):
            each process's reader keeps the objects it reads whole there.
    """

    def __init__(self, channel_or_uri: Any, *, scope: str = "job", **reader_kwargs: Any) -> None:
        taken = {"hosts", "host_index", "epoch", "transport"} & set(reader_kwargs)
        if taken:
            raise ValueError(f"{', '.join(sorted(taken))}: set by the consumers' plan, not by the caller")
        choose(scope, SCOPES, "scope")
        self.channel_or_uri = channel_or_uri
        self.reader_kwargs = reader_kwargs
        self.scope = scope
        self._reader: Any = None
        self._pid = -1
        self._listing: Listing | None = None  # kept across pickling and forks: workers need not list again
        r = self.reader()  # validates the options now, in the caller's process
        self.framing, self.shuffle_seed, self.compression = r.framing, r.source.shuffle_seed, r.source.compression

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_reader"], state["_pid"] = None, -1
        return state

    def reader(self) -> Any:
        """This process's reader (made on first use; after a fork, anew)."""
        if self._reader is None or self._pid != os.getpid():
            from channels.modes.pipe.reader import PipeReader

            self._reader = PipeReader(self.channel_or_uri, listing=self._listing, **self.reader_kwargs)
            self._pid = os.getpid()
        return self._reader

    @property
    def label(self) -> str:
        return self.reader().source.label

    def listing(self) -> Listing:
        if self._listing is None:
            self._listing = self.reader().listing
        return self._listing

    def read(self, items: list[Item], cursor: Cursor) -> Iterator[Any]:
        return self.reader().read(items, cursor)

    def units(self, epoch: int, host_index: int, hosts: int) -> np.ndarray | None:
        if self.scope != "host":
            return None
        from channels.sharding import plan

        src = self.reader().source
        return plan(self.listing().unit_sizes(), hosts, src.strategy, seed=src.shuffle_seed,
                    epoch=epoch).units_for(host_index)

    def close(self) -> None:
        """Close this process's reader (its transport)."""
        if self._reader is not None and self._pid == os.getpid():
            self._reader.close()
            self._reader = None
