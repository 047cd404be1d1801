"""The mount on libfuse's low-level API (the default where libfuse has it) and on the high-level one.

Real mounts of the loopback server, on every libfuse the machine has: which
API served, inode numbers, listings over many readdir calls, errors, and
reads answered from the readahead windows, two windows at once included.
"""

from __future__ import annotations

import errno
import hashlib
import os
import random
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from faultproxy import fault_proxy
from mounting import Mount, libfuse_params, needs_fuse, put_files

from channels.modes.fastfile.mount import FUSE_APIS, mount
from channels.testing import MIB, object_bytes
from channels.testing.faults import Action, RequestInfo, object_gets

#: Enough names that the kernel lists them over several readdir requests (a page each).
MANY = 400
LOW, HIGH = "serving through libfuse's low-level API", "serving through libfuse's high-level API"


@pytest.fixture
def files(s3_client, bucket):
    uri, contents = put_files(s3_client, bucket)
    for i in range(MANY):
        s3_client.put_object(Bucket=bucket, Key=f"ch/many/a-rather-long-file-name-{i:04d}.bin", Body=b"%d" % i)
    return uri, contents


def served(err: str) -> tuple[int, int]:
    """(read requests, those answered from two windows) from a --verbose mount's last words."""
    m = re.search(r"served (\d+) read requests, .* \((\d+) from two windows\)", err)
    assert m, err
    return int(m.group(1)), int(m.group(2))


@pytest.mark.fuse
@needs_fuse
@pytest.mark.parametrize("env, version", libfuse_params())
@pytest.mark.parametrize("api", ["auto", "high-level"])
def test_both_apis_serve_names_inodes_errors_and_exact_bytes(tmp_path, files, env, version, api):
    uri, contents = files
    body = contents["big.bin"]
    mp = tmp_path / "mnt"
    mp.mkdir()
    m = Mount([uri, str(mp), "--verbose", "--direct-io", "--fuse-api", api], [mp], env)
    try:
        names = sorted(os.listdir(mp / "many"))
        assert names == sorted(f"a-rather-long-file-name-{i:04d}.bin" for i in range(MANY))
        entries = {e.name: e for e in os.scandir(mp)}
        assert sorted(entries) == ["archive.tar", "big.bin", "empty.bin", "many", "nested", "table.parquet"]
        assert entries["nested"].is_dir() and entries["big.bin"].is_file()
        if api != "high-level":  # one inode per path: the listing's numbers are the ones stat sees, and distinct
            assert all(os.stat(mp / name).st_ino == e.inode() for name, e in entries.items())
            assert len({e.inode() for e in entries.values()}) == len(entries)
        assert (mp / "many" / "a-rather-long-file-name-0399.bin").read_bytes() == b"399"
        assert (mp / "nested" / "deeper" / "x.bin").read_bytes() == contents["nested/deeper/x.bin"]
        assert (mp / "empty.bin").read_bytes() == b""
        assert os.statvfs(mp).f_namemax == 1024 and os.statvfs(mp).f_bsize == MIB
        for missing in ("missing", "nested/missing", "nested/deeper/missing/x"):
            with pytest.raises(FileNotFoundError):
                os.stat(mp / missing)
        with pytest.raises(NotADirectoryError):
            os.stat(mp / "big.bin" / "x")
        for name, flags in (("big.bin", os.O_WRONLY), ("big.bin", os.O_RDWR), ("big.bin", os.O_WRONLY | os.O_APPEND),
                            ("new.bin", os.O_WRONLY | os.O_CREAT)):
            with pytest.raises(OSError) as exc:
                os.open(mp / name, flags)
            assert exc.value.errno in (errno.EROFS, errno.EACCES), (name, flags)
        # Direct I/O: each pread(2) reaches the mount as it is. After a seek the windows
        # double from 4 KiB as reads go on, so reads soon run over the end of one into the next.
        fd = os.open(mp / "big.bin", os.O_RDONLY)
        try:
            rng = random.Random(5)
            at = 2 * MIB + 5
            spans = [(at, 4096), (at + 4096, 4096), (at + 8192, 16384), (at + 24576, 300_000), (MIB - 3, 3 * MIB),
                     (len(body) - 7, 100)]
            spans += [(rng.randrange(len(body)), rng.randrange(1, 2 * MIB)) for _ in range(20)]
            for off, n in spans:
                assert os.pread(fd, n, off) == body[off:off + n], (off, n)
            assert os.pread(fd, 10, len(body)) == b""
            # Threads on one handle: a window one of them drops may still be lent to another's reply.
            def reader(seed: int) -> bool:
                r = random.Random(seed)
                offsets = [(r.randrange(len(body)), r.randrange(1, MIB)) for _ in range(15)]
                return all(os.pread(fd, n, off) == body[off:off + n] for off, n in offsets)

            with ThreadPoolExecutor(6) as pool:
                assert all(pool.map(reader, range(6)))
        finally:
            os.close(fd)
    finally:
        out, err = m.stop()
    assert m.proc.returncode == 0, err
    if api == "high-level":
        assert HIGH in err and LOW not in err, err
    else:  # every libfuse here is 3.12 or newer
        assert LOW in err and HIGH not in err, err
        reads, spanning = served(err)
        assert reads >= len(spans) and spanning >= 1, err


