"""Raw bytes: each chunk passes through as one record, unchanged.

For formats the reader parses itself (images, audio, anything opaque): the
"records" are whatever chunks the transport delivers, so record boundaries
carry no meaning.
"""

from __future__ import annotations

from collections.abc import Generator

from channels.records.base import Framer, register_framer


@register_framer
class RawFramer(Framer):
    """Yields each non-empty chunk as a view of itself."""

    name = "raw"

    def _scan(self, buf: memoryview, pos: int, base: int) -> Generator[memoryview, None, int]:
        if pos < len(buf):
            self.records_out += 1
            yield buf[pos:]
        return len(buf)
