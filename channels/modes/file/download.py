"""File mode: this host's share of a channel, downloaded to a directory.

The steps, in order, each before any byte is written:

1. list the source (or take a listing), refuse keys that would land outside
   DEST (:mod:`channels.modes.file.keys`);
2. plan this host's share and report its balance (and a skew warning with the
   size-balanced plan's figure);
3. read the journal beside the data (:mod:`channels.modes.file.journal`)
   and keep only what is missing or changed;
4. check free space on DEST's filesystem (and against VolumeSizeInGB).

Then every object to fetch goes through one :meth:`Transport.stream`, which
keeps many objects (and many parts of a large one) in flight within its
memory budget. The worker thread that fetches a part writes each run of its
bytes, as it arrives, with ``os.pwrite`` at its offset into
``DEST/<key dir>/.<name>.channels-tmp-<pid>-<random>-<n>`` (created with
``O_EXCL``, mode 0o644), so writes into the page cache run on every core;
the file is renamed to its key once its last part is written: no partial
file ever stands under a final name. On any exit (error, Ctrl-C, a SIGTERM
the CLI turns into KeyboardInterrupt) the temporary files are removed and
completed objects stay recorded.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from channels.balance import BalanceReport, report
from channels.errors import ManifestError
from channels.folders import make_dirs
from channels.listing import S3_PREFIX, Listing, ObjectRef, list_source
from channels.modes.file.disk import check_space, remove_stale_tmp
from channels.modes.file.journal import DownloadState
from channels.modes.file.keys import check_keys
from channels.modes.file.writer import TmpFiles, dest_error
from channels.progress import Progress, Summary
from channels.sharding import (
    SHARDED_BY_S3_KEY,
    SKEW_THRESHOLD,
    check_host,
    host_name,
    plan,
)
from channels.store import Store
from channels.transport import Transport, TransportConfig
from channels.units import human_bytes


@dataclass(frozen=True)
class DownloadResult(Summary):
    """What one download did (``objects``/``bytes`` count this run's transfers).

    Attributes:
        dest: the destination directory.
        host: this host's name.
        share_objects: objects in this host's share (fetched + up to date).
        share_bytes: bytes in this host's share.
        setup_seconds: of ``seconds``, the time before the first GET
            (listing, planning, the journal and space checks).
    """

    dest: str = ""
    host: str = ""
    share_objects: int = 0
    share_bytes: int = 0
    setup_seconds: float = 0.0

    def format(self, verb: str = "downloaded") -> str:
        text = super().format(verb)
        if self.objects and self.setup_seconds >= 0.01:
            text += f"; {self.setup_seconds:.2f} s of it listing and checks before the first byte"
        return text


@dataclass
class Share:
    """This host's share of a source, planned and checked against the journal.

    Attributes:
        listing: the whole source.
        report: the balance report of the plan.
        refs: this host's objects, in plan order (each key once).
        todo: those missing or changed in ``dest``.
        state: the journal of completed objects.
        dest: the destination directory (absolute).
        host: this host's name.
        index: this host's index.
    """

    listing: Listing
    report: BalanceReport
    refs: list[ObjectRef]
    todo: list[ObjectRef]
    state: DownloadState
    dest: Path
    host: str
    index: int

    @property
    def share_bytes(self) -> int:
        return sum(r.size for r in self.refs)

    @property
    def need(self) -> int:
        """Bytes still to fetch."""
        return sum(r.size for r in self.todo)

    def lines(self) -> list[str]:
        """The shard report and what is left to fetch, as lines to print."""
        return [*shard_summary(self.report, self.index, self.host),
                f"{len(self.todo)} of {len(self.refs)} objects to fetch ({human_bytes(self.need)}); "
                f"{len(self.refs) - len(self.todo)} up to date"]


def download(source: str | Listing, dest: str | os.PathLike, *, hosts: int = 1, host_index: int = 0,
             strategy: str = SHARDED_BY_S3_KEY, volume_size_gb: float | None = None,
             store: Store | None = None, config: TransportConfig | None = None,
             progress: bool | None = None, log: Callable[[str], None] | None = None,
             data_type: str = S3_PREFIX, host: str | None = None, fsync: bool = False,
             disk_free: Callable[[Path], int] | None = None, label: str = "",
             started: float | None = None) -> DownloadResult:
    """Download this host's share of ``source`` below ``dest``, resumably.

    Args:
        source: a prefix URL (``s3://bucket/prefix/``), a manifest URL with
            ``data_type``, or a :class:`Listing` already made.
        dest: the directory objects land in, each at its ``key``.
        hosts: number of hosts sharing the work.
        host_index: this host's 0-based index.
        strategy: sharded-by-s3-key, size-balanced or fully-replicated (or the
            API's ShardedByS3Key/FullyReplicated).
        volume_size_gb: VolumeSizeInGB (GiB); this host's whole share must fit.
        store: endpoint and options (default: from the environment).
        config: transport tuning (default: ``TransportConfig()``).
        progress: draw a progress bar on stderr; None means "when it is a TTY".
        log: called with each line of the report and the summary (None: silent).
        data_type: S3Prefix or ManifestFile, when ``source`` is a URL.
        host: this host's name, for its journal (default ``algo-<index+1>``).
        fsync: fsync each file before renaming it into place.
        disk_free: bytes free on the filesystem of a path (default
            ``shutil.disk_usage(path).free``); tests point it at a limit.
        label: a word for the progress bar (e.g. the channel name).
        started: ``time.monotonic()`` when the work began, for the summary's
            seconds (default: now); a caller that listed ``source`` itself
            passes the time the listing began.

    Returns:
        DownloadResult: this run's transfers, what was already up to date,
        MB/s and transport retries.

    Raises:
        UnsafeKeyError: keys that would land outside ``dest``; nothing written.
        InsufficientSpaceError: not enough free space; nothing written.
        ShardingError: bad host index or count.
        DestinationError: an object could not be written at its key.
        KeyboardInterrupt: interrupted; temporary files are removed and
            completed objects recorded, so a rerun fetches only the rest.
    """
    started = time.monotonic() if started is None else started
    store = store or Store.from_env()
    share = prepare(source, dest, hosts=hosts, host_index=host_index, strategy=strategy, store=store,
                    data_type=data_type, host=host)
    for line in share.lines():
        (log or _silent)(line)
    check_space(share.dest, share.need, share.share_bytes, volume_size_gb, disk_free)
    return fetch(share, store=store, config=config, progress=progress, log=log, fsync=fsync, label=label,
                 started=started)


def prepare(source: str | Listing, dest: str | os.PathLike, *, hosts: int = 1, host_index: int = 0,
            strategy: str = SHARDED_BY_S3_KEY, store: Store | None = None, data_type: str = S3_PREFIX,
            host: str | None = None) -> Share:
    """List, check keys, plan and compare with the journal: everything but bytes.

    Raises:
        UnsafeKeyError, ManifestError, ShardingError: as :func:`download`.
    """
    check_host(host_index, hosts)
    listing = source if isinstance(source, Listing) else list_source(source, data_type,
                                                                     store=store or Store.from_env())
    inline = next((r for r in listing.refs if r.inline is not None), None)
    if inline is not None:
        raise ManifestError(f"{listing.source}: File mode writes objects to files, but this source holds "
                            f"values with no object behind them ({inline.url}); read augmented manifests "
                            "in Pipe mode", url=listing.source)
    check_keys(listing.refs, listing.source)
    name = host or host_name(host_index)
    if hosts == 1 and listing.unit_starts is None:
        # One host reads every unit in listing order: no plan to make, and no numpy to import.
        sizes, units = [r.size for r in listing.refs], range(len(listing.refs))
    else:
        sizes = listing.unit_sizes()
        units = plan(sizes, hosts, strategy).units_for(host_index)
    rep = report(sizes, hosts, strategy, source=listing.source)
    refs = list({r.key: r for r in listing.expand(units)}.values())  # a key once, even if listed twice
    dest_path = Path(dest).absolute()
    state = DownloadState(dest_path, name).load()
    todo = [r for r in refs if not state.up_to_date(r)]
    return Share(listing, rep, refs, todo, state, dest_path, name, host_index)


def fetch(share: Share, *, store: Store | None = None, config: TransportConfig | None = None,
          progress: bool | None = None, log: Callable[[str], None] | None = None, fsync: bool = False,
          label: str = "", started: float | None = None) -> DownloadResult:
    """Fetch ``share.todo`` into ``share.dest`` (after the space check).

    See :func:`download` for the arguments and what an interrupt leaves.
    """
    started = time.monotonic() if started is None else started
    say = log or _silent
    todo = share.todo
    make_dirs(str(share.dest))
    remove_stale_tmp(share.dest, todo)
    bar = Progress(share.need, len(todo), enabled=progress, label=label)
    setup = time.monotonic() - started
    transport = Transport(store, config)
    tally = _Tally()
    interrupted = True
    try:
        _fetch(transport, todo, share.dest, share.state, bar, fsync, tally)
        interrupted = False
    finally:
        try:
            share.state.close()
        finally:
            bar.close()
            transport.close()
        if interrupted:
            say(f"stopped: {tally.objects} of {len(todo)} objects completed and kept, temporary files "
                f"removed; rerun to fetch the other {len(todo) - tally.objects}")
    stats = transport.stats.snapshot()
    result = DownloadResult(tally.objects, tally.bytes, time.monotonic() - started, stats["retries"],
                            len(share.refs) - len(todo), stats["requests"], str(share.dest), share.host,
                            len(share.refs), share.share_bytes, setup)
    say(result.format())
    return result


def _silent(line: str) -> None:
    pass


class _Tally:
    """Objects and bytes completed (renamed into place and recorded) so far."""

    __slots__ = ("objects", "bytes")

    def __init__(self) -> None:
        self.objects = 0
        self.bytes = 0


def _fetch(transport: Transport, todo: list[ObjectRef], dest: Path, state: DownloadState,
           bar: Progress, fsync: bool, tally: _Tally) -> None:
    """Write every object of ``todo``, counting completed ones in ``tally``.

    The transport's worker threads write each run of bytes at its offset as
    soon as it arrives (``TmpFiles.write`` is the stream's sink): page-cache
    writes run on every core, copy bytes still in the CPU's cache, and a part
    in flight holds a 1 MiB landing buffer rather than its whole length.
    This thread takes the parts in order and renames each object into place
    once its last part is written.
    """
    files = TmpFiles(str(dest))
    stream = transport.stream(todo, sink=files.write)
    current: ObjectRef | None = None  # the object whose rename is under way
    try:
        for chunk in stream:
            bar.advance(chunk.nbytes)
            if chunk.last:
                current = chunk.ref
                final = files.finish(current, fsync)
                _completed(current, final, state, tally, bar)
                files.forget(current)
                current = None
    finally:
        stream.close()
        for ref, final, renamed in files.abort():
            # Renamed into place, then interrupted before it was recorded: it
            # is complete (the rename follows its last byte), so record it.
            if renamed and ref is current and not state.up_to_date(ref):
                _completed(ref, final, state, tally, bar)


def _completed(ref: ObjectRef, final: str, state: DownloadState, tally: _Tally, bar: Progress) -> None:
    try:
        st = os.stat(final)
    except OSError as exc:
        raise dest_error(ref, final, exc) from exc
    state.add(ref, st)
    tally.objects += 1
    tally.bytes += ref.size
    bar.advance(objects=1)


def shard_summary(rep: BalanceReport, index: int, name: str) -> list[str]:
    """The shard report as a few lines: this host's share, balance, warnings."""
    me = rep.hosts[index]
    n = len(rep.hosts)
    lines = [f"{rep.source}: {rep.objects} objects, {human_bytes(rep.total_bytes)}; {rep.strategy} over "
             f"{n} host{'s' if n != 1 else ''}: this host ({name}, index {index}) gets {me.objects} objects, "
             f"{human_bytes(me.bytes)}; busiest host {rep.imbalance:.2f}x the mean (best possible "
             f"{rep.lower_bound:.2f}x)"]
    if rep.skewed or rep.lower_bound >= SKEW_THRESHOLD:
        lines.append(f"warning: {rep.recommendation}")
    lines.extend(f"warning: {w}" for w in rep.warnings)
    return lines
