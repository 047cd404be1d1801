"""Equal steps per rank: every consumer yields the same number of records in an epoch.

Under DistributedDataParallel every rank must take the same number of
steps, or the rank with more waits forever in an all-reduce. Records per
object are not known before reading, so the shares of an epoch (planned by
bytes) hold different record counts. The policy says what to do:

* ``pad`` (default): every consumer yields as many records as the fullest
  consumer; the others repeat records of their own share from its start (as
  ``DistributedSampler`` does), counted as pads;
* ``drop``: every consumer stops at the count of the emptiest one; the rest
  of each share is not delivered that epoch (counted as dropped);
* ``none``: each consumer yields its share; equal steps are the caller's work.

Equal records per *consumer* (not only per rank) make every rank's count
equal whatever the DataLoader's batch size: each worker batches its own
records, so each rank yields the same number of batches too.

How the counts are known, and what it costs: the records of every object
are counted once, by a counting pass before the first epoch that reads
each object's bytes once (the bytes divided among the ranks, 1/W each),
then one ``all_gather_object`` of the counts (8 bytes per object in all);
the counts are kept for every later epoch, whose plan every rank derives
alone: no further reads and no further collective. Without a process group
(or with ``gather=None``) a process counts every object itself. Framing
``object`` needs no pass (one record per object). The pass is the price of
equal steps over data without an index; ``policy="none"`` skips it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from channels.adapters.plan import Part, items
from channels.listing import Listing
from channels.registry import choose
from channels.sharding import SIZE_BALANCED, plan

PAD = "pad"
DROP = "drop"
NONE = "none"
POLICIES = (PAD, DROP, NONE)

#: ``gather(value) -> [value of rank 0, value of rank 1, ...]``: an all-gather among the job's processes.
Gather = Callable[[Any], list[Any]]


def check_policy(policy: str, framing: str) -> str:
    """``policy`` if valid for ``framing``.

    Raises:
        ValueError: an unknown policy (the message lists the valid ones), or
            pad/drop with framing ``raw``, whose chunks are not records.
    """
    choose(policy, POLICIES, "policy", "pad repeats records so every rank takes as many steps as the fullest, "
           "drop trims to the emptiest, none leaves it")
    if policy != NONE and framing == "raw":
        raise ValueError(f"policy {policy!r} needs records, and framing 'raw' yields chunks of no meaning: use a "
                         "record framing, or policy 'none'")
    return policy


def record_counts(listing: Listing, count: Callable[[Sequence[int]], np.ndarray], *, part: int = 0,
                  parts: int = 1, gather: Gather | None = None, group: Any = 0) -> np.ndarray:
    """Records per ref of ``listing`` (int64), counted once across the job, with one all-gather.

    Args:
        listing: the objects.
        count: ``count(ref indices) -> records per ref`` (reads them).
        part, parts: this process among those that share ``listing``: each
            counts a byte-balanced ``1/parts`` of the refs.
        gather: an all-gather among all the job's processes; None: count
            every ref here.
        group: which processes share this listing (the host index when each
            host's directory holds its own objects, else 0); counts are
            taken only from processes of the same group.
    """
    n = len(listing.refs)
    if gather is None or parts <= 1:
        return np.asarray(count(range(n)), dtype=np.int64)
    mine = np.flatnonzero(plan(listing.sizes(), parts, SIZE_BALANCED).host_of == part)
    local = np.asarray(count(mine.tolist()), dtype=np.int64)
    out = np.full(n, -1, dtype=np.int64)
    for g, idx, got in gather((group, mine.tolist(), local.tolist())):
        if g == group:
            out[np.asarray(idx, dtype=np.int64)] = got
    if (out < 0).any():
        raise RuntimeError(f"record counts of {int((out < 0).sum())} of {n} object(s) were not gathered: the "
                           f"processes of group {group!r} disagree on their part of {parts}")
    return out


def share_records(listing: Listing, work: Sequence[Part], counts: np.ndarray) -> int:
    """Records a work yields: each object's count, less those delivered before its start."""
    return sum(max(0, int(counts[i]) - start.record) for _, start, i in items(listing, work))


def target(policy: str, shares: Sequence[int]) -> int | None:
    """Records each consumer yields under ``policy`` (None: its own share)."""
    if policy == NONE or not shares:
        return None
    return max(shares) if policy == PAD else min(shares)
