"""Every input mode under injected faults: byte-identical data, retries that match.

The faults come from the benchmark's loopback proxy
(:class:`channels.bench.proxy.Proxy`) in front of moto, driven by
:class:`MixedFaults`: exactly one object GET in every 20 (5%) is broken, the
kinds in rotation so that each one occurs:

- ``reset``: the body is cut by a TCP reset partway through;
- ``truncate``: the body ends early with a clean close (FIN);
- ``slowdown``: ``503 SlowDown`` instead of the object;
- ``internal``: ``500 InternalError`` instead of the object;
- ``stall``: the body stops partway for longer than the read timeout.

A body fault always withholds at least one byte (the policy knows each
response's length from its Range header or the object's size), so each
injected fault costs the client exactly one retry, and the tests assert
``transport retries == faults injected``. Data is compared by sha256 of every
record (Pipe), every file (File, FastFile) against the source bytes.

Listing requests are not counted by the 5% policy (listing goes through
s3fs, with its own retries); :func:`test_listing_page_cut_short_is_retried`
breaks them on purpose.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import pytest

from channels.testing.proxy import Action, Proxy, RequestInfo
from channels.errors import ObjectChangedError, TransportError
from channels.listing import list_prefix
from channels.modes.fastfile.view import FastFileView
from channels.modes.pipe.fifo import FifoServer
from channels.modes.file.download import download
from channels.modes.pipe.reader import PipeReader
from channels.modes.fastfile.readahead import ReadaheadConfig
from channels.records import framer
from channels.store import Store
from channels.testing import KIB, object_bytes
from channels.transport import Transport, TransportConfig

KINDS = ("reset", "truncate", "slowdown", "internal", "stall")
#: A short read timeout, so that a stalled response is abandoned quickly.
READ_TIMEOUT = 0.5
#: How long a stalled response hangs (well past the read timeout).
STALL_SECONDS = 2.0
PREFIX = "ds/"

#: Small parts, so that a few MiB make a few hundred GETs (5% of them faulted).
CONFIG = dict(part_size=64 * KIB, budget_bytes=1024 * KIB, max_workers=8, retries=6,
              backoff_base=0.001, backoff_max=0.01, read_timeout=READ_TIMEOUT, connect_timeout=2.0)
#: FastFile windows of 64 to 256 KiB in 64 KiB parts; objects up to 128 KiB read whole.
READAHEAD = dict(initial_window=64 * KIB, part_size=64 * KIB, max_window=256 * KIB, budget_bytes=2048 * KIB,
                 max_workers=8, whole_object_bytes=128 * KIB)


# ---------------------------------------------------------------- the fault policy

@dataclass(frozen=True)
class Injected:
    """One fault the proxy injected.

    Attributes:
        index: the matching request's 1-based number.
        kind: one of :data:`KINDS`.
        target: the request target (``/bucket/key``).
        range: the Range header, or None for a whole-object GET.
        after_bytes: body bytes sent before a body fault (0 for status faults).
    """

    index: int
    kind: str
    target: str
    range: str | None
    after_bytes: int


def object_gets(req: RequestInfo) -> bool:
    """GETs of objects (path-style, no query): not listings, not HEADs."""
    return req.method == "GET" and "?" not in req.target


class MixedFaults:
    """A :data:`channels.bench.proxy.FaultPolicy`: a fixed share of requests broken, every kind in turn.

    Matching requests are taken in blocks of ``round(1 / rate)``; one request
    at a seeded random place in each block gets a fault, so the share is
    exact. Kinds go in rotation. Body faults (``reset``, ``truncate``,
    ``stall``) always keep back at least one byte of the body, so each costs
    the client exactly one retry; where a body is empty a status fault is
    injected instead.

    Args:
        sizes: ``"bucket/key" -> bytes``, for the body length of whole-object GETs.
        rate: the share of matching requests broken.
        kinds: the kinds to rotate through.
        stall_seconds: how long a stalled body hangs before the proxy closes it.
        seed: placement of the fault in each block, and where bodies break.
        match: which requests count (default: object GETs).
        active: while False, nothing is counted or broken (e.g. during set-up).

    Attributes:
        injected: every fault injected, in order.
        matched: matching requests seen.
    """

    def __init__(self, sizes: Mapping[str, int], *, rate: float = 0.05, kinds: tuple[str, ...] = KINDS,
                 stall_seconds: float = STALL_SECONDS, seed: int = 0,
                 match: Callable[[RequestInfo], bool] = object_gets) -> None:
        if not 0 < rate <= 1:
            raise ValueError(f"rate must be in (0, 1], got {rate!r}")
        unknown = set(kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}: use {', '.join(KINDS)}")
        self.sizes = dict(sizes)
        self.period = max(1, round(1 / rate))
        self.kinds = kinds
        self.stall_seconds = stall_seconds
        self.match = match
        self.active = True
        self.injected: list[Injected] = []
        self.matched = 0
        self._rng = random.Random(seed)
        self._slots: dict[int, int] = {}
        self._lock = threading.Lock()

    def __call__(self, req: RequestInfo) -> Action | None:
        if not self.active or not self.match(req):
            return None
        with self._lock:
            self.matched += 1
            block, place = divmod(self.matched - 1, self.period)
            slot = self._slots.setdefault(block, self._rng.randrange(self.period))
            if place != slot:
                return None
            kind = self.kinds[len(self.injected) % len(self.kinds)]
            length = self.body_length(req)
            after = 0
            if kind in ("reset", "truncate", "stall"):
                if not length:
                    kind = "slowdown"
                else:
                    after = self._rng.randrange(length)  # at least one byte kept back
            self.injected.append(Injected(self.matched, kind, req.target, req.range, after))
        if kind == "reset":
            return Action("reset", after_bytes=after)
        if kind == "truncate":
            return Action("stall", after_bytes=after, seconds=0.0)  # stop, then close cleanly
        if kind == "stall":
            return Action("stall", after_bytes=after, seconds=self.stall_seconds)
        return Action("status", status=503 if kind == "slowdown" else 500)

    def body_length(self, req: RequestInfo) -> int | None:
        """The body bytes the upstream will send for ``req``, or None if unknown."""
        if req.range:
            first, _, last = req.range.removeprefix("bytes=").partition("-")
            return int(last) - int(first) + 1
        return self.sizes.get(unquote(req.target.lstrip("/")))

    def kinds_seen(self) -> set[str]:
        return {f.kind for f in self.injected}


@contextlib.contextmanager
def fault_proxy(s3, policy) -> Iterator[Proxy]:
    """The benchmark proxy in front of ``s3`` with ``policy``; stopped on exit."""
    with Proxy(s3.endpoint_url, fault_policy=policy) as proxy:
        yield proxy


def sha(data) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def dataset(s3_client, bucket) -> dict[str, bytes]:
    """40 objects, 0 B to 400 KiB (about 8 MiB): a few hundred 64 KiB GETs."""
    rng = random.Random(8)
    sizes = [0, 1, 64 * KIB, 64 * KIB + 1] + [rng.randint(1, 400 * KIB) for _ in range(36)]
    data = {}
    for i, size in enumerate(sizes):
        key = f"{PREFIX}obj-{i:03d}.bin"
        data[key] = object_bytes(key, size)
        s3_client.put_object(Bucket=bucket, Key=key, Body=data[key])
    return data


def sizes_of(bucket: str, data: Mapping[str, bytes]) -> dict[str, int]:
    return {f"{bucket}/{k}": len(v) for k, v in data.items()}


def check_counts(policy: MixedFaults, proxy: Proxy, retries: int, errors: int = 0) -> None:
    """Every kind was injected, 5% of GETs, and each fault cost exactly one retry (printed with -s)."""
    kinds = ", ".join(f"{k} {sum(f.kind == k for f in policy.injected)}" for k in KINDS)
    print(f"\n{policy.matched} object GETs, {len(policy.injected)} faults ({kinds}); retries {retries}")
    assert policy.kinds_seen() == set(KINDS), policy.injected
    # One per full block of 20 GETs, and maybe one in the last, partial block.
    assert policy.matched // policy.period <= len(policy.injected) <= -(-policy.matched // policy.period)
    assert len(proxy.stats.faults) == len(policy.injected)
    assert retries == len(policy.injected), (retries, policy.injected)
    assert errors == 0


# ---------------------------------------------------------------- every mode, 5% faults

def test_pipe_reader_survives_five_percent_faults(s3, bucket, dataset):
    expected = [sha(dataset[k]) for k in sorted(dataset)]
    policy = MixedFaults(sizes_of(bucket, dataset))
    with fault_proxy(s3, policy) as proxy, \
            PipeReader(f"s3://{bucket}/{PREFIX}", framing="object", store=Store(proxy.url),
                       config=TransportConfig(**CONFIG)) as reader:
        for epoch in range(3):
            assert [sha(r) for r in reader.epoch(epoch)] == expected, f"epoch {epoch}"
        stats = reader.transport.stats.snapshot()
    check_counts(policy, proxy, stats["retries"], stats["errors"])
    assert stats["bytes"] == 3 * sum(map(len, dataset.values()))


def read_fifo_records(path: Path, records: list[str], timeout: float = 30.0) -> None:
    """Open a FIFO once it exists, read it to EOF, append the sha of each RecordIO record."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.005)
    f = framer("recordio", str(path))
    with open(path, "rb") as fifo:
        while chunk := fifo.read(256 * KIB):
            records.extend(sha(r) for r in f.feed(chunk))
    records.extend(sha(r) for r in f.finish())


