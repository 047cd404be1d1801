"""FastFile mode: a channel's objects as a lazy, read-only file tree.

The tree comes from one listing of the channel's S3Prefix, made on first use;
"/" in keys makes folders. Nothing is downloaded until a file is read, and
then through :class:`~channels.modes.fastfile.readahead.ReadaheadFile`: adaptive
readahead over ``Transport.read_into``, every open file of the view sharing
one byte budget and one pool of fetch threads.

A reader going from file to file (``cat *``, a loop over ``walk``) would
wait a round trip at the start of each file; so when a file is read on from
its start, the view fetches the first window of the next
``ReadaheadConfig.prefetch_files`` files before they are opened, at the
stride the reader goes from file to file
(:class:`~channels.modes.fastfile.ahead.FilesAhead`). Random reads never
start this. On a far store (the transport measures the link as bytes
arrive) the view reads further ahead, in ranged parts where a window is
due soon (:class:`~channels.modes.fastfile.pacing.Pacing`).

Keys that cannot be paths, decided here and logged as warnings:

- A key that is also a folder (``a`` and ``a/b``): the folder wins and the
  object ``a`` is hidden, as Mountpoint for S3 does (hiding one object loses
  less than hiding every object below the folder).
- Keys with an empty, ``.`` or ``..`` component (``a//b``, ``a/../b``) are
  skipped: no path names them without ambiguity.

Example:
    >>> with FastFileView("s3://bucket/train/") as view:      # doctest: +SKIP
    ...     for name in view.listdir(""):
    ...         with view.open(name) as f:
    ...             header = f.read(16)
"""

from __future__ import annotations

import errno
import logging
import posixpath
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from channels.listing import S3_PREFIX, ObjectRef, list_prefix
from channels.memory.budget import ByteBudget
from channels.modes.fastfile.ahead import FilesAhead
from channels.modes.fastfile.config import ReadaheadConfig
from channels.modes.fastfile.pacing import Pacing
from channels.modes.fastfile.readahead import ReadaheadFile
from channels.modes.fastfile.stats import ReadStats
from channels.modes.fastfile.window import Fetch, Progress
from channels.store import Store

log = logging.getLogger(__name__)

#: FastFile's knobs are the readahead's.
FastFileConfig = ReadaheadConfig


@dataclass(frozen=True, slots=True)
class Entry:
    """What ``stat`` says about a path in the view.

    Attributes:
        path: the normalised path ("" for the root).
        is_dir: a folder (made by "/" in keys) rather than an object.
        size: the object's bytes (0 for folders).
        ref: the object (None for folders).
        subdirs: folders directly inside (0 for objects): a folder's link count is 2 + subdirs.
    """

    path: str
    is_dir: bool
    size: int
    ref: ObjectRef | None = None
    subdirs: int = 0


class _Dir(dict):
    """A folder: name -> _Dir | ObjectRef. ``subdirs`` counts the _Dir children."""

    __slots__ = ("subdirs",)

    def __init__(self) -> None:
        super().__init__()
        self.subdirs = 0


