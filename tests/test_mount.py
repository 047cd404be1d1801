"""``channels mount``: a real FUSE mount of the loopback server, exercised by unchanged programs."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest

from channels.errors import MountError
from channels.modes.fastfile.mount import check_fuse, is_mounted, wait_mounted
from channels.testing import MIB, object_bytes, wait_for

FUSE_MISSING = [why for ok, why in ((os.path.exists("/dev/fuse"), "/dev/fuse is missing"),
                                    (shutil.which("fusermount3") is not None, "fusermount3 is not installed"))
                if not ok]
needs_fuse = pytest.mark.skipif(bool(FUSE_MISSING), reason="FUSE unavailable: " + "; ".join(FUSE_MISSING))


class Mount:
    """``python -m channels mount ... --foreground`` as a child process."""

    def __init__(self, args: list[str], mountpoints: list[Path]) -> None:
        self.mountpoints = mountpoints
        self.proc = subprocess.Popen([sys.executable, "-m", "channels", "mount", *args, "--foreground"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        for mp in mountpoints:
            if not wait_mounted(str(mp), 60, alive=lambda: self.proc.poll() is None):
                out, err = self.stop()
                pytest.fail(f"{mp} was not mounted (exit {self.proc.returncode}): {err}")

    def stop(self, sig: int = signal.SIGTERM) -> tuple[str, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            out, err = self.proc.communicate(timeout=30)
        finally:
            for mp in self.mountpoints:  # never leave a stale mount behind a failed test
                if is_mounted(str(mp)):
                    subprocess.run(["fusermount3", "-u", "-z", str(mp)], check=False)
        return out, err


@pytest.fixture
def files(s3_client, bucket):
    """Objects of every kind a script meets: nested, empty, Parquet, tar, several MiB."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"id": list(range(1000)), "name": [f"row {i}" for i in range(1000)]})
    parquet = io.BytesIO()
    pq.write_table(table, parquet)
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as t:
        for name in ("a.txt", "dir/b.txt"):
            data = name.encode() * 100
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    contents = {
        "big.bin": object_bytes("big", 5 * MIB + 3),
        "empty.bin": b"",
        "nested/deeper/x.bin": object_bytes("x", 300_000),
        "nested/y.bin": b"y" * 10,
        "table.parquet": parquet.getvalue(),
        "archive.tar": tar.getvalue(),
    }
    for key, body in contents.items():
        s3_client.put_object(Bucket=bucket, Key=f"ch/{key}", Body=body)
    return f"s3://{bucket}/ch/", contents


def test_check_fuse_says_what_is_missing(tmp_path):
    with pytest.raises(MountError, match="/nope/fuse is missing"):
        check_fuse(str(tmp_path), device="/nope/fuse")
    if FUSE_MISSING:
        pytest.skip("FUSE unavailable: " + "; ".join(FUSE_MISSING))
    with pytest.raises(MountError, match="no-such-fusermount is not on PATH"):
        check_fuse(str(tmp_path), fusermount="no-such-fusermount")
    with pytest.raises(MountError, match="does not exist"):
        check_fuse(str(tmp_path / "absent"))
    (tmp_path / "f").write_text("x")
    with pytest.raises(MountError, match="not a directory"):
        check_fuse(str(tmp_path / "f"))
    with pytest.raises(MountError, match="not empty"):
        check_fuse(str(tmp_path))


