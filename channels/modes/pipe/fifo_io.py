"""FIFOs as files: make one, open it for writing once a reader is there, write, drain, release.

The system-call side of :mod:`channels.modes.pipe.fifo`: every function here
takes a stop event and gives up within a poll interval when it is set, so a
server is never stuck behind a reader that does not come or does not read.
"""

from __future__ import annotations

import array
import errno
import fcntl
import os
import select
import stat
import termios
import threading
from pathlib import Path

DEFAULT_MODE = 0o600
#: Pipe buffer asked for (F_SETPIPE_SZ); unprivileged processes get up to
#: /proc/sys/fs/pipe-max-size (1 MiB by default). Fewer, larger writes.
PIPE_SIZE = 1 << 20
#: Longest sleep between tries to open a FIFO no reader has opened yet.
OPEN_POLL_MAX = 0.05
#: How often a writer blocked on a full pipe checks for a stop.
WRITE_POLL_MS = 100


class Stopped(Exception):
    """The server was asked to stop."""


def fifo_path(data_dir: str | os.PathLike, channel: str, epoch: int) -> Path:
    """``<data_dir>/<channel>_<epoch>``, the FIFO of one channel's epoch."""
    return Path(data_dir) / f"{channel}_{epoch}"


def make_fifo(path: Path, mode: int = DEFAULT_MODE) -> None:
    """Create a FIFO at ``path``, replacing a stale FIFO left there.

    Raises:
        ValueError: ``mode`` is group- or world-writable.
        FileExistsError: something that is not a FIFO is in the way.
    """
    if mode & 0o022:
        raise ValueError(f"FIFO mode {mode:#o} lets other users write into the data stream; "
                         "use 0o600 or 0o640")
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISFIFO(st.st_mode):
            raise FileExistsError(errno.EEXIST, "not a FIFO, refusing to replace it", str(path))
        os.unlink(path)  # a stale FIFO from an earlier run
    try:
        os.mkfifo(path, mode)
    except OSError as exc:  # os.mkfifo's own error does not name the path
        raise OSError(exc.errno, f"cannot create the FIFO: {exc.strerror}", str(path)) from exc


def open_writer(path: Path, stop: threading.Event) -> int:
    """Open the FIFO for writing once a reader has it open; non-blocking.

    Returns:
        A non-blocking write descriptor.

    Raises:
        _Stopped: ``stop`` was set first. A reader blocked opening the FIFO
            is then released with EOF (the FIFO is opened and closed at once).
    """
    delay = 0.002
    while True:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno != errno.ENXIO:  # ENXIO: no reader yet
                raise
        else:
            if stop.is_set():
                os.close(fd)
                raise Stopped()
            try:
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
            except OSError:  # pragma: no cover - a lower pipe-max-size
                pass
            return fd
        if stop.wait(delay):
            raise Stopped()
        delay = min(delay * 2, OPEN_POLL_MAX)


def write_all(fd: int, data: memoryview, stop: threading.Event, poller: select.poll) -> None:
    """Write every byte of ``data`` to the non-blocking ``fd``, straight from its memory.

    Raises:
        BrokenPipeError: the reader closed the FIFO.
        _Stopped: ``stop`` was set while the pipe was full.
    """
    while data:
        try:
            n = os.write(fd, data)
        except BlockingIOError:
            while not poller.poll(WRITE_POLL_MS):
                if stop.is_set():
                    raise Stopped() from None
            continue
        data = data[n:]


def wait_drained(fd: int, stop: threading.Event, poller: select.poll) -> None:
    """Return once the reader has taken every byte out of the pipe.

    So that the writer's close, which the reader sees as EOF, comes when the
    reader is at the end, and the next epoch's FIFO appears after that.

    Raises:
        BrokenPipeError: the reader closed the FIFO with bytes left unread.
        _Stopped: ``stop`` was set first.
    """
    pending = array.array("i", [0])
    delay = 0.0005
    while True:
        try:
            fcntl.ioctl(fd, termios.FIONREAD, pending, True)
        except OSError:  # pragma: no cover - FIONREAD on pipes is Linux's; elsewhere, do not wait
            return
        if pending[0] == 0:
            return
        if any(events & select.POLLERR for _, events in poller.poll(0)):  # no reader left
            raise BrokenPipeError(errno.EPIPE, "the reader closed the FIFO")
        if stop.wait(delay):
            raise Stopped()
        delay = min(delay * 2, OPEN_POLL_MAX)


def release(path: Path) -> None:
    """Remove a FIFO no epoch will be written into, letting a reader blocked opening it go with EOF."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:  # ENXIO: nobody is waiting on it; ENOENT: already gone
        pass
    else:
        os.close(fd)
    unlink_quietly(path)


def unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
