"""The FastFile mount on libfuse's high-level API, through ``mfusepy``: where the low-level one cannot serve.

libfuse resolves a path for every request; a read fills a buffer of
libfuse's, which libfuse then writes to the kernel (two copies of each
byte in this process, against one through
:mod:`~channels.modes.fastfile.lowlevel`). :class:`_FUSE` reads straight
from a readahead window into that buffer: mfusepy's own ``read`` wrapper
would build a ``bytes`` first.
"""

from __future__ import annotations

import ctypes
import logging
import os

from channels.errors import MountError
from channels.modes.fastfile.libfuse import load_binding
from channels.modes.fastfile.mount import CACHE_SECONDS, FastFileOperations, is_mounted, note_worker
from channels.modes.fastfile.view import FastFileView

log = logging.getLogger(__name__)

#: What libfuse 3's fuse_main returns when its loop ends with an error, a signal included.
LOOP_ENDED = 8


def _fuse_class():
    mfusepy = load_binding()

    class _FUSE(mfusepy.FUSE):
        """mfusepy's FUSE, reading straight into the kernel's buffer (no ``bytes`` in between), each
        worker thread keeping its Python thread state (see :func:`keep_thread_state`)."""

        def read(self, path, buf, size, offset, fip):
            note_worker(self.operations)
            dest = memoryview((ctypes.c_ubyte * size).from_address(ctypes.addressof(buf.contents))).cast("B")
            return self.operations.read_into(dest, offset, fip.contents.fh)

    return _FUSE


def serve(view: FastFileView, operations: FastFileOperations, mountpoint: str, *, fsname: str,
          allow_other: bool, debug: bool, threads: int) -> None:
    """Serve ``operations`` at ``mountpoint`` until a signal ends libfuse's loop (unmounted on return)."""
    options = {"ro": True, "fsname": fsname, "subtype": "channels",
               "kernel_cache": True, "entry_timeout": CACHE_SECONDS, "attr_timeout": CACHE_SECONDS,
               "negative_timeout": CACHE_SECONDS, "allow_other": allow_other, "default_permissions": True,
               "max_threads": threads, "max_idle_threads": threads}
    fuse = _fuse_class()
    try:
        fuse(operations, os.path.realpath(mountpoint), foreground=True, debug=debug, **options)
    except RuntimeError as exc:
        # libfuse 3 reports a loop ended by its signal handler as an error (fuse_main
        # returns 8, with the signal number kept as the session's error); it has
        # unmounted by then. Anything else, or a mount left behind, is a failure.
        if exc.args != (LOOP_ENDED,) or is_mounted(mountpoint):
            raise MountError(f"mounting {view.uri} at {mountpoint} failed (libfuse returned {exc}); "
                             "see the messages above", mountpoint=mountpoint) from exc
        log.info("unmounted %s", mountpoint)
