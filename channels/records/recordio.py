"""RecordIO framing (dmlc-core's format, SageMaker's RecordWrapperType): reader, writer.

On the wire, each part is::

    uint32 LE  magic 0xced7230a
    uint32 LE  flag << 29 | length   (length: low 29 bits)
    bytes      payload (length bytes), then zeros to a multiple of 4

Flag 0 is a whole record; 1, 2 ..., 3 are the first, middle and last parts of
a record that was split. As dmlc-core does, the writer never lets the magic
word appear inside a payload at a 4-byte-aligned offset: it splits the record
there and drops those 4 bytes; the reader puts the magic back between parts.
A reader that lost its place can then resynchronise on the magic word
(dmlc's RecordIOSplitter does exactly that at chunk boundaries). Pipe
mode's FIFO wrapper writes whole records instead, never split
(:mod:`channels.records.recordio_stream`): AWS's RecordIOReader joins parts
without putting the magic word back. This reader reads both byte-exact.

Size limit (the writer's choice, documented): a payload must be shorter than
2**29 bytes (512 MiB), the limit of the 29-bit length field and the check
dmlc-core's own writer makes. Splitting a longer payload by length is not
possible: the reader always inserts the magic word between parts, so parts
can only end where the payload holds an aligned magic word. The reader
accepts joined records of any length.
"""

from __future__ import annotations

import struct
from collections.abc import Generator
from typing import BinaryIO

import numpy as np

from channels.errors import RecordError
from channels.records.base import MEMORY_URL, Buffer, Framer, as_byte_view, register_framer

MAGIC = 0xCED7230A
MAGIC_BYTES = struct.pack("<I", MAGIC)
#: The largest payload the writer frames (and the largest part length).
MAX_LENGTH = (1 << 29) - 1
FLAG_WHOLE, FLAG_FIRST, FLAG_MIDDLE, FLAG_LAST = 0, 1, 2, 3
HEADER_SIZE = 8
_HEADER = struct.Struct("<II")
_ZEROS = bytes(4)


def recordio_header(length: int, flag: int = FLAG_WHOLE) -> bytes:
    """The 8-byte header of a part of ``length`` payload bytes.

    Raises:
        ValueError: length outside [0, 2**29) or flag outside 0..3.
    """
    if not 0 <= length <= MAX_LENGTH:
        raise ValueError(f"RecordIO part length {length} is outside [0, {MAX_LENGTH}]: the "
                         "length field has 29 bits")
    if flag not in (0, 1, 2, 3):
        raise ValueError(f"RecordIO flag {flag} is not one of 0 (whole), 1 (first), "
                         "2 (middle), 3 (last)")
    return _HEADER.pack(MAGIC, flag << 29 | length)


def recordio_padding(length: int) -> bytes:
    """The zeros that follow a payload of ``length`` bytes (0 to 3 of them)."""
    return _ZEROS[:-length % 4]


def padded(length: int) -> int:
    """``length`` rounded up to a multiple of 4."""
    return (length + 3) & ~3


