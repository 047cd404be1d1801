"""Pipe mode as SageMaker serves it: one FIFO per channel per epoch.

For every Pipe channel of a job, :class:`FifoServer` serves
``<root>/input/data/<channel>_<epoch>`` (``train_0``, ``train_1``, ...):

1. it creates ``<channel>_<e>`` with ``os.mkfifo`` (mode 0o600 by default:
   never group- or world-writable; the umask may narrow it further);
2. it opens the FIFO for writing, which succeeds once a reader has opened it
   (the open is non-blocking and retried on ENXIO, so a stop is never stuck
   behind a reader that does not come);
3. as soon as the reader has opened ``<channel>_<e>``, it creates
   ``<channel>_<e+1>`` (when there is a next epoch), so the next FIFO
   exists before this one ends: a reader that looks for it right after EOF
   finds it, and PipeModeDataset, which sleeps a second whenever the next
   FIFO is missing, never sleeps;
4. it writes the epoch's bytes: with RecordWrapperType None the objects'
   bytes back to back, with RecordIO each object as ONE whole RecordIO
   record, never split (streamed through
   :class:`channels.records.RecordIOStreamEncoder`; AWS's RecordIOReader
   could not rejoin a split one); Gzip objects are inflated first, as
   SageMaker does for CompressionType Gzip;
5. once the reader has taken the last byte out of the pipe, it closes the
   FIFO (the reader sees EOF) and removes it. A reader that closes early
   ends the epoch: the writer's next write fails with EPIPE, and the epoch
   ends there, quietly.

Decisions (SageMaker does not document them):

* A finished epoch's FIFO is removed as soon as it ends, so at most two
  FIFOs per channel exist at a time (the epoch being read and the next),
  and re-opening a finished epoch fails with FileNotFoundError instead of
  blocking forever on a FIFO with no writer.
* With RecordIO, an object of 512 MiB or more cannot be one record (the
  length field has 29 bits): a channel that lists one fails before its
  first FIFO is made, naming the object (a Gzip object, whose inflated size
  only shows while it streams, fails when it gets there).
* ``epochs=None`` serves epochs until stopped, as SageMaker does.
* On stop (``stop()``, SIGTERM or Ctrl-C in the CLI) each channel ends its
  current write, closes its FIFO, and removes it; a reader blocked opening
  the current FIFO, or the next one made ahead, is let go with EOF rather
  than left blocked forever.
* An error in one channel (a missing object, a corrupt Gzip stream) stops the
  whole server, and :meth:`FifoServer.serve` raises it: a job whose data is
  broken should fail, not train on part of it.

Channels are independent: a thread per channel, each with its own transport
stream (and memory budget). While waiting for a reader to open the next
FIFO, a channel already fetches that epoch's first bytes.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from channels.folders import make_dirs
from channels.modes.pipe.fifo_io import (
    DEFAULT_MODE,
    Stopped,
    fifo_path,
    make_fifo,
    open_writer,
    release,
    unlink_quietly,
    wait_drained,
    write_all,
)
from channels.modes.pipe.reader import PipeReader
from channels.modes.pipe.source import Piece
from channels.records import MAX_LENGTH, RecordIOStreamEncoder
from channels.records.recordio_stream import too_large

log = logging.getLogger(__name__)

__all__ = ["ChannelWriter", "FifoServer", "epoch_bytes", "fifo_path", "make_fifo"]


def epoch_bytes(pieces: Iterable[Piece], record_wrapper: str, *, inflated: bool = False
                ) -> Iterator[memoryview]:
    """What one epoch's FIFO carries, as buffers to write in order.

    With ``"RecordIO"`` each object becomes one whole RecordIO record: its
    header, then its bytes as they stream, uncopied. ``inflated`` says the
    pieces are inflated Gzip objects, whose length the listing does not
    tell: each is then held until its end (below 512 MiB, RecordIO's limit
    for a record) to put its length in the header.

    Raises:
        RecordError: an object of 512 MiB or more (named in the message).
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
                encoder = RecordIOStreamEncoder(piece.ref.size if known else None, name=piece.ref.url)
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
        # Invariant: ``current`` is the FIFO of the epoch being served (None
        # between epochs) and ``ahead`` the next epoch's, made once a reader
        # opened ``current``; each is removed here, and only here.
        self.current: Path | None = None
        self.ahead: Path | None = None

    def run(self) -> None:
        try:
            self._check_sizes()
            epoch = 0
            while self._serves(epoch) and not self.stop_event.is_set():
                self._serve_epoch(epoch)
                epoch += 1
        except Stopped:
            pass
        except BaseException as exc:  # reported by FifoServer.serve
            self.error = exc
            log.debug("channel %s failed", self.channel, exc_info=True)
            self.stop_event.set()
        finally:
            if self.ahead is not None:  # stopped: a reader may be waiting on it
                release(self.ahead)
                self.ahead = None

    def _serves(self, epoch: int) -> bool:
        return self.epochs is None or epoch < self.epochs

    def _check_sizes(self) -> None:
        """Fail before any FIFO exists if an object cannot be one RecordIO record."""
        source = self.reader.source
        if source.record_wrapper != "RecordIO" or source.compression == "Gzip":
            return
        big = [r for r in self.reader.listing.refs if r.inline is None and r.size > MAX_LENGTH]
        if big:
            err = too_large(big[0].url, big[0].size)
            more = f" ({len(big) - 1} more object(s) of the channel are too)" if len(big) > 1 else ""
            raise type(err)(f"channel {self.channel}: {err}{more}", **err.details)

    def _serve_epoch(self, epoch: int) -> None:
        path = fifo_path(self.data_dir, self.channel, epoch)
        source = self.reader.source
        out = epoch_bytes(self.reader.pieces(epoch), source.record_wrapper,
                          inflated=source.compression == "Gzip")
        try:
            first = next(out, None)  # start fetching while the reader is not there yet
            if self.ahead == path:  # made while the previous epoch was read
                self.current, self.ahead = path, None
            else:
                make_fifo(path, self.mode)
                self.current = path
            fd = open_writer(path, self.stop_event)
            try:
                if self._serves(epoch + 1):  # the next FIFO exists before this one ends
                    ahead = fifo_path(self.data_dir, self.channel, epoch + 1)
                    make_fifo(ahead, self.mode)
                    self.ahead = ahead
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
                unlink_quietly(made)

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
            for left in (writer.current, writer.ahead):  # pragma: no cover - a writer stuck outside its loop
                if left is not None:
                    release(left)
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
