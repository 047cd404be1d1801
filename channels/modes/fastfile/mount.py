"""A read-only FUSE mount of a FastFile view, so scripts that only know paths need no change.

Built on libfuse 3 by ctypes; :mod:`channels.modes.fastfile.libfuse` picks the
library (3.17 built by ``make system-deps`` before the system's 3.14), and
the mount serves it through one of its two APIs (``api``):

- ``low-level`` (:mod:`~channels.modes.fastfile.lowlevel`, libfuse 3.12+):
  files by inode, and each read answered straight from the readahead
  windows' memory (the kernel's copy into the reader is the only one).
- ``high-level`` (:mod:`~channels.modes.fastfile.highlevel`, through
  ``mfusepy``): a path per request, and each read copied into a buffer of
  libfuse's, which libfuse then writes to the kernel.
- ``auto`` (the default): the low-level one where the library has it.

libfuse runs the loop multithreaded, so several programs read at once; each
``open`` gets its own :class:`~channels.modes.fastfile.readahead.ReadaheadFile`, so
readahead adapts per handle, and all handles share the view's byte budget.

How the kernel reads (``io``), settled when the kernel sends INIT:

- ``direct``: each read(2) goes to the mount as it is, up to 1 MiB per
  request, with no copy into the page cache (a fifth more MB/s here). A
  shared mmap (``np.memmap``, ``pyarrow.memory_map``, safetensors) still
  works where libfuse 3.17+ and the kernel (6.6+) agree on
  FUSE_DIRECT_IO_ALLOW_MMAP: mapped pages then go through the page cache.
  Without it a shared mmap fails with ENODEV.
- ``page-cache``: reads fill the kernel's page cache first, 1 MiB of
  readahead at a time; a second pass over a file comes from memory.
- ``auto`` (the default): ``direct`` where mmap is allowed, else ``page-cache``.

Each libfuse worker thread keeps one Python thread state for all its
callbacks (:func:`keep_thread_state`) instead of making and deleting one
per request. libfuse installs its own SIGTERM, SIGINT and SIGHUP handlers:
any of them ends the loop, and libfuse unmounts before :func:`mount` returns.
"""

from __future__ import annotations

import ctypes
import errno
import itertools
import logging
import os
import shutil
import signal
import stat
import threading
import time

from channels.errors import MountError
from channels.modes.fastfile.libfuse import CAP_DIRECT_IO_ALLOW_MMAP, load_binding, loaded
from channels.modes.fastfile.readahead import ReadaheadFile
from channels.modes.fastfile.view import FastFileView
from channels.modes.fastfile.window import Lent

log = logging.getLogger(__name__)

#: Seconds the kernel may cache names and attributes: objects do not change under a mount.
CACHE_SECONDS = 3600.0
BLOCK = 512
#: Kernel readahead on the mount: FUSE's largest request (1 MiB with libfuse 3).
KERNEL_READAHEAD_KIB = 1024
#: FUSE worker threads at most, and idle ones kept (libfuse 3.14 warns when either is not given:
#: "Ignoring invalid max threads value 4294967295"). Each read waiting for the store holds one.
#: Measured (one reader, 64 x 16 MiB, --direct-io): 0.60x Pipe's MB/s with 32, 0.65x with 8,
#: the same with 2; through the page cache no difference.
MAX_THREADS = 8
#: How the kernel reads a mounted file (see the module's docstring); the first is the default.
IO_MODES = ("auto", "direct", "page-cache")
#: Which libfuse API serves the mount (see the module's docstring); the first is the default.
FUSE_APIS = ("auto", "low-level", "high-level")