def test_fifo_server_survives_five_percent_faults(s3, bucket, dataset, tmp_path):
    expected = [sha(dataset[k]) for k in sorted(dataset)]
    policy = MixedFaults(sizes_of(bucket, dataset))
    with fault_proxy(s3, policy) as proxy:
        reader = PipeReader(f"s3://{bucket}/{PREFIX}", framing="raw", record_wrapper="RecordIO",
                            store=Store(proxy.url), config=TransportConfig(**CONFIG))
        server = FifoServer({"train": reader}, tmp_path, epochs=2)
        served = threading.Thread(target=server.serve, daemon=True)
        served.start()
        for epoch in range(2):
            got: list[str] = []
            read_fifo_records(tmp_path / "input" / "data" / f"train_{epoch}", got)
            assert got == expected, f"epoch {epoch}"
        served.join(30)
        assert not served.is_alive()
    assert all(w.error is None for w in server.writers)
    stats = reader.transport.stats.snapshot()
    check_counts(policy, proxy, stats["retries"], stats["errors"])


def test_file_download_survives_five_percent_faults(s3, bucket, dataset, tmp_path):
    policy = MixedFaults(sizes_of(bucket, dataset))
    dest = tmp_path / "dest"
    with fault_proxy(s3, policy) as proxy:
        result = download(f"s3://{bucket}/{PREFIX}", dest, store=Store(proxy.url),
                          config=TransportConfig(**CONFIG), progress=False)
    got = {str(p.relative_to(dest)): sha(p.read_bytes()) for p in dest.rglob("*")
           if p.is_file() and not p.name.startswith(".channels")}
    assert got == {k.removeprefix(PREFIX): sha(v) for k, v in dataset.items()}
    assert result.objects == len(dataset)
    check_counts(policy, proxy, result.retries)


