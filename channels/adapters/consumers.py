"""An epoch's consumers of one channel: their plan, equal steps and saved state, framework-neutral.

:class:`Consumers` holds what every consumer of a job shares (the source,
the split rule, the equal-steps policy, the record counts);
:meth:`Consumers.open` gives one consumer's records of one epoch as a
:class:`ConsumerRead`, an iterator whose :meth:`~ConsumerRead.state_dict`
says where it stands. The PyTorch dataset (:mod:`channels.adapters.torch`)
is a thin layer over these; so is any other framework's.

What stays deterministic: with the same objects, seed, epoch, split, policy
and consumer count, each consumer gets the same records in the same order,
run after run, and a resume on the same count continues that very sequence.
Across a resume on another count, the set of records of the epoch stays the
same (each delivered exactly once, before or after the resume, plus pads);
their order after the resume follows the new plan, which is itself
deterministic given the saved positions and the new count.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import InitVar, dataclass
from typing import Any

import numpy as np

from channels.adapters.equalize import (
    NONE,
    PAD,
    Gather,
    check_policy,
    record_counts,
    share_records,
    target,
)
from channels.adapters.plan import BYTES, Part, check_split, items, level_works
from channels.adapters.sources import Source
from channels.adapters.split import Split
from channels.adapters.state import FRESH, make_state, resume
from channels.errors import ResumeStateError
from channels.modes.pipe.resume import Cursor, fingerprint

log = logging.getLogger(__name__)


class Consumers:
    """What the consumers of a channel share: source, split rule, policy, record counts.

    Args:
        source: the channel (:class:`~channels.adapters.DirectorySource`, ...).
        split: "bytes" (size-balanced shares, the default) or "count".
        policy: "pad" (default), "drop" or "none" (see :mod:`channels.adapters.equalize`).
        tag_pads: yield ``(record, is_pad)`` pairs instead of records.
    """

    def __init__(self, source: Source, *, split: str = BYTES, policy: str = PAD, tag_pads: bool = False) -> None:
        self.source = source
        self.split = check_split(split)
        self.policy = check_policy(policy, source.framing)
        self.tag_pads = tag_pads
        self.record_counts: np.ndarray | None = None
        self._fingerprint: tuple[int, dict] | None = None

    def settings(self, host: tuple[int, int] | None = None) -> dict:
        """The values a state must share with these consumers."""
        s = self.source
        return {"seed": s.shuffle_seed, "split": self.split, "policy": self.policy, "framing": s.framing,
                "compression": s.compression, "scope": s.scope,
                "host": list(host) if s.scope == "host" and host is not None else None}

    def fingerprint(self) -> dict:
        """The listing's fingerprint, made once per listing."""
        listing = self.source.listing()
        if self._fingerprint is None or self._fingerprint[0] != id(listing):
            self._fingerprint = (id(listing), fingerprint(listing.refs))
        return self._fingerprint[1]

    def count_records(self, *, part: int = 0, parts: int = 1, gather: Gather | None = None, group: Any = 0) -> None:
        """Count the records of every object once (policy pad or drop); see
        :func:`channels.adapters.equalize.record_counts` for the arguments and the cost."""
        if self.policy == NONE or self.record_counts is not None:
            return
        self.record_counts = record_counts(self.source.listing(), self.source.count, part=part, parts=parts,
                                           gather=gather, group=group)

    def open(self, consumer: Split, epoch: int, *, host: tuple[int, int] = (0, 1),
             state: dict | None = None) -> ConsumerRead:
        """Consumer ``consumer``'s records of ``epoch``, or of the epoch ``state`` was saved in.

        Args:
            consumer: this consumer's index among the epoch's consumers.
            epoch: the epoch (ignored when a state is given: its epoch is read).
            host: (host index, hosts), for a source of scope "host".
            state: a saved state (:func:`channels.adapters.merge_states` of
                every consumer's, to resume on another consumer count).

        Raises:
            ResumeStateError: the state does not fit (see :mod:`channels.adapters.state`).
        """
        listing = self.source.listing()
        settings = self.settings(host)
        position = list(FRESH)
        if state is None:
            levels: list = [(consumer.count, None)]
        else:
            epoch, levels, positions = resume(state, settings, listing.refs, self.source.label, consumer.count)
            if positions is not None:
                if consumer.index not in positions:
                    raise ResumeStateError(
                        f"the state has no position for consumer {consumer.index} of {consumer.count} (it has "
                        f"{sorted(positions) or 'none'}): load the state of this rank and worker, or the merged "
                        "state of all of them (channels.adapters.merge_states)", field="positions",
                        consumer=consumer.index)
                position = positions[consumer.index]
        works = level_works(listing, levels, self.split, self.source.shuffle_seed, epoch,
                            self.source.units(epoch, *host))
        goal = None
        if self.policy != NONE:
            if self.record_counts is None:
                log.warning("counting the records of %s in this process: count them once before the epoch "
                            "(ChannelDataset.set_epoch in the main process) to share the pass among ranks",
                            self.source.label)
                self.count_records()
            shares = [share_records(listing, w, self.record_counts) for w in works]
            goal = target(self.policy, shares)
            if goal == 0 and any(shares):
                log.warning("policy drop with %d consumer(s) whose share of %s holds no record: every consumer "
                            "yields none this epoch; use policy pad, or fewer consumers than objects",
                            shares.count(0), self.source.label)
        return ConsumerRead(self, consumer, epoch, levels, works, position, goal, settings)


