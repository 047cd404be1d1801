"""Counters of FastFile's work: per file, and a view's totals over its files."""

from __future__ import annotations

from channels.memory.stats import Counters


class ReadStats(Counters):
    """Thread-safe counters of a file's (or a whole view's) work.

    Attributes (read through :meth:`snapshot`):
        requests: fetch calls made (one per part).
        bytes_fetched: bytes those fetches returned.
        bytes_read: bytes handed to readers.
        windows: windows fetched (direct reads included).
        prefetches: windows started in the background.
        seeks: reads that reset the window.
        budget_denied: windows that fell back to a direct read for want of budget.
        files_ahead: first windows fetched for files not open yet (a view's).
        files_ahead_used: of those, windows a file opened later read from.
        files_ahead_dropped: of those, windows dropped unused (their budget given back).
        files_ahead_late: of those used, windows still landing when their file was
            opened, other than a walk's first wave: the reader caught up with
            the files ahead (each time, twice as many are fetched from then
            on, within the budget).
    """

    FIELDS = ("requests", "bytes_fetched", "bytes_read", "windows", "prefetches", "seeks",
              "budget_denied", "files_ahead", "files_ahead_used", "files_ahead_dropped",
              "files_ahead_late")
