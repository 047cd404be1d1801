"""TFRecord framing: reader and writer.

On the wire, each record is::

    uint64 LE  length
    uint32 LE  masked crc32c of the 8 length bytes
    bytes      data (length bytes)
    uint32 LE  masked crc32c of the data

with ``masked(c) = ((c >> 15) | (c << 17)) + 0xa282ead8 (mod 2**32)``.
"""

from __future__ import annotations

import struct
from collections.abc import Generator

import crc32c as _crc32c

from channels.errors import RecordError
from channels.records.base import MEMORY_URL, Buffer, Framer, register_framer

_MASK_DELTA = 0xA282EAD8
_U32 = 0xFFFFFFFF
_HEADER = struct.Struct("<QI")
_LENGTH = struct.Struct("<Q")
_CRC = struct.Struct("<I")
#: Header (length + its CRC) and footer (data CRC) sizes.
HEADER_SIZE = 12
FOOTER_SIZE = 4
# Lengths whose masked CRC is cached; enough for every fixed-size dataset.
_CACHE_LIMIT = 4096


def masked_crc32c(data: Buffer) -> int:
    """The masked CRC-32C TFRecord stores for ``data``."""
    c = _crc32c.crc32c(data)
    return (((c >> 15) | (c << 17)) + _MASK_DELTA) & _U32


def encode_tfrecord(payload: Buffer) -> bytes:
    """One TFRecord: header, ``payload``, data CRC."""
    length = _LENGTH.pack(len(memoryview(payload).cast("B")))
    return b"".join((length, _CRC.pack(masked_crc32c(length)), payload,
                     _CRC.pack(masked_crc32c(payload))))


@register_framer
class TFRecordFramer(Framer):
    """Frames TFRecord files, checking both CRCs unless ``check_crc=False``.

    The length CRC depends only on the length, so it is computed once per
    distinct length and compared from a cache: for fixed-size records the
    per-record cost is one header unpack, one data CRC, one slice.
    """

    name = "tfrecord"
    header_size = HEADER_SIZE

    def __init__(self, url: str = MEMORY_URL, *, check_crc: bool = True) -> None:
        super().__init__(url, check_crc=check_crc)
        self._length_crcs: dict[int, int] = {}

    def _record_size(self, head: Buffer, offset: int) -> int:
        length, stored = _HEADER.unpack_from(head, 0)
        if self.check_crc and self._length_crcs.get(length) != stored:
            self._check_length(length, stored, offset)
        return HEADER_SIZE + length + FOOTER_SIZE

    def _check_length(self, length: int, stored: int, offset: int) -> None:
        """Verify (and cache) a length CRC missing from the cache."""
        computed = masked_crc32c(_LENGTH.pack(length))
        if computed != stored:
            raise RecordError(
                f"TFRecord length CRC mismatch in {self.url} at offset {offset}: stored "
                f"{stored:#010x}, computed {computed:#010x} for length {length}; the object is "
                "corrupt or not TFRecord (check_crc=False skips the check)",
                url=self.url, offset=offset, crc="length")
        if len(self._length_crcs) < _CACHE_LIMIT:
            self._length_crcs[length] = computed

    def _scan(self, buf: memoryview, pos: int, base: int) -> Generator[memoryview, None, int]:
        # The hot loop: everything it touches is bound to a local.
        n = len(buf)
        unpack_header = _HEADER.unpack_from
        unpack_crc = _CRC.unpack_from
        crc = _crc32c.crc32c
        check = self.check_crc
        known = self._length_crcs
        count = 0
        try:
            while pos + HEADER_SIZE <= n:
                length, stored = unpack_header(buf, pos)
                if check and known.get(length) != stored:
                    self._check_length(length, stored, base + pos)
                start = pos + HEADER_SIZE
                end = start + length
                if end + FOOTER_SIZE > n:
                    break
                record = buf[start:end]
                if check:
                    c = crc(record)
                    if (((c >> 15) | (c << 17)) + _MASK_DELTA) & _U32 != unpack_crc(buf, end)[0]:
                        self._data_crc_error(record, unpack_crc(buf, end)[0], base + pos)
                count += 1
                yield record
                pos = end + FOOTER_SIZE
        finally:
            self.records_out += count
        return pos

    def _data_crc_error(self, record: memoryview, stored: int, offset: int) -> None:
        raise RecordError(
            f"TFRecord data CRC mismatch in {self.url} for the record at offset {offset} "
            f"({len(record)} bytes): stored {stored:#010x}, computed "
            f"{masked_crc32c(record):#010x}; the object is corrupt (check_crc=False skips "
            "the check)",
            url=self.url, offset=offset, crc="data")
