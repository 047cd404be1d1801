"""What the harness runs: a registry of runners, our modes first.

A runner is a named, prepared read of a whole dataset. ``prepare(target)``
is a context manager that does the untimed set-up (clients, listings,
destination folders) and yields the timed body, ``body(meter)``, which reads
every object and reports its bytes to the :class:`Meter` as they arrive. A
body can be called again (each repeat reuses it); one that leaves state
behind carries a ``reset()`` the harness calls, untimed, after each call.
The harness owns the clock and the CPU counters around the body.

Our modes (this module) and the peer clients (:mod:`channels.bench.peers`)
register here by name; an unknown name gets a ValueError listing the valid
ones. A mode whose module is not importable yet is registered as unavailable
with the reason, and the harness skips it with a note.

Records: Pipe counts the records its framer yields; every other runner
moves bytes only and is credited with the records those bytes hold (the
dataset's fixed count per object, for each whole object read).

What each mode's body does, as a training script would:

* ``pipe``: :class:`~channels.modes.pipe.PipeReader` with
  ``framing="recordio"``: every record of every object, counted.
* ``file``: :func:`~channels.modes.file.download` of the whole prefix to a
  fresh folder (tmpfs where there is one, so the disk is not measured). Its
  time to first byte is the whole download: a File-mode job's script starts
  only when the download is complete.
* ``fastfile``: :class:`~channels.modes.fastfile.FastFileView`, each file
  opened in key order and read to its end in 1 MiB ``readinto`` calls.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import ContextManager

from channels.listing import Listing

MODE = "mode"
PEER = "peer"
READ_SIZE = 1 << 20


class Meter:
    """What a body has read, and when its first byte came.

    Args:
        max_seconds: a soft cap: bodies that go object by object stop
            starting new objects after it (the run is then marked
            incomplete; its rates stay valid, over what was read).

    Invariant: ``ttfb`` is None until the first non-empty ``add``.
    """

    def __init__(self, max_seconds: float | None = None) -> None:
        self.max_seconds = max_seconds
        self.bytes = 0
        self.objects = 0
        self.records = 0
        self.ttfb: float | None = None
        self.start = time.perf_counter()
        self.end: float | None = None
        self.counters: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, nbytes: int, objects: int = 0, records: int = 0) -> None:
        """Count bytes (and whole objects, records) the consumer now holds; thread-safe."""
        with self._lock:
            if self.ttfb is None and nbytes:
                self.ttfb = time.perf_counter() - self.start
            self.bytes += nbytes
            self.objects += objects
            self.records += records

    def first_byte(self) -> None:
        """Mark the first byte now (for bodies whose bytes arrive all at once)."""
        if self.ttfb is None:
            self.ttfb = time.perf_counter() - self.start

    def expired(self) -> bool:
        return self.max_seconds is not None and time.perf_counter() - self.start > self.max_seconds

    def stop(self) -> float:
        """Stop the clock; returns the seconds elapsed."""
        if self.end is None:
            self.end = time.perf_counter()
        return self.end - self.start


@dataclass(frozen=True)
class Target:
    """Where the data is, as one runner sees it (through one profile).

    Attributes:
        endpoint_url: the URL clients talk to (the proxy's, or the endpoint's).
        bucket: the bucket.
        prefix: the dataset's key prefix (ends with "/").
        listing: the dataset listed through ``endpoint_url`` (untimed).
        records_per_object: RecordIO records in each object, or None.
        workdir: scratch space for runners that write (File mode).
    """

    endpoint_url: str
    bucket: str
    prefix: str
    listing: Listing
    records_per_object: int | None = None
    workdir: str = ""

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    @property
    def keys(self) -> list[str]:
        return [r.url.split("/", 3)[3] for r in self.listing.refs]

    def store(self):
        from channels.store import Store

        return Store(self.endpoint_url)


Body = Callable[[Meter], None]


@dataclass(frozen=True)
class Runner:
    """A registered way to read a dataset.

    Attributes:
        name: registry key (``pipe``, ``boto3``...).
        kind: ``mode`` (ours) or ``peer`` (a baseline client).
        description: what the body does, in a phrase.
        prepare: ``prepare(target)`` -> context manager yielding the body.
        unavailable: why it cannot run here (missing package), or None.
    """

    name: str
    kind: str
    description: str
    prepare: Callable[[Target], ContextManager[Body]]
    unavailable: str | None = None
    extra: dict = field(default_factory=dict)


RUNNERS: dict[str, Runner] = {}


def register_runner(runner: Runner) -> Runner:
    """Add (or replace) a runner in the registry; returns it."""
    RUNNERS[runner.name] = runner
    return runner


def get_runner(name: str) -> Runner:
    """The runner named ``name``.

    Raises:
        ValueError: unknown name; the message lists the valid ones.
    """
    _load()
    try:
        return RUNNERS[name]
    except KeyError:
        raise ValueError(f"unknown runner {name!r}: use one of {', '.join(sorted(RUNNERS))}") from None


def names(kind: str) -> list[str]:
    """Registered runner names of one kind, in registration order."""
    _load()
    return [n for n, r in RUNNERS.items() if r.kind == kind]


def _load() -> None:
    from channels.bench import peers  # noqa: F401  (registers the peers)


def _missing(module: str) -> str | None:
    import importlib.util

    try:
        return None if importlib.util.find_spec(module) else f"{module} is not importable"
    except ImportError as exc:
        return f"{module} is not importable: {exc}"


def scratch_root() -> str:
    """A folder for File mode's downloads: tmpfs where there is one."""
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK):
        return shm
    return tempfile.gettempdir()


