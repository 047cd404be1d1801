"""Parallel listing of one S3 prefix: LIST streams fanned out over common prefixes, merged into key order.

A flat listing is one stream of pages, each waiting for the last one's
continuation token: 10 M keys are 10,000 pages one after another. Here the
prefix is first listed with the delimiter ``/``; each common prefix it
returns (``train/shard-007/``) is a key range no other part of the listing
touches, so it can be listed at the same time as the others.

The rules, all decided in one thread from the pages as they come in:

* A **delimiter stream** lists a prefix with ``/``: its objects are kept,
  and its common prefixes become new streams. While fewer than
  ``4 * streams`` streams are running or queued, each common prefix gets a
  delimiter stream of its own (recursively: its own common prefixes fan out
  in turn). Past that, the common prefixes of a page are grouped into
  contiguous runs, each listed by one **range stream**, so a deep tree of
  small folders costs about the requests of a flat listing, not one per
  folder.
* A **range stream** is a flat listing (no delimiter) of the keys from one
  common prefix up to the end of another (``start-after``, then
  continuation tokens), stopping at the first key past its end.
* A level wider than one page (a page that goes on and holds at least
  ``4 * streams`` common prefixes) is not
  walked page by page with the delimiter: the rest of it becomes one range
  stream, so a wide, shallow tree costs about the requests of a flat
  listing (and, past its first page, lists no faster).
* A range stream's last page may run past its end (S3 has no end bound):
  those keys are read and dropped, at most one page per range.
* Keys that share no prefix are listed by the first delimiter stream as
  they would be by a flat one: that is the fallback.

At most ``streams`` requests are in flight at once (a thread pool of that
size; queued streams wait for a thread). Each page is a sorted run of keys;
the runs are merged into key order, which is S3's order (UTF-8 bytes, the
same as Python's order of code points), each key kept once (a range may
cover objects a delimiter page also returned): exactly what a flat listing
returns.
"""

from __future__ import annotations

import sys
import threading
import time
from bisect import bisect_left
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from operator import itemgetter
from typing import TextIO

from channels.listing.s3api import Page, S3Lister
from channels.store import Store

