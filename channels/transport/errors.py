"""Transport-specific exceptions (the public ones live in :mod:`channels.errors`)."""

from __future__ import annotations

from channels.errors import AccessDeniedError

__all__ = ["AccessDeniedError", "Cancelled", "PartialRead", "TransientHTTPError", "Truncated"]


class PartialRead(Exception):
    """A transient failure after ``nread`` bytes were written to the buffer.

    Backends raise it for anything worth retrying (connection reset, timeout,
    HTTP 5xx/SlowDown); the engine resumes at ``start + nread`` into
    ``buf[nread:]``. Permanent failures are raised as ChannelsError instead.

    Attributes:
        nread: bytes already written at the start of the buffer.
        cause: the underlying exception.
    """

    def __init__(self, nread: int, cause: BaseException) -> None:
        super().__init__(f"read failed after {nread} bytes: {cause!r}")
        self.nread = nread
        self.cause = cause

    def __reduce__(self):
        return (PartialRead, (self.nread, self.cause))


class TransientHTTPError(Exception):
    """A retryable HTTP status (429, 5xx) as the cause of a PartialRead."""

    def __init__(self, status: int, code: str = "") -> None:
        super().__init__(f"HTTP {status}" + (f" {code}" if code else ""))
        self.status = status
        self.code = code

    def __reduce__(self):
        return (TransientHTTPError, (self.status, self.code))


class Cancelled(Exception):
    """The stream that asked for the read was closed; nothing to report."""


class Truncated(Cancelled):
    """The caller shortened a read in flight: the rest of its range comes from another GET.

    Raised by the caller's ``progress`` callback once the read has landed the
    bytes it is still wanted for; the backend drops the connection (its
    response has bytes left unread), and nothing is retried or counted as an
    error.

    Attributes:
        nread: bytes landed from the start of the read's range (at least
            the shortened length, and at most one socket read more).
    """

    def __init__(self, nread: int) -> None:
        super().__init__(f"read cut after {nread} bytes")
        self.nread = nread

    def __reduce__(self):
        return (Truncated, (self.nread,))
