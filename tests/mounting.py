"""What the FUSE mount tests share: the skip without FUSE, a mount as a child process, the files, the libfuses."""

from __future__ import annotations

import ctypes.util
import io
import os
import shutil
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from channels.modes.fastfile.libfuse import ENV, library_version, project_library
from channels.modes.fastfile.mount import is_mounted, wait_mounted
from channels.testing import MIB, object_bytes, wait_for


def fuse_missing() -> str | None:
    """Why FUSE mounts cannot work on this machine (the skip reason), or None where they can."""
    missing = [why for ok, why in ((os.path.exists("/dev/fuse"), "/dev/fuse is missing"),
                                   (shutil.which("fusermount3") is not None,
                                    "fusermount3 is not installed (Debian's fuse3)"))
               if not ok]
    return "FUSE unavailable: " + "; ".join(missing) if missing else None


#: Skips a test that mounts, saying what is missing.
needs_fuse = pytest.mark.skipif(fuse_missing() is not None, reason=fuse_missing() or "")


def mode_param(mode: str):
    """``mode`` as a parametrize value: "FastFile" (which mounts) marked ``fuse`` and skipped without FUSE."""
    if mode != "FastFile":
        return mode
    return pytest.param(mode, marks=[pytest.mark.fuse, needs_fuse])


#: The system's libfuse 3 as mfusepy would find it, and the one ``make system-deps`` built (or None).
SYSTEM_LIBFUSE = ctypes.util.find_library("fuse3")
PROJECT_LIBFUSE = project_library()


def libfuse_params() -> list:
    """``pytest.param(environment, version)`` for each libfuse this machine has, the project's first.

    The environment makes ``channels mount`` load that library; a library the
    machine lacks is a skip that says why (and how to get it).
    """
    params = []
    if PROJECT_LIBFUSE:
        params.append(pytest.param({}, library_version(PROJECT_LIBFUSE), id="libfuse-built"))
    else:
        params.append(pytest.param({}, None, id="libfuse-built", marks=pytest.mark.skip(
            reason="no libfuse 3.17 built into this environment (make system-deps builds it where apt's is older)")))
    if SYSTEM_LIBFUSE:
        params.append(pytest.param({ENV: SYSTEM_LIBFUSE}, library_version(SYSTEM_LIBFUSE), id="libfuse-system"))
    else:
        params.append(pytest.param({}, None, id="libfuse-system", marks=pytest.mark.skip(
            reason="no system libfuse3 (apt-get install fuse3 libfuse3-dev)")))
    return params


class Mount:
    """``python -m channels mount ... --foreground`` as a child process (``env`` added to ours)."""

    def __init__(self, args: list[str], mountpoints: list[Path], env: dict | None = None) -> None:
        self.mountpoints = mountpoints
        self.proc = subprocess.Popen([sys.executable, "-m", "channels", "mount", *args, "--foreground"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env={**os.environ, **(env or {})})
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


def put_files(s3_client, bucket: str) -> tuple[str, dict[str, bytes]]:
    """Objects of every kind a script meets (nested, empty, Parquet, tar, several MiB); (prefix, bodies)."""
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


def written(pid: int) -> int:
    """Bytes a process wrote: a mount's replies to /dev/fuse."""
    with open(f"/proc/{pid}/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("wchar:"))


def kernel_readahead_kib(mountpoint) -> int:
    """The kernel's readahead on a mount, in KiB."""
    dev = os.stat(mountpoint).st_dev
    return int(Path(f"/sys/class/bdi/{os.major(dev)}:{os.minor(dev)}/read_ahead_kb").read_text())


def wait_readahead_set(mountpoint) -> bool:
    """As root, wait until the mount has raised the kernel's readahead to 1 MiB; whether it did."""
    return os.geteuid() == 0 and wait_for(lambda: kernel_readahead_kib(mountpoint) == 1024)
