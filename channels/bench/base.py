"""What every runner is made of: the runner, its meter, its target, its body.

A runner is a named, prepared read of a whole dataset. ``prepare(target)``
is a context manager that does the untimed set-up (clients, listings,
destination folders) and yields the timed body, ``body(meter)``, which reads
every object and reports its bytes to the :class:`Meter` as they arrive. A
body can be called again (each repeat reuses it); one that leaves state
behind carries a ``reset()`` the harness calls, untimed, after each call
(and one that writes files, ``dest``: their folder). The harness owns the
clock and the CPU counters around the body.

Our modes are in :mod:`channels.bench.ours`, the baseline clients in
:mod:`channels.bench.peers`; :mod:`channels.bench.catalog` registers both by
name. This module imports neither: it is the floor both stand on.

Records: Pipe counts the records its framer yields; every other runner
moves bytes only and is credited with the records those bytes hold (the
dataset's fixed count per object, for each whole object read).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ContextManager

from channels.listing import Listing

MODE = "mode"
PEER = "peer"
READ_SIZE = 1 << 20

#: A runner's job, what the user gets at the end: the bytes in memory, or every object in a file.
#: A mode is measured against the peers doing the same job, never a disk writer against a reader.
READ = "read"
DOWNLOAD = "download"
JOBS = {READ: "read each object's bytes into memory", DOWNLOAD: "write each object of the prefix to a file"}


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

    @classmethod
    def listed(cls, endpoint_url: str, bucket: str, prefix: str, records_per_object: int | None = None,
               workdir: str = "") -> Target:
        """A target whose listing is made now, through ``endpoint_url``."""
        from channels.listing import list_prefix
        from channels.store import Store

        listing = list_prefix(f"s3://{bucket}/{prefix}", store=Store(endpoint_url))
        return cls(endpoint_url, bucket, prefix, listing, records_per_object, workdir)

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
    """A way to read a dataset, as the catalog lists it.

    Attributes:
        name: registry key (``pipe``, ``boto3``...).
        kind: ``mode`` (ours) or ``peer`` (a baseline client).
        description: what the body does, in a phrase.
        prepare: ``prepare(target)`` -> context manager yielding the body.
        unavailable: why it cannot run here (missing package), or None.
        job: ``read`` (bytes into memory) or ``download`` (files on disk): the
            runners a mode is compared with do the same job.
    """

    name: str
    kind: str
    description: str
    prepare: Callable[[Target], ContextManager[Body]]
    unavailable: str | None = None
    extra: dict = field(default_factory=dict)
    job: str = READ

    def __post_init__(self) -> None:
        if self.kind not in (MODE, PEER):
            raise ValueError(f"runner {self.name}: kind {self.kind!r} is not {MODE!r} or {PEER!r}")
        if self.job not in JOBS:
            raise ValueError(f"runner {self.name}: job {self.job!r} is not one of {', '.join(JOBS)}")


def read_once(body: Body) -> Meter:
    """One call of a prepared body on a fresh meter, for a clock other than the harness's.

    The benchmarks in ``benchmarks/`` time bodies with pytest-benchmark or
    their own rounds; the meter says what the call read. A body's ``reset()``
    is left to the caller (it is not part of a read).
    """
    meter = Meter()
    body(meter)
    meter.stop()
    return meter


def reader(prepare: Callable[[Target], ContextManager[Body]], target: Target,
           stack: contextlib.ExitStack) -> Callable[[], int]:
    """``prepare(target)`` entered on ``stack`` (and closed with it), as a call that reads the
    whole target once and returns the bytes: a runner for a clock other than the harness's."""
    body = stack.enter_context(prepare(target))
    return lambda: read_once(body).bytes


def s3_client(endpoint_url: str, pool: int = 32):
    """A boto3 S3 client on ``endpoint_url`` with ``pool`` connections; credentials from the environment.

    For uploads and listings, and the client the boto3 peers read through.
    """
    import boto3
    import botocore.config

    return boto3.session.Session().client("s3", endpoint_url=endpoint_url,
                                          config=botocore.config.Config(max_pool_connections=pool))


def missing(module: str) -> str | None:
    """Why ``module`` cannot be imported here, or None when it can."""
    import importlib.util

    try:
        return None if importlib.util.find_spec(module) else f"{module} is not importable"
    except ImportError as exc:
        return f"{module} is not importable: {exc}"


def scratch_root() -> str:
    """A folder for downloads that should not measure the disk: tmpfs where there is one."""
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK):
        return shm
    return tempfile.gettempdir()
