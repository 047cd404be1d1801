"""A one-line terminal progress bar and the end-of-run summary.

Shared by the modes that move a known amount of bytes (File mode's download,
a Pipe epoch). Rates are in MB/s with 1 MB = 10**6 bytes, as network tools
print them; sizes in KiB/MiB/GiB (:func:`channels.balance.human_bytes`).

Example:
    >>> p = Progress(total_bytes=10, total_objects=2, enabled=False)
    >>> p.advance(nbytes=10, objects=2)
    >>> p.close()
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from typing import TextIO

from channels.units import human_bytes, human_seconds, mb_per_s


class Progress:
    """Bytes, MB/s, objects and ETA on one self-rewriting line.

    Draws at most every ``interval`` seconds, only when enabled: by default
    when ``stream`` is a terminal, so logs and pipes stay clean. Thread-safe.

    Args:
        total_bytes: bytes this run will move.
        total_objects: objects this run will move.
        stream: where to draw (default ``sys.stderr``).
        enabled: force on or off; None means "if ``stream`` is a TTY".
        label: a word shown before the bar (e.g. the channel name).
        interval: seconds between redraws.
    """

    WIDTH = 24

    def __init__(self, total_bytes: int, total_objects: int, *, stream: TextIO | None = None,
                 enabled: bool | None = None, label: str = "", interval: float = 0.2) -> None:
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.enabled = enabled
        self.total_bytes = max(0, int(total_bytes))
        self.total_objects = max(0, int(total_objects))
        self.label = label
        self.interval = interval
        self.bytes = 0
        self.objects = 0
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._drawn_at = 0.0
        self._width = 0  # characters of the last line drawn, to blank it

    def advance(self, nbytes: int = 0, objects: int = 0) -> None:
        """Count work done; redraws when due."""
        with self._lock:
            self.bytes += nbytes
            self.objects += objects
            if self.enabled:
                now = time.monotonic()
                if now - self._drawn_at >= self.interval:
                    self._drawn_at = now
                    self._draw(now)

    def line(self, now: float | None = None) -> str:
        """The text of the bar as it stands."""
        now = time.monotonic() if now is None else now
        elapsed = now - self.started
        frac = self.bytes / self.total_bytes if self.total_bytes else (
            self.objects / self.total_objects if self.total_objects else 1.0)
        frac = min(1.0, frac)
        filled = int(frac * self.WIDTH)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        rate = mb_per_s(self.bytes, elapsed)
        if 0 < frac < 1 and elapsed > 0:
            eta = human_seconds(elapsed * (1 - frac) / frac)
        else:
            eta = "--" if frac < 1 else "0 s"
        head = f"{self.label} " if self.label else ""
        return (f"{head}[{bar}] {frac * 100:5.1f}% {human_bytes(self.bytes)}/{human_bytes(self.total_bytes)} "
                f"{rate:,.0f} MB/s {self.objects}/{self.total_objects} objects ETA {eta}")

    def _draw(self, now: float) -> None:
        text = self.line(now)
        pad = " " * max(0, self._width - len(text))
        self._width = len(text)
        try:
            self.stream.write("\r" + text + pad)
            self.stream.flush()
        except (OSError, ValueError):  # a closed terminal must not stop the work
            self.enabled = False

    def close(self) -> None:
        """Draw the final state and end the line (when enabled)."""
        with self._lock:
            if self.enabled and (self.bytes or self.objects or self._width):
                self._draw(time.monotonic())
                try:
                    self.stream.write("\n")
                    self.stream.flush()
                except (OSError, ValueError):
                    pass
            self.enabled = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass(frozen=True)
class Summary:
    """What a run moved, for the closing line.

    Attributes:
        objects: objects moved.
        bytes: bytes moved.
        seconds: wall time.
        retries: transport retries.
        skipped: objects left alone (already up to date).
        requests: store requests issued.
    """

    objects: int
    bytes: int
    seconds: float
    retries: int = 0
    skipped: int = 0
    requests: int = 0

    @property
    def mb_per_s(self) -> float:
        return mb_per_s(self.bytes, self.seconds)

    @property
    def objects_per_s(self) -> float:
        return self.objects / self.seconds if self.seconds > 0 else 0.0

    def format(self, verb: str = "downloaded") -> str:
        """``downloaded 64 objects, 1.0 GiB in 1.21 s (887 MB/s, 53 objects/s), 0 retries``."""
        if not self.objects and self.skipped:
            return f"all {self.skipped} objects already up to date: nothing {verb} ({self.seconds:.2f} s)"
        text = (f"{verb} {self.objects} object{'s' if self.objects != 1 else ''}, "
                f"{human_bytes(self.bytes)} in {self.seconds:.2f} s ({self.mb_per_s:,.0f} MB/s, "
                f"{self.objects_per_s:,.0f} objects/s), {self.retries} "
                f"retr{'y' if self.retries == 1 else 'ies'}")
        if self.skipped:
            text += f"; {self.skipped} already up to date"
        return text
