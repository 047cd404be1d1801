"""FastFile mode: a lazy, read-only view of a channel's objects as files.

* :mod:`~channels.modes.fastfile.view`: :class:`FastFileView`, the tree and its files;
* :mod:`~channels.modes.fastfile.config`: :class:`ReadaheadConfig`, the knobs;
* :mod:`~channels.modes.fastfile.readahead`: adaptive readahead per open file;
* :mod:`~channels.modes.fastfile.ahead`: the first windows of files a reader will open next;
* :mod:`~channels.modes.fastfile.window`: a window of bytes and its parts in flight;
* :mod:`~channels.modes.fastfile.stats`: :class:`ReadStats`, what files and views count;
* :mod:`~channels.modes.fastfile.mount`: the view as a FUSE mount.
"""

from channels.modes.fastfile.config import ReadaheadConfig
from channels.modes.fastfile.readahead import ReadaheadFile
from channels.modes.fastfile.stats import ReadStats
from channels.modes.fastfile.view import FastFileView

__all__ = ["FastFileView", "ReadStats", "ReadaheadConfig", "ReadaheadFile"]
