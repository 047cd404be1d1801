"""FastFile's window memory: the one pool, with large buffers as memory maps and
the process's spare shelf.

One :class:`ByteBudget` is shared by every open file of a view; it never
blocks (a file short of budget shrinks its window or reads straight into the
caller's buffer). Freed large buffers are kept for reuse, and a closed budget
leaves them (up to :data:`SPARE_MAX`) to the next budget made in the process,
as malloc's heap does for Pipe's buffers, so that a view opened after another
does not start on fresh memory; :func:`drop_spare` frees them.
"""

from __future__ import annotations

import mmap

from channels.memory.pool import BufferPool, SpareShelf
from channels.units import KIB, MIB

#: Window buffers at least this large are anonymous memory maps of their own,
#: and only these are kept for reuse (smaller ones are cheap to make anew).
MMAP_MIN = 256 * KIB
#: The most bytes of freed window buffers closed budgets leave for the next one.
SPARE_MAX = 256 * MIB

#: The window buffers closed budgets left, for the next budget made in this process.
SPARE = SpareShelf(SPARE_MAX)


def allocate(n: int) -> bytearray | mmap.mmap:
    """A zeroed, writable buffer of ``n`` bytes.

    Large ones are private memory maps, so that freeing one gives its pages
    back to the system at once: with malloc, freed windows of many sizes
    would stay in the heap and peak RSS would drift above the budget.
    """
    return mmap.mmap(-1, n) if n >= MMAP_MIN else bytearray(n)


def unexported(buf) -> bool:
    """Whether ``buf`` is a memory map no memoryview still points into (so it may be reused)."""
    if not isinstance(buf, mmap.mmap):
        return False
    try:
        buf.resize(len(buf))  # refused while a view exists
    except (BufferError, OSError, SystemError, ValueError):
        return False
    return True


class ByteBudget(BufferPool):
    """The window buffers of all files of a view stay within ``limit`` bytes.

    A :class:`~channels.memory.pool.BufferPool` whose buffers come from
    :func:`allocate`, of which those of at least :data:`MMAP_MIN` bytes are
    kept for reuse, and whose kept buffers go to :data:`SPARE` at close.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(limit, allocate=allocate, keep_min=MMAP_MIN, spare=SPARE)


def drop_spare() -> int:
    """Free the window buffers closed budgets left for the next one; the bytes freed."""
    return SPARE.drop()
