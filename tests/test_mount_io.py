"""How a mount's kernel reads, on every libfuse the machine has: direct I/O, mmap, request sizes.

``make system-deps`` builds libfuse 3.17 where apt's is older (Debian 12:
3.14); each test runs on both where both are here. With 3.17 (and a kernel
that offers FUSE_DIRECT_IO_ALLOW_MMAP) the default mount bypasses the page
cache and still serves a shared mmap; with 3.14 it reads through the page
cache, which serves mmap too.

moto runs in this (pytest's) process. A shared mmap of a direct-I/O mount
is read by page faults that the mount serves by asking moto; faulting from
this process could block moto's threads behind our own fault, so mmap is
always exercised in a child process (as a training script is one).
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import subprocess
import sys
from types import SimpleNamespace

import pytest
from mounting import (
    PROJECT_LIBFUSE,
    SYSTEM_LIBFUSE,
    Mount,
    libfuse_params,
    needs_fuse,
    put_files,
    wait_readahead_set,
    written,
)

from channels.modes.fastfile.libfuse import (
    CAP_DIRECT_IO_ALLOW_MMAP,
    ENV,
    ORIGIN_ENV,
    ORIGIN_PROJECT,
    ORIGIN_SYSTEM,
    library_version,
    project_library,
)
from channels.modes.fastfile.mount import IO_MODES, MAX_THREADS, FastFileOperations
from channels.testing import MIB

MMAP_CHILD = """
import hashlib, sys
import numpy as np, pyarrow as pa
try:
    mm = np.memmap(sys.argv[1], mode="r")
except OSError as exc:
    print("errno", exc.errno)
    raise SystemExit(0)
print("np.memmap", hashlib.sha256(mm).hexdigest())
with pa.memory_map(sys.argv[1]) as f:
    print("pyarrow.memory_map", hashlib.sha256(f.read_buffer()).hexdigest())
