"""The exceptions every layer raises.

Each one subclasses a built-in so that callers can catch what they already
know (``ValueError``, ``FileNotFoundError``, ``OSError``), carries the object
or field it is about, and survives pickling into DataLoader worker processes:
``__reduce__`` rebuilds it from the same arguments it was made with.
"""

from __future__ import annotations


class ChannelsError(Exception):
    """Base of every error this library raises on purpose.

    The CLI prints these as one line, without a traceback.
    """

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def __reduce__(self):  # keep the class and details across pickling
        return (_rebuild, (type(self), self.message, self.details))

    def __str__(self) -> str:
        return self.message


def _rebuild(cls, message, details):
    err = cls.__new__(cls)
    ChannelsError.__init__(err, message, **details)
    return err


class SpecError(ChannelsError, ValueError):
    """A job definition breaks a documented limit.

    ``problems`` lists every problem found, each as (field path, message).
    """

    def __init__(self, message: str, problems: list[tuple[str, str]] | None = None,
                 **details: object) -> None:
        super().__init__(message, problems=list(problems or []), **details)

    @property
    def problems(self) -> list[tuple[str, str]]:
        return self.details["problems"]  # type: ignore[return-value]


class SourceNotFoundError(ChannelsError, FileNotFoundError):
    """A bucket, prefix, manifest or object that should exist does not."""


class AccessDeniedError(ChannelsError, PermissionError):
    """The store refused the credentials or the request (HTTP 403).

    Never carries credential values or signatures: only the URL, the store's
    error code and its human message.
    """


class EmptyChannelError(ChannelsError, ValueError):
    """A data source that lists no objects."""


class ManifestError(ChannelsError, ValueError):
    """A manifest that cannot be read as its documented format."""


class ShardingError(ChannelsError, ValueError):
    """Host identity or plan parameters that make no sense."""


class TransportError(ChannelsError, OSError):
    """Bytes could not be fetched after the retry budget was spent."""


class ObjectChangedError(ChannelsError, OSError):
    """An object changed (size or ETag) between listing and reading."""


class RecordError(ChannelsError, ValueError):
    """Corrupt or truncated framing; names the object and byte offset."""


class UnsafeKeyError(ChannelsError, ValueError):
    """Object keys that would land outside the destination directory."""


class InsufficientSpaceError(ChannelsError, OSError):
    """The destination has less free space than the download needs."""


class MountError(ChannelsError, OSError):
    """FUSE is unavailable or the mount point is unusable."""


class CacheDirError(ChannelsError, OSError):
    """A cache directory that cannot be made, written or locked; ``details["path"]`` names it."""


class ResumeStateError(ChannelsError, ValueError):
    """A saved reader state that does not fit the channel or the reader it is loaded into.

    Other objects, changed ETags or sizes, another seed, framing or plan: the
    message names what differs (the objects, where it can), and ``details``
    carries ``field`` (which part of the state) and, for objects, ``objects``.
    Never a silent restart of the epoch.
    """
