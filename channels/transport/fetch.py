"""Backend reads with retries: what the transport's public API and its streams call.

A :class:`Fetcher` picks the backend of a URL and keeps calling it until a
range is complete: a transient failure (:class:`PartialRead`) resumes at the
failed offset after a full-jitter exponential backoff, up to
``config.retries`` further attempts in a row without progress. It sees every
attempt, so it times those on remote backends (time to first byte, the rate
as bytes arrive) for its :class:`~channels.transport.link.LinkMonitor`.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator

from channels.errors import TransportError
from channels.store import Store, protocol_of
from channels.transport.backends import Backend, backend_class
from channels.transport.backends.base import OnData, Progress
from channels.transport.config import TransportConfig
from channels.transport.errors import Cancelled, PartialRead, Truncated
from channels.transport.link import Attempt, LinkMonitor
from channels.transport.stats import TransportStats

log = logging.getLogger(__name__)


class Fetcher:
    """Retried reads through one backend per store kind; thread-safe.

    Args:
        store: endpoint rules and fsspec options.
        config: retries, backoff and the S3 backend's name.
        stats: counters for bytes, retries and errors (backends add requests).

    Attributes:
        link: the timing of every attempt on a remote backend.
    """

    def __init__(self, store: Store, config: TransportConfig, stats: TransportStats) -> None:
        self.store = store
        self.config = config
        self.stats = stats
        self.link = LinkMonitor()
        self._lock = threading.Lock()
        # Invariant: one backend per name, made on first use, closed by close().
        self._backends: dict[str, Backend] = {}

    def backend_for(self, url: str) -> Backend:
        """The backend serving ``url``: S3 fast path, local files, or fsspec."""
        protocol = protocol_of(url)
        name = self.config.s3_backend if protocol == "s3" else "local" if protocol == "file" else "fsspec"
        backend = self._backends.get(name)
        if backend is None:
            with self._lock:
                backend = self._backends.get(name)
                if backend is None:
                    backend = backend_class(name)(self.store, self.config, self.stats)
                    self._backends[name] = backend
        return backend

    def read(self, url: str, start: int, view: memoryview, size: int | None, etag: str | None,
             cancel: threading.Event | None, progress: Progress | None = None) -> None:
        """Fill ``view`` with ``[start, start + len(view))``, resuming on failure."""
        backend = self.backend_for(url)

        # Invariant: view[:done] holds bytes [start, start + done) of the object.
        def attempt(done: int) -> None:
            with self._timed(backend, start + done, len(view) - done) as timer:
                backend.read_into(url, start + done, view[done:], size=size, etag=etag, cancel=cancel,
                                  progress=progress if timer is None else timer.progress(progress))

        self._retrying(url, start, len(view), cancel, attempt)

    def read_to(self, url: str, start: int, n: int, scratch: memoryview, on_data: OnData,
                size: int | None, etag: str | None, cancel: threading.Event | None) -> None:
        """Hand ``[start, start + n)`` to ``on_data`` through ``scratch``, resuming on failure."""
        backend = self.backend_for(url)

        # Invariant: on_data has had bytes [start, start + done), each once.
        def attempt(done: int) -> None:
            with self._timed(backend, start + done, n - done) as timer:
                backend.read_to(url, start + done, n - done, scratch,
                                on_data if timer is None else timer.on_data(on_data),
                                size=size, etag=etag, cancel=cancel)

        self._retrying(url, start, n, cancel, attempt)

    @contextlib.contextmanager
    def _timed(self, backend: Backend, start: int, n: int) -> Iterator[Attempt | None]:
        """A timer for one attempt on a remote backend at bytes ``[start, start + n)``, reported
        to :attr:`link` when it ends; None for local files."""
        if not backend.remote:
            yield None
            return
        timer = self.link.attempt(start, n)
        try:
            yield timer
        finally:
            timer.done()

    def get(self, url: str) -> bytes:
        """A whole object of unknown size, retried from scratch."""
        backend = self.backend_for(url)
        failures = attempts = 0
        while True:
            attempts += 1
            try:
                data = backend.get(url)
            except PartialRead as exc:
                failures += 1
                if self._give_up_or_wait(url, 0, attempts, failures, exc.cause, None):
                    continue
            except BaseException:
                self.stats.add(errors=1)
                raise
            else:
                self.stats.add(bytes=len(data))
                return data

    def close(self) -> None:
        """Release every backend's connections; idempotent."""
        with self._lock:
            backends, self._backends = list(self._backends.values()), {}
        for backend in backends:
            backend.close()

    def _retrying(self, url: str, start: int, n: int, cancel: threading.Event | None,
                  attempt: Callable[[int], None]) -> None:
        """Call ``attempt(done)`` (one backend read of bytes ``[start + done,
        start + n)``) until the range is complete, or raise."""
        done = failures = attempts = 0
        while True:
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            attempts += 1
            try:
                attempt(done)
            except PartialRead as exc:
                done += exc.nread
                self.stats.add(bytes=exc.nread)
                # Progress forgives earlier failures: the retry budget bounds
                # consecutive attempts that got nothing.
                failures = 1 if exc.nread else failures + 1
                if done >= n:
                    return
                if self._give_up_or_wait(url, start + done, attempts, failures, exc.cause, cancel):
                    continue
            except Truncated as cut:  # the caller has the rest read elsewhere
                self.stats.add(bytes=max(0, min(cut.nread, n) - done))
                raise
            except Cancelled:
                raise
            except BaseException:
                self.stats.add(errors=1)
                raise
            else:
                self.stats.add(bytes=n - done)
                return

    def _give_up_or_wait(self, url: str, offset: int, attempts: int, failures: int,
                         cause: BaseException, cancel: threading.Event | None) -> bool:
        """Sleep before a retry (True), or raise TransportError when spent."""
        cfg = self.config
        if failures > cfg.retries:
            self.stats.add(errors=1)
            raise TransportError(
                f"gave up reading {url} at offset {offset} after {attempts} attempts; last "
                f"error: {cause!r}. The store kept failing: check the endpoint, or raise "
                f"TransportConfig.retries (now {cfg.retries})",
                url=url, offset=offset, attempts=attempts, cause=repr(cause)) from cause
        self.stats.add(retries=1)
        delay = random.uniform(0, min(cfg.backoff_max, cfg.backoff_base * 2 ** (failures - 1)))
        log.debug("retrying %s at offset %d in %.3fs (attempt %d): %r", url, offset, delay,
                  attempts + 1, cause)
        if cancel is not None:
            if cancel.wait(delay):
                raise Cancelled()
        elif delay:
            time.sleep(delay)
        return True
