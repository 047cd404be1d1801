"""Pipe mode as SageMaker serves it: one FIFO per channel per epoch.

For every Pipe channel of a job, :class:`FifoServer` serves
``<root>/input/data/<channel>_<epoch>`` (``train_0``, ``train_1``, ...):

1. it creates ``<channel>_<e>`` with ``os.mkfifo`` (mode 0o600 by default:
   never group- or world-writable; the umask may narrow it further);
2. it opens the FIFO for writing, which succeeds once a reader has opened it
   (the open is non-blocking and retried on ENXIO, so a stop is never stuck
   behind a reader that does not come);
3. it writes the epoch's bytes: with RecordWrapperType None the objects'
   bytes back to back, with RecordIO one RecordIO record per object
   (streamed through :class:`channels.records.RecordIOStreamEncoder`); Gzip
   objects are inflated first, as SageMaker does for CompressionType Gzip;
4. once the reader has taken the last byte out of the pipe, it closes the
   FIFO (the reader sees EOF) and removes it, then creates
   ``<channel>_<e+1>``. A reader that closes early ends the epoch: the
   writer's next write fails with EPIPE, and the epoch ends there, quietly.

Decisions (SageMaker does not document them):

* A finished epoch's FIFO is removed as soon as it ends, so at most one FIFO
  per channel exists at a time, and re-opening a finished epoch fails with
  FileNotFoundError instead of blocking forever on a FIFO with no writer.
* ``epochs=None`` serves epochs until stopped, as SageMaker does.
* On stop (``stop()``, SIGTERM or Ctrl-C in the CLI) each channel ends its
  current write, closes its FIFO, and removes it; a reader blocked opening
  the current FIFO is let go with EOF rather than left blocked forever.
* An error in one channel (a missing object, a corrupt Gzip stream) stops the
  whole server, and :meth:`FifoServer.serve` raises it: a job whose data is
  broken should fail, not train on part of it.

Channels are independent: a thread per channel, each with its own transport
stream (and memory budget). While waiting for a reader to open the next
FIFO, a channel already fetches that epoch's first bytes.
"""

from __future__ import annotations

import array
import errno
import fcntl
import logging
import os
import select
import stat
import termios
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from channels.modes.pipe.reader import PipeReader
from channels.modes.pipe.source import Piece
from channels.records import RecordIOStreamEncoder

log = logging.getLogger(__name__)

DEFAULT_MODE = 0o600
#: Pipe buffer asked for (F_SETPIPE_SZ); unprivileged processes get up to
#: /proc/sys/fs/pipe-max-size (1 MiB by default). Fewer, larger writes.
PIPE_SIZE = 1 << 20
#: Longest sleep between tries to open a FIFO no reader has opened yet.
OPEN_POLL_MAX = 0.05
#: How often a writer blocked on a full pipe checks for a stop.
WRITE_POLL_MS = 100


class _Stopped(Exception):
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


def make_dirs(path: Path, mode: int = 0o755) -> None:
    """Create ``path`` and its missing parents, none of them group- or world-writable.

    ``mkdir -p`` leaves the umask to decide, and with umask 000 anyone could
    then swap a FIFO for their own; every folder made here gets ``mode``
    (narrowed further by the umask).
    """
    missing = []
    while not path.exists():
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, mode & ~0o022)
        except FileExistsError:
            pass


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
                raise _Stopped()
            try:
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
            except OSError:  # pragma: no cover - a lower pipe-max-size
                pass
            return fd
        if stop.wait(delay):
            raise _Stopped()
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
                    raise _Stopped() from None
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
            raise _Stopped()
        delay = min(delay * 2, OPEN_POLL_MAX)


def epoch_bytes(pieces: Iterable[Piece], record_wrapper: str, *, inflated: bool = False
                ) -> Iterator[memoryview]:
    """What one epoch's FIFO carries, as buffers to write in order.

    With ``"RecordIO"`` each object becomes one RecordIO record, streamed:
    the encoder holds an object's bytes only until the part they belong to
    ends (for most objects, the object's end; RecordIO caps a part below
    512 MiB). ``inflated`` says the pieces are inflated Gzip objects, whose
    length the listing does not tell.
    """
    pieces = iter(pieces)
    try:
        if record_wrapper != "RecordIO":
            for piece in pieces:
                if piece.data:
                    yield piece.data
            return
        encoder = None
        for piece in pieces:
            if encoder is None:
                known = piece.ref.inline is not None or not inflated
                encoder = RecordIOStreamEncoder(piece.ref.size if known else None)
            for out in encoder.feed(piece.data):
                yield memoryview(out)
            if piece.last:
                for out in encoder.finish():
                    yield memoryview(out)
                encoder = None
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:  # cancel the reads in flight now, not when collected
            close()


