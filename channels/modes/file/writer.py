"""The files File mode writes: temporary files filled at offsets by the transport's workers, renamed into place.

Each object gets ``<key dir>/.<name>.channels-tmp-<pid>-<random>-<n>``
(created with ``O_EXCL``, mode 0o644, space reserved for large objects); the
stream's sink writes each run of bytes with ``os.pwrite`` at its offset as it
arrives; the file is renamed to its key once its last part is written, so no
partial file ever stands under a final name.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading

from channels.errors import ChannelsError
from channels.filewrite import PREALLOCATE_MIN, preallocate, pwrite_all
from channels.folders import make_dirs
from channels.listing import ObjectRef
from channels.modes.file.keys import TMP_MARK
from channels.transport import Cancelled

_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


class DestinationError(ChannelsError, OSError):
    """An object could not be written under its key in DEST."""


class TmpFiles:
    """The temporary files of the objects being written, shared by the stream's workers.

    Each object gets ``<key dir>/.<name>.channels-tmp-<pid>-<token>-<n>``,
    created (``O_EXCL``, mode 0o644, space reserved for large objects) by
    whichever of its parts arrives first, and written through one descriptor
    by every worker holding a part of it. Names come from the pid, a random
    token per run and a counter (no syscall per object); ``O_EXCL`` still
    refuses to clobber.

    Invariants: every temporary file this run created is in ``_tmp`` until
    it is renamed into place and recorded (``forget``) or removed
    (``abort``); once
    aborted, no file is created; a descriptor is closed only when no worker
    is writing through it (``users == 0``), so no write can land in a file
    that reused its number.
    """

    def __init__(self, root: str) -> None:
        self._root = root
        self._stem = f"{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}-"
        self._lock = threading.Lock()
        self._serial = 0
        self._made: set[str] = set()
        self._tmp: dict[str, _Tmp] = {}  # by key
        self._aborted = False

    def write(self, ref: ObjectRef, offset: int, data: memoryview) -> None:
        """Write a run of ``ref``'s bytes at its offset (the stream's sink, on worker threads)."""
        entry = self._enter(ref)
        try:
            _pwrite_all(entry.fd, data, offset, ref, self._final(ref))
        finally:
            self._leave(entry)

    def finish(self, ref: ObjectRef, fsync: bool) -> str:
        """Rename a complete object into place (every part delivered, so no
        writer left); its final path. Its entry stays until :meth:`forget`,
        so that an interrupt before the object is recorded finds it."""
        final = self._final(ref)
        with self._lock:
            entry = self._tmp.get(ref.key)
        if entry is None:  # an empty object: no part, so no file yet
            entry = self._enter(ref)
            self._leave(entry)
        fd, entry.fd = entry.fd, -1
        try:
            try:
                if fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(entry.path, final)
        except OSError as exc:
            raise dest_error(ref, final, exc) from exc
        return final

    def forget(self, ref: ObjectRef) -> None:
        """Drop a finished (renamed and recorded) object's entry."""
        with self._lock:
            del self._tmp[ref.key]

    def abort(self) -> list[tuple[ObjectRef, str, bool]]:
        """Remove every temporary file left; ``(ref, final, renamed)`` for each.

        ``renamed``: the temporary file was gone, already renamed into place.
        """
        with self._lock:
            self._aborted = True
            left, self._tmp = list(self._tmp.values()), {}
            for entry in left:
                entry.closing = True
                if entry.users == 0:
                    _close(entry)
        out = []
        for entry in left:
            final = self._final(entry.ref)
            try:
                os.unlink(entry.path)
                renamed = False
            except FileNotFoundError:
                renamed = os.path.exists(final)
            except OSError:
                renamed = False
            out.append((entry.ref, final, renamed))
        return out

    def _final(self, ref: ObjectRef) -> str:
        return os.path.join(self._root, ref.key)

    def _enter(self, ref: ObjectRef) -> _Tmp:
        """``ref``'s entry, its file created on first use, with one more user."""
        with self._lock:
            if self._aborted:
                raise Cancelled()
            entry = self._tmp.get(ref.key)
            if entry is None:
                entry = self._create(ref)
            entry.users += 1
            return entry

    def _leave(self, entry: _Tmp) -> None:
        with self._lock:
            entry.users -= 1
            if entry.closing and entry.users == 0:
                _close(entry)

    def _create(self, ref: ObjectRef) -> _Tmp:
        """Create ``ref``'s temporary file and register it (lock held)."""
        final = self._final(ref)
        parent, base = os.path.split(final)
        if parent not in self._made:
            _makedirs(parent, ref)
            self._made.add(parent)
        self._serial += 1
        short = base if len(base.encode()) <= 180 else base[:40]  # the name must fit NAME_MAX
        path = os.path.join(parent, f".{short}{self._stem}{self._serial}")
        try:
            fd = os.open(path, _OPEN_FLAGS, 0o644)
        except OSError as exc:
            raise dest_error(ref, final, exc) from exc
        entry = self._tmp[ref.key] = _Tmp(ref, path, fd)
        if ref.size >= PREALLOCATE_MIN:
            _reserve(fd, ref, final)  # on ENOSPC the entry stays, so the file is removed
        return entry


class _Tmp:
    """One object's temporary file: its path, descriptor and writers."""

    __slots__ = ("closing", "fd", "path", "ref", "users")

    def __init__(self, ref: ObjectRef, path: str, fd: int) -> None:
        self.ref = ref
        self.path = path
        self.fd = fd  # -1 once closed
        self.users = 0  # workers writing through fd now
        self.closing = False  # aborted: the last user closes fd


def _close(entry: _Tmp) -> None:
    fd, entry.fd = entry.fd, -1
    if fd >= 0:
        with contextlib.suppress(OSError):
            os.close(fd)


def _reserve(fd: int, ref: ObjectRef, final: str) -> None:
    try:
        preallocate(fd, ref.size)
    except OSError as exc:
        raise dest_error(ref, final, exc) from exc


def _pwrite_all(fd: int, data: memoryview, offset: int, ref: ObjectRef, final: str) -> None:
    try:
        pwrite_all(fd, data, offset)
    except OSError as exc:
        raise dest_error(ref, final, exc) from exc


def _makedirs(parent: str, ref: ObjectRef) -> None:
    try:
        make_dirs(parent)
    except OSError as exc:  # e.g. a file stands where a folder must be
        raise dest_error(ref, parent, exc) from exc


def dest_error(ref: ObjectRef, path: str, exc: OSError) -> DestinationError:
    return DestinationError(f"cannot write {ref.url} to {path}: {exc.strerror or exc}; free space, fix "
                            "permissions, or remove what stands at that path, then rerun (completed "
                            "objects are kept)", url=ref.url, key=ref.key, path=path, errno=exc.errno)