def check_fuse(mountpoint: str, *, device: str = "/dev/fuse", fusermount: str = "fusermount3") -> None:
    """Raise :class:`MountError` with the fix when a mount at ``mountpoint`` cannot work.

    Checks the FUSE device, the fuse3 tools, the libfuse3 library and binding,
    and that the mount point is an existing, empty directory not mounted on.
    """
    if not os.path.exists(device):
        raise MountError(f"FUSE is unavailable: {device} is missing. Load the kernel module (modprobe fuse) "
                         "or, in a container, run with --device /dev/fuse --cap-add SYS_ADMIN",
                         device=device)
    if shutil.which(fusermount) is None:
        raise MountError(f"FUSE is unavailable: {fusermount} is not on PATH. Install Debian's fuse3 "
                         "(apt-get install fuse3 libfuse3-dev)", tool=fusermount)
    load_binding()
    if is_mounted(mountpoint):  # first: a stale FUSE mount fails every stat with ENOTCONN
        raise MountError(f"{mountpoint} is already a mount point: unmount it first "
                         f"(fusermount3 -u {mountpoint})", mountpoint=mountpoint)
    if not os.path.exists(mountpoint):
        raise MountError(f"mount point {mountpoint} does not exist: create it (mkdir -p {mountpoint})",
                         mountpoint=mountpoint)
    if not os.path.isdir(mountpoint):
        raise MountError(f"mount point {mountpoint} is not a directory", mountpoint=mountpoint)
    if os.listdir(mountpoint):
        raise MountError(f"mount point {mountpoint} is not empty: mount on an empty directory "
                         "(its files would be hidden)", mountpoint=mountpoint)


def mount_table(path: str = "/proc/mounts") -> list[tuple[str, str]]:
    """``(mount point, fs type)`` of every mount (octal escapes decoded)."""
    out = []
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 3:
                point = fields[1].encode("latin-1", "surrogateescape").decode("unicode_escape")
                out.append((point, fields[2]))
    return out


def is_mounted(mountpoint: str) -> bool:
    """Whether ``mountpoint`` appears in /proc/mounts."""
    target = os.path.realpath(mountpoint)
    return any(point == target for point, _ in mount_table())


