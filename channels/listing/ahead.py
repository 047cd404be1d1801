"""A listing made on its own thread, for callers with other work to do while the store answers."""

from __future__ import annotations

import threading
from collections.abc import Callable

from channels.listing.refs import Listing


class ListingAhead:
    """Calls ``make()`` (a listing) on a daemon thread at once; :meth:`result` waits for it.

    What ``make`` raises is raised again by :meth:`result`, in the caller's thread.

    Used where a listing's round trips would otherwise come first:
    ``channels download`` lists while it imports the transport, and a Pipe
    reader's later epoch lists while its first objects are fetched
    (:mod:`channels.modes.pipe.relist`).

    Example:
        >>> ahead = ListingAhead(lambda: list_prefix("s3://bucket/train/"))  # doctest: +SKIP
        >>> ...                                                             # other work
        >>> listing = ahead.result()                                        # doctest: +SKIP
    """

    def __init__(self, make: Callable[[], Listing], name: str = "channels-listing-ahead") -> None:
        self._make = make
        self._listing: Listing | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._listing = self._make()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread by result()
            self._error = exc

    def result(self) -> Listing:
        """The listing, once made; what making it raised, if it failed."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._listing is not None
        return self._listing
