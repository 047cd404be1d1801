"""The streaming framer contract, its carry-over buffer, and the registry.

A framer turns the bytes of one object, fed in chunks of any size, into
records. One framer instance frames one object: offsets in errors are
relative to the object's first byte, and framing restarts with a new
instance at each object.

Zero copy: a record lying wholly inside one chunk is yielded as a
``memoryview`` slice of that chunk. A record that straddles chunks is
assembled once in a private buffer.

View validity: a yielded view is valid until the next ``feed()`` call. A
view of a chunk shares the caller's memory; a caller that reuses its chunk
buffer (``readinto``) overwrites it. Copy (``bytes(view)``) what you keep.

Every iterator ``feed()`` returns must be exhausted before the next call:
records are found lazily, and the carry-over state is only settled when the
iterator ends. ``feed()`` raises RuntimeError if the previous iterator was
abandoned.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Generator, Iterable, Iterator
from typing import ClassVar

from channels.errors import RecordError

Buffer = bytes | bytearray | memoryview

#: The URL a framer names in its errors when it was given none.
MEMORY_URL = "<memory>"


def as_byte_view(chunk: Buffer) -> memoryview:
    """A flat unsigned-byte view of ``chunk``, sharing its memory.

    Raises:
        TypeError: ``chunk`` does not export the buffer protocol, or is not
            C-contiguous.
    """
    view = memoryview(chunk)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


class Framer(ABC):
    """Bytes of one object in, records out, across chunk boundaries.

    Subclasses write ``_scan`` (records wholly inside a buffer) and, when the
    size of a record can be read from a fixed-size header, set
    ``header_size`` and write ``_record_size``; delimiter-framed formats
    override ``_bridge`` instead.

    Attributes:
        url: the object being framed, named in every error.
        check_crc: verify checksums where the format has them.
        records_out: records yielded so far.
        bytes_in: bytes fed so far (the object offset of the next chunk).
    """

    name: ClassVar[str]
    #: Bytes at the start of a record that tell its full size (0: none).
    header_size: ClassVar[int] = 0

    def __init__(self, url: str = MEMORY_URL, *, check_crc: bool = True) -> None:
        self.url = url
        self.check_crc = check_crc
        self.records_out = 0
        self.bytes_in = 0
        # Invariant: _carry holds the object bytes [_carry_at, bytes_in), the
        # beginning of a record not yet complete; empty between records.
        self._carry = bytearray()
        self._carry_at = 0
        # "ready", "busy" (a feed iterator is running), "broken", "finished".
        self._state = "ready"

    # Public API --------------------------------------------------------------

    def feed(self, chunk: Buffer) -> Iterator[memoryview]:
        """Frame the next ``chunk`` of the object.

        Args:
            chunk: the next bytes of the object, any size (empty is fine).

        Returns:
            An iterator over every record complete after this chunk, each a
            memoryview valid until the next ``feed()``. Exhaust it before
            calling ``feed()`` or ``finish()`` again.

        Raises:
            RecordError: (while iterating) the bytes break the format; the
                error names the url and the object offset.
            RuntimeError: the previous iterator was not exhausted, an earlier
                error stopped this framer, or ``finish()`` was called.
        """
        self._check_ready("feed()")
        view = as_byte_view(chunk)
        self._state = "busy"
        return self._feed(view)

    def finish(self) -> Iterator[memoryview]:
        """End of the object: the last record, or an error for left-overs.

        Checks eagerly: the error is raised by this call, not by iterating.

        Returns:
            An iterator over the final record where the format allows one
            without a terminator (a text line without its newline), else an
            empty iterator.

        Raises:
            RecordError: bytes of an incomplete record are left over (the
                object is truncated); names the url and the record's offset.
            RuntimeError: the last ``feed()`` iterator was not exhausted.
        """
        self._check_ready("finish()")
        self._state = "finished"
        tail = self._carry
        self._carry = bytearray()
        out = self._finish(memoryview(tail), self._carry_at)
        self.records_out += len(out)
        return iter(out)

    def start_at(self, offset: int, records: int) -> None:
        """Frame the object from ``offset`` on, a record's start with ``records`` records
        before it (a resumed read); offsets in errors and :attr:`boundary` stay the object's.

        Raises:
            RuntimeError: bytes were fed already.
        """
        self._check_ready("start_at()")
        if self.bytes_in or self.records_out:
            raise RuntimeError(f"start_at() on the {self.name} framer of {self.url}: it has framed bytes "
                               "already; call it on a new framer, before the first feed()")
        self.bytes_in = self._carry_at = offset
        self.records_out = records

    @property
    def boundary(self) -> tuple[int, int]:
        """``(offset, records)``: the object offset where the bytes not yet framed into
        records begin (a record's start), and how many records come before it.

        Read it between ``feed()`` calls: a resumed read may start a new
        framer at that offset and skip the records it already gave out beyond
        ``records`` (at most one chunk's worth).
        """
        return (self._carry_at if self._carry else self.bytes_in), self.records_out

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(url={self.url!r}, records_out={self.records_out}, "
                f"bytes_in={self.bytes_in})")

    # Template ----------------------------------------------------------------

    def _check_ready(self, what: str) -> None:
        if self._state == "ready":
            return
        reason = {
            "busy": "the iterator of the previous feed() was not exhausted",
            "broken": "an earlier error stopped it",
            "finished": "finish() was called",
        }[self._state]
        raise RuntimeError(f"{what} on the {self.name} framer of {self.url}: {reason}; "
                           "exhaust each feed() iterator, and use a new framer per object")

    def _feed(self, view: memoryview) -> Generator[memoryview, None, None]:
        base = self.bytes_in
        self.bytes_in = base + len(view)
        pos = 0
        try:
            if self._carry:
                pos = yield from self._complete_carry(view)
                if pos < 0:  # the whole chunk belongs to the carried record
                    self._state = "ready"
                    return
            end = yield from self._scan(view, pos, base)
            if end < len(view):
                self._carry = bytearray(view[end:])
                self._carry_at = base + end
        except BaseException:
            self._state = "broken"
            raise
        self._state = "ready"

    def _complete_carry(self, view: memoryview) -> Generator[memoryview, None, int]:
        """Finish the carried record from the head of ``view``.

        Returns:
            The index in ``view`` where the next record begins, or -1 when
            all of ``view`` was appended to the carry.
        """
        take = self._bridge(self._carry, view)
        if take < 0:
            self._carry += view
            return -1
        carry = self._carry
        carry += view[:take]
        # A new buffer for the next carry: views of this one may outlive us.
        self._carry = bytearray()
        end = yield from self._scan(memoryview(carry), 0, self._carry_at)
        if end != len(carry):  # a broken subclass, not broken data
            raise AssertionError(f"{type(self).__name__}._scan left {len(carry) - end} "
                                 "bytes of a bridged record")
        return take

    def _bridge(self, carry: bytearray, view: memoryview) -> int:
        """How many bytes from the head of ``view`` complete the carried record.

        The default reads the record's size from its header with
        ``_record_size``.

        Returns:
            The count, or -1 when the record needs all of ``view`` and more.
        """
        need = self.header_size
        have = len(carry)
        if have < need:
            if have + len(view) < need:
                return -1
            head: Buffer = bytes(carry) + bytes(view[:need - have])
        else:
            head = carry
        take = self._record_size(head, self._carry_at) - have
        return take if take <= len(view) else -1

    def _record_size(self, head: Buffer, offset: int) -> int:
        """Bytes the record at ``offset`` occupies, from its first
        ``header_size`` bytes in ``head``; raises RecordError for a bad header."""
        raise NotImplementedError(f"{type(self).__name__} must override _record_size or _bridge")

    @abstractmethod
    def _scan(self, buf: memoryview, pos: int, base: int) -> Generator[memoryview, None, int]:
        """Yield the records lying wholly inside ``buf[pos:]``.

        Args:
            buf: the bytes; ``buf[0]`` is at object offset ``base``.
            pos: where the first record begins.
            base: the object offset of ``buf[0]``, for errors.

        Returns:
            The index where the first incomplete record begins (``len(buf)``
            when none is). Subclasses count ``records_out`` themselves.
        """

    def _finish(self, tail: memoryview, offset: int) -> list[memoryview]:
        """Records to yield from the ``tail`` left at the end (it starts at
        ``offset``); raise if it is not allowed. The default allows none."""
        if tail:
            raise self._truncated(offset)
        return []

    def _truncated(self, offset: int) -> RecordError:
        end = self.bytes_in
        return RecordError(
            f"truncated {self.name} record in {self.url} at offset {offset}: the object ends "
            f"at {end}, {end - offset} bytes into the record; the object was cut short or is "
            f"not {self.name}",
            url=self.url, offset=offset, size=end)


_FRAMERS: dict[str, type[Framer]] = {}
_NOT_STREAMING = {
    "parquet": ("Parquet is not framed as a stream: its footer must be read first, which "
                "needs random access; call channels.records.iter_parquet_batches(file_like, "
                "url=...) with a seekable file (a FastFile object, or io.BytesIO of the bytes)"),
}


def register_framer(cls: type[Framer], *, clobber: bool = False) -> type[Framer]:
    """Add a framer class to the registry under ``cls.name``; usable as a decorator.

    Raises:
        ValueError: the name is taken and ``clobber`` is false.
    """
    name = cls.name
    if not clobber and (name in _FRAMERS or name in _NOT_STREAMING):
        raise ValueError(f"a framer named {name!r} is already registered "
                         f"({_FRAMERS.get(name)}); pass clobber=True to replace it")
    _FRAMERS[name] = cls
    return cls


def framer_names() -> list[str]:
    """The names ``framer()`` accepts, sorted."""
    return sorted(_FRAMERS)


def framer(name: str, url: str = MEMORY_URL, **opts: object) -> Framer:
    """A new framer for one object, by format name.

    Args:
        name: one of ``framer_names()`` ("lines", "raw", "recordio", "tfrecord").
        url: the object, for error messages.
        **opts: the framer's own options (``check_crc``, ``strip_cr``).

    Raises:
        ValueError: unknown name (the message lists the valid ones), or
            "parquet", which needs ``iter_parquet_batches`` instead.
    """
    cls = _FRAMERS.get(name)
    if cls is None:
        if name in _NOT_STREAMING:
            raise ValueError(_NOT_STREAMING[name])
        raise ValueError(f"no record format named {name!r}; valid names: "
                         f"{', '.join(map(repr, framer_names()))} (and 'parquet' through "
                         "iter_parquet_batches)")
    return cls(url, **opts)  # type: ignore[arg-type]


def frame_stream(name: str, chunks: Iterable[Buffer], url: str = MEMORY_URL,
                 **opts: object) -> Iterator[memoryview]:
    """Frame a whole object given as an iterable of chunks.

    Each chunk is fed in turn, then ``finish()``; the view-validity rule of
    ``Framer.feed`` applies (a view lives until the next chunk is fed).
    """
    f = framer(name, url, **opts)
    for chunk in chunks:
        yield from f.feed(chunk)
    yield from f.finish()


def frame_bytes(name: str, data: Buffer, url: str = MEMORY_URL, **opts: object) -> list[bytes]:
    """Frame a whole object held in memory; the records as bytes (copies)."""
    return [bytes(r) for r in frame_stream(name, (data,), url, **opts)]
