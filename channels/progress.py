"""A terminal progress bar (tqdm's) and the end-of-run summary line.

Shared by the modes that move a known amount of bytes (File mode's download,
a Pipe epoch). Rates are in MB/s with 1 MB = 10**6 bytes, as network tools
print them; sizes in the summary in KiB/MiB/GiB (:func:`channels.units.human_bytes`).

Example:
    >>> p = Progress(total_bytes=10, total_objects=2, enabled=False)
    >>> p.advance(nbytes=10, objects=2)
    >>> p.close()
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from typing import TextIO

from channels.units import human_bytes, mb_per_s


#: tqdm's default line, with the byte unit on the counts too ("1.05MB/2.10MB").
BAR_FORMAT = "{l_bar}{bar}| {n_fmt}B/{total_fmt}B [{elapsed}<{remaining}, {rate_fmt}{postfix}]"


class Progress:
    """Bytes, MB/s, objects and ETA on one self-rewriting line: a tqdm bar.

    Draws only when enabled: by default when ``stream`` is a terminal, so
    logs and pipes stay clean. Thread-safe (workers may advance it).

    Args:
        total_bytes: bytes this run will move.
        total_objects: objects this run will move.
        stream: where to draw (default ``sys.stderr``).
        enabled: force on or off; None means "if ``stream`` is a TTY".
        label: a word shown before the bar (e.g. the channel name).
        interval: the least seconds between redraws.
    """

    def __init__(self, total_bytes: int, total_objects: int, *, stream: TextIO | None = None,
                 enabled: bool | None = None, label: str = "", interval: float = 0.2) -> None:
        stream = stream if stream is not None else sys.stderr
        if enabled is None:
            isatty = getattr(stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.enabled = enabled
        self.total_objects = max(0, int(total_objects))
        self.bytes = 0
        self.objects = 0
        self._lock = threading.Lock()
        self._bar = None  # no bar, and no tqdm import (a tenth of a second at start-up), when not drawing
        if enabled:
            from tqdm import tqdm

            # Decimal units (unit_scale, divisor 1000): MB/s as network tools and our summaries print them.
            self._bar = tqdm(total=max(0, int(total_bytes)), desc=label or None, unit="B", unit_scale=True,
                             unit_divisor=1000, file=stream, mininterval=interval, leave=True,
                             dynamic_ncols=True, postfix=self._objects_text(), bar_format=BAR_FORMAT)

    def _objects_text(self) -> str:
        return f"{self.objects}/{self.total_objects} objects"

    def advance(self, nbytes: int = 0, objects: int = 0) -> None:
        """Count work done; redraws when due."""
        with self._lock:
            self.bytes += nbytes
            self.objects += objects
            if self._bar is None:
                return
            if objects:
                self._bar.set_postfix_str(self._objects_text(), refresh=False)
            if nbytes:
                self._bar.update(nbytes)

    def close(self) -> None:
        """Draw the final state and end the line (when enabled); idempotent."""
        with self._lock:
            try:
                if self._bar is not None:
                    self._bar.close()
            except (OSError, ValueError):  # a closed terminal must not stop the work
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
