"""Every input mode under injected faults: byte-identical data, retries that match.

The faults come from the rig's loopback proxy
(:class:`channels.testing.proxy.Proxy`) in front of moto, driven by
:class:`channels.testing.faults.MixedFaults`: exactly one object GET in
every 20 (5%) is broken, the kinds in rotation so that each one occurs:

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
s3fs, with its own retries); ``tests/test_faults_targeted.py`` breaks them on
purpose, and one request at a time: a stalled response, a spent retry budget,
an object overwritten mid-read.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from faultload import CONFIG, PREFIX, READAHEAD, put_dataset
from faultproxy import fault_proxy, sha, sizes_of
from mounting import needs_fuse

from channels.modes.fastfile.readahead import ReadaheadConfig
from channels.modes.fastfile.view import FastFileView
from channels.modes.file.download import download
from channels.modes.pipe.fifo import FifoServer
from channels.modes.pipe.reader import PipeReader
from channels.records import framer
from channels.store import Store
from channels.testing import KIB
from channels.testing.faults import KINDS, MixedFaults
from channels.testing.proxy import Proxy
from channels.transport import Transport, TransportConfig


@pytest.fixture
def dataset(s3_client, bucket) -> dict[str, bytes]:
    """40 objects, 0 B to 400 KiB (about 8 MiB): a few hundred 64 KiB GETs."""
    return put_dataset(s3_client, bucket)


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