#: Streams queued or running per stream allowed in flight: while fewer are, each
#: common prefix gets a delimiter stream of its own (no page overshoots a
#: range's end); past that, common prefixes are grouped into ranges.
QUEUED_PER_STREAM = 4
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
    peak_in_flight: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class ListProgress:
    """``listing s3://b/p/: 1,234,000 keys, 1,240 pages, 8 streams, 12.3 s`` on one self-rewriting line.

    Drawn only on a terminal (by default) and only once a listing has run
    ``after`` seconds, so short listings print nothing.
    """

    def __init__(self, label: str, *, stream: TextIO | None = None, enabled: bool | None = None,
                 after: float = 1.0, interval: float = 0.25) -> None:
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.enabled = enabled
        self.label = label
        self.after = after
        self.interval = interval
        self.started = time.monotonic()
        self._drawn_at = 0.0
        self.drawn = 0

    def line(self, stats: ListStats, keys: int, running: int) -> str:
        return (f"listing {self.label}: {keys:,} keys, {stats.pages:,} pages, {running} stream(s), "
                f"{time.monotonic() - self.started:.1f} s")

    def __call__(self, stats: ListStats, keys: int, running: int, *, final: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.started < self.after or (not final and now - self._drawn_at < self.interval):
            return
        self._drawn_at = now
        self.drawn += 1
        try:
            self.stream.write("\r" + self.line(stats, keys, running) + ("\n" if final else ""))
            self.stream.flush()
        except (OSError, ValueError):
            self.enabled = False


@dataclass
class _Stream:
    """One stream: a prefix listed with the delimiter, or a flat range ``(start_after, end)``."""

    prefix: str
    delimited: bool
    start_after: str | None = None
    end: str | None = None  # first key not in the range (None: to the end of the prefix)
    token: str | None = None


@dataclass
class _Walk:
    bucket: str
    config: ListConfig
    lister: S3Lister
    stats: ListStats
    runs: list[list[tuple[str, int, str | None]]] = field(default_factory=list)  # each sorted
    keys: int = 0
    running: dict[Future, _Stream] = field(default_factory=dict)


def list_s3_keys(bucket: str, prefix: str, *, store: Store, config: ListConfig | None = None,
                 stats: ListStats | None = None,
                 progress: Callable[..., None] | None = None) -> list[tuple[str, int, str | None]]:
    """Every ``(key, size, etag)`` under ``prefix`` in ``bucket``, in key order (see the module docstring).

    Raises:
        FileNotFoundError: no such bucket.
        PermissionError: access denied.
        OSError: a page could not be had after the configured attempts.
    """
    config = config or ListConfig()
    stats = stats if stats is not None else ListStats()
    started = time.monotonic()
    lister = S3Lister(store, attempts=config.attempts, timeout=config.timeout, pool=config.streams)
    walk = _Walk(bucket, config, lister, stats)
    lock = threading.Lock()
    in_flight = [0]

    def fetch(s: _Stream) -> Page:
        with lock:
            in_flight[0] += 1
            stats.peak_in_flight = max(stats.peak_in_flight, in_flight[0])
        try:
            return lister.page(bucket, s.prefix, delimiter=config.delimiter if s.delimited else None,
                               token=s.token, start_after=s.start_after, max_keys=config.page_size)
        finally:
            with lock:
                in_flight[0] -= 1

    try:
        with ThreadPoolExecutor(config.streams, thread_name_prefix="channels-list") as pool:
            def start(s: _Stream) -> None:
                if s.token is None:
                    if s.delimited:
                        stats.delimiter_streams += 1
                    else:
                        stats.range_streams += 1
                walk.running[pool.submit(fetch, s)] = s

            start(_Stream(prefix, config.streams > 1))  # one stream: a flat listing
            try:
                while walk.running:
                    done, _ = wait(list(walk.running), return_when=FIRST_COMPLETED)
                    for future in done:
                        s = walk.running.pop(future)
                        page = future.result()
                        stats.requests += page.attempts
                        stats.retries += page.attempts - 1
                        stats.pages += 1
                        stats.bytes += page.nbytes
                        for nxt in _next(walk, s, page):
                            start(nxt)
                    if progress is not None:
                        progress(stats, walk.keys, len(walk.running))
            finally:
                for future in walk.running:
                    future.cancel()
    finally:
        lister.close()
    rows = _merge(walk.runs, overlap=stats.range_streams > 0)
    stats.objects = len(rows)
    stats.seconds = time.monotonic() - started
    if progress is not None:
        progress(stats, len(rows), 0, final=True)
    return rows


def _merge(runs: list[list[tuple[str, int, str | None]]],
           overlap: bool = True) -> list[tuple[str, int, str | None]]:
    """The runs' objects in key order, each key once, folder markers dropped.

    Each run (a page) is sorted already, so the sort merges runs.
    """
    rows = [row for run in runs for row in run]
    rows.sort(key=itemgetter(0))
    if not overlap:  # delimiter streams list disjoint keys: only folder markers to drop
        return [row for row in rows if row[0][-1:] != "/"]
    out = []
    last = None
    for row in rows:
        key = row[0]
        if key != last and not key.endswith("/"):
            out.append(row)
        last = key
    return out


def _next(walk: _Walk, s: _Stream, page: Page) -> list[_Stream]:
    """Keep a page's objects; the streams it leads to (its own next page, new fan-out)."""
    rows = page.keys
    if not s.delimited:
        if s.end is not None and rows and rows[-1][0] >= s.end:
            walk.runs.append(rows[:bisect_left(rows, s.end, key=itemgetter(0))])
            walk.keys += len(walk.runs[-1])
            return []  # past the range: the stream ends here
        walk.runs.append(rows)
        walk.keys += len(rows)
        return [_Stream(s.prefix, False, end=s.end, token=page.next_token)] if page.next_token else []
    walk.runs.append(rows)
    walk.keys += len(rows)
    prefixes = page.prefixes
    out: list[_Stream] = []
    if not prefixes:
        return [_Stream(s.prefix, True, token=page.next_token)] if page.next_token else []
    budget = QUEUED_PER_STREAM * walk.config.streams
    wide = page.next_token is not None and len(prefixes) >= budget
    free = budget - len(walk.running) - (0 if wide or page.next_token is None else 1)
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


def _ranges(prefix: str, prefixes: list[str], count: int) -> list[_Stream]:
    """``count`` range streams covering the keys under ``prefixes`` (sorted), in contiguous runs."""
    count = min(count, len(prefixes))
    bounds = [round(i * len(prefixes) / count) for i in range(count + 1)]
    out = []
    for a, b in zip(bounds, bounds[1:]):
        first, last = prefixes[a], prefixes[b - 1]
        # Keys from ``first`` (the folder marker ``first`` itself is skipped anyway)
        # up to every key under ``last``.
        out.append(_Stream(prefix, False, start_after=first, end=last + LAST))
    return out
