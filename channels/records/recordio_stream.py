"""Wrap an object as ONE whole RecordIO record while it streams (Pipe mode's FIFO writer).

What a Pipe FIFO carries with RecordWrapperType RecordIO: each object is one
record with flag 0 (whole), never split where the payload holds the magic
word. The split dmlc-core's writer makes (:func:`channels.records.encode_recordio`)
drops the 4 magic bytes at the cut, and only a reader that puts them back
between parts (dmlc-core's, :class:`channels.records.RecordIOFramer`) reads
such a record whole; AWS's RecordIOReader (PipeModeDataset) concatenates the
parts without the magic word, so the record arrives 4 bytes short per cut. A
whole record reads byte-exact in both.

The header carries the length and comes first. When the object's length is
known (its size in the listing) the header goes out with the first bytes and
the payload streams through as the caller's own buffers, with no copy and
nothing held back. When it is not (a Gzip object, inflated as it streams)
the payload is held until the end, then written after its header: memory is
the object's inflated size, which RecordIO caps below 512 MiB
(``MAX_LENGTH``); the encoder refuses a payload past that before copying it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from channels.errors import RecordError
from channels.records.base import Buffer, as_byte_view
from channels.records.recordio import (
    FLAG_WHOLE,
    MAX_LENGTH,
    recordio_header,
    recordio_padding,
)


def too_large(name: str | None, length: int) -> RecordError:
    """The error for a payload one RecordIO record cannot hold; names the object."""
    what = f"{name} holds" if name else "the payload is"
    return RecordError(
        f"{what} {length} bytes, over RecordIO's limit of {MAX_LENGTH} bytes per record (the 29-bit "
        "length field, 2**29 - 1); a Pipe FIFO needs each object as one whole record, because AWS's "
        "RecordIOReader cannot rejoin a split one: set RecordWrapperType None for this channel, or split "
        "the object into objects below 512 MiB", url=name or "", length=length, limit=MAX_LENGTH)


def wrap_recordio(payload: Buffer) -> bytes:
    """One whole RecordIO record (flag 0) holding ``payload``, split nowhere.

    Raises:
        RecordError: the payload is 2**29 bytes or longer.
    """
    view = as_byte_view(payload)
    if len(view) > MAX_LENGTH:
        raise too_large(None, len(view))
    return b"".join((recordio_header(len(view), FLAG_WHOLE), view, recordio_padding(len(view))))


class RecordIOStreamEncoder:
    """Wraps one payload, fed in chunks, as one whole record, as :func:`wrap_recordio` would.

    Args:
        total_len: the payload's length when known (the object's size): checked
            up front against the RecordIO limit, and at ``finish()`` against
            the bytes fed; the payload then streams through uncopied.
        name: the object (its URL), for error messages.

    Attributes:
        bytes_in: payload bytes fed.
        bytes_out: encoded bytes returned.
        held: payload bytes held back (only while ``total_len`` is unknown).

    The pieces returned are the caller's chunks themselves while ``total_len``
    is known (valid as long as those are), and copies otherwise.
    """

    def __init__(self, total_len: int | None = None, *, name: str | None = None) -> None:
        if total_len is not None and total_len > MAX_LENGTH:
            raise too_large(name, total_len)
        self.total_len = total_len
        self.name = name
        self.bytes_in = 0
        self.bytes_out = 0
        self.held = 0
        # Invariant: with total_len known, the header has gone out iff
        # _header_sent; with it unknown, _chunks holds every byte fed (held).
        self._header_sent = False
        self._chunks: list[bytes] = []
        self._finished = False

    def feed(self, chunk: Buffer) -> list[Buffer]:
        """Take the next payload bytes; returns the encoded pieces ready to write.

        Raises:
            RecordError: the payload grew past the RecordIO limit.
            ValueError: the payload grew past ``total_len``.
            RuntimeError: called after ``finish()``.
        """
        if self._finished:
            raise RuntimeError("feed() after finish() on a RecordIOStreamEncoder")
        view = as_byte_view(chunk)
        if not view:
            return []
        total = self.bytes_in + len(view)
        if total > MAX_LENGTH:  # before any copy: the caller's buffer may be huge
            raise too_large(self.name, total)
        if self.total_len is not None and total > self.total_len:
            raise ValueError(f"{self.name or 'the payload'} exceeds its declared total_len of "
                             f"{self.total_len} bytes ({total} fed): did the object change?")
        self.bytes_in = total
        if self.total_len is None:
            self._chunks.append(bytes(view))
            self.held = total
            return []
        out: list[Buffer] = []
        if not self._header_sent:
            out.append(self._header(self.total_len))
        out.append(view)
        self.bytes_out += len(view)
        return out

    def finish(self) -> list[Buffer]:
        """End of the payload; returns the last pieces (the held payload, the padding).

        Raises:
            ValueError: ``total_len`` was given and differs from the bytes fed.
        """
        if self._finished:
            raise RuntimeError("finish() twice on a RecordIOStreamEncoder")
        self._finished = True
        if self.total_len is not None and self.bytes_in != self.total_len:
            raise ValueError(f"{self.name or 'the payload'} ended after {self.bytes_in} bytes, not its "
                             f"declared total_len of {self.total_len}: did the object change?")
        out: list[Buffer] = []
        if not self._header_sent:
            out.append(self._header(self.bytes_in))
        out += self._chunks
        self.bytes_out += self.held
        self._chunks, self.held = [], 0
        pad = recordio_padding(self.bytes_in)
        if pad:
            out.append(pad)
            self.bytes_out += len(pad)
        return out

    def _header(self, length: int) -> bytes:
        self._header_sent = True
        self.bytes_out += 8
        return recordio_header(length, FLAG_WHOLE)


def iter_encode_recordio(chunks: Iterable[Buffer], total_len: int | None = None, *,
                         name: str | None = None) -> Iterator[Buffer]:
    """The encoded pieces of one whole record whose payload arrives as ``chunks``.

    ``b"".join(iter_encode_recordio(chunks))`` equals
    ``wrap_recordio(b"".join(chunks))``. See :class:`RecordIOStreamEncoder`
    for memory and validity.
    """
    encoder = RecordIOStreamEncoder(total_len, name=name)
    for chunk in chunks:
        yield from encoder.feed(chunk)
    yield from encoder.finish()