def wait_mounted(mountpoint: str, timeout: float, *, alive=lambda: True) -> bool:
    """Poll /proc/mounts until ``mountpoint`` is there (True), ``alive()`` is False or time is up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_mounted(mountpoint):
            return True
        if not alive():
            return is_mounted(mountpoint)
        time.sleep(0.05)
    return False


class FastFileOperations:
    """The FUSE callbacks over a view: getattr, readdir, open, read, release, statfs.

    Args:
        view: the channel's tree (listed at construction if not yet).
        io: one of :data:`IO_MODES`: how the kernel should read, settled at INIT.

    Attributes:
        direct_io: whether files are opened for direct I/O (set at INIT).
        mmap_allowed: whether the kernel granted FUSE_DIRECT_IO_ALLOW_MMAP (set at INIT).
        reads: read requests served.
        largest_read: the most bytes one read request asked for (the kernel's request size).
        spanning_reads: reads answered from more than one buffer (two windows) by :meth:`read_views`.
        kept_states: libfuse worker threads that keep a Python thread state (see
            :func:`keep_thread_state`): one each, however many requests they serve.
    """

    use_ns = True  # times in nanoseconds (mfusepy's current convention)

    def __init__(self, view: FastFileView, io: str = IO_MODES[0]) -> None:
        if io not in IO_MODES:
            raise ValueError(f"unknown io mode {io!r}: valid modes are {', '.join(IO_MODES)}")
        self.io = io
        self.direct_io = self.mmap_allowed = False
        self.reads = self.largest_read = self.kept_states = self.spanning_reads = 0
        self.view = view.load()
        self._uid, self._gid = os.getuid(), os.getgid()
        self._time_ns = time.time_ns()
        self._handles: dict[int, ReadaheadFile] = {}  # open handles by fh number
        self._next_fh = itertools.count(1)
        self._lock = threading.Lock()

    def _attrs(self, entry) -> dict:
        common = {"st_uid": self._uid, "st_gid": self._gid, "st_atime": self._time_ns,
                  "st_mtime": self._time_ns, "st_ctime": self._time_ns}
        if entry.is_dir:
            return {"st_mode": stat.S_IFDIR | 0o555, "st_nlink": 2 + entry.subdirs, "st_size": 0, **common}
        return {"st_mode": stat.S_IFREG | 0o444, "st_nlink": 1, "st_size": entry.size,
                "st_blocks": (entry.size + BLOCK - 1) // BLOCK, "st_blksize": 1 << 20, **common}

    def init_with_config(self, conn, config) -> None:
        """At the kernel's INIT: ask for mmap under direct I/O where offered, then choose the I/O mode.

        ``conn`` is libfuse's ``fuse_conn_info`` and ``config`` its
        ``fuse_config``, both edited in place. Only libfuse 3.17+ has
        ``capable_ext``/``want_ext``, the 64-bit flags the request needs
        (what its inline ``fuse_set_feature_flag`` does); ``config.direct_io``
        is read by libfuse at every ``open``.
        """
        offered = getattr(conn, "capable_ext", 0) & CAP_DIRECT_IO_ALLOW_MMAP  # 0 before 3.17
        if offered and self.io != "page-cache":
            conn.want_ext |= CAP_DIRECT_IO_ALLOW_MMAP
            self.mmap_allowed = True
        self.direct_io = self.io == "direct" or (self.io == "auto" and self.mmap_allowed)
        if config is not None:
            config.direct_io = int(self.direct_io)
        log.info("%s; %s", describe_io(self.direct_io, self.mmap_allowed),
                 f"asked for io={self.io}" if self.io != "auto" else "chosen by io=auto")

    def getattr(self, path: str, fh=None) -> dict:
        try:
            return self._attrs(self.view.stat(path))
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise _oserror(exc.errno or errno.ENOENT) from None

    def readdir(self, path: str, fh):
        try:
            entries = self.view.scandir(path)
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise _oserror(exc.errno or errno.ENOENT) from None
        yield "."
        yield ".."
        for e in entries:
            yield e.path.rpartition("/")[2], {"st_mode": stat.S_IFDIR if e.is_dir else stat.S_IFREG}, 0

    def open(self, path: str, flags: int) -> int:
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND | os.O_CREAT):
            raise _oserror(errno.EROFS)
        try:
            f = self.view.open(path)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise _oserror(exc.errno or errno.ENOENT) from None
        with self._lock:
            fh = next(self._next_fh)
            self._handles[fh] = f
        return fh

    def read_into(self, dest: memoryview, offset: int, fh: int) -> int:
        """Fill the kernel's buffer from ``offset``; bytes read (0 at the end)."""
        return self._read(fh, offset, len(dest), lambda f: f.preadinto(offset, dest))

    def read_views(self, fh: int, offset: int, size: int) -> Lent:
        """Views of the bytes at ``offset`` in the readahead windows (none at the end), for a
        reply straight from them; their windows are pinned until it is released."""
        lent = self._read(fh, offset, size, lambda f: f.pread_views(offset, size))
        if len(lent.views) > 1:
            with self._lock:
                self.spanning_reads += 1
        return lent

    def _read(self, fh: int, offset: int, size: int, read):
        """``read(file)`` on handle ``fh``, counted; EBADF for no such handle, EIO for a failed fetch."""
        f = self._handles.get(fh)
        if f is None:
            raise _oserror(errno.EBADF)
        with self._lock:
            self.reads += 1
            self.largest_read = max(self.largest_read, size)
        try:
            return read(f)
        except OSError as exc:
            log.error("read of %s at %d failed: %s", f.name, offset, exc)
            raise _oserror(errno.EIO) from None

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        buf = bytearray(size)
        n = self.read_into(memoryview(buf), offset, fh)
        return bytes(buf[:n])

    def release(self, path: str, fh: int) -> int:
        with self._lock:
            f = self._handles.pop(fh, None)
        if f is not None:
            f.close()
        return 0

    def statfs(self, path: str) -> dict:
        return {"f_bsize": 1 << 20, "f_frsize": BLOCK, "f_namemax": 1024}

    def destroy(self, path: str) -> None:
        with self._lock:
            handles, self._handles = list(self._handles.values()), {}
        for f in handles:
            f.close()
        log.info("served %d read requests, the largest of %d bytes, on %d worker threads (%d from two "
                 "windows)", self.reads, self.largest_read, self.kept_states, self.spanning_reads)


def kernel_readahead(mountpoint: str, kib: int, timeout: float = 30.0) -> bool:
    """Once ``mountpoint`` is mounted, let the kernel read ahead ``kib`` KiB on it.

    Linux gives a FUSE mount 128 KiB of readahead, so a sequential reader
    costs a callback per 128 KiB; 1 MiB (FUSE's largest request) costs an
    eighth of them. The knob is the mount's ``/sys/class/bdi/<dev>/read_ahead_kb``,
    writable by root only: elsewhere this does nothing and says so at debug level.

    Call it from another thread than the FUSE loop's, before or after the
    mount: it waits for the mount, then stats its root, which returns only
    once the kernel has processed FUSE's INIT reply. Written earlier, the
    value would be clamped back to 128 KiB by that reply (the kernel offers
    libfuse the readahead of the moment, and keeps the smaller one).
    Returns whether it was set.
    """
    if not wait_mounted(mountpoint, timeout):
        return False
    try:
        dev = os.stat(mountpoint).st_dev
        with open(f"/sys/class/bdi/{os.major(dev)}:{os.minor(dev)}/read_ahead_kb", "w") as f:
            f.write(str(kib))
    except OSError as exc:
        log.debug("could not set the kernel readahead of %s: %s", mountpoint, exc)
        return False
    return True


def describe_io(direct_io: bool, mmap_allowed: bool) -> str:
    """One phrase for the log: how the kernel reads and whether a shared mmap works."""
    if not direct_io:
        return "reads through the page cache (shared mmap works)"
    if mmap_allowed:
        return "direct I/O, shared mmap allowed by the kernel (FUSE_DIRECT_IO_ALLOW_MMAP)"
    return "direct I/O; a shared mmap fails with ENODEV (needs libfuse 3.17+ and a 6.6+ kernel)"


def _oserror(code: int) -> OSError:
    return OSError(code, os.strerror(code))


#: Per libfuse worker thread: whether :func:`keep_thread_state` has run in it.
_WORKER = threading.local()


def keep_thread_state() -> None:
    """Keep the calling libfuse worker thread's Python thread state from one callback to the next.

    A ctypes callback in a thread Python did not start runs between
    ``PyGILState_Ensure`` and ``PyGILState_Release``: each call creates a
    thread state and deletes it again, and with it Python 3.11's 16 KiB
    frame stack (an mmap and a munmap, whose TLB shootdown interrupts the
    other CPU). That was two mmaps and two munmaps per 1 MiB read(2). One
    ``PyGILState_Ensure`` more, never released, keeps the state alive; the
    thread's calls then reuse it. libfuse keeps its workers until the loop
    ends (``max_idle_threads`` = ``max_threads``), so at most
    :data:`MAX_THREADS` states are kept; Python frees them at exit.
    """
    ctypes.pythonapi.PyGILState_Ensure()
    _WORKER.kept = True


def note_worker(operations: FastFileOperations) -> None:
    """At each read: in a libfuse worker thread not seen yet, keep its thread state, and count it."""
    if not getattr(_WORKER, "kept", False):
        keep_thread_state()
        with operations._lock:
            operations.kept_states += 1


def mount(view: FastFileView, mountpoint: str, *, allow_other: bool | None = None, debug: bool = False,
          io: str = IO_MODES[0], threads: int = MAX_THREADS, api: str = FUSE_APIS[0]) -> None:
    """Serve ``view`` at ``mountpoint`` until a signal ends it; blocks.

    SIGTERM, SIGINT (Ctrl-C) and SIGHUP unmount cleanly. The view is closed
    on return.

    Args:
        view: the channel to serve (listed before mounting, so that a bad
            prefix fails here and not as EIO later).
        mountpoint: an existing, empty directory.
        allow_other: let other users read the mount (default: when root).
        debug: libfuse's trace of every request, on stderr.
        io: one of :data:`IO_MODES` (see the module's docstring). ``auto``
            bypasses the page cache where libfuse and the kernel allow shared
            mmap under direct I/O, and reads through it otherwise. ``direct``
            bypasses it even where a shared mmap then fails with ENODEV;
            with direct I/O every small read is a round trip to this process
            and nothing read stays cached for a second pass.
        threads: FUSE worker threads at most: reads served at once.
        api: one of :data:`FUSE_APIS`. ``auto`` serves through libfuse's
            low-level API where the library has it (3.12+), else the high-level one.

    Raises:
        ValueError: ``io`` is not one of :data:`IO_MODES`, or ``api`` of :data:`FUSE_APIS`.
        MountError: FUSE is unavailable, or the mount point is unusable.
        SourceNotFoundError, EmptyChannelError: the prefix cannot be listed.
    """
    if api not in FUSE_APIS:
        raise ValueError(f"unknown FUSE API {api!r}: valid ones are {', '.join(FUSE_APIS)}")
    check_fuse(mountpoint)
    library = loaded()
    log.info("using %s", library)
    try:
        operations = FastFileOperations(view, io)
        lowlevel = _lowlevel(api, library)
    except BaseException:
        view.close()
        raise
    if allow_other is None:
        allow_other = os.geteuid() == 0
    fsname = f"channels:{view.uri}"[:200].replace(",", "%2C")  # a comma would end the option
    # Page-cache reads, and mapped pages under direct I/O, are read ahead by the kernel.
    threading.Thread(target=kernel_readahead, args=(mountpoint, KERNEL_READAHEAD_KIB), daemon=True,
                     name="channels-mount-readahead").start()
    try:
        if lowlevel is not None:
            log.info("serving through libfuse's low-level API")
            options = ["ro", f"fsname={fsname}", "subtype=channels", "default_permissions"]
            ended = lowlevel.serve(lowlevel.LowLevel(operations), os.path.realpath(mountpoint),
                                   options + ["allow_other"] * allow_other, debug=debug, threads=threads)
            log.debug("libfuse's loop returned %d", ended)
            # 0, or the number of the signal that ended the loop (libfuse keeps it as the session's error).
            if ended not in (0, signal.SIGTERM, signal.SIGINT, signal.SIGHUP) or is_mounted(mountpoint):
                raise MountError(f"serving {view.uri} at {mountpoint} failed (libfuse's loop returned {ended}); "
                                 "see the messages above", mountpoint=mountpoint)
            log.info("unmounted %s", mountpoint)
        else:
            from channels.modes.fastfile import highlevel

            log.info("serving through libfuse's high-level API")
            highlevel.serve(view, operations, mountpoint, fsname=fsname, allow_other=allow_other,
                            debug=debug, threads=threads)
    finally:
        view.close()


def _lowlevel(api: str, library):
    """The :mod:`~channels.modes.fastfile.lowlevel` module if ``api`` and ``library`` call for it, else None."""
    if api == "high-level":
        return None
    from channels.modes.fastfile import lowlevel  # loads libfuse

    if lowlevel.available():
        return lowlevel
    if api == "low-level":
        raise MountError(f"{library} has no low-level API the mount can use (it needs libfuse "
                         f"{lowlevel.SINCE[0]}.{lowlevel.SINCE[1]}+): mount with the high-level one (--fuse-api "
                         "high-level) or install a newer libfuse (make system-deps)")
    return None
