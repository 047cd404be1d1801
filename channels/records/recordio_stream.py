"""Wrap an object as one RecordIO record while it streams (Pipe mode's writer).

A part's header carries its length and precedes its payload, and a part ends
only where the payload holds the magic word at an aligned offset (or at the
end). So the encoder cannot emit a part's header until it has seen the part's
end: it holds the current part's bytes back and emits the part when the next
aligned magic word, or the end of the object, shows up. Memory: the longest
part, at most the whole object, which RecordIO caps below 512 MiB
(``MAX_LENGTH``); the encoder refuses to grow past that as soon as it is
crossed. An object without an aligned magic word (nearly all of them) comes
out only at ``finish()``.

Each chunk is copied once into a buffer the encoder owns; the pieces it
returns are views of those buffers, never mutated afterwards, so they stay
valid as long as the caller keeps them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from channels.records.base import Buffer, as_byte_view
from channels.records.recordio import (
    FLAG_FIRST,
    FLAG_LAST,
    FLAG_MIDDLE,
    FLAG_WHOLE,
    check_payload_size,
    find_aligned_magic,
    recordio_header,
    recordio_padding,
)


class RecordIOStreamEncoder:
    """Encodes one payload, fed in chunks, exactly as ``encode_recordio`` would.

    Args:
        total_len: the payload's length when known (the object's size): checked
            up front against the RecordIO limit and at ``finish()`` against the
            bytes fed.

    Attributes:
        bytes_in: payload bytes fed.
        bytes_out: encoded bytes returned.
        parts: parts emitted so far.
    """

    def __init__(self, total_len: int | None = None) -> None:
        if total_len is not None:
            check_payload_size(total_len)
        self.total_len = total_len
        self.bytes_in = 0
        self.bytes_out = 0
        self.parts = 0
        # Invariant: the payload bytes after the last emitted part are
        # _held (whole aligned words, _held_len bytes) followed by _rest (the
        # 0 to 3 bytes of a word not yet complete).
        self._held: list[memoryview] = []
        self._held_len = 0
        self._rest = b""
        self._finished = False

    def feed(self, chunk: Buffer) -> list[Buffer]:
        """Take the next payload bytes; returns the encoded pieces ready to write.

        Raises:
            ValueError: the payload grew past the RecordIO limit or past
                ``total_len``.
            RuntimeError: called after ``finish()``.
        """
        if self._finished:
            raise RuntimeError("feed() after finish() on a RecordIOStreamEncoder")
        view = as_byte_view(chunk)
        if not view:
            return []
        self.bytes_in += len(view)
        check_payload_size(self.bytes_in)
        if self.total_len is not None and self.bytes_in > self.total_len:
            raise ValueError(f"the payload exceeds its declared total_len of {self.total_len} "
                             f"bytes ({self.bytes_in} fed): did the object change?")
        rest = self._rest
        data = bytearray(len(rest) + len(view))  # the one copy; data[0] is word-aligned
        data[:len(rest)] = rest
        data[len(rest):] = view
        mem = memoryview(data)
        aligned = len(data) & ~3
        out: list[Buffer] = []
        start = 0
        for cut in find_aligned_magic(mem[:aligned]).tolist():
            out += self._emit_part(mem[start:cut], FLAG_FIRST if self.parts == 0 else FLAG_MIDDLE)
            start = cut + 4  # the magic word itself is dropped
        if aligned > start:
            self._held.append(mem[start:aligned])
            self._held_len += aligned - start
        self._rest = bytes(mem[aligned:])
        return out

    def finish(self) -> list[Buffer]:
        """End of the payload; returns the last pieces (the final part and its padding).

        Raises:
            ValueError: ``total_len`` was given and differs from the bytes fed.
        """
        if self._finished:
            raise RuntimeError("finish() twice on a RecordIOStreamEncoder")
        self._finished = True
        if self.total_len is not None and self.bytes_in != self.total_len:
            raise ValueError(f"the payload ended after {self.bytes_in} bytes, not its declared "
                             f"total_len of {self.total_len}: did the object change?")
        pad = recordio_padding(self._held_len + len(self._rest))
        out = self._emit_part(memoryview(self._rest), FLAG_LAST if self.parts else FLAG_WHOLE)
        if pad:
            out.append(pad)
            self.bytes_out += len(pad)
        return out

    def _emit_part(self, tail: memoryview, flag: int) -> list[Buffer]:
        """The held bytes plus ``tail`` as one part: header first."""
        length = self._held_len + len(tail)
        out: list[Buffer] = [recordio_header(length, flag), *self._held]
        if tail:
            out.append(tail)
        self._held = []
        self._held_len = 0
        self.parts += 1
        self.bytes_out += 8 + length
        return out


def iter_encode_recordio(chunks: Iterable[Buffer], total_len: int | None = None
                         ) -> Iterator[Buffer]:
    """The encoded pieces of one record whose payload arrives as ``chunks``.

    ``b"".join(iter_encode_recordio(chunks))`` equals
    ``encode_recordio(b"".join(chunks))``. See ``RecordIOStreamEncoder`` for
    memory and validity.
    """
    encoder = RecordIOStreamEncoder(total_len)
    for chunk in chunks:
        yield from encoder.feed(chunk)
    yield from encoder.finish()
