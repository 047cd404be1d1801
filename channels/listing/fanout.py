"""Parallel listing of one S3 prefix: LIST streams fanned out over common prefixes, merged into key order.

A flat listing is one stream of pages, each waiting for the last one's
continuation token: 10 M keys are 10,000 pages one after another. Here the
prefix is first listed with the delimiter ``/``; each common prefix it
returns (``train/shard-007/``) is a key range no other part of the listing
touches, so it can be listed at the same time as the others.

The rules, decided under one lock from the pages as they come in:

* A **delimiter stream** lists a prefix with ``/``: its objects are kept,
  and its common prefixes become new streams. While they fit in the streams
  not yet busy (in flight or queued), each gets a delimiter stream of its
  own (recursively: its own common prefixes fan out in turn). Past that,
  they are grouped into as many contiguous runs as streams are free (at
  least one), each listed by one **range stream**: a level of many small
  folders costs about the requests of a flat listing, not one per folder.
* A **range stream** is a flat listing (no delimiter) of the keys from its
  first common prefix up to the end of its last (``start-after``). When a
  page ends inside the range, under one of its prefixes, the rest of that
  prefix is listed by a flat stream bounded by the prefix itself (S3 ends
  it there), and the prefixes after it by a range of their own (a
  delimiter stream when one is left): each page that ends inside a range
  frees a stream's worth of work for another thread.
* So only a range's last page can run past its end (S3 has no end bound):
  those keys are read, dropped and counted (``keys_past_end``), at most one
  page per range.
* A level wider than one page (a page that goes on and holds at least
  ``WIDE_PER_STREAM * streams`` common prefixes) is not walked page by page
  with the delimiter: the rest of it becomes one flat stream, so a wide,
  shallow tree costs about the requests of a flat listing (and, past its
  first page, lists no faster).
* Keys that share no prefix are listed by the first delimiter stream as
  they would be by a flat one: that is the fallback.

At most ``streams`` requests are in flight at once: up to ``streams``
threads, each taking a queued stream, reading its page and deciding what
follows itself (no hand-off to a coordinating thread). Each page is a
sorted run of keys; the runs are merged into key order, which is S3's
order (UTF-8 bytes, the same as Python's order of code points), each key
kept once (a range may cover objects a delimiter page also returned):
exactly what a flat listing returns.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import chain
from operator import itemgetter

from channels.listing.s3api import Page, S3Lister
from channels.store import Store

#: Common prefixes per stream allowed in flight on a delimiter page that goes on:
#: at least this many make the level "wide", and the rest of it one flat stream.
WIDE_PER_STREAM = 4
#: The largest code point: ``p + LAST`` sorts after every key that starts with
#: ``p`` (a key holding U+10FFFF right there would be listed twice, and kept once).
LAST = "\U0010ffff"


@dataclass(frozen=True)
class ListConfig:
    """How a prefix is listed.

    Attributes:
        streams: LIST requests in flight at most. 16: at S3's tens of ms per
            page, 16 streams list about 16x faster than one while staying far
            below S3's per-prefix request rates; 1 lists flat, page after page.
        page_size: keys per page (S3's maximum, 1000, is the default: fewer
            requests); tests lower it to exercise pagination on small data.
        delimiter: what separates the levels of the key tree.
        attempts: tries per page (connection errors, cut bodies, 429/5xx).
        timeout: seconds to connect and between bytes of a response.
    """

    streams: int = 16
    page_size: int = 1000
    delimiter: str = "/"
    attempts: int = 5
    timeout: float = 30.0

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.streams, int) or self.streams < 1:
            problems.append(f"streams {self.streams!r} must be an integer >= 1")
        if not isinstance(self.page_size, int) or not 1 <= self.page_size <= 1000:
            problems.append(f"page_size {self.page_size!r} must be 1..1000 (S3's MaxKeys)")
        if not self.delimiter:
            problems.append("delimiter must not be empty")
        if self.attempts < 1:
            problems.append(f"attempts {self.attempts!r} must be >= 1")
        if problems:
            raise ValueError("invalid ListConfig: " + "; ".join(problems))


@dataclass
class ListStats:
    """What one listing did (the listing's own counters).

    Attributes:
        requests: LIST requests sent (retries included).
        pages: pages received.
        retries: requests that were tries again.
        delimiter_streams: streams that listed a prefix with the delimiter.
        range_streams: flat streams over a run of common prefixes.
        objects: keys kept (after removing duplicates and folder markers).
        bytes: bytes of the response bodies.
        keys_past_end: keys a range stream's last page read past the range's
            end, and dropped (S3 has no end bound).
        peak_in_flight: the most requests that were in flight at once.
        seconds: wall time.
    """

    requests: int = 0
    pages: int = 0
    retries: int = 0
    delimiter_streams: int = 0
    range_streams: int = 0
    objects: int = 0
    bytes: int = 0
    keys_past_end: int = 0
    peak_in_flight: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class _Stream:
    """One stream: a prefix listed with the delimiter, or a flat range ``(start_after, end)``.

    A range over a run of common prefixes names them in ``group``; a flat
    stream with neither ``end`` nor ``group`` is bounded by its prefix alone.
    """

    prefix: str
    delimited: bool
    start_after: str | None = None
    end: str | None = None  # first key not in the range (None: to the end of the prefix)
    token: str | None = None
    group: tuple[str, ...] = ()


@dataclass
class _Walk:
    bucket: str
    config: ListConfig
    stats: ListStats
    runs: list[list[tuple[str, int, str | None]]] = field(default_factory=list)  # each sorted
    keys: int = 0
    busy: int = 0  # streams in flight or queued (the one whose page is being read excluded)


def list_s3_keys(bucket: str, prefix: str, *, store: Store, config: ListConfig | None = None,
                 stats: ListStats | None = None,
                 progress: Callable[..., None] | None = None) -> list[tuple[str, int, str | None]]:
    """Every ``(key, size, etag)`` under ``prefix`` in ``bucket``, in key order (see the module docstring).

    ``progress`` (when given) is called after each page, from the thread that
    read it, with the counters, the keys so far and the streams in flight or
    queued.

    Raises:
        FileNotFoundError: no such bucket.
        PermissionError: access denied.
        OSError: a page could not be had after the configured attempts.
    """
    config = config or ListConfig()
    stats = stats if stats is not None else ListStats()
    started = time.monotonic()
    lister = S3Lister(store, attempts=config.attempts, timeout=config.timeout, pool=config.streams)
    walk = _Walk(bucket, config, stats)
    try:
        _Crawl(walk, lister, progress).run(_Stream(prefix, config.streams > 1))  # one stream: a flat listing
    finally:
        lister.close()
    rows = _merge(walk.runs)
    stats.objects = len(rows)
    stats.seconds = time.monotonic() - started
    if progress is not None:
        progress(stats, len(rows), 0, final=True)
    return rows


class _Crawl:
    """Up to ``streams`` threads, each taking a queued stream, reading its page and deciding what follows.

    The decisions (:func:`_next`) run under one lock in the thread that read
    the page, so a page costs no hand-off to a coordinating thread. Threads
    start as streams queue up, never more than ``streams``.

    Invariants (under ``cond``): ``walk.busy == len(pending) + in_flight``
    outside :func:`_next`; ``idle`` is the number of threads waiting on
    ``cond`` and not yet woken; ``len(threads) <= spawned <= streams``.
    """

    def __init__(self, walk: _Walk, lister: S3Lister, progress: Callable[..., None] | None) -> None:
        self.walk = walk
        self.lister = lister
        self.progress = progress
        self.cond = threading.Condition()
        self.done = threading.Event()
        self.pending: deque[_Stream] = deque()
        self.in_flight = 0
        self.idle = 0
        self.threads: list[threading.Thread] = []
        self.spawned = 0  # threads started or about to be, never more than ``streams``
        self.finished = False
        self.error: BaseException | None = None

    def run(self, first: _Stream) -> None:
        with self.cond:
            self._queue([first])
            spawn = self._spawn(1)
        self._start(spawn)
        try:
            self.done.wait()
        finally:
            with self.cond:
                self.finished = True
                self.cond.notify_all()
                threads = list(self.threads)
            for thread in threads:  # the requests in flight end (or time out) first
                if thread.ident is not None:  # else about to start, and to see ``finished``
                    thread.join()
        if self.error is not None:
            raise self.error

    def _queue(self, streams: list[_Stream]) -> None:
        for s in streams:
            if s.token is None:
                if s.delimited:
                    self.walk.stats.delimiter_streams += 1
                else:
                    self.walk.stats.range_streams += 1
        self.pending.extend(streams)
        self.walk.busy = len(self.pending) + self.in_flight

    def _spawn(self, extra: int) -> int:
        """Wake idle threads for ``extra`` queued streams; how many new threads to start for the rest.

        Those threads are counted here, under the lock, before they start.
        """
        wake = min(extra, self.idle)
        if wake:
            self.idle -= wake
            self.cond.notify(wake)
        spawn = max(0, min(extra - wake, self.walk.config.streams - self.spawned))
        self.spawned += spawn
        return spawn

    def _start(self, count: int) -> None:
        for _ in range(count):
            thread = threading.Thread(target=self._work, name="channels-list", daemon=True)
            with self.cond:
                if self.finished:
                    return
                self.threads.append(thread)
            thread.start()

    def _work(self) -> None:
        walk, stats, cond = self.walk, self.walk.stats, self.cond
        while True:
            with cond:
                while not self.pending and not self.finished:
                    self.idle += 1
                    cond.wait()
                if self.finished:
                    return
                s = self.pending.popleft()
                self.in_flight += 1
                stats.peak_in_flight = max(stats.peak_in_flight, self.in_flight)
            try:
                page = self.lister.page(walk.bucket, s.prefix,
                                        delimiter=walk.config.delimiter if s.delimited else None,
                                        token=s.token, start_after=s.start_after, max_keys=walk.config.page_size)
                with cond:
                    if self.finished:
                        return
                    self.in_flight -= 1
                    stats.requests += page.attempts
                    stats.retries += page.attempts - 1
                    stats.pages += 1
                    stats.bytes += page.nbytes
                    walk.busy = len(self.pending) + self.in_flight
                    self._queue(_next(walk, s, page))
                    spawn = self._spawn(max(0, len(self.pending) - 1))  # this thread takes the next one itself
                    if not self.pending and not self.in_flight:
                        self.finished = True
                        cond.notify_all()
                        self.done.set()
                    if self.progress is not None:
                        self.progress(stats, walk.keys, walk.busy)
                self._start(spawn)
            except BaseException as exc:  # noqa: BLE001 - handed to the listing's caller
                with cond:
                    if self.error is None:
                        self.error = exc
                    self.finished = True
                    cond.notify_all()
                self.done.set()
                return


def _merge(runs: list[list[tuple[str, int, str | None]]]) -> list[tuple[str, int, str | None]]:
    """The runs' objects in key order, each key once, folder markers dropped.

    Each run (a page) is sorted already. Runs that do not overlap (streams
    over disjoint key ranges) are put in order by their first keys and
    joined; else the sort merges them and drops repeated keys (a range may
    cover objects a delimiter page also returned).
    """
    runs = sorted((run for run in runs if run), key=_first_key)
    if all(a[-1][0] < b[0][0] for a, b in zip(runs, runs[1:])):
        return [row for row in chain.from_iterable(runs) if row[0][-1:] != "/"]
    rows = sorted(chain.from_iterable(runs), key=itemgetter(0))
    return [row for row, before in zip(rows, [None, *rows])
            if row[0][-1:] != "/" and (before is None or row[0] != before[0])]


def _first_key(run: list[tuple[str, int, str | None]]) -> str:
    return run[0][0]


def _keep(walk: _Walk, rows: list[tuple[str, int, str | None]]) -> None:
    walk.runs.append(rows)
    walk.keys += len(rows)


def _next(walk: _Walk, s: _Stream, page: Page) -> list[_Stream]:
    """Keep a page's objects; the streams it leads to (its own next page, new fan-out)."""
    rows = page.keys
    if not s.delimited:
        if s.end is not None and rows and rows[-1][0] >= s.end:
            cut = bisect_left(rows, s.end, key=itemgetter(0))
            _keep(walk, rows[:cut])
            walk.stats.keys_past_end += len(rows) - cut
            return []  # past the range: the stream ends here
        _keep(walk, rows)
        if page.next_token is None:
            return []
        if s.group and rows:
            split = _split(s, rows[-1][0])
            if split:
                return split
        return [_Stream(s.prefix, False, end=s.end, token=page.next_token, group=s.group)]
    _keep(walk, rows)
    prefixes = page.prefixes
    if not prefixes:
        return [_Stream(s.prefix, True, token=page.next_token)] if page.next_token else []
    streams = walk.config.streams
    wide = page.next_token is not None and len(prefixes) >= WIDE_PER_STREAM * streams
    free = streams - walk.busy - (0 if wide or page.next_token is None else 1)
    out: list[_Stream] = []
    if not wide and free >= len(prefixes):
        out.extend(_Stream(p, True) for p in prefixes)
    else:
        out.extend(_ranges(s.prefix, prefixes, max(1, free)))
    if page.next_token is not None:
        last = max(prefixes[-1] + LAST, page.keys[-1][0] if page.keys else "")
        if wide:  # the rest of a level wider than a page: one flat range, not page after page
            out.append(_Stream(s.prefix, False, start_after=last))
        else:
            out.append(_Stream(s.prefix, True, token=page.next_token))
    return out


def _split(s: _Stream, last: str) -> list[_Stream]:
    """A range of common prefixes that goes on past ``last``: the rest of ``last``'s prefix, and the rest.

    The rest of that prefix is listed bounded by the prefix (no page runs past
    it); the prefixes after it become one range again (one delimiter stream if
    a single one). Empty when ``last`` lies under none of them (a key of the
    parent's own between two of them): the range then goes on by its token.
    """
    i = bisect_right(s.group, last) - 1
    if i < 0 or not last.startswith(s.group[i]):
        return []
    rest = s.group[i + 1:]
    out = [_Stream(s.group[i], False, start_after=last)]
    if len(rest) == 1:
        out.append(_Stream(rest[0], True))
    elif rest:
        out.append(_Stream(s.prefix, False, start_after=rest[0], end=rest[-1] + LAST, group=rest))
    return out


def _ranges(prefix: str, prefixes: list[str], count: int) -> list[_Stream]:
    """``count`` streams covering the keys under ``prefixes`` (sorted), in contiguous runs.

    A run of one prefix is a delimiter stream of it (it fans out in turn); a
    longer run a range stream from its first prefix to the end of its last.
    """
    count = min(count, len(prefixes))
    bounds = [round(i * len(prefixes) / count) for i in range(count + 1)]
    out = []
    for a, b in zip(bounds, bounds[1:]):
        if b - a == 1:
            out.append(_Stream(prefixes[a], True))
            continue
        group = tuple(prefixes[a:b])
        # Keys from the first prefix (the folder marker itself is skipped anyway)
        # up to every key under the last.
        out.append(_Stream(prefix, False, start_after=group[0], end=group[-1] + LAST, group=group))
    return out