# ---------------------------------------------------------------- our modes

@contextlib.contextmanager
def _pipe(target: Target) -> Iterator[Body]:
    from channels.modes.pipe.reader import PipeReader

    framing = "recordio" if target.records_per_object else "raw"
    reader = PipeReader(target.uri, framing=framing, store=target.store())
    reader.listing  # listed now, untimed, and reused by every epoch (as for every runner)

    def body(meter: Meter) -> None:
        records = 0
        before, stats_before = dict(reader.counts), reader.stats()
        it = reader.epoch(0)
        try:
            for _record in it:
                if records == 0:
                    meter.first_byte()
                records += 1
                if records & 1023 == 0 and meter.expired():
                    break
        finally:
            it.close()
        counts = _delta(reader.counts, before)  # bytes delivered to the framer, objects begun
        meter.add(counts["bytes_out"], counts["objects"], records)
        meter.counters = _delta(reader.stats(), stats_before)

    try:
        yield body
    finally:
        reader.close()


@contextlib.contextmanager
def _file(target: Target) -> Iterator[Body]:
    from channels.modes.file.download import download

    root = tempfile.mkdtemp(prefix="channels-bench-", dir=target.workdir or scratch_root())
    dest = os.path.join(root, "data")
    rpo = target.records_per_object or 0

    def body(meter: Meter) -> None:
        result = download(target.listing, dest, store=target.store(), progress=False)
        meter.first_byte()  # the script starts when the download is complete
        meter.add(result.bytes, result.objects, result.objects * rpo)
        meter.counters = {"requests": result.requests, "retries": result.retries}

    body.reset = lambda: shutil.rmtree(dest, ignore_errors=True)  # the next run downloads anew
    try:
        yield body
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def _fastfile(target: Target) -> Iterator[Body]:
    from channels.modes.fastfile.view import FastFileView

    view = FastFileView(target.uri, target.store())
    view.load()
    paths = _walk_files(view)
    buf = bytearray(READ_SIZE)
    rpo = target.records_per_object or 0

    def body(meter: Meter) -> None:
        before = view.stats.snapshot()
        for path in paths:
            if meter.expired():
                break
            with view.open(path) as f:
                while True:
                    n = f.readinto(buf)
                    if not n:
                        break
                    meter.add(n)
            meter.add(0, 1, rpo)
        meter.counters = _delta(view.stats.snapshot(), before)

    try:
        yield body
    finally:
        view.close()


def _delta(after: dict, before: dict) -> dict:
    """Counters gained since ``before`` (peaks and other non-additive values as they are)."""
    return {k: v - before.get(k, 0) if "peak" not in k else v for k, v in after.items()}


def _walk_files(view) -> list[str]:
    out = []
    for dirpath, _, files in view.walk():
        out.extend(f"{dirpath}/{f}" if dirpath else f for f in files)
    return out


register_runner(Runner("pipe", MODE, "PipeReader, framing=recordio: every record counted", _pipe,
                       _missing("channels.modes.pipe.reader")))
register_runner(Runner("file", MODE, "download() of the prefix to tmpfs; TTFB = whole download", _file,
                       _missing("channels.modes.file.download")))
register_runner(Runner("fastfile", MODE, "FastFileView: each file read to its end, 1 MiB readinto", _fastfile,
                       _missing("channels.modes.fastfile.view")))
