"""Sources: a channel as records for any consumer of any epoch (files of a tree, a FastFile view, the Pipe reader).

Each source is picklable; each process opens its own connections, lazily.
See :mod:`channels.adapters` for which consumers share an epoch.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from channels.adapters.split import SCOPES, Split
from channels.records import framer, framer_names
from channels.sharding import SHARDED_BY_S3_KEY, plan

#: Whole objects, one record each.
OBJECT = "object"
#: Bytes read per call when framing files.
CHUNK = 1 << 20


def _check_framing(framing: str) -> None:
    if framing != OBJECT and framing not in framer_names():
        raise ValueError(f"unknown framing {framing!r}: use {OBJECT!r} (each file one record) or one of "
                         f"{', '.join(framer_names())}")


class Source(ABC):
    """A channel as records, for any consumer of any epoch.

    Attributes:
        scope: "job" or "host" (see the module docstring).
    """

    scope: str = "job"

    @abstractmethod
    def records(self, split: Split, epoch: int) -> Iterator[bytes]:
        """The records of consumer ``split`` for ``epoch``, as bytes it may keep."""


class _TreeSource(Source):
    """Files of a tree, planned by the shared rule and framed file by file."""

    def __init__(self, framing: str, shuffle_seed: int | None, scope: str) -> None:
        _check_framing(framing)
        if scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r}: use one of {', '.join(SCOPES)}")
        self.framing = framing
        self.shuffle_seed = shuffle_seed
        self.scope = scope
        self._files: list[tuple[str, int]] | None = None  # (relative path, size), in key order

    @abstractmethod
    def _list(self) -> list[tuple[str, int]]:
        """Every file as (relative posix path, size)."""

    @abstractmethod
    def _open(self, path: str) -> Any:
        """A binary file object for ``path``."""

    def files(self) -> list[tuple[str, int]]:
        """The files in key order (by the UTF-8 bytes of their paths, as S3 lists keys)."""
        if self._files is None:
            self._files = sorted(self._list(), key=lambda e: e[0].encode())
        return self._files

    def paths(self, split: Split, epoch: int) -> list[str]:
        """The files consumer ``split`` reads in ``epoch``, in order."""
        files = self.files()
        sizes = np.fromiter((s for _, s in files), dtype=np.int64, count=len(files))
        units = plan(sizes, split.count, SHARDED_BY_S3_KEY, seed=self.shuffle_seed, epoch=epoch).units_for(split.index)
        return [files[i][0] for i in units.tolist()]

    def records(self, split: Split, epoch: int) -> Iterator[bytes]:
        for path in self.paths(split, epoch):
            with self._open(path) as f:
                if self.framing == OBJECT:
                    yield f.read()
                    continue
                fr = framer(self.framing, path)
                while chunk := f.read(CHUNK):
                    for record in fr.feed(chunk):
                        yield bytes(record)
                for record in fr.finish():
                    yield bytes(record)


class DirectorySource(_TreeSource):
    """The files under a directory: a File channel, a FastFile mount, any local tree.

    Args:
        path: the directory.
        framing: ``"object"`` (each file one record) or a framer name
            ("lines", "tfrecord", "recordio", "raw").
        shuffle_seed: reshuffle the files each epoch with this seed (None: key order).
        scope: "job" or "host" (see the module docstring).
    """

    def __init__(self, path: str | os.PathLike, *, framing: str = OBJECT, shuffle_seed: int | None = None,
                 scope: str = "job") -> None:
        super().__init__(framing, shuffle_seed, scope)
        self.path = Path(path)

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
    """

    def __init__(self, uri: Any, *, framing: str = OBJECT, shuffle_seed: int | None = None,
                 scope: str = "job", store: Any = None) -> None:
        super().__init__(framing, shuffle_seed, scope)
        self.uri = uri if isinstance(uri, str) else uri.data_source.s3_uri
        self.store = store
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

            self._view, self._pid = FastFileView(self.uri, self.store), os.getpid()
        return self._view

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

    Each consumer reads with a reader of its own, planned as host ``index`` of
    ``count`` with ShardedByS3Key whatever the channel's distribution: the
    consumers of the whole job share the dataset (scope "job"), each object
    once per epoch; the channel's ShuffleConfig reshuffles it every epoch.

    Args:
        channel_or_uri: a :class:`channels.spec.Channel` or a URI, as PipeReader takes it.
        **reader_kwargs: PipeReader's options (``framing``, ``shuffle_seed``,
            ``compression``, ``store``, ``config``...), except the host identity
            and distribution, which the split sets.
    """

    scope = "job"

    def __init__(self, channel_or_uri: Any, **reader_kwargs: Any) -> None:
        taken = {"hosts", "host_index", "distribution", "epoch", "transport"} & set(reader_kwargs)
        if taken:
            raise ValueError(f"{', '.join(sorted(taken))}: set by the split, not by the caller")
        self.channel_or_uri = channel_or_uri
        self.reader_kwargs = reader_kwargs
        self._readers: dict[Split, Any] = {}
        self._pid = -1

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_readers"], state["_pid"] = {}, -1
        return state

    def reader(self, split: Split) -> Any:
        """This process's reader for ``split`` (made on first use; after a fork, anew)."""
        if self._pid != os.getpid():
            self._readers, self._pid = {}, os.getpid()
        if split not in self._readers:
            from channels.modes.pipe.reader import PipeReader

            self._readers[split] = PipeReader(self.channel_or_uri, hosts=split.count, host_index=split.index,
                                              distribution="ShardedByS3Key", **self.reader_kwargs)
        return self._readers[split]

    def records(self, split: Split, epoch: int) -> Iterator[bytes]:
        yield from self.reader(split).records(epoch, copy=True)
