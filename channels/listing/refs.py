"""What a listing is made of: object refs, the data source types, and a source's ordered objects."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np  # imported where sizes become arrays: a one-host download never needs it


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """One object: where it is, how big, and its version tag.

    Attributes:
        url: full URL (``s3://bucket/key``, ``file:///abs/path``, ...).
        size: bytes.
        etag: the store's ETag (quotes stripped) or None where it has none.
        key: the object's path below the channel's prefix ("" when not under one);
            File mode writes the object there, FastFile shows it there.
        inline: the bytes themselves, for values that live in a manifest line
            rather than in an object (augmented manifests); no request is made.
    """

    url: str
    size: int
    etag: str | None = None
    key: str = ""
    inline: bytes | None = None


S3_PREFIX = "S3Prefix"
MANIFEST_FILE = "ManifestFile"
AUGMENTED_MANIFEST_FILE = "AugmentedManifestFile"
DATA_TYPES = (S3_PREFIX, MANIFEST_FILE, AUGMENTED_MANIFEST_FILE)


@dataclass(frozen=True)
class Listing:
    """A data source's objects in their documented order, plus its units.

    The unit is what sharding and shuffling move as a whole: one object for
    S3Prefix and ManifestFile, one line (all its selected attributes) for an
    AugmentedManifestFile. ``unit_starts[i]`` is the index in ``refs`` where
    unit ``i`` begins; None means one ref per unit.

    Attributes:
        source: the URL that was listed (prefix or manifest).
        refs: every object (or inline value) in order: a tuple, or a sequence
            that makes each ref when asked for (a plan's, :mod:`channels.plan.refs`).
        unit_starts: int64 array of unit start indices, or None.
        stats: the listing's own counters (requests, pages, seconds), where known.
    """

    source: str
    refs: tuple[ObjectRef, ...]
    unit_starts: np.ndarray | None = None
    #: How the listing was made (:class:`channels.listing.ListStats` for an S3
    #: prefix; None otherwise); not part of the value.
    stats: Any = field(default=None, compare=False, repr=False)

    def __len__(self) -> int:
        return len(self.refs)

    @property
    def unit_count(self) -> int:
        return len(self.refs) if self.unit_starts is None else len(self.unit_starts)

    @property
    def total_bytes(self) -> int:
        return int(self.sizes().sum())

    def sizes(self) -> np.ndarray:
        """Bytes per object (int64); refs that know their sizes as an array (a plan's) give it."""
        fast = getattr(self.refs, "sizes", None)
        if fast is not None:
            return fast()
        import numpy as np

        return np.fromiter((r.size for r in self.refs), dtype=np.int64, count=len(self.refs))

    def unit_sizes(self) -> np.ndarray:
        """Bytes per unit (int64): what the planner balances."""
        import numpy as np

        sizes = self.sizes()
        if self.unit_starts is None:
            return sizes
        return np.add.reduceat(sizes, self.unit_starts) if len(sizes) else sizes

    def expand(self, units: Sequence[int] | np.ndarray) -> list[ObjectRef]:
        """The refs of the given units, in the given unit order."""
        if self.unit_starts is None and isinstance(units, range):
            return [self.refs[i] for i in units]
        import numpy as np

        if self.unit_starts is None:
            return [self.refs[i] for i in np.asarray(units, dtype=np.int64).tolist()]
        ends = np.append(self.unit_starts[1:], len(self.refs))
        out: list[ObjectRef] = []
        for u in np.asarray(units, dtype=np.int64).tolist():
            out.extend(self.refs[self.unit_starts[u]:ends[u]])
        return out
