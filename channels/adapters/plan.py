"""Which parts of an epoch each consumer reads: at the epoch's start, and after an elastic resume.

A consumer's *work* is a list of :class:`Part` s: listing units (objects; an
augmented-manifest line with its attributes), each read whole from its
start, except a part cut at a resume, which begins at a ref of its unit and
a :class:`~channels.modes.pipe.resume.Start` in it.

Level 0 (the epoch's start), for ``n`` consumers:

* ``split="bytes"`` (default): :func:`channels.sharding.plan` with the
  size-balanced strategy over the units (the plan ``channels shard-report``
  shows): the largest units one by one to the least-loaded consumer, the
  rest filling each consumer's gap to the mean. Each consumer reads its
  units in the epoch's shuffled order, and with a seed, which consumer gets
  which share is itself permuted per epoch (:func:`channels.sharding.epoch_order`
  over the consumers), so shares move between consumers every epoch.
* ``split="count"``: SageMaker's ShardedByS3Key rule, ``n`` contiguous runs
  of the shuffled units with counts differing by at most one.

Level ``L + 1`` (a resume on another consumer count): every level-``L``
consumer's unread remainder (the part it stood in, cut at its position,
then its later parts whole) is laid end to end in consumer order and
planned again among the new consumers by the same rule, weighted by the
bytes each part has left, without a shuffle (each old share's order is
kept). Each level is a function of the previous one, its cut positions and
the new count only: every process derives the same works alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from channels.listing import Listing, ObjectRef
from channels.modes.pipe.resume import Cursor, Start
from channels.registry import choose
from channels.sharding import SHARDED_BY_S3_KEY, SIZE_BALANCED, epoch_order, plan

BYTES = "bytes"
COUNT = "count"
#: How an epoch is split among consumers.
SPLITS = (BYTES, COUNT)


def check_split(split: str) -> str:
    """``split`` if valid.

    Raises:
        ValueError: an unknown name (the message lists the valid ones).
    """
    return choose(split, SPLITS, "split", "'bytes' balances bytes per consumer, 'count' objects per consumer")


@dataclass(frozen=True, slots=True)
class Part:
    """Unit ``unit`` of the listing, from its ref ``ref`` on, that ref read from ``start``."""

    unit: int
    ref: int = 0
    start: Start = field(default_factory=Start)


def unit_refs(listing: Listing, unit: int) -> range:
    """Indices in ``listing.refs`` of unit ``unit``'s refs."""
    starts = listing.unit_starts
    if starts is None:
        return range(unit, unit + 1)
    end = int(starts[unit + 1]) if unit + 1 < len(starts) else len(listing.refs)
    return range(int(starts[unit]), end)


def items(listing: Listing, work: Sequence[Part]) -> list[tuple[ObjectRef, Start, int]]:
    """``(ref, start, ref index)`` per object a work reads, in order."""
    out = []
    for part in work:
        refs = unit_refs(listing, part.unit)
        for k, i in enumerate(refs[part.ref:]):
            out.append((listing.refs[i], part.start if k == 0 else Start(), i))
    return out


def first_level(listing: Listing, consumers: int, split: str, seed: int | None, epoch: int,
                units: np.ndarray | None = None) -> list[list[Part]]:
    """Every consumer's work at the epoch's start (see the module docstring).

    Args:
        listing: the channel's objects.
        consumers: how many consumers share the epoch.
        split: "bytes" or "count".
        seed: the shuffle seed (None: listing order, fixed shares).
        epoch: the epoch.
        units: the units these consumers share (default: all; a host's share
            when the channel is already sharded per host).
    """
    check_split(split)
    units = np.arange(listing.unit_count, dtype=np.int64) if units is None else np.asarray(units, dtype=np.int64)
    sizes = listing.unit_sizes()[units] if len(units) else np.zeros(0, dtype=np.int64)
    p = plan(sizes, consumers, SIZE_BALANCED if split == BYTES else SHARDED_BY_S3_KEY, seed=seed, epoch=epoch)
    labels = epoch_order(consumers, seed, epoch) if split == BYTES else np.arange(consumers)
    return [[Part(int(units[u])) for u in p.units_for(int(labels[c])).tolist()] for c in range(consumers)]


def remainder(listing: Listing, work: Sequence[Part], cursor: Cursor) -> list[Part]:
    """What a consumer of ``work`` standing at ``cursor`` has not read, as parts."""
    seen = 0
    for p, part in enumerate(work):
        n = len(unit_refs(listing, part.unit)) - part.ref
        if cursor.item < seen + n:
            cut = Part(part.unit, part.ref + cursor.item - seen, cursor.start())
            return [cut, *work[p + 1:]]
        seen += n
    return []


def part_bytes(listing: Listing, part: Part) -> int:
    """Bytes a part has left to read (an estimate for Gzip objects entered mid-way)."""
    refs = unit_refs(listing, part.unit)[part.ref:]
    total = sum(listing.refs[i].size for i in refs)
    return max(0, total - part.start.offset)


def next_level(listing: Listing, works: Sequence[Sequence[Part]], cut: Sequence[Cursor], consumers: int,
               split: str) -> list[list[Part]]:
    """The works of ``consumers`` new consumers that share the remainder of ``works`` cut at ``cut``."""
    rest = [part for work, cursor in zip(works, cut) for part in remainder(listing, work, cursor)]
    sizes = np.fromiter((part_bytes(listing, p) for p in rest), dtype=np.int64, count=len(rest))
    p = plan(sizes, consumers, SIZE_BALANCED if split == BYTES else SHARDED_BY_S3_KEY, seed=None)
    return [[rest[i] for i in p.units_for(c).tolist()] for c in range(consumers)]


def level_works(listing: Listing, levels: Sequence[tuple[int, Sequence[Cursor] | None]], split: str,
                seed: int | None, epoch: int, units: np.ndarray | None = None) -> list[list[Part]]:
    """The works of the last level: level 0 planned, each later one from its cut.

    Args:
        levels: ``(consumers, cut)`` per level; level 0's cut is None, level
            ``L``'s is the position of each of level ``L - 1``'s consumers.
    """
    works = first_level(listing, levels[0][0], split, seed, epoch, units)
    for consumers, cut in levels[1:]:
        works = next_level(listing, works, cut, consumers, split)
    return works
