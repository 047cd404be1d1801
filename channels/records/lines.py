"""Text lines (CSV, JSON Lines): records end at b"\\n".

Rules: a record is the bytes before each b"\\n", without it; empty lines
are records too (b""); the last line of an object needs no newline (it is
yielded by ``finish()``), and an object ending in b"\\n" has no empty record
after it. Bytes are kept exactly as stored by default: a b"\\r" before the
newline (CRLF files) stays part of the record, so framing is lossless and
the csv and json modules, which both accept it, see the original bytes.
``strip_cr=True`` removes one b"\\r" at the end of each line, for consumers
that want text lines (tokenisers).
"""

from __future__ import annotations

import re
from collections.abc import Generator

import numpy as np

from channels.records.base import MEMORY_URL, Framer, register_framer

_NEWLINE = re.compile(b"\n")
_NL, _CR = 10, 13


@register_framer
class LinesFramer(Framer):
    """Splits on b"\\n"; the newline positions of a chunk are found with numpy
    in one pass, and each line is a zero-copy slice."""

    name = "lines"

    def __init__(self, url: str = MEMORY_URL, *, check_crc: bool = True,
                 strip_cr: bool = False) -> None:
        super().__init__(url, check_crc=check_crc)  # lines carry no checksum
        self.strip_cr = strip_cr

    def _bridge(self, carry: bytearray, view: memoryview) -> int:
        found = _NEWLINE.search(view)
        return found.end() if found else -1

    def _scan(self, buf: memoryview, pos: int, base: int) -> Generator[memoryview, None, int]:
        if pos >= len(buf):
            return pos
        arr = np.frombuffer(buf, dtype=np.uint8)
        ends = np.flatnonzero(arr[pos:] == _NL)
        if not len(ends):
            return pos
        ends += pos
        count = 0
        try:
            if self.strip_cr:
                starts = np.empty_like(ends)
                starts[0] = pos
                starts[1:] = ends[:-1] + 1
                stops = ends - ((ends > starts) & (arr[ends - 1] == _CR))
                for start, stop in zip(starts.tolist(), stops.tolist()):
                    count += 1
                    yield buf[start:stop]
            else:
                start = pos
                for end in ends.tolist():
                    count += 1
                    yield buf[start:end]
                    start = end + 1
        finally:
            self.records_out += count
        return int(ends[-1]) + 1

    def _finish(self, tail: memoryview, offset: int) -> list[memoryview]:
        if not tail:
            return []
        if self.strip_cr and tail[-1] == _CR:
            tail = tail[:-1]
        return [tail]