@pytest.mark.fuse
@needs_fuse
def test_cli_reports_a_bad_mount_point_in_one_line(tmp_path, files):
    uri, _ = files
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    for target in ("busy", "absent"):
        r = subprocess.run([sys.executable, "-m", "channels", "mount", uri, str(tmp_path / target), "--foreground"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 2
        assert r.stderr.startswith("channels mount: error:") and "Traceback" not in r.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    r = subprocess.run([sys.executable, "-m", "channels", "mount", "s3://no-such-bucket/x/", str(empty),
                        "--foreground"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr
    assert not is_mounted(str(empty))


@pytest.mark.fuse
@needs_fuse
@pytest.mark.parametrize("sig, flags", [(signal.SIGTERM, []), (signal.SIGINT, []), (signal.SIGTERM, ["--direct-io"])],
                         ids=["SIGTERM", "Ctrl-C", "direct-io"])
def test_mount_serves_unchanged_programs(tmp_path, files, sig, flags):
    uri, contents = files
    mp = tmp_path / "mnt"
    mp.mkdir()
    m = Mount([uri, str(mp), *flags], [mp])
    try:
        assert sorted(os.listdir(mp)) == ["archive.tar", "big.bin", "empty.bin", "nested", "table.parquet"]
        if os.geteuid() == 0 and not flags:  # the kernel reads ahead 1 MiB per request, not 128 KiB
            dev = os.stat(mp).st_dev
            ra = Path(f"/sys/class/bdi/{os.major(dev)}:{os.minor(dev)}/read_ahead_kb")
            assert wait_for(lambda: ra.read_text().strip() == "1024")
        st = os.stat(mp / "big.bin")
        assert st.st_size == len(contents["big.bin"]) and st.st_mode & 0o777 == 0o444 and st.st_nlink == 1
        st = os.stat(mp / "nested")
        assert st.st_mode & 0o777 == 0o555 and st.st_nlink == 3  # ".", "..", deeper
        for key, body in contents.items():  # sha256 of every file equals its object's
            assert hashlib.sha256((mp / key).read_bytes()).hexdigest() == hashlib.sha256(body).hexdigest(), key
        import pyarrow.parquet as pq

        table = pq.read_table(mp / "table.parquet")
        assert table.num_rows == 1000 and table.column("name")[999].as_py() == "row 999"
        tar = subprocess.run(["tar", "-tf", str(mp / "archive.tar")], capture_output=True, text=True, check=True)
        assert tar.stdout.split() == ["a.txt", "dir/b.txt"]
        with pytest.raises(OSError) as exc:
            open(mp / "big.bin", "r+b")
        assert exc.value.errno in (errno.EROFS, errno.EACCES)
        with pytest.raises(FileNotFoundError):
            os.stat(mp / "missing")
        with pytest.raises(MountError, match="already a mount point"):
            check_fuse(str(mp))
        # Concurrent readers, each its own handle (and its own readahead).
        results: dict[int, str] = {}

        def reader(i: int) -> None:
            with open(mp / "big.bin", "rb") as f:
                f.seek(i * 4096)
                results[i] = hashlib.sha256(f.read()).hexdigest()

        threads = [threading.Thread(target=reader, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(results[i] == hashlib.sha256(contents["big.bin"][i * 4096:]).hexdigest() for i in range(6))
    finally:
        out, err = m.stop(sig)
    assert not is_mounted(str(mp)), "stale mount point after the signal"
    assert m.proc.returncode == 0, err
    assert os.listdir(mp) == []  # the directory is back, empty


@pytest.mark.fuse
@needs_fuse
def test_mount_job_root_mounts_each_fastfile_channel(tmp_path, files):
    from channels.spec import Channel, Job, OutputDataConfig, ResourceConfig, S3DataSource, StoppingCondition

    uri, contents = files
    job = Job(channels=(Channel("train", S3DataSource("S3Prefix", uri), input_mode="FastFile"),
                        Channel("extra", S3DataSource("S3Prefix", uri + "nested/"), input_mode="FastFile"),
                        Channel("other", S3DataSource("S3Prefix", uri))),
              input_mode="File", resource_config=ResourceConfig(), stopping_condition=StoppingCondition(),
              output_data_config=OutputDataConfig("s3://out/put/"))
    job_file = tmp_path / "job.json"
    job.dump(job_file)
    root = tmp_path / "ml"
    data = root / "input" / "data"
    m = Mount([str(job_file), "--root", str(root)], [data / "train", data / "extra"])
    try:
        assert (data / "train" / "nested" / "y.bin").read_bytes() == b"y" * 10
        assert sorted(os.listdir(data / "extra")) == ["deeper", "y.bin"]
        assert not (data / "other").exists()  # a File channel: not ours to mount
    finally:
        m.stop()
    assert not is_mounted(str(data / "train")) and not is_mounted(str(data / "extra"))
    assert m.proc.returncode == 0


@pytest.mark.fuse
@needs_fuse
def test_background_mount_returns_once_mounted(tmp_path, files):
    uri, contents = files
    mp = tmp_path / "bg"
    mp.mkdir()
    r = subprocess.run([sys.executable, "-m", "channels", "mount", uri, str(mp)], capture_output=True, text=True,
                       timeout=120)
    try:
        assert r.returncode == 0, r.stderr
        assert is_mounted(str(mp))
        assert (mp / "nested" / "y.bin").read_bytes() == contents["nested/y.bin"]
        os.kill(int(r.stdout.split("(pid ")[1].split(",")[0]), signal.SIGTERM)
        assert wait_for(lambda: not is_mounted(str(mp)), 30), "stale mount point after SIGTERM"
    finally:
        if is_mounted(str(mp)):
            subprocess.run(["fusermount3", "-u", "-z", str(mp)], check=False)


def test_fuse_reads_in_listing_order_find_the_next_files_fetched_ahead(s3_client, bucket):
    """The FUSE callbacks (no kernel needed): open, 1 MiB reads as the kernel makes them, release."""
    from channels.modes.fastfile.view import FastFileView
    from channels.modes.fastfile.mount import FastFileOperations

    bodies = {f"f{i}.bin": object_bytes(f"f{i}", MIB + i) for i in range(5)}
    for key, body in bodies.items():
        s3_client.put_object(Bucket=bucket, Key=f"seq/{key}", Body=body)
    ops = FastFileOperations(FastFileView(f"s3://{bucket}/seq/"))
    try:
        for name, body in bodies.items():
            fh = ops.open(f"/{name}", os.O_RDONLY)
            buf, got = bytearray(MIB), b""
            while n := ops.read_into(memoryview(buf), len(got), fh):
                got += bytes(buf[:n])
            ops.release(f"/{name}", fh)
            assert got == body, name
        s = ops.view.stats.snapshot()
        assert s["files_ahead"] == s["files_ahead_used"] == 4 and s["requests"] == 5
    finally:
        ops.destroy("/")
        ops.view.close()


def written(pid: int) -> int:
    """Bytes a process wrote: a mount's replies to /dev/fuse."""
    with open(f"/proc/{pid}/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("wchar:"))


@pytest.mark.fuse
@needs_fuse
def test_direct_io_bypasses_the_page_cache_and_refuses_shared_mmap(tmp_path, files):
    import numpy as np

    uri, contents = files
    body = contents["big.bin"]
    cached, direct = tmp_path / "cached", tmp_path / "direct"
    cached.mkdir()
    direct.mkdir()
    mounts = [Mount([uri, str(cached)], [cached]), Mount([uri, str(direct), "--direct-io"], [direct])]
    try:
        for mp, m in zip((cached, direct), mounts):
            passes = []
            for _ in range(2):
                before = written(m.proc.pid)
                assert (mp / "big.bin").read_bytes() == body
                passes.append(written(m.proc.pid) - before)
            if mp == direct:  # every pass goes through the mount process
                assert min(passes) >= len(body), passes
            else:  # the second pass comes from the page cache
                assert passes[0] >= len(body) > passes[1], passes
        mm = np.memmap(cached / "big.bin", mode="r")  # a shared mmap: served by the page cache
        assert bytes(mm) == body
        del mm
        with pytest.raises(OSError) as exc:
            np.memmap(direct / "big.bin", mode="r")
        assert exc.value.errno == errno.ENODEV  # the documented price of --direct-io
    finally:
        results = [m.stop() for m in mounts]
    assert all(m.proc.returncode == 0 for m in mounts), results
    assert not is_mounted(str(cached)) and not is_mounted(str(direct))


@pytest.mark.fuse
@needs_fuse
def test_cli_takes_prefetch_files_and_threads_and_rejects_bad_counts(tmp_path, files):
    uri, contents = files
    r = subprocess.run([sys.executable, "-m", "channels", "mount", uri, str(tmp_path),
                        "--prefetch-files", "-1"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--prefetch-files: must be 0 or more" in r.stderr
    r = subprocess.run([sys.executable, "-m", "channels", "mount", uri, str(tmp_path),
                        "--threads", "0"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--threads: must be 1 or more" in r.stderr
    mp = tmp_path / "mnt"
    mp.mkdir()
    m = Mount([uri, str(mp), "--prefetch-files", "0", "--threads", "1"], [mp])
    try:
        assert (mp / "big.bin").read_bytes() == contents["big.bin"]
    finally:
        m.stop()
    assert m.proc.returncode == 0
