"""A long listing's progress, drawn on one self-rewriting terminal line."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from channels.listing.fanout import ListStats


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