def build_tree(refs, *, source: str = "") -> tuple[_Dir, list[str], list[str]]:
    """The folder tree of ``refs`` by their ``key``; returns (root, shadowed keys, skipped keys)."""
    root = _Dir()
    shadowed: list[str] = []
    skipped: list[str] = []
    for ref in refs:
        parts = ref.key.split("/")
        if not ref.key or any(p in ("", ".", "..") for p in parts):
            skipped.append(ref.key)
            continue
        node = root
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, _Dir):
                if child is not None:  # an object named like this folder: the folder wins
                    shadowed.append(child.key)
                child = node[part] = _Dir()
                node.subdirs += 1
            node = child
        leaf = parts[-1]
        if isinstance(node.get(leaf), _Dir):
            shadowed.append(ref.key)
            continue
        node[leaf] = ref
    for what, keys in (("hidden by a folder of the same name", shadowed),
                       ("skipped (an empty, '.' or '..' path component)", skipped)):
        if keys:
            shown = ", ".join(repr(k) for k in keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
            log.warning("FastFile %s: %d object(s) %s: %s", source, len(keys), what, shown)
    return root, shadowed, skipped


def split_path(path: str) -> list[str]:
    """Components of a view path; "", "/" and "." are the root.

    Raises:
        FileNotFoundError: the path climbs above the root.
    """
    norm = posixpath.normpath("/" + path.strip("/")) if path else "/"
    parts = [p for p in norm.split("/") if p]
    if parts and parts[0] == "..":
        raise FileNotFoundError(errno.ENOENT, "path is outside the channel", path)
    return parts


class FastFileView:
    """A read-only view of one channel's S3Prefix.

    Thread-safe. Close it (or use ``with``) to stop its fetch threads and
    release connections; files opened from it must not be read after that.

    Args:
        uri: the channel's S3Uri (a prefix; any fsspec URL lists too).
        store: endpoint and options (default: from the environment).
        config: readahead knobs; ``budget_bytes`` bounds the buffers of all
            files opened from this view together; ``prefetch_files`` (0: off)
            sets how many files are fetched ahead of a reader going from
            file to file (see :class:`FilesAhead`).
        transport: the transport to read through (default: a new one, closed
            with the view).
        plan: take the tree from a job plan instead of listing the prefix:
            its URL, a :class:`channels.plan.JobPlan` or a ``Listing``.
        cache: a local cache of whole objects (a
            :class:`channels.cache.CacheConfig`) for the transport the view
            makes: a file read from its start to its end is kept, and any
            read of a kept file is served from disk. The view is a snapshot
            of its listing: it serves the versions listed (remount to see
            new ones). Ignored with ``transport`` (give that one the cache).
    """

    def __init__(self, uri: str, store: Store | None = None, config: ReadaheadConfig | None = None,
                 *, transport=None, plan=None, cache=None) -> None:
        self.uri = uri
        self.plan = plan
        self.cache = cache
        self.store = store if store is not None else Store.from_env()
        self.config = config or ReadaheadConfig()
        self.stats = ReadStats()
        self.budget = ByteBudget(self.config.budget_bytes)
        self._transport = transport
        self._own_transport = transport is None
        self._executor: ThreadPoolExecutor | None = None
        self._pacing: Pacing | None = None
        self._lock = threading.Lock()
        self._root: _Dir | None = None  # set once, by the first use (one listing)
        self.shadowed: list[str] = []
        self.skipped: list[str] = []
        self._closed = False
        self.ahead = FilesAhead(self) if self.config.prefetch_files else None

    @classmethod
    def from_channel(cls, channel, store: Store | None = None, config: ReadaheadConfig | None = None,
                     **kwargs) -> FastFileView:
        """The view of a :class:`channels.spec.Channel`; it must be an S3Prefix."""
        source = channel.data_source
        if source.s3_data_type != S3_PREFIX:
            raise ValueError(f"channel {channel.name!r} is {source.s3_data_type}: FastFile shows only an "
                             f"S3Prefix as a file tree; use File or Pipe mode for manifests")
        return cls(source.s3_uri, store, config, **kwargs)

    # ------------------------------------------------------------ the tree

    def load(self) -> FastFileView:
        """List the prefix now (otherwise the first use does); returns self."""
        self._tree()
        return self

    def _tree(self) -> _Dir:
        root = self._root
        if root is None:
            with self._lock:
                if self._root is None:
                    if self.plan is not None:
                        from channels.plan import listing_from

                        listing = listing_from(self.plan, self.uri, store=self.store)
                    else:
                        listing = list_prefix(self.uri, store=self.store)
                    self._root, self.shadowed, self.skipped = build_tree(listing.refs, source=self.uri)
                root = self._root
        return root

    def _node(self, path: str) -> _Dir | ObjectRef:
        node: _Dir | ObjectRef = self._tree()
        for part in split_path(path):
            if not isinstance(node, _Dir):
                raise NotADirectoryError(errno.ENOTDIR, "not a directory", path)
            child = node.get(part)
            if child is None:
                raise FileNotFoundError(errno.ENOENT, f"no such file in {self.uri}", path)
            node = child
        return node

    def stat(self, path: str) -> Entry:
        """What is at ``path``.

        Raises:
            FileNotFoundError: nothing is there.
            NotADirectoryError: a component other than the last is an object.
        """
        node = self._node(path)
        norm = "/".join(split_path(path))
        if isinstance(node, _Dir):
            return Entry(norm, True, 0, None, node.subdirs)
        return Entry(norm, False, node.size, node)

    def size(self, path: str) -> int:
        """Bytes of the object at ``path`` (0 for folders)."""
        return self.stat(path).size

    def exists(self, path: str) -> bool:
        try:
            self._node(path)
        except (FileNotFoundError, NotADirectoryError):
            return False
        return True

    def isdir(self, path: str) -> bool:
        try:
            return isinstance(self._node(path), _Dir)
        except (FileNotFoundError, NotADirectoryError):
            return False

    def isfile(self, path: str) -> bool:
        try:
            return isinstance(self._node(path), ObjectRef)
        except (FileNotFoundError, NotADirectoryError):
            return False

    def listdir(self, path: str = "") -> list[str]:
        """Names in the folder at ``path``, sorted.

        Raises:
            FileNotFoundError, NotADirectoryError: as ``os.listdir`` would.
        """
        node = self._node(path)
        if not isinstance(node, _Dir):
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", path)
        return sorted(node)

    def scandir(self, path: str = "") -> list[Entry]:
        """``stat`` of every name in a folder, in name order (no request made)."""
        node = self._node(path)
        if not isinstance(node, _Dir):
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", path)
        base = "/".join(split_path(path))
        out = []
        for name in sorted(node):
            child = node[name]
            full = f"{base}/{name}" if base else name
            if isinstance(child, _Dir):
                out.append(Entry(full, True, 0, None, child.subdirs))
            else:
                out.append(Entry(full, False, child.size, child))
        return out

    def walk(self, path: str = "") -> Iterator[tuple[str, list[str], list[str]]]:
        """``(dirpath, dirnames, filenames)`` top-down, as ``os.walk`` (paths relative to the root)."""
        node = self._node(path)
        if not isinstance(node, _Dir):
            return
        stack = [("/".join(split_path(path)), node)]
        while stack:
            dirpath, d = stack.pop()
            dirs = sorted(n for n, c in d.items() if isinstance(c, _Dir))
            files = sorted(n for n, c in d.items() if not isinstance(c, _Dir))
            yield dirpath, dirs, files
            for name in reversed(dirs):
                stack.append((f"{dirpath}/{name}" if dirpath else name, d[name]))

    def refs(self) -> list[ObjectRef]:
        """Every object shown, in path order."""
        out = []
        for dirpath, _, files in self.walk():
            d = self._node(dirpath)
            out.extend(d[f] for f in files)  # type: ignore[index]
        return out

    # ------------------------------------------------------------ reading

    def open(self, path: str, mode: str = "rb") -> ReadaheadFile:
        """A seekable binary file over the object at ``path``; nothing is fetched yet.

        Raises:
            ValueError: a mode other than ``"rb"`` (the view is read-only, binary).
            FileNotFoundError, IsADirectoryError, NotADirectoryError: as ``open`` would.
        """
        if mode not in ("rb", "br"):
            raise ValueError(f"FastFile views are read-only and binary: mode {mode!r} is not supported, "
                             "use 'rb' (wrap in io.TextIOWrapper for text)")
        self._check_open()
        node = self._node(path)
        if isinstance(node, _Dir):
            raise IsADirectoryError(errno.EISDIR, "is a directory", path)
        name = "/".join(split_path(path))
        ahead = self.ahead
        hooks = {}
        if ahead is not None:
            hooks = {"first": ahead.opened(name), "on_reading_on": lambda: ahead.reading_on(name),
                     "on_close": lambda: ahead.closed(name)}
        return ReadaheadFile(self.fetcher(node), node.size, name=name, config=self.config, budget=self.budget,
                             executor=self.executor, stats=self.stats, pacing=self.pacing, **hooks)

    def fetcher(self, ref: ObjectRef) -> Fetch:
        """The ``fetch`` of a ReadaheadFile over ``ref``: through the transport, cancellable."""
        transport = self.transport

        def fetch(start: int, buf: memoryview, cancel: threading.Event | None,
                  progress: Progress | None) -> None:
            transport.read_into(ref, start, buf, cancel=cancel, progress=progress)

        return fetch

    @property
    def transport(self):
        """The :class:`~channels.transport.Transport` the files read through."""
        if self._transport is None:
            with self._lock:
                if self._transport is None:
                    from channels.transport import Transport, TransportConfig

                    self._transport = Transport(self.store, TransportConfig(max_workers=self.config.max_workers,
                                                                            cache=self.cache))
        return self._transport

    @property
    def pacing(self) -> Pacing:
        """How far the files read ahead, from the transport's link and the readers' rate."""
        if self._pacing is None:
            transport = self.transport
            with self._lock:
                if self._pacing is None:
                    cfg = transport.config
                    self._pacing = Pacing(transport.link, self.config, target_rate=cfg.target_rate,
                                          min_part=cfg.min_part_size)
        return self._pacing

    @property
    def executor(self) -> ThreadPoolExecutor:
        """Fetch threads shared by every file of the view."""
        if self._executor is None:
            with self._lock:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(self.config.max_workers,
                                                        thread_name_prefix="channels-fastfile")
        return self._executor

    def close(self) -> None:
        """Drop the files fetched ahead, stop fetch threads and close the transport (if the view
        made it); idempotent."""
        if self.ahead is not None:
            self.ahead.close()
        with self._lock:
            if self._closed:
                return
            self._closed = True
            executor, self._executor = self._executor, None
            transport = self._transport if self._own_transport else None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
        if transport is not None:
            transport.close()
        self.budget.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"this FastFileView of {self.uri} is closed")

    def __enter__(self) -> FastFileView:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "listed" if self._root is not None else "not listed yet"
        return f"<FastFileView {self.uri} {state}>"