def read_view(view: FastFileView, paths, chunk: int = 100 * KIB) -> dict[str, str]:
    out = {}
    for path in paths:
        h = hashlib.sha256()
        with view.open(path) as f:
            while data := f.read(chunk):
                h.update(data)
        out[path] = h.hexdigest()
    return out


def test_fastfile_view_survives_five_percent_faults(s3, bucket, dataset):
    policy = MixedFaults(sizes_of(bucket, dataset))
    expected = {k.removeprefix(PREFIX): sha(v) for k, v in dataset.items()}
    with fault_proxy(s3, policy) as proxy:
        store = Store(proxy.url)
        transport = Transport(store, TransportConfig(**CONFIG))
        with transport, FastFileView(f"s3://{bucket}/{PREFIX}", store, ReadaheadConfig(**READAHEAD),
                                     transport=transport) as view:
            for _ in range(2):
                assert read_view(view, sorted(expected)) == expected
            stats = transport.stats.snapshot()
    check_counts(policy, proxy, stats["retries"], stats["errors"])


# ---------------------------------------------------------------- FastFile through FUSE

FUSE_MISSING = [why for ok, why in ((os.path.exists("/dev/fuse"), "/dev/fuse is missing"),
                                    (bool(__import__("shutil").which("fusermount3")),
                                     "fusermount3 is not installed"))
                if not ok]
needs_fuse = pytest.mark.skipif(bool(FUSE_MISSING), reason="FUSE unavailable: " + "; ".join(FUSE_MISSING))

#: Mounts a prefix with the test's transport settings; on SIGTERM unmounts and
#: writes the transport's counters as JSON.
MOUNT_SCRIPT = r"""
import json, sys
from channels.modes.fastfile.view import FastFileView
from channels.modes.fastfile.mount import mount
from channels.modes.fastfile.readahead import ReadaheadConfig
from channels.store import Store
from channels.transport import Transport, TransportConfig
uri, mountpoint, endpoint, stats_path, config, readahead = sys.argv[1:7]
store = Store(endpoint)
transport = Transport(store, TransportConfig(**json.loads(config)))
view = FastFileView(uri, store, ReadaheadConfig(**json.loads(readahead)), transport=transport)
mount(view, mountpoint)
with open(stats_path, "w") as f:
    json.dump(transport.stats.snapshot(), f)
"""


