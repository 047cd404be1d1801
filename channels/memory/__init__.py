"""Every budgeted buffer of the process: one pool, one budget, one spare shelf, one stats type.

* :mod:`~channels.memory.pool`: :class:`BufferPool` (buffers under one byte
  limit, lent or kept for reuse; taking never blocks), :class:`SpareShelf`
  (what a closed pool leaves for the next one) and :func:`size_class`;
* :mod:`~channels.memory.budget`: :class:`ByteBudget`, FastFile's windows
  (memory maps, the process's shelf), and :func:`drop_spare`;
* :mod:`~channels.memory.stats`: :class:`Counters`, the base of every reader's
  counters (the transport's ``TransportStats``, FastFile's ``ReadStats``).
"""

from channels.memory.budget import ByteBudget, drop_spare
from channels.memory.pool import BufferPool, SpareShelf, size_class
from channels.memory.stats import Counters

__all__ = ["BufferPool", "ByteBudget", "Counters", "SpareShelf", "drop_spare", "size_class"]
