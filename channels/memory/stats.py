"""Thread-safe counters, written once: readers count their own work.

A subclass declares its ``FIELDS`` (and documents them); the transport's
:class:`~channels.transport.stats.TransportStats` and FastFile's
:class:`~channels.modes.fastfile.stats.ReadStats` are such declarations.
Tests and reports read counts as attributes or through :meth:`snapshot`.

Example:
    >>> class Hits(Counters):
    ...     FIELDS = ("hits", "misses")
    >>> total = Hits()
    >>> one = Hits(parent=total)
    >>> one.add(hits=2)
    >>> total.hits, one.snapshot()
    (2, {'hits': 2, 'misses': 0})
"""

from __future__ import annotations

import threading
from typing import ClassVar


class Counters:
    """Named integer counters behind one lock; a subclass names them in ``FIELDS``.

    Args:
        parent: counters of the same kind that every :meth:`add` and
            :meth:`peak` also goes to (a view's totals over its files).
    """

    FIELDS: ClassVar[tuple[str, ...]] = ()

    def __init__(self, parent: Counters | None = None) -> None:
        self._lock = threading.Lock()
        self._parent = parent
        # Invariant: the keys are exactly FIELDS.
        self._counts = dict.fromkeys(self.FIELDS, 0)

    def add(self, **deltas: int) -> None:
        """Add to counters, e.g. ``add(requests=1, bytes=n)``."""
        with self._lock:
            for name, delta in deltas.items():
                self._counts[name] += delta
        if self._parent is not None:
            self._parent.add(**deltas)

    def peak(self, name: str, value: int) -> None:
        """Raise a high-water mark to ``value`` if it is higher."""
        with self._lock:
            self._counts[name] = max(self._counts[name], value)
        if self._parent is not None:
            self._parent.peak(name, value)

    def snapshot(self) -> dict[str, int]:
        """A consistent copy of every counter."""
        with self._lock:
            return dict(self._counts)

    def reset(self) -> None:
        """Set every counter back to 0 (the parent's are left alone)."""
        with self._lock:
            self._counts = dict.fromkeys(self.FIELDS, 0)

    def __getattr__(self, name: str) -> int:
        # Only called for names not found otherwise: the counters.
        if name in type(self).FIELDS:
            with self._lock:
                return self._counts[name]
        raise AttributeError(f"{type(self).__name__} has no counter {name!r}; "
                             f"counters: {', '.join(type(self).FIELDS)}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.snapshot()})"
