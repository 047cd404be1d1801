"""Bandwidth caps of the loopback proxy: a virtual-clock token bucket."""

from __future__ import annotations

import threading
import time

from channels.testing.wire import BUFFER


class Pacer:
    """Paces bytes to ``rate`` bytes/s; thread-safe, so it can be shared.

    A virtual clock: ``take(n)`` moves the clock ``n / rate`` seconds ahead
    and sleeps until it is no longer ahead of real time. A flow that fell
    behind (its upstream was slow to deliver a slice) may catch up by at
    most ``burst`` seconds; the default, two slices' worth (about 20 ms), is
    enough that the time spent receiving a slice is not added to the time
    spent pacing it, which would hold a flow well below ``rate``.
    ``restart()`` drops the credit (a new response starts from now).

    Invariant: ``_clock >= monotonic() - burst`` after every ``take``.
    """

    def __init__(self, rate: float, burst: float | None = None) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be > 0 bytes/s, got {rate!r}")
        self.rate = float(rate)
        self.burst = burst if burst is not None else max(0.002, 2 * self.slice() / self.rate)
        self._clock = time.monotonic()
        self._lock = threading.Lock()

    def restart(self) -> None:
        """Forget the past: the next bytes are paced from now, with no credit."""
        with self._lock:
            self._clock = time.monotonic()

    def take(self, n: int) -> None:
        with self._lock:
            now = time.monotonic()
            self._clock = max(self._clock, now - self.burst) + n / self.rate
            wait = self._clock - now
        if wait > 0:
            time.sleep(wait)

    def slice(self) -> int:
        """A send size that keeps pacing smooth: ~10 ms of bytes, 16 KiB to 1 MiB."""
        return int(min(BUFFER, max(16 * 1024, self.rate * 0.01)))
