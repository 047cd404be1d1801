"""The transport through a local cache, against the S3 endpoint: Pipe, FastFile, the adapters, the CLI.

GETs are counted where they happen, at the loopback proxy in front of moto
(``object_gets``), and by the transport's own request counter. The cache's
store on its own is tested in tests/test_cache.py; the throughput of later
epochs is measured by benchmarks/cache_bench.py, never asserted here.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from pipeserver import channel, consume, finish, job_file, serve
from tmpfs import tmpfs

from channels.adapters.sources import FastFileSource, PipeReaderSource
from channels.cache import CacheConfig, ObjectCache
from channels.listing import list_prefix
from channels.modes.fastfile.config import ReadaheadConfig
from channels.modes.fastfile.view import FastFileView
from channels.modes.pipe.reader import PipeReader
from channels.modes.pipe.resume import Cursor, Start
from channels.store import Store
from channels.testing import wait_for
from channels.testing.faults import Action, object_gets
from channels.testing.proxy import Proxy
from channels.transport import Transport, TransportConfig
from channels.units import MIB

PREFIX = "cached/"
#: Several parts per object (1 MiB parts), objects of odd sizes.
SIZES = [int(2.5 * MIB) + i * 4099 for i in range(6)]


def upload(client, bucket: str, sizes=SIZES, salt: bytes = b"") -> dict[str, bytes]:
    objects = {}
    for i, size in enumerate(sizes):
        key = f"{PREFIX}{i:02d}.bin"
        seed = (key.encode() + salt) * 64
        objects[key] = (seed * (size // len(seed) + 1))[:size]
        client.put_object(Bucket=bucket, Key=key, Body=objects[key])
    return objects


def config(tmp_path: Path, limit: int | str = "64MiB", fill: str = "eager") -> TransportConfig:
    return TransportConfig(part_size=1 * MIB, budget_bytes=8 * MIB, max_workers=4,
                           cache=CacheConfig(tmp_path / "cache", limit, fill=fill))


def entries(tmp_path: Path) -> list[str]:
    return [n for _, _, names in os.walk(tmp_path / "cache" / "objects") for n in names]


def epoch_bytes(reader: PipeReader, epoch: int) -> dict[str, bytes]:
    out: dict[str, bytearray] = {}
    for piece in reader.pieces(epoch):
        out.setdefault(piece.ref.url, bytearray()).extend(piece.data)
    return {url.split("/", 3)[3]: bytes(b) for url, b in out.items()}


def test_a_later_pipe_epoch_reads_kept_objects_with_no_get(s3, s3_client, bucket, tmp_path):
    objects = upload(s3_client, bucket)
    with Proxy(s3.endpoint_url) as proxy, \
            PipeReader(f"s3://{bucket}/{PREFIX}", store=Store(proxy.url), config=config(tmp_path)) as reader:
        assert epoch_bytes(reader, 0) == objects
        first = proxy.stats.object_gets
        assert first == sum(-(-s // MIB) for s in SIZES)  # every part of every object, once
        reader.transport.cache.flush()
        assert len(entries(tmp_path)) == len(objects)
        proxy.reset_stats()
        requests = reader.transport.stats.requests
        assert epoch_bytes(reader, 1) == objects
        assert proxy.stats.object_gets == 0 and reader.transport.stats.requests == requests
        stats = reader.transport.cache_stats
        assert stats.hits == first and stats.hit_bytes == sum(SIZES) and stats.admitted == len(objects)
        assert reader.stats()["cache_hit_bytes"] == sum(SIZES)
        assert reader.counts["relists"] == 1  # the ETags of epoch 1 came from one listing, not from GETs


def test_an_object_overwritten_between_epochs_is_fetched_again(s3, s3_client, bucket, tmp_path):
    objects = upload(s3_client, bucket)
    uri = f"s3://{bucket}/{PREFIX}"
    with Proxy(s3.endpoint_url) as proxy, PipeReader(uri, store=Store(proxy.url), config=config(tmp_path)) as r:
        assert epoch_bytes(r, 0) == objects
        changed = f"{PREFIX}03.bin"
        objects[changed] = b"the second version" * 200_000  # 3.6 MB: a new ETag
        s3_client.put_object(Bucket=bucket, Key=changed, Body=objects[changed])
        proxy.reset_stats()
        assert epoch_bytes(r, 1) == objects  # the new version, not the kept one
        assert r.counts["restarts"] == 1  # the reads begun in the old versions were dropped
        # That object's parts in its new version, and at most those its old version had begun.
        assert -(-len(objects[changed]) // MIB) <= proxy.stats.object_gets <= 2 * -(-len(objects[changed]) // MIB)
        r.transport.cache.flush()
        assert r.transport.cache_stats.admitted == len(objects) + 1  # its new version is kept too
        proxy.reset_stats()
        assert epoch_bytes(r, 2) == objects and proxy.stats.object_gets == 0


def test_a_later_epoch_reads_while_it_lists_again_and_delivers_only_after(s3, s3_client, bucket, tmp_path):
    objects = upload(s3_client, bucket)
    held: dict = {}
    delivered = threading.Event()

    def hold_the_listing(req):  # an observer: each LIST waits (up to 5 s) until the cache has served a hit
        reader = held.get("reader")
        if reader is not None and req.method == "GET" and "prefix=" in req.target:
            deadline = time.monotonic() + 5
            while reader.transport.cache_stats.hits == 0 and time.monotonic() < deadline:
                time.sleep(0.005)
            held.update(hits=reader.transport.cache_stats.hits, delivered=delivered.is_set())

    with Proxy(s3.endpoint_url, fault_policy=hold_the_listing) as proxy, \
            PipeReader(f"s3://{bucket}/{PREFIX}", store=Store(proxy.url), config=config(tmp_path)) as r:
        assert epoch_bytes(r, 0) == objects
        r.transport.cache.flush()
        held["reader"] = r
        out: dict[str, bytearray] = {}
        for piece in r.pieces(1):
            delivered.set()
            out.setdefault(piece.ref.url.split("/", 3)[3], bytearray()).extend(piece.data)
        assert out == objects and proxy.stats.object_gets == sum(-(-s // MIB) for s in SIZES)  # epoch 0's only
    # The epoch's first reads ran while its listing was held, and nothing went out before it came back.
    assert held["hits"] > 0 and held["delivered"] is False
    assert r.counts["relists"] == 1 and r.counts["restarts"] == 0


def test_without_relisting_the_cache_serves_the_version_listed(s3, s3_client, bucket, tmp_path):
    objects = upload(s3_client, bucket, SIZES[:2])
    with PipeReader(f"s3://{bucket}/{PREFIX}", store=Store(s3.endpoint_url), config=config(tmp_path),
                    relist=False) as r:
        assert epoch_bytes(r, 0) == objects
        s3_client.put_object(Bucket=bucket, Key=f"{PREFIX}00.bin", Body=b"new")
        assert epoch_bytes(r, 1) == objects  # the listing's snapshot, byte for byte, with no request
        assert r.counts["relists"] == 0 and r.transport.cache_stats.misses == r.transport.cache_stats.hits


def test_a_dataset_twice_the_cache_keeps_half_and_reads_the_rest_unwritten(s3, s3_client, bucket, tmp_path):
    sizes = [2 * MIB] * 8
    objects = upload(s3_client, bucket, sizes)
    with Proxy(s3.endpoint_url) as proxy, \
            PipeReader(f"s3://{bucket}/{PREFIX}", store=Store(proxy.url), config=config(tmp_path, 8 * MIB),
                       shuffle_seed=3) as r:
        assert epoch_bytes(r, 0) == objects
        r.transport.cache.flush()
        resident = sorted(entries(tmp_path))
        assert len(resident) == 4  # eager, the default: the first epoch writes all that fits
        for epoch in (1, 2, 3):
            proxy.reset_stats()
            assert epoch_bytes(r, epoch) == objects
            assert proxy.stats.object_gets == 4 * 2  # the four objects not kept, two parts each
            r.transport.cache.flush()
            assert sorted(entries(tmp_path)) == resident  # no thrash: the same four every epoch
        assert r.transport.cache_stats.admitted == 4 and r.transport.cache_stats.evicted == 0
        assert r.transport.cache_stats.deferred == 0


def test_a_paid_fill_of_a_dataset_twice_the_cache_grows_as_its_hits_pay_then_keeps_it(s3, s3_client, bucket,
                                                                                      tmp_path):
    sizes = [2 * MIB] * 8
    objects = upload(s3_client, bucket, sizes)
    with Proxy(s3.endpoint_url) as proxy, \
            PipeReader(f"s3://{bucket}/{PREFIX}", store=Store(proxy.url),
                       config=config(tmp_path, 8 * MIB, fill="paid"), shuffle_seed=3) as r:
        kept, gets, deferred = [], [], []
        for epoch in range(6):
            proxy.reset_stats()
            before = r.transport.cache_stats.deferred
            assert epoch_bytes(r, epoch) == objects
            r.transport.cache.flush()
            gets.append(proxy.stats.object_gets)
            deferred.append(r.transport.cache_stats.deferred - before)
            kept.append(sorted(entries(tmp_path)))
        # The stream announces each epoch whole (16 MiB, twice the limit): the first writes one
        # object (a sixteenth of the limit, rounded up to an object), each later one as many bytes
        # as it finds kept, until half the dataset is kept; then no thrash, the same four every epoch.
        assert [len(k) for k in kept] == [1, 2, 4, 4, 4, 4]
        assert all(set(a) <= set(b) for a, b in itertools.pairwise(kept)) and kept[2:] == [kept[2]] * 4
        assert gets == [16, 14, 12, 8, 8, 8]  # two parts per object not kept
        assert deferred == [7, 6, 4, 0, 0, 0]
        stats = r.transport.cache_stats
        assert stats.admitted == 4 and stats.evicted == 0 and stats.rejected == 3 * 4


def test_fastfile_keeps_files_read_whole_and_a_second_view_reads_them_with_no_request(s3, s3_client, bucket,
                                                                                       tmp_path):
    objects = upload(s3_client, bucket, SIZES[:3])
    cache = CacheConfig(tmp_path / "cache", "64MiB")
    uri = f"s3://{bucket}/{PREFIX}"
    # Files ahead off: they would fetch 02.bin whole (the first window of a small file), and keep it.
    with FastFileView(uri, Store(s3.endpoint_url), ReadaheadConfig(prefetch_files=0), cache=cache) as view:
        for name in ("00.bin", "01.bin"):
            with view.open(name) as f:
                assert f.read() == objects[PREFIX + name]
        with view.open("02.bin") as f:  # read in part: not kept
            assert f.read(1000) == objects[PREFIX + "02.bin"][:1000]
    assert len(entries(tmp_path)) == 2 and os.listdir(tmp_path / "cache" / "tmp") == []
    with FastFileView(uri, Store(s3.endpoint_url), cache=cache) as view:
        for name in ("00.bin", "01.bin"):
            with view.open(name) as f:
                f.seek(12345)
                assert f.read(2 * MIB) == objects[PREFIX + name][12345:12345 + 2 * MIB]
                f.seek(0)
                assert f.read() == objects[PREFIX + name]
        assert view.transport.stats.requests == 0 and view.transport.cache_stats.misses == 0


def test_the_adapters_sources_pass_the_cache_through(s3, s3_client, bucket, tmp_path):
    objects = upload(s3_client, bucket, SIZES[:3])
    uri = f"s3://{bucket}/{PREFIX}"
    store = Store(s3.endpoint_url)
    for source, transport, root in [
        (src := PipeReaderSource(uri, config=config(tmp_path / "pipe"), store=store), lambda s: s.reader().transport,
         tmp_path / "pipe"),
        (FastFileSource(uri, store=store, cache=CacheConfig(tmp_path / "ff" / "cache", "64MiB")),
         lambda s: s.view().transport, tmp_path / "ff"),
    ]:
        refs = source.listing().refs
        for attempt in range(2):
            got = b"".join(bytes(r) for r in source.read([(ref, Start()) for ref in refs], Cursor()))
            assert got == b"".join(objects[PREFIX + ref.key] for ref in refs)
            if attempt == 0:
                # A reader has its last bytes a moment before the thread that fetched them has
                # written them into the cache: wait for the entries, then count.
                assert wait_for(lambda: len(entries(root)) == len(objects)), entries(root)  # noqa: B023
                requests = transport(source).stats.requests
        assert transport(source).stats.requests == requests  # the second pass: all from the cache
        assert transport(source).cache_stats.hit_bytes == sum(len(v) for v in objects.values())
    src.close()


def test_reads_whose_etag_is_not_checked_are_not_cached(s3, s3_client, bucket, tmp_path):
    """Without If-Match an entry could hold a mix of two versions under one ETag: such reads stay uncached."""
    objects = upload(s3_client, bucket, SIZES[:2])
    unchecked = dataclasses.replace(config(tmp_path), verify_etag=False)
    with PipeReader(f"s3://{bucket}/{PREFIX}", store=Store(s3.endpoint_url), config=unchecked) as r:
        assert epoch_bytes(r, 0) == epoch_bytes(r, 1) == objects
        assert r.transport.cache_stats.snapshot() == dict.fromkeys(r.transport.cache_stats.FIELDS, 0)
    assert entries(tmp_path) == []


def test_local_files_are_not_cached(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.bin").write_bytes(b"x" * 5000)
    with PipeReader(str(tmp_path / "data") + "/", config=config(tmp_path)) as r:
        assert b"".join(bytes(c) for c in r.epoch(0)) == b"x" * 5000
    assert entries(tmp_path) == [] and r.transport.cache_stats.misses == 0


CHILD = r"""
import json, sys
from channels.cache import CacheConfig
from channels.listing import ObjectRef
from channels.store import Store
from channels.transport import Transport, TransportConfig
args = json.loads(sys.argv[1])
config = TransportConfig(part_size=1 << 20, budget_bytes=8 << 20, max_workers=4,
                         cache=CacheConfig(args["cache"], "64MiB"))
