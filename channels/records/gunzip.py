"""Gzip decompression of a chunked stream, with bounded output per step.

For channels with CompressionType Gzip. Each output piece is at most
``max_out`` bytes and the next is only produced when the consumer asks, so a
small object that inflates enormously (a gzip bomb) never occupies more than
``max_out`` bytes of output plus zlib's 32 KiB window at a time.

Multi-member streams (``cat a.gz b.gz``) decode as the concatenation of the
members, as ``gzip -d`` does; zero bytes after a member (tape padding) are
skipped, as Python's gzip module does. An empty stream decodes to nothing.
Offsets in errors are in the compressed stream. zlib notices a fault at or
after it (a flipped byte inside stored data only at the member's CRC
trailer) and does not say where inside the data it was given, so ``offset``
is where that data began (within one chunk of where zlib noticed) and
``member`` is where the member began.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Iterator

from channels.errors import RecordError
from channels.records.base import MEMORY_URL, Buffer, as_byte_view

_GZIP_WBITS = 16 + zlib.MAX_WBITS  # gzip header and trailer only
DEFAULT_MAX_OUT = 1 << 20
_NONZERO = re.compile(b"[^\\x00]")


class GzipDecoder:
    """Inflates one gzip object fed as chunks.

    Args:
        url: the object, for errors.
        max_out: the most bytes one output piece holds.

    Attributes:
        bytes_in: compressed bytes fed.
        bytes_out: decompressed bytes produced.
        members: gzip members begun.
    """

    def __init__(self, url: str = MEMORY_URL, *, max_out: int = DEFAULT_MAX_OUT) -> None:
        if max_out < 1:
            raise ValueError(f"max_out must be at least 1 byte, not {max_out}")
        self.url = url
        self.max_out = max_out
        self.bytes_in = 0
        self.bytes_out = 0
        self.members = 0
        # Invariant: _inflater is None between members (at the start, after a
        # member's trailer); otherwise it is inflating the member that began
        # at compressed offset _member_at.
        self._inflater: zlib._Decompress | None = None
        self._member_at = 0
        self._state = "ready"  # or "busy", "broken", "finished", as for a Framer

    def feed(self, chunk: Buffer) -> Iterator[bytes]:
        """Inflate the next compressed ``chunk``; yields pieces of at most ``max_out`` bytes.

        Exhaust the iterator before the next call. Pieces are bytes, owned by
        the caller. The chunk is read in place while the iterator runs.

        Raises:
            RecordError: (while iterating) the data is not gzip or is corrupt.
            RuntimeError: the previous iterator was not exhausted, an error
                stopped the decoder, or ``finish()`` was called.
        """
        self._check_ready("feed()")
        view = as_byte_view(chunk)
        offset = self.bytes_in
        self.bytes_in += len(view)
        self._state = "busy"
        return self._run(view, offset)

    def finish(self) -> None:
        """End of the compressed stream.

        Raises:
            RecordError: the stream ends inside a member (truncated).
        """
        self._check_ready("finish()")
        self._state = "finished"
        if self._inflater is not None:
            raise RecordError(
                f"truncated gzip stream in {self.url}: it ends at offset {self.bytes_in} "
                f"inside the member that begins at offset {self._member_at}; the object was "
                "cut short", url=self.url, offset=self.bytes_in, member=self._member_at)

    def _check_ready(self, what: str) -> None:
        if self._state != "ready":
            raise RuntimeError(f"{what} on the GzipDecoder of {self.url}: " + {
                "busy": "the iterator of the previous feed() was not exhausted",
                "broken": "an earlier error stopped it",
                "finished": "finish() was called"}[self._state])

    def _run(self, view: memoryview, offset: int) -> Iterator[bytes]:
        try:
            yield from self._inflate(view, offset)
        except BaseException:
            self._state = "broken"
            raise
        self._state = "ready"

    def _inflate(self, data: Buffer, offset: int) -> Iterator[bytes]:
        # offset: the compressed offset of data[0]. Each round gives zlib the
        # input it has not consumed and takes at most max_out bytes out; a
        # full piece with no input left means zlib may hold more output, so
        # it is asked again with no input.
        max_out = self.max_out
        while True:
            inflater = self._inflater
            if inflater is None:
                skipped = _leading_zeros(data)  # padding between members
                data = data[skipped:]
                offset += skipped
                if not data:
                    return
                inflater = self._inflater = zlib.decompressobj(_GZIP_WBITS)
                self._member_at = offset
                self.members += 1
            try:
                out = inflater.decompress(data, max_out)
            except zlib.error as exc:
                raise RecordError(
                    f"corrupt gzip data in {self.url} at offset {offset} (member at offset "
                    f"{self._member_at}): {exc}", url=self.url, offset=offset,
                    member=self._member_at) from exc
            if out:
                self.bytes_out += len(out)
                yield out
            rest = inflater.unused_data if inflater.eof else inflater.unconsumed_tail
            offset += len(data) - len(rest)
            data = rest
            if inflater.eof:
                self._inflater = None
            elif not data and len(out) < max_out:
                return


def _leading_zeros(data: Buffer) -> int:
    if not data or data[0]:
        return 0
    found = _NONZERO.search(data)
    return found.start() if found else len(data)


def gunzip_stream(chunks: Iterable[Buffer], *, url: str = MEMORY_URL,
                  max_out: int = DEFAULT_MAX_OUT) -> Iterator[bytes]:
    """Inflate a gzip object given as chunks; pieces of at most ``max_out`` bytes.

    Raises:
        RecordError: corrupt or truncated gzip, naming the url and offset.
    """
    decoder = GzipDecoder(url, max_out=max_out)
    for chunk in chunks:
        yield from decoder.feed(chunk)
    decoder.finish()
