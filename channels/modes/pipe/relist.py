"""A later epoch's listing, made while the epoch's first bytes are already being fetched.

A reader with a cache lists its source again at the start of every later
epoch (:class:`~channels.modes.pipe.reader.PipeReader`, ``relist``), so that
an object overwritten between epochs is read in its new version rather than
served from the cache in its old one. Made before the epoch's first request,
that listing would add its whole round trip (one LIST request per 1,000
objects: 20 to 30 ms on S3 for a small source) to every epoch's time to
first record. :func:`speculate` overlaps the two: it starts the epoch's
reads with the versions known so far and lists the source on another thread
at the same time, and it delivers nothing until that listing has come back
and named the same version of every object planned. Should one differ (an
object overwritten since the last listing), the reads begun are dropped and
the epoch starts again with the new versions, so the consumer sees exactly
what a listing made first would have given it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from channels.listing import Listing, ListingAhead, ObjectRef

_END = object()


def speculate(refs: list[ObjectRef], list_source: Callable[[], Listing],
              newest: Callable[[Listing], list[ObjectRef]], make: Callable[[list[ObjectRef]], Iterator[Any]],
              restart: Callable[[], None]) -> Iterator[Any]:
    """``make(refs)``'s items, once a listing made meanwhile confirms ``refs``' versions.

    The source is listed (``list_source``, on a thread) while ``make(refs)``
    fetches ahead to its first item; that item goes out only once
    ``newest(listing)`` (the planned objects in the listing's versions)
    equals ``refs``. Otherwise the first iterator is closed, ``restart()``
    undoes what it did (a cursor moved), and the items are
    ``make(newest(listing))``'s. An error of the first iterator before its
    first item is raised only if the listing confirms ``refs`` (else it came
    from an old version, and the restart reads the new one). Closing this
    generator closes the iterator it reads.

    Raises:
        What the listing raises (the source cannot be listed), and what the
        iterator raises.
    """
    relisting = ListingAhead(list_source, name="channels-relist")
    it = make(refs)
    try:
        try:
            first, error = next(it, _END), None
        except Exception as exc:  # noqa: BLE001 - raised below if the listing confirms these versions
            first, error = _END, exc
        fresh = newest(relisting.result())
        if fresh != refs:
            it.close()
            restart()
            it = make(fresh)
        else:
            if error is not None:
                raise error
            if first is _END:
                return
            yield first
        yield from it
    finally:
        it.close()