@contextlib.contextmanager
def mounted(uri: str, mountpoint: Path, endpoint: str, stats_path: Path, config: dict) -> Iterator[None]:
    """A FUSE mount of ``uri`` in a child process, unmounted (SIGTERM) on exit."""
    from channels.modes.fastfile.mount import is_mounted, wait_mounted

    mountpoint.mkdir(exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", MOUNT_SCRIPT, uri, str(mountpoint), endpoint,
                             str(stats_path), json.dumps(config), json.dumps(READAHEAD)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if not wait_mounted(str(mountpoint), 60, alive=lambda: proc.poll() is None):
            proc.kill()
            pytest.fail(f"not mounted: {proc.communicate()[1]}")
        yield
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=30)
        finally:
            if is_mounted(str(mountpoint)):
                subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], check=False)
        assert proc.returncode == 0, err


@pytest.mark.fuse
@needs_fuse
def test_fastfile_mount_survives_five_percent_faults(s3, bucket, dataset, tmp_path):
    policy = MixedFaults(sizes_of(bucket, dataset))
    expected = {k.removeprefix(PREFIX): sha(v) for k, v in dataset.items()}
    mp, stats_path = tmp_path / "mnt", tmp_path / "stats.json"
    with fault_proxy(s3, policy) as proxy:
        with mounted(f"s3://{bucket}/{PREFIX}", mp, proxy.url, stats_path, CONFIG):
            for _ in range(2):
                got = {}
                for name in sorted(expected):
                    with open(mp / name, "rb", buffering=0) as f:
                        got[name] = sha(f.read())
                assert got == expected
                # Drop the kernel's page cache of the mount so the second pass reads again.
                for name in expected:
                    fd = os.open(mp / name, os.O_RDONLY)
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                    os.close(fd)
    stats = json.loads(stats_path.read_text())
    check_counts(policy, proxy, stats["retries"], stats["errors"])


# ---------------------------------------------------------------- listing, stalls, budget, ETag

def test_listing_page_cut_short_is_retried(s3, s3_client, bucket, dataset):
    """A listing response reset partway, then one cut short with a clean close: s3fs retries both."""
    cuts = iter([Action("reset", after_bytes=300), Action("stall", after_bytes=500, seconds=0.0)])
    lists: list[RequestInfo] = []

    def policy(req: RequestInfo) -> Action | None:
        if req.method == "GET" and "list-type" in req.target:
            lists.append(req)
            return next(cuts, None)
        return None

    with fault_proxy(s3, policy) as proxy:
        listing = list_prefix(f"s3://{bucket}/{PREFIX}", store=Store(proxy.url))
    assert [r.key for r in listing.refs] == [k.removeprefix(PREFIX) for k in sorted(dataset)]
    assert [r.size for r in listing.refs] == [len(dataset[k]) for k in sorted(dataset)]
    assert len(proxy.stats.faults) == 2 and len(lists) == 3  # two cut pages, one whole


def stall_once(after: int = 1000) -> Callable[[RequestInfo], Action | None]:
    """A policy that stalls the first object GET for a long time."""
    done = []

    def policy(req: RequestInfo) -> Action | None:
        if object_gets(req) and not done:
            done.append(req)
            return Action("stall", after_bytes=after, seconds=30.0)
        return None

    return policy


def read_one(mode: str, uri: str, key: str, store: Store, config: TransportConfig, tmp_path: Path):
    """Read ``key`` below ``uri`` in one mode; returns (bytes, transport stats)."""
    if mode == "pipe":
        with PipeReader(uri, framing="object", store=store, config=config) as reader:
            got = b"".join(bytes(r) for r in reader.epoch(0))
            return got, reader.transport.stats.snapshot()
    if mode == "file":
        result = download(uri, tmp_path / "dest", store=store, config=config, progress=False)
        return (tmp_path / "dest" / key).read_bytes(), {"retries": result.retries}
    readahead = ReadaheadConfig(**{**READAHEAD, "whole_object_bytes": 0})  # ranged reads only
    with Transport(store, config) as t, FastFileView(uri, store, readahead, transport=t) as view, \
            view.open(key) as f:
        return f.read(), t.stats.snapshot()


@pytest.mark.parametrize("mode", ["pipe", "file", "fastfile"])
def test_a_stalled_response_is_timed_out_and_retried(s3, s3_client, bucket, tmp_path, mode):
    data = object_bytes("slow", 300 * KIB)
    s3_client.put_object(Bucket=bucket, Key="slow/x.bin", Body=data)
    config = TransportConfig(**{**CONFIG, "read_timeout": 0.3})
    with fault_proxy(s3, stall_once()) as proxy:
        started = time.monotonic()
        got, stats = read_one(mode, f"s3://{bucket}/slow/", "x.bin", Store(proxy.url), config, tmp_path)
        elapsed = time.monotonic() - started
    assert got == data
    assert stats["retries"] == 1 and len(proxy.stats.faults) == 1
    assert elapsed < 10, f"the stall (30 s) was waited out: {elapsed:.1f}s"