def find_aligned_magic(data: Buffer) -> np.ndarray:
    """Offsets in ``data`` (multiples of 4) where the magic word lies aligned.

    Vectorised (numpy), for writers and for a reader resynchronising.
    """
    view = as_byte_view(data)
    words = np.frombuffer(view, dtype="<u4", count=len(view) // 4)
    return np.flatnonzero(words == MAGIC) * 4


def check_payload_size(length: int) -> None:
    """Raise ValueError for a payload RecordIO cannot frame."""
    if length > MAX_LENGTH:
        raise ValueError(
            f"a RecordIO payload of {length} bytes is over the limit of {MAX_LENGTH} bytes "
            "(2**29 - 1, the 29-bit length field; dmlc-core refuses these too); use no record "
            "wrapper for objects this large, or split them into smaller objects")


def encode_parts(view: memoryview) -> list[Buffer]:
    """The pieces of the encoded record for payload ``view``, without copying it."""
    check_payload_size(len(view))
    cuts = find_aligned_magic(view).tolist()
    pieces: list[Buffer] = []
    start = 0
    for cut in cuts:
        pieces.append(recordio_header(cut - start, FLAG_FIRST if start == 0 else FLAG_MIDDLE))
        pieces.append(view[start:cut])  # aligned at both ends: no padding
        start = cut + 4
    length = len(view) - start
    pieces.append(recordio_header(length, FLAG_LAST if cuts else FLAG_WHOLE))
    pieces.append(view[start:])
    pieces.append(recordio_padding(length))
    return pieces


def encode_recordio(payload: Buffer) -> bytes:
    """One record, split at aligned magic words as dmlc-core's writer does.

    Raises:
        ValueError: the payload is 2**29 bytes or longer.
    """
    return b"".join(encode_parts(as_byte_view(payload)))


class RecordIOWriter:
    """Writes RecordIO records to a binary file object.

    Attributes:
        records: records written.
        splits: extra parts written because a payload held the magic word.
    """

    def __init__(self, fileobj: BinaryIO) -> None:
        self._file = fileobj
        self.records = 0
        self.splits = 0

    def write(self, payload: Buffer) -> int:
        """Write one record; returns the bytes written."""
        pieces = encode_parts(as_byte_view(payload))
        written = 0
        for piece in pieces:
            written += self._file.write(piece) or 0
        self.records += 1
        self.splits += (len(pieces) - 3) // 2
        return written


@register_framer
class RecordIOFramer(Framer):
    """Frames RecordIO, joining multipart records with the magic word between parts.

    A whole record lying inside one chunk is a zero-copy view; a multipart
    record is always assembled (one copy per part).
    """

    name = "recordio"
    header_size = HEADER_SIZE

    def __init__(self, url: str = MEMORY_URL, *, check_crc: bool = True) -> None:
        super().__init__(url, check_crc=check_crc)  # RecordIO has no checksum
        # Invariant: _parts is None outside a multipart record; inside one it
        # holds the parts so far, each followed by the magic word, and
        # _parts_at is the offset of the first part's header.
        self._parts: bytearray | None = None
        self._parts_at = 0

    @property
    def boundary(self) -> tuple[int, int]:
        """As :attr:`Framer.boundary`; inside a multipart record, the offset of its first part."""
        offset, records = super().boundary
        return (self._parts_at if self._parts is not None else offset), records

    def _bad_magic(self, magic: int, offset: int) -> RecordError:
        return RecordError(
            f"bad RecordIO magic in {self.url} at offset {offset}: found {magic:#010x}, "
            f"expected {MAGIC:#010x}; the object is corrupt, was cut mid-record, or is not "
            "RecordIO", url=self.url, offset=offset)

    def _record_size(self, head: Buffer, offset: int) -> int:
        magic, word = _HEADER.unpack_from(head, 0)
        if magic != MAGIC:
            raise self._bad_magic(magic, offset)
        return HEADER_SIZE + padded(word & MAX_LENGTH)

    def _scan(self, buf: memoryview, pos: int, base: int) -> Generator[memoryview, None, int]:
        n = len(buf)
        unpack = _HEADER.unpack_from
        count = 0
        try:
            while pos + HEADER_SIZE <= n:
                magic, word = unpack(buf, pos)
                if magic != MAGIC:
                    raise self._bad_magic(magic, base + pos)
                start = pos + HEADER_SIZE
                length = word & MAX_LENGTH
                end = start + length
                after = start + ((length + 3) & ~3)
                if after > n:
                    break
                if word >> 29 == 0 and self._parts is None:
                    count += 1
                    yield buf[start:end]
                else:
                    joined = self._join(word >> 29, buf[start:end], base + pos)
                    if joined is not None:
                        count += 1
                        yield joined
                pos = after
        finally:
            self.records_out += count
        return pos

    def _join(self, flag: int, part: memoryview, offset: int) -> memoryview | None:
        """Add one part of a multipart record; the record once its last part is in."""
        parts = self._parts
        if flag == FLAG_FIRST and parts is None:
            self._parts = bytearray(part) + MAGIC_BYTES
            self._parts_at = offset
            return None
        if parts is not None and flag in (FLAG_MIDDLE, FLAG_LAST):
            parts += part
            if flag == FLAG_MIDDLE:
                parts += MAGIC_BYTES
                return None
            self._parts = None
            return memoryview(parts)
        if parts is not None:
            why = (f"the multipart record begun at offset {self._parts_at} has not ended "
                   f"(flag {flag} where 2 or 3 must come)")
        elif flag in (FLAG_MIDDLE, FLAG_LAST):
            why = f"flag {flag} (a middle or last part) comes without a first part"
        else:
            why = f"flag {flag} is not one of 0 to 3"
        raise RecordError(f"bad RecordIO part sequence in {self.url} at offset {offset}: {why}",
                          url=self.url, offset=offset, flag=flag)

    def _finish(self, tail: memoryview, offset: int) -> list[memoryview]:
        if self._parts is not None:
            raise self._truncated(self._parts_at)
        return super()._finish(tail, offset)