@dataclass(eq=False)
class ConsumerRead(Iterator[Any]):
    """One consumer's records of one epoch (bytes; Parquet: batches), with its position.

    Attributes:
        counts: ``records`` (from its share), ``pads`` (repeated to reach the
            target), ``dropped`` (left out to meet it; known at the end).
        target: the records every consumer yields this level (None: policy none).
    """

    consumers: Consumers
    consumer: Split
    epoch: int
    levels: list
    works: list[list[Part]]
    start: InitVar[list[int]]  # the position to resume from: [item, record, offset, before, delivered, pads]
    target: int | None
    settings: dict

    def __post_init__(self, start: list[int]) -> None:
        # Invariant: cursor is where the share's read stands; delivered and
        # pads count this level's records and pads out so far.
        self.cursor = Cursor(*start[:4])
        self.delivered, self.pads = start[4], start[5]
        self.counts = {"records": 0, "pads": 0, "dropped": 0}
        self._gen = self._run()

    def __next__(self) -> Any:
        return next(self._gen)

    def close(self) -> None:
        """Stop reading (cancels the reads in flight)."""
        self._gen.close()

    def position(self) -> list[int]:
        """``[item, record, offset, before, delivered, pads]``."""
        return [*self.cursor.state(), self.delivered, self.pads]

    def state_dict(self) -> dict:
        """This consumer's state (see :mod:`channels.adapters.state`)."""
        return make_state(self.settings, self.consumers.fingerprint(), self.epoch, self.levels,
                          {self.consumer.index: self.position()})

    def _out(self, record: Any, pad: bool) -> Any:
        if self.consumers.source.framing != "parquet":
            record = bytes(record)
        return (record, pad) if self.consumers.tag_pads else record

    def _items(self, work: list[Part]) -> list:
        return [(ref, start) for ref, start, _ in items(self.consumers.source.listing(), work)]

    def _run(self) -> Iterator[Any]:
        source, goal = self.consumers.source, self.target
        work = self._items(self.works[self.consumer.index])
        if self.cursor.state() == [0, 0, 0, 0] and work:
            self.cursor.at(0, work[0][1])  # not started: at the share's own start
        if goal is None or self.delivered < goal:
            records = source.read(work, self.cursor)
            try:
                while goal is None or self.delivered < goal:
                    try:
                        record = next(records)
                    except StopIteration:
                        break
                    self.delivered += 1
                    self.counts["records"] += 1
                    yield self._out(record, False)
            finally:
                records.close()
        if goal is None:
            return
        counts = self.consumers.record_counts
        listing = source.listing()
        share = share_records(listing, self.works[self.consumer.index], counts)
        self.counts["dropped"] = max(0, share - goal)
        if self.consumers.policy == PAD and self.delivered + self.pads < goal:
            yield from self._pad(goal, [share_records(listing, w, counts) for w in self.works])

    def _pad(self, goal: int, shares: list[int]) -> Iterator[Any]:
        """Repeat records of this consumer's share (of the first non-empty one if its own is empty)."""
        own = self.consumer.index
        donor = own if shares[own] else next(i for i, n in enumerate(shares) if n)
        work = self._items(self.works[donor])
        skip = self.pads  # pads delivered before a resume
        while True:
            cursor = Cursor()
            cursor.at(0, work[0][1])
            seen = 0
            for record in self.consumers.source.read(work, cursor):
                seen += 1
                if skip:
                    skip -= 1
                    continue
                self.pads += 1
                self.counts["pads"] += 1
                yield self._out(record, True)
                if self.delivered + self.pads >= goal:
                    return
            if not seen:
                raise RuntimeError(f"consumer {own} must pad {goal - self.delivered - self.pads} record(s) from "
                                   f"consumer {donor}'s share, which yields none: the objects changed while read")
