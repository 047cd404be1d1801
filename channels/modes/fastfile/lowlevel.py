"""The FastFile mount on libfuse's low-level API: inodes, and reads answered from the windows.

libfuse's high-level API (what ``mfusepy`` binds) resolves a path for every
request and hands each read a buffer of its own to fill, which libfuse then
writes to ``/dev/fuse``: two copies of every byte in this process. Here the
same :class:`~channels.modes.fastfile.mount.FastFileOperations` are served
through ``fuse_lowlevel.h`` by ctypes: the kernel names files by inode
(numbered here as lookups first meet them, kept for the mount's life), and a
read is answered with ``fuse_reply_buf`` (``fuse_reply_iov`` for a span over
two windows) pointing into the readahead windows themselves
(:meth:`~channels.modes.fastfile.readahead.ReadaheadFile.pread_views`): the
only copy left is the kernel's, from the window into the reader's pages.

Only the prefix of ``struct fuse_lowlevel_ops`` up to ``statfs`` is declared
(its order is unchanged since libfuse 3.0); libfuse zero-fills the rest
(ENOSYS). The structs that differ between libfuse versions (``stat``,
``fuse_file_info``, ``fuse_conn_info``) are mfusepy's, laid out for the
library it loaded. Importing this module loads libfuse.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import itertools
import logging
import os
import re
import signal
import stat
import threading

from channels.errors import MountError
from channels.modes.fastfile.libfuse import load_binding
from channels.modes.fastfile.mount import CACHE_SECONDS, FastFileOperations, note_worker

log = logging.getLogger(__name__)

_mfusepy = load_binding()
#: The library mfusepy loaded, with function objects of our own (their argtypes are ours to set).
_lib = ctypes.CDLL(_mfusepy._libfuse._name, handle=_mfusepy._libfuse._handle)
c_stat, c_statvfs = _mfusepy.c_stat, _mfusepy.c_statvfs
fuse_file_info, fuse_conn_info = _mfusepy.fuse_file_info, _mfusepy.fuse_conn_info
fuse_req_t = ctypes.c_void_p
fuse_ino_t = ctypes.c_uint64
c_off_t = ctypes.c_int64
fi_p = ctypes.POINTER(fuse_file_info)
#: FUSE_ROOT_ID: the kernel's inode number of the mount's root.
ROOT = 1
#: The first libfuse whose loop takes a ``fuse_loop_config`` built by setters (fuse_session_loop_mt_312).
SINCE = (3, 12)


class fuse_entry_param(ctypes.Structure):
    _fields_ = [("ino", fuse_ino_t), ("generation", ctypes.c_uint64), ("attr", c_stat),
                ("attr_timeout", ctypes.c_double), ("entry_timeout", ctypes.c_double)]


class fuse_args(ctypes.Structure):
    _fields_ = [("argc", ctypes.c_int), ("argv", ctypes.POINTER(ctypes.c_char_p)), ("allocated", ctypes.c_int)]


class iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class libfuse_version(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint32) for name in ("major", "minor", "hotfix", "padding")]


_init_t = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.POINTER(fuse_conn_info))
_destroy_t = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_ino_t = ctypes.CFUNCTYPE(None, fuse_req_t, fuse_ino_t)  # statfs
_name_t = ctypes.CFUNCTYPE(None, fuse_req_t, fuse_ino_t, ctypes.c_char_p)  # lookup
_fi_t = ctypes.CFUNCTYPE(None, fuse_req_t, fuse_ino_t, fi_p)  # getattr, open, release, opendir, releasedir
_span_t = ctypes.CFUNCTYPE(None, fuse_req_t, fuse_ino_t, ctypes.c_size_t, c_off_t, fi_p)  # read, readdir

#: The callbacks served, by their field in ``struct fuse_lowlevel_ops``.
CALLBACKS = {"init": _init_t, "destroy": _destroy_t, "lookup": _name_t, "getattr": _fi_t, "open": _fi_t,
             "read": _span_t, "release": _fi_t, "opendir": _fi_t, "readdir": _span_t, "releasedir": _fi_t,
             "statfs": _ino_t}
#: ``struct fuse_lowlevel_ops`` up to statfs, in fuse_lowlevel.h's order.
OPS_PREFIX = ("init", "destroy", "lookup", "forget", "getattr", "setattr", "readlink", "mknod", "mkdir", "unlink",
              "rmdir", "symlink", "rename", "link", "open", "read", "write", "flush", "release", "fsync",
              "opendir", "readdir", "releasedir", "fsyncdir", "statfs")


class fuse_lowlevel_ops(ctypes.Structure):
    _fields_ = [(name, CALLBACKS.get(name, ctypes.c_void_p)) for name in OPS_PREFIX]


def _declare(name: str, restype, *argtypes):
    fn = getattr(_lib, name)
    fn.restype, fn.argtypes = restype, argtypes
    return fn


_P = ctypes.c_void_p
reply_err = _declare("fuse_reply_err", ctypes.c_int, fuse_req_t, ctypes.c_int)
reply_entry = _declare("fuse_reply_entry", ctypes.c_int, fuse_req_t, ctypes.POINTER(fuse_entry_param))
reply_attr = _declare("fuse_reply_attr", ctypes.c_int, fuse_req_t, ctypes.POINTER(c_stat), ctypes.c_double)
reply_open = _declare("fuse_reply_open", ctypes.c_int, fuse_req_t, fi_p)
reply_buf = _declare("fuse_reply_buf", ctypes.c_int, fuse_req_t, _P, ctypes.c_size_t)
reply_iov = _declare("fuse_reply_iov", ctypes.c_int, fuse_req_t, ctypes.POINTER(iovec), ctypes.c_int)
reply_statfs = _declare("fuse_reply_statfs", ctypes.c_int, fuse_req_t, ctypes.POINTER(c_statvfs))
add_direntry = _declare("fuse_add_direntry", ctypes.c_size_t, fuse_req_t, _P, ctypes.c_size_t, ctypes.c_char_p,
                        ctypes.POINTER(c_stat), c_off_t)


def available() -> bool:
    """Whether the loaded libfuse has all the low-level calls :func:`serve` makes."""
    version = (_mfusepy.fuse_version_major, _mfusepy.fuse_version_minor)
    return version >= SINCE and all(hasattr(_lib, name) for name in (
        "fuse_session_loop_mt_312", "fuse_loop_cfg_create", "fuse_loop_cfg_set_max_threads"))


def _answers(method):
    """A request's callback: every exception becomes an error reply (a request left unanswered
    would hang its caller in the kernel)."""

    @functools.wraps(method)
    def callback(self, req, *args):
        try:
            method(self, req, *args)
        except OSError as exc:
            reply_err(req, exc.errno or errno.EIO)
        except BaseException:
            log.exception("%s failed", method.__name__)
            reply_err(req, errno.EIO)

    return callback


def _after_reply(fn, *args) -> None:
    """``fn(*args)`` once the request is answered: an error is logged, never a second reply."""
    try:
        fn(*args)
    except Exception:
        log.exception("after a reply, %s failed", getattr(fn, "__qualname__", fn))


class LowLevel:
    """The low-level callbacks over ``operations``, and the inode numbers of the view's paths.

    Attributes:
        struct: the ``fuse_lowlevel_ops`` to give ``fuse_session_new`` (it keeps the callbacks alive).
    """

    def __init__(self, operations: FastFileOperations) -> None:
        self.ops = operations
        self._paths = ["", "/"]  # by inode number (ROOT is 1)
        self._inodes = {"/": ROOT}
        self._dirs: dict[int, ctypes.Array] = {}  # open directories: their entries as readdir sends them
        self._next_dh = itertools.count(1)
        self._lock = threading.Lock()
        self.struct = fuse_lowlevel_ops(**{name: kind(getattr(self, name)) for name, kind in CALLBACKS.items()})

    # ------------------------------------------------------------ inodes

    def _inode(self, path: str) -> int:
        with self._lock:
            ino = self._inodes.get(path)
            if ino is None:
                ino = self._inodes[path] = len(self._paths)
                self._paths.append(path)
            return ino

    def _path(self, ino: int) -> str:
        try:
            return self._paths[ino]
        except IndexError:
            raise OSError(errno.ESTALE, f"no inode {ino}") from None

    def _stat(self, path: str, ino: int) -> c_stat:
        st = c_stat()
        _mfusepy.set_st_attrs(st, self.ops.getattr(path), use_ns=True)
        st.st_ino = ino
        return st

    # ------------------------------------------------------------ callbacks

    def init(self, userdata, conn) -> None:
        try:
            self.ops.init_with_config(conn.contents, None)
        except BaseException:
            log.exception("INIT failed")

    def destroy(self, userdata) -> None:
        try:
            self.ops.destroy("/")
        except BaseException:
            log.exception("destroy failed")

    @_answers
    def lookup(self, req, parent: int, name: bytes) -> None:
        base = self._path(parent)
        path = base.rstrip("/") + "/" + os.fsdecode(name)
        e = fuse_entry_param(attr_timeout=CACHE_SECONDS, entry_timeout=CACHE_SECONDS)
        try:
            attrs = self.ops.getattr(path)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise
            reply_entry(req, e)  # inode 0: a negative entry, cached as long as the others
            return
        e.ino = self._inode(path)
        _mfusepy.set_st_attrs(e.attr, attrs, use_ns=True)
        e.attr.st_ino = e.ino
        reply_entry(req, e)

    @_answers
    def getattr(self, req, ino: int, fi) -> None:
        reply_attr(req, self._stat(self._path(ino), ino), CACHE_SECONDS)

    @_answers
    def open(self, req, ino: int, fi) -> None:
        path = self._path(ino)
        info = fi.contents
        fh = self.ops.open(path, info.flags)
        info.fh = fh
        info.direct_io = int(self.ops.direct_io)
        info.keep_cache = 1  # objects do not change under a mount
        if reply_open(req, fi) != 0:  # the open was interrupted: nobody will release it
            _after_reply(self.ops.release, path, fh)

    @_answers
    def read(self, req, ino: int, size: int, off: int, fi) -> None:
        note_worker(self.ops)
        lent = self.ops.read_views(fi.contents.fh, off, size)
        try:
            send(req, lent.views)
        finally:
            _after_reply(lent.release)

    @_answers
    def release(self, req, ino: int, fi) -> None:
        self.ops.release(None, fi.contents.fh)
        reply_err(req, 0)

    @_answers
    def opendir(self, req, ino: int, fi) -> None:
        path = self._path(ino)
        try:
            entries = self.ops.view.scandir(path)
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise OSError(exc.errno or errno.ENOENT, path) from None
        listing = [(b".", ino, stat.S_IFDIR), (b"..", self._inode(path.rpartition("/")[0] or "/"), stat.S_IFDIR)]
        listing += [(os.fsencode(e.path.rpartition("/")[2]), self._inode("/" + e.path.strip("/")),
                     stat.S_IFDIR if e.is_dir else stat.S_IFREG) for e in entries]
        sizes = [add_direntry(req, None, 0, name, None, 0) for name, _, _ in listing]
        buf = ctypes.create_string_buffer(sum(sizes))
        st, off = c_stat(), 0
        for (name, child, mode), n in zip(listing, sizes):
            st.st_ino, st.st_mode = child, mode
            add_direntry(req, ctypes.addressof(buf) + off, n, name, st, off + n)  # off: where the next begins
            off += n
        dh = next(self._next_dh)
        with self._lock:
            self._dirs[dh] = buf
        fi.contents.fh = dh
        if reply_open(req, fi) != 0:
            with self._lock:
                self._dirs.pop(dh, None)

    @_answers
    def readdir(self, req, ino: int, size: int, off: int, fi) -> None:
        buf = self._dirs.get(fi.contents.fh)
        if buf is None:
            raise OSError(errno.EBADF, "no such directory handle")
        # Whole entries or a cut one: the kernel stops at a cut entry and asks again from its offset.
        n = max(0, min(size, len(buf) - off))
        reply_buf(req, ctypes.addressof(buf) + off if n else None, n)

    @_answers
    def releasedir(self, req, ino: int, fi) -> None:
        with self._lock:
            self._dirs.pop(fi.contents.fh, None)
        reply_err(req, 0)

    @_answers
    def statfs(self, req, ino: int) -> None:
        st = c_statvfs()
        for key, value in self.ops.statfs("/").items():
            setattr(st, key, value)
        reply_statfs(req, st)


def send(req, views: list[memoryview]) -> int:
    """Reply to a read with ``views``' bytes, straight from their memory; libfuse's return code."""
    if not views:
        return reply_buf(req, None, 0)
    pins = [ctypes.c_char.from_buffer(v) for v in views]  # each holds its view's buffer until deleted
    try:
        if len(pins) == 1:
            return reply_buf(req, ctypes.addressof(pins[0]), len(views[0]))
        iov = (iovec * len(pins))(*((ctypes.addressof(p), len(v)) for p, v in zip(pins, views)))
        return reply_iov(req, iov, len(pins))
    finally:
        del pins


def _new_session(args: fuse_args, ops: fuse_lowlevel_ops):
    """``fuse_session_new`` as a program built against the loaded libfuse calls it (3.17 versions it)."""
    size = ctypes.sizeof(ops)
    if hasattr(_lib, "fuse_session_new_versioned"):
        new = _declare("fuse_session_new_versioned", _P, ctypes.POINTER(fuse_args), ctypes.POINTER(fuse_lowlevel_ops),
                       ctypes.c_size_t, ctypes.POINTER(libfuse_version), _P)
        pkg = _declare("fuse_pkgversion", ctypes.c_char_p)().decode()
        major, minor, hotfix = (list(map(int, re.findall(r"\d+", pkg))) + [0, 0, 0])[:3]
        return new(args, ops, size, libfuse_version(major, minor, hotfix, 0), None)
    new = _declare("fuse_session_new", _P, ctypes.POINTER(fuse_args), ctypes.POINTER(fuse_lowlevel_ops),
                   ctypes.c_size_t, _P)
    return new(args, ops, size, None)


def serve(lowlevel: LowLevel, mountpoint: str, options: list[str], *, debug: bool, threads: int) -> int:
    """Mount at ``mountpoint`` with mount ``options`` and serve until a signal ends the loop;
    what the loop returned (0, or the signal's number). Unmounted on return.

    Raises:
        MountError: libfuse refused the options or the mount.
    """
    argv = [b"channels", b"-o", ",".join(options).encode()] + ([b"-d"] if debug else [])
    args = fuse_args(len(argv), (ctypes.c_char_p * len(argv))(*argv), 0)
    se = _new_session(args, lowlevel.struct)
    _declare("fuse_opt_free_args", None, ctypes.POINTER(fuse_args))(args)
    if not se:
        raise MountError(f"libfuse refused the mount options {','.join(options)}: see the messages above",
                         mountpoint=mountpoint)
    try:
        if _declare("fuse_session_mount", ctypes.c_int, _P, ctypes.c_char_p)(se, os.fsencode(mountpoint)) != 0:
            raise MountError(f"mounting at {mountpoint} failed: see the messages above", mountpoint=mountpoint)
        try:
            with _signals_to_libfuse(se):
                config = _declare("fuse_loop_cfg_create", _P)()
                try:
                    _declare("fuse_loop_cfg_set_max_threads", None, _P, ctypes.c_uint)(config, threads)
                    _declare("fuse_loop_cfg_set_idle_threads", None, _P, ctypes.c_uint)(config, threads)
                    return _declare("fuse_session_loop_mt_312", ctypes.c_int, _P, _P)(se, config)
                finally:
                    _declare("fuse_loop_cfg_destroy", None, _P)(config)
        finally:
            _declare("fuse_session_unmount", None, _P)(se)
    finally:
        _declare("fuse_session_destroy", None, _P)(se)


@contextlib.contextmanager
def _signals_to_libfuse(se):
    """libfuse's SIGTERM, SIGINT and SIGHUP handlers (each ends the loop) while in the block.

    libfuse takes only signals left at their default, so Python's own SIGINT
    handler is set aside meanwhile (in the main thread: elsewhere Python's stay).
    """
    try:
        old = {sig: signal.signal(sig, signal.SIG_DFL) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    except ValueError:  # not the main thread
        old = {}
    try:
        if _declare("fuse_set_signal_handlers", ctypes.c_int, _P)(se) != 0:
            raise MountError("libfuse could not install its signal handlers")
        try:
            yield
        finally:
            _declare("fuse_remove_signal_handlers", None, _P)(se)
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
