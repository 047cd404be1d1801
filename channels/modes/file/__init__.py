"""File mode: this host's share of a channel downloaded to a local volume.

* :mod:`~channels.modes.file.download`: plan, check and fetch a share;
* :mod:`~channels.modes.file.job`: every File channel of a job under ``ROOT/input/data``;
* :mod:`~channels.modes.file.keys`: keys that may not land outside the destination;
* :mod:`~channels.modes.file.disk`: free space, folders, preallocation;
* :mod:`~channels.modes.file.journal`: the record of completed objects that makes reruns resume.
"""

from channels.modes.file.download import DownloadResult, Share, download, fetch, prepare
from channels.modes.file.job import download_job
from channels.modes.file.writer import DestinationError

__all__ = ["DestinationError", "DownloadResult", "Share", "download", "download_job", "fetch", "prepare"]
