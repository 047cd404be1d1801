"""Pipe mode: a channel's records streamed in process, or into FIFOs per epoch.

* :mod:`~channels.modes.pipe.reader`: :class:`PipeReader`, the in-process iterator;
* :mod:`~channels.modes.pipe.source`: objects to pieces (Gzip inflated, RecordIO wrapped);
* :mod:`~channels.modes.pipe.framing`: pieces to records, keeping a resumable position;
* :mod:`~channels.modes.pipe.resume`: that position, and the fingerprint a saved state checks;
* :mod:`~channels.modes.pipe.fifo`: the FIFO protocol, ``<channel>_<epoch>``.
"""

from channels.modes.pipe.fifo import ChannelWriter, FifoServer, fifo_path
from channels.modes.pipe.reader import FRAMINGS, PipeReader
from channels.modes.pipe.source import PipeSource

__all__ = ["FRAMINGS", "ChannelWriter", "FifoServer", "PipeReader", "PipeSource", "fifo_path"]