def range_start(req: RequestInfo) -> int | None:
    return int(req.range.removeprefix("bytes=").split("-")[0]) if req.range else None


def fail_from(key: str, offset: int) -> Callable[[RequestInfo], Action | None]:
    """503 SlowDown for every GET of ``key`` whose range starts at ``offset`` or later.

    ``policy.starts`` records the ranges refused.
    """
    def policy(req: RequestInfo) -> Action | None:
        start = range_start(req)
        if object_gets(req) and req.target.endswith(key) and start is not None and start >= offset:
            policy.starts.append(start)
            return Action("status", status=503)
        return None

    policy.starts = []
    return policy


@pytest.mark.parametrize("mode", ["pipe", "file", "fastfile"])
def test_spent_retry_budget_names_object_offset_attempts_and_cause(s3, s3_client, bucket, tmp_path, mode):
    s3_client.put_object(Bucket=bucket, Key="down/x.bin", Body=object_bytes("down", 300 * KIB))
    config = TransportConfig(**{**CONFIG, "retries": 3, "max_workers": 1})
    url = f"s3://{bucket}/down/x.bin"
    policy = fail_from("down/x.bin", 128 * KIB)
    with fault_proxy(s3, policy) as proxy:
        with pytest.raises(TransportError) as info:
            read_one(mode, f"s3://{bucket}/down/", "x.bin", Store(proxy.url), config, tmp_path)
    err = info.value
    # Pipe and File read 64 KiB parts (the failing one starts at 128 KiB);
    # FastFile's windows grow, so its failing part starts somewhere past that.
    offset = err.details["offset"]
    assert offset == 128 * KIB if mode != "fastfile" else offset in policy.starts
    message = str(err)
    assert url in message and f"at offset {offset} " in message and "after 4 attempts" in message
    assert "SlowDown" in message and "503" in message
    assert err.details["url"] == url and err.details["attempts"] == 4
    assert err.__cause__ is not None
    assert policy.starts.count(offset) == 4 and len(proxy.stats.faults) == len(policy.starts)
    if mode == "file":
        assert not (tmp_path / "dest" / "x.bin").exists()


def overwrite_midway(s3_client, bucket: str, key: str, offset: int) -> Callable[[RequestInfo], Action | None]:
    """Overwrite ``key`` at the store just before the first GET of a range at ``offset`` or later.

    ``policy.starts`` holds that range's start.
    """
    def policy(req: RequestInfo) -> Action | None:
        start = range_start(req)
        if (object_gets(req) and req.target.endswith(key) and start is not None and start >= offset
                and not policy.starts):
            policy.starts.append(start)
            s3_client.put_object(Bucket=bucket, Key=key, Body=b"new version " * 30_000)
        return None

    policy.starts = []
    return policy


@pytest.mark.parametrize("mode", ["pipe", "file", "fastfile"])
def test_an_object_overwritten_mid_read_is_reported_not_mixed(s3, s3_client, bucket, tmp_path, mode):
    s3_client.put_object(Bucket=bucket, Key="chg/x.bin", Body=object_bytes("old", 300 * KIB))
    config = TransportConfig(**{**CONFIG, "max_workers": 1})
    policy = overwrite_midway(s3_client, bucket, "chg/x.bin", 128 * KIB)
    url = f"s3://{bucket}/chg/x.bin"
    with fault_proxy(s3, policy) as proxy:
        with pytest.raises(ObjectChangedError) as info:
            read_one(mode, f"s3://{bucket}/chg/", "x.bin", Store(proxy.url), config, tmp_path)
    assert policy.starts, "the object was never overwritten"
    err = info.value
    offset = err.details["offset"]
    assert url in str(err) and "changed since it was listed" in str(err) and f"offset {offset}" in str(err)
    assert err.details["url"] == url
    # Pipe and File read parts in order (one worker): the first part after the
    # overwrite fails. FastFile fetches a window's parts on several threads, so
    # any part that reached the store after the overwrite may be the one.
    assert offset == policy.starts[0] if mode != "fastfile" else 0 <= offset < 300 * KIB
    if mode == "file":  # no file mixing two versions is left under its name
        assert not (tmp_path / "dest" / "x.bin").exists()
