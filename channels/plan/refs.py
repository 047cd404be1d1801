"""A planned channel's objects, made into :class:`ObjectRef` s only when asked for.

Decoding a plan of 10 M objects into Arrow takes under a second; making 10 M
Python objects from it takes most of a minute here. A host reads only its
share: :class:`PlanRefs` keeps the columns and makes the ``ObjectRef`` of
index ``i`` when it is asked for, and gives the sizes (what planning needs)
as one array. Iterating it makes every ref, one at a time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from channels.listing import ObjectRef


@dataclass(eq=False)
class PlanRefs(Sequence):
    """The objects of one planned channel, in listing order (a read-only sequence of ObjectRef).

    Args:
        base: the channel's URL base (each URL is ``base + path``).
        paths: each object's URL after ``base``.
        keys: each object's key where it differs from its path (None: the path), or None for all.
        sizes_: bytes per object (int64); :meth:`sizes` gives a copy.
        md5: 16 bytes per object (uint8, shape (n, 16)) where ``has_md5``, else None.
        has_md5: which objects' ETags are MD5s in ``md5``.
        etags: the other ETags (None where none or an MD5), or None for all.
        inline: augmented-manifest values (None where an object), or None for all.
    """

    base: str
    paths: list[str]
    keys: list | None
    sizes_: np.ndarray
    md5: np.ndarray | None
    has_md5: np.ndarray | None
    etags: list | None
    inline: list | None

    def __len__(self) -> int:
        return len(self.paths)

    def _make(self, i: int) -> ObjectRef:
        path = self.paths[i]
        etag = None
        if self.has_md5 is not None and self.has_md5[i]:
            etag = self.md5[i].tobytes().hex()
        elif self.etags is not None:
            etag = self.etags[i]
        key = path if self.keys is None or self.keys[i] is None else self.keys[i]
        inline = self.inline[i] if self.inline is not None else None
        return ObjectRef(self.base + path, int(self.sizes_[i]), etag, key, inline)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return tuple(self._make(i) for i in range(*index.indices(len(self))))
        n = len(self)
        i = int(index)
        if not -n <= i < n:
            raise IndexError(f"object {index} out of range for {n} planned object(s)")
        return self._make(i % n)

    def __iter__(self) -> Iterator[ObjectRef]:
        return (self._make(i) for i in range(len(self)))

    def sizes(self) -> np.ndarray:
        """Bytes per object (int64), without making the refs."""
        return self.sizes_.copy()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, (str, bytes)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"PlanRefs({len(self)} objects under {self.base!r})"