@pytest.mark.fuse
@needs_fuse
def test_mmap_of_a_file_served_by_the_low_level_api(tmp_path, files):
    """np.memmap and pyarrow.memory_map in a child (moto runs in this process): the mapped pages
    are read through the same low-level read as read(2) is."""
    uri, contents = files
    mp = tmp_path / "mnt"
    mp.mkdir()
    m = Mount([uri, str(mp), "--verbose", "--fuse-api", "low-level"], [mp])
    try:
        code = ("import sys, hashlib, numpy as np, pyarrow as pa; p = sys.argv[1]; "
                "print(hashlib.sha256(np.memmap(p, mode='r')).hexdigest()); "
                "print(hashlib.sha256(pa.memory_map(p).read_buffer()).hexdigest())")
        r = subprocess.run([sys.executable, "-c", code, str(mp / "big.bin")], capture_output=True, text=True,
                           timeout=120, check=True)
        assert r.stdout.split() == [hashlib.sha256(contents["big.bin"]).hexdigest()] * 2
    finally:
        out, err = m.stop()
    assert m.proc.returncode == 0 and LOW in err, err


def test_an_unknown_api_is_refused_with_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="unknown FUSE API 'fast': valid ones are auto, low-level, high-level"):
        mount(None, str(tmp_path), api="fast")
    assert FUSE_APIS[0] == "auto"
    r = subprocess.run([sys.executable, "-m", "channels", "mount", "s3://b/p/", str(tmp_path), "--fuse-api", "fast"],
                       capture_output=True, text=True, timeout=60)
    choices = ", ".join(repr(api) for api in FUSE_APIS)  # the CLI offers the APIs mount() takes
    assert r.returncode == 2 and f"--fuse-api: invalid choice: 'fast' (choose from {choices})" in r.stderr


@pytest.mark.fuse
@needs_fuse
def test_a_read_the_store_refuses_is_eio_and_the_mount_serves_on(s3, s3_client, bucket, tmp_path):
    body = object_bytes("down", 3 * MIB)
    s3_client.put_object(Bucket=bucket, Key="down/x.bin", Body=body)
    s3_client.put_object(Bucket=bucket, Key="down/y.bin", Body=b"fine")

    def refuse_past_1_mib(req: RequestInfo) -> Action | None:  # 503 SlowDown for every GET of x.bin from 1 MiB
        start = int(req.range.removeprefix("bytes=").split("-")[0]) if req.range else 0
        return Action("status", status=503) if object_gets(req) and req.target.endswith("x.bin") and start >= MIB \
            else None

    mp = tmp_path / "mnt"
    mp.mkdir()
    with fault_proxy(s3, refuse_past_1_mib) as proxy:
        m = Mount([f"s3://{bucket}/down/", str(mp), "--verbose", "--direct-io", "--endpoint-url", proxy.url], [mp])
        try:
            fd = os.open(mp / "x.bin", os.O_RDONLY)
            try:
                assert os.pread(fd, 4096, 0) == body[:4096]
                with pytest.raises(OSError) as exc:  # after the retries, not a hang
                    os.pread(fd, 4096, 2 * MIB)
                assert exc.value.errno == errno.EIO
                assert os.pread(fd, 100, 5000) == body[5000:5100]  # the handle still serves what the store gives
            finally:
                os.close(fd)
            assert (mp / "y.bin").read_bytes() == b"fine"
        finally:
            out, err = m.stop()
    assert m.proc.returncode == 0 and LOW in err and "read of x.bin at 2097152 failed" in err, err