"""


def mmap_in_child(path) -> dict[str, str]:
    """sha256 of ``path`` as ``np.memmap`` and ``pyarrow.memory_map`` see it, or ``{"errno": ...}``."""
    r = subprocess.run([sys.executable, "-c", MMAP_CHILD, str(path)], capture_output=True, text=True, timeout=120,
                       check=True)
    return dict(line.split(" ", 1) for line in r.stdout.splitlines())


def passes_through_mount(m: Mount, path, body: bytes) -> list[int]:
    """Read ``path`` twice; bytes the mount process wrote to /dev/fuse during each pass."""
    passes = []
    for _ in range(2):
        before = written(m.proc.pid)
        assert path.read_bytes() == body
        passes.append(written(m.proc.pid) - before)
    return passes


def kernel_allows_mmap_under_direct_io() -> bool:
    """Linux 6.6 added FUSE_DIRECT_IO_ALLOW_MMAP."""
    major, minor = (int(x) for x in re.match(r"(\d+)\.(\d+)", os.uname().release).groups())
    return (major, minor) >= (6, 6)


@pytest.fixture
def files(s3_client, bucket):
    return put_files(s3_client, bucket)


@pytest.mark.fuse
@needs_fuse
@pytest.mark.parametrize("env, version", libfuse_params())
@pytest.mark.parametrize("flags", [[], ["--direct-io"], ["--page-cache"]], ids=["default", "direct-io", "page-cache"])
def test_mount_reads_and_maps_as_its_libfuse_allows(tmp_path, files, env, version, flags):
    uri, contents = files
    body = contents["big.bin"]
    mp = tmp_path / "mnt"
    mp.mkdir()
    can_allow_mmap = version >= (3, 17) and kernel_allows_mmap_under_direct_io()
    direct = flags == ["--direct-io"] or (not flags and can_allow_mmap)
    m = Mount([uri, str(mp), "--verbose", *flags], [mp], env)
    try:
        readahead_mib = wait_readahead_set(mp)  # as root; else the kernel reads ahead 128 KiB
        passes = passes_through_mount(m, mp / "big.bin", body)
        if direct:  # every pass goes through the mount process
            assert min(passes) >= len(body), passes
        else:  # the second pass comes from the page cache
            assert passes[0] >= len(body) > passes[1], passes
        mapped = mmap_in_child(mp / "big.bin")
        if direct and not can_allow_mmap:
            assert mapped == {"errno": str(errno.ENODEV)}  # the documented price of --direct-io before 3.17
        else:
            want = hashlib.sha256(body).hexdigest()
            assert mapped == {"np.memmap": want, "pyarrow.memory_map": want}
    finally:
        out, err = m.stop()
    assert m.proc.returncode == 0, err
    # --verbose says which libfuse it loaded, and how the kernel reads.
    origin = ORIGIN_ENV if env else ORIGIN_PROJECT
    assert f"using libfuse {version[0]}.{version[1]} (" in err and f", {origin})" in err, err
    assert "serving through libfuse's low-level API" in err, err  # the default where libfuse has it (3.12+)
    assert ("direct I/O" in err) == direct and ("allowed by the kernel" in err) == (direct and can_allow_mmap), err
    served = re.search(r"served (\d+) read requests, the largest of (\d+) bytes, on (\d+) worker threads", err)
    reads, largest, workers = map(int, served.groups())
    # Each worker thread keeps one Python thread state, made at its first read, not one per request.
    assert 1 <= workers <= min(reads, MAX_THREADS), served.group(0)
    if direct and version < (3, 17):  # 3.14 splits a large read(2) into 128 KiB or 1 MiB requests, by run
        assert largest in (128 * 1024, MIB)
    elif direct:  # 3.17: a reader asking for 1 MiB or more gets 1 MiB requests (max_pages 256)
        assert largest == MIB
    else:  # the page cache's readahead
        assert largest == (MIB if readahead_mib else 128 * 1024)


def test_init_asks_for_mmap_under_direct_io_only_where_offered():
    """The INIT negotiation on libfuse's structs, without a kernel (3.14's conn has no capable_ext)."""
    view = SimpleNamespace(load=lambda: view)
    offered = SimpleNamespace(capable_ext=CAP_DIRECT_IO_ALLOW_MMAP | 1, want_ext=1)
    old = SimpleNamespace(capable=0xFFFF, want=1)  # libfuse 3.14: 32-bit flags, no bit for it
    expect = {  # io: (direct_io, mmap_allowed) with it offered; then without
        "auto": ((True, True), (False, False)),
        "direct": ((True, True), (True, False)),
        "page-cache": ((False, False), (False, False)),
    }
    assert set(expect) == set(IO_MODES)
    for io, (with_offer, without) in expect.items():
        for conn, want in ((offered, with_offer), (old, without)):
            conn = SimpleNamespace(**vars(conn))
            config = SimpleNamespace(direct_io=0)
            ops = FastFileOperations(view, io)
            ops.init_with_config(conn, config)
            assert (ops.direct_io, ops.mmap_allowed) == want, (io, vars(conn))
            assert config.direct_io == int(want[0])
            if hasattr(conn, "want_ext"):  # asked for exactly when granted; nothing else touched
                assert conn.want_ext == (1 | CAP_DIRECT_IO_ALLOW_MMAP if want[1] else 1)
            else:
                assert conn.want == 1
    with pytest.raises(ValueError, match="unknown io mode 'cached': valid modes are auto, direct, page-cache"):
        FastFileOperations(view, "cached")


def test_project_library_is_used_only_if_it_loads_and_is_new_enough(tmp_path, caplog):
    assert project_library(tmp_path / "absent.so") is None
    bogus = tmp_path / "libfuse3.so.4"
    bogus.write_bytes(b"not a library")
    assert project_library(bogus) is None
    assert "does not load" in caplog.text and "make system-deps" in caplog.text
    system = system_library_path()
    if system and library_version(system) < (3, 17):  # a real libfuse older than 3.17 is refused too, saying so
        old = tmp_path / "old" / "libfuse3.so.4"
        old.parent.mkdir()
        old.symlink_to(system)
        assert project_library(old) is None
        version = library_version(system)
        assert f"it is libfuse {version[0]}.{version[1]}, older than 3.17" in caplog.text


def system_library_path() -> str | None:
    """Where the system's libfuse3 is, from ldconfig's cache."""
    if not SYSTEM_LIBFUSE:
        return None
    out = subprocess.run(["/sbin/ldconfig", "-p"], capture_output=True, text=True, check=False).stdout
    return next((line.rpartition(" => ")[2] for line in out.splitlines()
                 if line.strip().startswith(SYSTEM_LIBFUSE + " ")), None)


LOADED = "from channels.modes.fastfile.libfuse import loaded; print(loaded())"


@pytest.mark.skipif(not SYSTEM_LIBFUSE, reason="no system libfuse3 (apt-get install fuse3 libfuse3-dev)")
def test_the_built_library_comes_first_and_the_variable_overrides_it():
    env = {k: v for k, v in os.environ.items() if k != ENV}
    out = subprocess.run([sys.executable, "-c", LOADED], env=env, capture_output=True, text=True, check=True).stdout
    if PROJECT_LIBFUSE:
        assert out.strip().endswith(f"({PROJECT_LIBFUSE}, {ORIGIN_PROJECT})"), out
    else:
        assert out.strip().endswith(f", {ORIGIN_SYSTEM})"), out
    out = subprocess.run([sys.executable, "-c", LOADED], env={**env, ENV: SYSTEM_LIBFUSE}, capture_output=True,
                         text=True, check=True).stdout
    version = library_version(SYSTEM_LIBFUSE)
    assert out.strip() == f"libfuse {version[0]}.{version[1]} ({SYSTEM_LIBFUSE}, {ORIGIN_ENV})"
    # mfusepy reads the variable once, at import: it is set only for that import, not left for children.
    code = f"import os; {LOADED}; print(os.environ.get({ENV!r}))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[-1] == "None"
