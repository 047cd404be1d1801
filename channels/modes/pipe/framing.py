"""Pieces of objects in, records out, keeping a :class:`~channels.modes.pipe.resume.Cursor` up to date.

One engine for every framing and every reader of a list of objects (the
Pipe reader, the framework adapters' consumers): :func:`frame_items` takes
the objects with where each begins (:class:`~channels.modes.pipe.resume.Start`),
asks ``pieces_of`` for their bytes from the right offsets, and yields records.

Framings (see :mod:`channels.modes.pipe.reader`): ``raw`` (chunks; the
position is the bytes delivered), ``object`` (one record per object),
``parquet`` (record batches) and the streaming framers of
:mod:`channels.records` (``recordio``, ``tfrecord``, ``lines``).

Resuming: an uncompressed framed object is fetched from the record boundary
its start names, and the records between that boundary and the first one
not yet delivered (at most a chunk's worth) are framed again and skipped
(``counts["skipped"]``). Gzip objects and Parquet files cannot be entered
mid-way: they are read from their start, skipping the records delivered.
An object whose one record was delivered (framing ``object``) is not fetched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from channels.listing import ObjectRef
from channels.modes.pipe.resume import Cursor, Start
from channels.modes.pipe.source import Piece
from channels.records import framer

RAW = "raw"
OBJECT = "object"
PARQUET = "parquet"

#: One object to read and where its read begins.
Item = tuple[ObjectRef, Start]
#: ``pieces_of([(ref, offset), ...])``: every byte of those objects from those offsets, as pieces in order.
PiecesOf = Callable[[list[tuple[ObjectRef, int]]], Iterator[Piece]]


def seekable(framing: str, gzip: bool, ref: ObjectRef) -> bool:
    """Whether a read of ``ref`` may start past the object's first byte."""
    return not gzip and framing != PARQUET and ref.inline is None


def frame_items(items: Sequence[Item], cursor: Cursor, pieces_of: PiecesOf, framing: str, *,
                gzip: bool = False, check_crc: bool = True, counts: dict[str, int] | None = None) -> Iterator[Any]:
    """The records of ``items`` from where ``cursor`` stands, keeping it up to date.

    ``items[cursor.item]`` begins at ``cursor.start()`` (a resumed position),
    every later item at its own start. Records are memoryviews valid until
    the next one (Parquet: ``pyarrow.RecordBatch`` es). Closing the generator
    closes the pieces' stream.

    Args:
        items: the objects, in reading order, with their starts.
        cursor: where to begin; updated as records go out.
        pieces_of: fetches the objects' bytes (a transport stream, files).
        framing: ``raw``, ``object``, ``parquet`` or a framer name.
        gzip: the fetched bytes are inflated (no object is entered mid-way).
        check_crc: check checksums where the framing has them.
        counts: ``records`` (yielded) and ``skipped`` (framed again on a
            resume and not yielded) are added to it.
    """
    counts = counts if counts is not None else {}
    counts.setdefault("records", 0)
    counts.setdefault("skipped", 0)
    first = cursor.item
    starts = [cursor.start() if i == first else items[i][1] for i in range(first, len(items))]
    todo = [(first + k, s) for k, s in enumerate(starts) if not (framing == OBJECT and s.record >= 1)]
    targets = [(items[i][0], s.offset if seekable(framing, gzip, items[i][0]) else 0) for i, s in todo]
    pieces = pieces_of(targets)
    try:
        for (i, start), (ref, offset) in zip(todo, targets):
            cursor.at(i, start)
            if framing == RAW:
                yield from _raw(pieces, cursor, counts, skip=start.offset - offset)
            elif framing == OBJECT:
                yield from _object(pieces, cursor, counts)
            elif framing == PARQUET:
                yield from _parquet(pieces, ref, cursor, counts, skip=start.record)
            else:
                yield from _framed(pieces, ref, cursor, counts, framing, check_crc, offset, start, gzip)
        cursor.at(len(items), Start())
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            close()


def _raw(pieces: Iterator[Piece], cursor: Cursor, counts: dict[str, int], skip: int) -> Iterator[memoryview]:
    """Chunks as they come; the position is the object's bytes delivered (``offset``)."""
    while True:
        piece = next(pieces)
        data = piece.data
        if skip > 0:  # a read that could not start at the offset (Gzip): drop what was out
            cut = min(skip, len(data))
            data, skip = data[cut:], skip - cut
        if data:
            cursor.record += 1
            cursor.before = cursor.record
            cursor.offset += len(data)
            counts["records"] += 1
            yield data
        if piece.last:
            return


def _object(pieces: Iterator[Piece], cursor: Cursor, counts: dict[str, int]) -> Iterator[memoryview]:
    """The object whole; one that arrives in one piece is not copied."""
    joined: bytearray | None = None
    while True:
        piece = next(pieces)
        if joined is None and piece.last:
            record = piece.data
        else:
            joined = joined if joined is not None else bytearray()
            joined += piece.data
            if not piece.last:
                continue
            record = memoryview(joined)
        cursor.record = 1
        counts["records"] += 1
        yield record
        return


def _skip(records: Iterator[Any], skip: int, counts: dict[str, int]) -> int:
    """Drop up to ``skip`` of ``records`` (framed again after a resume); how many are still to drop."""
    if skip:
        for _ in records:
            counts["skipped"] += 1
            skip -= 1
            if not skip:
                break
    return skip


def _parquet(pieces: Iterator[Piece], ref: ObjectRef, cursor: Cursor, counts: dict[str, int],
             skip: int) -> Iterator[Any]:
    import pyarrow as pa

    from channels.records import iter_parquet_batches

    buf = bytearray()
    while True:
        piece = next(pieces)
        buf += piece.data
        if piece.last:
            break
    batches = iter_parquet_batches(pa.BufferReader(pa.py_buffer(buf)), url=ref.url)  # no copy
    _skip(batches, skip, counts)
    for batch in batches:
        cursor.record += 1
        counts["records"] += 1
        yield batch


def _framed(pieces: Iterator[Piece], ref: ObjectRef, cursor: Cursor, counts: dict[str, int], name: str,
            check_crc: bool, offset: int, start: Start, gzip: bool) -> Iterator[memoryview]:
    f = framer(name, ref.url, check_crc=check_crc)
    if offset:
        f.start_at(offset, start.before)
    skip = start.record - (start.before if offset else 0)
    track = not gzip and ref.inline is None  # offsets in inflated bytes cannot be fetched from

    def runs() -> Iterator[Iterator[memoryview]]:
        """The records of each chunk (one iterator per chunk), then those of the object's end."""
        while True:
            piece = next(pieces)
            if track:
                cursor.offset, cursor.before = f.boundary
            yield f.feed(piece.data)
            if piece.last:
                yield f.finish()
                return

    for records in runs():
        skip = _skip(records, skip, counts)
        for record in records:  # the hot loop
            cursor.record += 1
            counts["records"] += 1
            yield record