class ChannelWriter(threading.Thread):
    """Serves one channel's FIFOs, epoch after epoch, on its own thread.

    Args:
        reader: the channel's Pipe reader (raw framing; its pieces are written).
        name: the channel's name (the FIFO's name prefix).
        data_dir: where the FIFOs are made.
        epochs: how many epochs to serve; None: until stopped.
        stop: set to stop every channel.
        mode: the FIFOs' permission bits.

    Attributes:
        epochs_done: epochs served to their end or to an early close.
        early_closes: epochs the reader closed before the end.
        bytes_written: bytes written into FIFOs.
        error: the exception that ended the channel, if any.
    """

    def __init__(self, reader: PipeReader, name: str, data_dir: Path, *, epochs: int | None,
                 stop: threading.Event, mode: int = DEFAULT_MODE) -> None:
        super().__init__(name=f"channels-fifo-{name}", daemon=True)
        self.reader = reader
        self.channel = name
        self.data_dir = data_dir
        self.epochs = epochs
        self.stop_event = stop
        self.mode = mode
        self.epochs_done = 0
        self.early_closes = 0
        self.bytes_written = 0
        self.error: BaseException | None = None
        self.current: Path | None = None  # the FIFO that exists now, if any

    def run(self) -> None:
        try:
            epoch = 0
            while (self.epochs is None or epoch < self.epochs) and not self.stop_event.is_set():
                self._serve_epoch(epoch)
                epoch += 1
        except _Stopped:
            pass
        except BaseException as exc:  # reported by FifoServer.serve
            self.error = exc
            log.debug("channel %s failed", self.channel, exc_info=True)
            self.stop_event.set()

    def _serve_epoch(self, epoch: int) -> None:
        path = fifo_path(self.data_dir, self.channel, epoch)
        source = self.reader.source
        out = epoch_bytes(self.reader.pieces(epoch), source.record_wrapper,
                          inflated=source.compression == "Gzip")
        try:
            first = next(out, None)  # start fetching while the reader is not there yet
            make_fifo(path, self.mode)
            self.current = path
            fd = open_writer(path, self.stop_event)
            try:
                poller = select.poll()
                poller.register(fd, select.POLLOUT)
                try:
                    if first is not None:
                        self._write(fd, first, poller)
                    for buf in out:
                        self._write(fd, buf, poller)
                    wait_drained(fd, self.stop_event, poller)  # EOF when the reader is at the end
                except BrokenPipeError:
                    self.early_closes += 1
                    log.debug("%s: the reader closed epoch %d early", self.channel, epoch)
            finally:
                os.close(fd)
            self.epochs_done += 1
        finally:
            out.close()
            made, self.current = self.current, None
            if made is not None:  # unlinking one never made could hide why (EROFS)
                _unlink(made)

    def _write(self, fd: int, buf: memoryview, poller: select.poll) -> None:
        write_all(fd, buf, self.stop_event, poller)
        self.bytes_written += len(buf)


class FifoServer:
    """Serves every Pipe channel of a job as per-epoch FIFOs under ``root/input/data``.

    Args:
        readers: channel name -> its :class:`PipeReader`.
        root: the container root (``/opt/ml``); FIFOs go in ``root/input/data``.
        epochs: epochs per channel; None serves until stopped.
        mode: FIFO permission bits (0o600 or 0o640).

    Example:
        >>> server = FifoServer.from_job(job, "/opt/ml", epochs=2)   # doctest: +SKIP
        >>> server.serve()            # returns when both epochs were read
    """

    def __init__(self, readers: dict[str, PipeReader], root: str | os.PathLike, *,
                 epochs: int | None = None, mode: int = DEFAULT_MODE) -> None:
        if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0):
            raise ValueError(f"epochs must be an int >= 0 or None (until stopped), got {epochs!r}")
        if not readers:
            raise ValueError("no channels to serve: the job has no Pipe channel")
        if mode & 0o022:
            raise ValueError(f"FIFO mode {mode:#o} is group- or world-writable; use 0o600 or 0o640")
        self.readers = readers
        self.data_dir = Path(root) / "input" / "data"
        self.epochs = epochs
        self.mode = mode
        self._stop = threading.Event()
        self.writers: list[ChannelWriter] = []

    @classmethod
    def from_job(cls, job, root: str | os.PathLike, *, epochs: int | None = None, hosts: int = 1,
                 host_index: int = 0, mode: int = DEFAULT_MODE, only: Iterable[str] | None = None,
                 **reader_kwargs) -> FifoServer:
        """A server for every channel of ``job`` whose input mode is Pipe.

        Args:
            only: serve just these channels (default: every Pipe channel).
            reader_kwargs: for each :class:`PipeReader` (store, config).
        """
        wanted = None if only is None else set(only)
        readers = {ch.name: PipeReader.from_channel(ch, hosts=hosts, host_index=host_index, framing="raw",
                                                    **reader_kwargs)
                   for ch in job.channels
                   if job.mode_of(ch) == "Pipe" and (wanted is None or ch.name in wanted)}
        return cls(readers, root, epochs=epochs, mode=mode)

    def start(self) -> None:
        """Create the data directory and start a writer thread per channel."""
        make_dirs(self.data_dir)
        for name, reader in self.readers.items():
            writer = ChannelWriter(reader, name, self.data_dir, epochs=self.epochs, stop=self._stop,
                                   mode=self.mode)
            self.writers.append(writer)
            writer.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for every channel to finish; True when all have."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for writer in self.writers:
            writer.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if writer.is_alive():
                return False
        return True

    def stop(self) -> None:
        """Ask every channel to stop; safe from a signal handler (it only sets a flag)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def close(self) -> None:
        """Stop, wait for the writers, remove every FIFO, close the readers."""
        self._stop.set()
        self.wait()
        for writer in self.writers:
            if writer.current is not None:  # pragma: no cover - a writer stuck outside its loop
                _unlink(writer.current)
        for reader in self.readers.values():
            reader.close()

    def serve(self, poll: float = 0.2) -> None:
        """Start, wait until every channel is done or a stop, then clean up.

        Waits in short steps so that signal handlers run in the main thread.

        Raises:
            The first channel error, after every FIFO was removed.
        """
        self.start()
        try:
            while not self.wait(poll):
                pass
        finally:
            self.close()
        for writer in self.writers:
            if writer.error is not None:
                raise writer.error

    def __enter__(self) -> FifoServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
