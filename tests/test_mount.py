"""``channels mount``: a real FUSE mount of the loopback server, exercised by unchanged programs."""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from mounting import Mount, fuse_missing, needs_fuse, put_files

from channels.errors import MountError
from channels.modes.fastfile.mount import check_fuse, is_mounted
from channels.testing import MIB, object_bytes, wait_for


@pytest.fixture
def files(s3_client, bucket):
    """Objects of every kind a script meets: nested, empty, Parquet, tar, several MiB."""
    return put_files(s3_client, bucket)


def test_check_fuse_says_what_is_missing(tmp_path):
    with pytest.raises(MountError, match="/nope/fuse is missing"):
        check_fuse(str(tmp_path), device="/nope/fuse")
    if reason := fuse_missing():
        pytest.skip(reason)
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
    from channels.modes.fastfile.mount import FastFileOperations
    from channels.modes.fastfile.view import FastFileView

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