with Transport(Store(args["endpoint"]), config) as t:
    for chunk in t.stream([ObjectRef(args["url"], args["size"], args["etag"])]):
        pass
"""


def test_a_reader_killed_mid_object_leaves_no_partial_entry(s3, s3_client, bucket, tmp_path):
    objects = upload(s3_client, bucket, [int(4.5 * MIB)])
    (ref,) = list_prefix(f"s3://{bucket}/{PREFIX}", store=Store(s3.endpoint_url)).refs
    stalled = []

    def stall_the_last_part(req):  # every part but the last arrives; the last stalls mid-body
        if object_gets(req) and req.range and req.range.startswith(f"bytes={4 * MIB}-"):
            stalled.append(req)
            return Action("stall", after_bytes=1000, seconds=60.0)
        return None

    cache_dir = tmp_path / "cache"
    with Proxy(s3.endpoint_url, fault_policy=stall_the_last_part) as proxy:
        args = {"cache": str(cache_dir), "endpoint": proxy.url, "url": ref.url, "size": ref.size, "etag": ref.etag}
        child = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(args)])
        try:
            deadline = time.monotonic() + 60
            while not (stalled and _written(cache_dir) >= 4 * MIB) and time.monotonic() < deadline:
                assert child.poll() is None, "the reader ended before it was killed"
                time.sleep(0.02)
            assert _written(cache_dir) >= 4 * MIB  # four parts of five are in its temporary file
            child.send_signal(signal.SIGKILL)
            child.wait(10)
        finally:
            if child.poll() is None:
                child.kill()
    assert entries(tmp_path) == []  # nothing under an entry's name
    with ObjectCache(CacheConfig(cache_dir, "64MiB")):  # the next opener sweeps the temporary file
        assert os.listdir(cache_dir / "tmp") == []
    with Transport(Store(s3.endpoint_url), config(tmp_path)) as t:  # and the object is read and kept whole
        assert b"".join(bytes(c.data) for c in t.stream([ref])) == objects[PREFIX + "00.bin"]
    assert len(entries(tmp_path)) == 1


def _written(cache_dir: Path) -> int:
    """Bytes in the temporary files (allocated blocks: the file is written out of order)."""
    try:
        return sum(os.stat(cache_dir / "tmp" / n).st_blocks * 512 for n in os.listdir(cache_dir / "tmp"))
    except FileNotFoundError:
        return 0


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "channels", *args], capture_output=True, text=True, timeout=60)


def test_the_cache_flags_travel_to_a_child_command_with_the_fill():
    import argparse

    from channels.cli.args import add_cache_arguments, cache_argv, cache_config

    parser = argparse.ArgumentParser()
    add_cache_arguments(parser)
    args = parser.parse_args(["--cache-dir", "/c", "--cache-size", "1GiB", "--cache-fill", "paid"])
    assert cache_config(args, "pipe") == CacheConfig("/c", "1GiB", fill="paid")
    again = parser.parse_args(cache_argv(args))
    assert cache_config(again, "pipe") == cache_config(args, "pipe")
    assert cache_config(parser.parse_args(["--cache-dir", "/c", "--cache-size", "1GiB"]), "pipe").fill == "eager"


@pytest.mark.parametrize("flags, message", [
    (["--cache-dir", "DIR", "--cache-size", "ten"], "argument --cache-size: 'ten' is not a size: give bytes or "
                                                    "a number with a unit, e.g. 500MiB, 20GiB or 1.5TB"),
    (["--cache-dir", "DIR"], "channels pipe: error: a cache needs a directory and a size limit: add "
                             "--cache-size SIZE (e.g. 20GiB)"),
    (["--cache-size", "1GiB"], "channels pipe: error: a cache needs a directory and a size limit: add "
                               "--cache-dir DIR"),
    (["--cache-dir", "DIR", "--cache-size", "1GiB", "--cache-fill", "lazy"],
     "argument --cache-fill: invalid choice: 'lazy' (choose from 'eager', 'paid')"),
    (["--cache-dir", "FILE/cache", "--cache-size", "1GiB"],
     "channels pipe: error: cache directory FILE/cache cannot be written (NotADirectoryError: Not a directory): "
     "give --cache-dir (CacheConfig.directory) a writable folder on a local disk, or fix its permissions"),
])
def test_the_cache_flags_refuse_what_cannot_work_in_one_line(s3, s3_client, bucket, tmp_path, flags, message):
    s3_client.put_object(Bucket=bucket, Key="p/x", Body=b"x")
    job = json.loads((Path(__file__).parent / "data" / "jobs" / "definition.json").read_text())
    job["InputDataConfig"] = [{"ChannelName": "train", "InputMode": "Pipe", "DataSource": {"S3DataSource": {
        "S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/p/"}}}]
    (tmp_path / "job.json").write_text(json.dumps(job))
    (tmp_path / "FILE").write_text("in the way")
    flags = [f.replace("DIR", str(tmp_path / "c")).replace("FILE", str(tmp_path / "FILE")) for f in flags]
    r = cli("pipe", str(tmp_path / "job.json"), "--root", str(tmp_path / "ml"), "--epochs", "1", *flags)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert message.replace("FILE", str(tmp_path / "FILE")) in r.stderr
    assert not (tmp_path / "ml" / "input" / "data" / "train_0").exists()


def test_channels_pipe_with_a_cache_serves_the_second_epoch_from_it(s3_client, bucket, tmp_path):
    objects = upload(s3_client, bucket, SIZES[:3])
    job = job_file(tmp_path, [channel("train", f"s3://{bucket}/{PREFIX}")])
    proc = serve(job, tmp_path, "--epochs", "2", "-v", "--cache-dir", str(tmp_path / "cache"),
                 "--cache-size", "64MiB")
    got: dict[int, bytes] = {}
    consume(tmp_path / "input" / "data", "train", 2, proc, got)
    rc, err = finish(proc)
    assert rc == 0, err
    assert got[0] == got[1] == b"".join(objects[k] for k in sorted(objects))
    total = sum(SIZES[:3])
    assert f"train: cache: {total} bytes served in " in err and f"{total} bytes from the store, 3 object(s) kept" in err


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs at tmp_path/cache: the cache's disk, too small for one object."""
    with tmpfs(tmp_path / "cache", "size=2m,mode=0700") as where:
        yield where


def test_a_cache_disk_too_small_for_an_object_keeps_nothing_and_the_read_goes_on(s3, s3_client, bucket,
                                                                                  tmp_path, small_disk, caplog):
    objects = upload(s3_client, bucket)  # 2.5 MiB each: the space reserved for each fill is refused (ENOSPC)
    with PipeReader(f"s3://{bucket}/{PREFIX}", store=Store(s3.endpoint_url), config=config(tmp_path)) as reader:
        assert epoch_bytes(reader, 0) == objects
        reader.transport.cache.flush()
        stats = reader.transport.cache_stats
        assert stats.write_errors == len(objects) and stats.admitted == 0
        assert entries(tmp_path) == []
        assert os.listdir(small_disk / "tmp") == []  # no temporary file left behind
    refused = [r.getMessage() for r in caplog.records if "no room for" in r.getMessage()]
    assert len(refused) == len(objects) and all("bytes) in" in m for m in refused)  # at fallocate, before any write
