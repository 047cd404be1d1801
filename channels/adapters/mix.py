"""Several channels in one stream, drawn by weight: seeded, resumable (as mosaic's
``Stream(proportion=)`` and litdata's ``CombinedStreamingDataset(weights=)``).

Each consumer reads its own share of every channel (:class:`~channels.adapters.Consumers`)
and, for each record, draws which channel it comes from: channel ``i`` with
probability ``weights[i] / sum of the weights of the channels not yet
exhausted``. Draw ``k`` of consumer ``c`` in epoch ``e`` is a pure function
of (seed, e, c, k, level): the same run after run, and a resume continues
the very sequence. ``stop="all"`` (default) goes on until every channel is
exhausted, so each channel's epoch is delivered once and, when every channel
pads or drops to equal counts, every consumer yields the same number of
records; ``stop="first"`` ends at the first exhausted channel (a fixed
proportion, but record counts then differ between consumers).

State: the children's states, plus per consumer the draws made and the
channels exhausted. On another consumer count each channel resumes
elastically (:mod:`channels.adapters.state`) and the draws restart on a new
seeded sequence.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from typing import Any

from channels.adapters.consumers import ConsumerRead, Consumers
from channels.adapters.split import Split
from channels.adapters.state import MIX_KIND as KIND
from channels.adapters.state import found, merge_states
from channels.errors import ResumeStateError
from channels.modes.pipe.resume import STATE_VERSION, check_settings
from channels.registry import choose

STOPS = ("all", "first")


def check_mix(weights: Sequence[float], count: int, stop: str) -> list[float]:
    """The weights as floats.

    Raises:
        ValueError: not one weight > 0 per channel, or an unknown stop rule.
    """
    weights = [float(w) for w in weights]
    if len(weights) != count or count < 1:
        raise ValueError(f"give one weight per channel: {count} channel(s), {len(weights)} weight(s)")
    if any(not w > 0 for w in weights):
        raise ValueError(f"weights must be > 0, got {weights}")
    choose(stop, STOPS, "stop")
    return weights


def draw(seed: int, epoch: int, consumer: int, level: int, k: int) -> float:
    """A uniform number in [0, 1) for draw ``k``: a pure function of its arguments."""
    h = hashlib.blake2b(f"{seed}:{epoch}:{consumer}:{level}:{k}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") / 2.0 ** 64


def merge_mix_states(*states: Any) -> dict:
    """One mix state from those of all ranks and workers (or anything holding them)."""
    found_ = [s for obj in states for s in found(obj, KIND)]
    if not found_:
        raise ResumeStateError("no channels mix state found in what was given", field="state")
    first = found_[0]
    merged = {k: v for k, v in first.items() if k not in ("draws", "children")}
    merged["draws"] = {}
    for s in found_:
        for key in ("epoch", "seed", "weights", "stop", "levels"):
            if s.get(key) != first.get(key):
                raise ResumeStateError(f"the mix states to merge differ in {key!r}", field=key)
        merged["draws"].update({int(c): list(v) for c, v in s.get("draws", {}).items()})
    merged["children"] = [merge_states(*[s["children"][i] for s in found_]) for i in range(len(first["children"]))]
    return merged


class Mix:
    """Channels mixed by weight, for the consumers of a job.

    Args:
        channels: one :class:`~channels.adapters.Consumers` per channel.
        weights: one weight > 0 per channel (need not sum to 1).
        seed: seeds the draws.
        stop: "all" or "first" (see the module docstring).
    """

    def __init__(self, channels: Sequence[Consumers], weights: Sequence[float], *, seed: int = 0,
                 stop: str = "all") -> None:
        self.channels = list(channels)
        self.weights = check_mix(weights, len(self.channels), stop)
        self.seed = seed
        self.stop = stop

    def settings(self) -> dict:
        return {"kind": KIND, "seed": self.seed, "weights": self.weights, "stop": self.stop}

    def open(self, consumer: Split, epoch: int, *, host: tuple[int, int] = (0, 1),
             state: dict | None = None) -> MixRead:
        """Consumer ``consumer``'s mixed records of ``epoch`` (or of the saved state's epoch).

        Raises:
            ResumeStateError: the state does not fit (another seed, weights,
                stop rule or channel count; a channel's own mismatch).
        """
        levels, draws, done = [consumer.count], 0, [False] * len(self.channels)
        children: list[dict | None] = [None] * len(self.channels)
        if state is not None:
            check_settings(state, self.settings(), "this mix")
            if len(state.get("children", ())) != len(self.channels):
                raise ResumeStateError(f"the state mixes {len(state.get('children', ()))} channel(s); this mix has "
                                       f"{len(self.channels)}", field="children")
            epoch, levels, children = state["epoch"], list(state["levels"]), list(state["children"])
            if levels[-1] == consumer.count:
                saved = {int(c): v for c, v in state.get("draws", {}).items()}
                if consumer.index not in saved:
                    raise ResumeStateError(f"the mix state has no position for consumer {consumer.index}: load the "
                                           "merged state of every rank and worker", field="draws")
                draws, done = saved[consumer.index][0], list(saved[consumer.index][1])
            else:
                levels.append(consumer.count)
        reads = [ch.open(consumer, epoch, host=host, state=st) for ch, st in zip(self.channels, children)]
        return MixRead(self, consumer, epoch, levels, reads, draws, done)


class MixRead(Iterator[Any]):
    """One consumer's mixed records of one epoch; ``counts[i]`` records came from channel ``i``."""

    def __init__(self, mix: Mix, consumer: Split, epoch: int, levels: list[int], reads: list[ConsumerRead],
                 draws: int, done: list[bool]) -> None:
        self.mix, self.consumer, self.epoch, self.levels = mix, consumer, epoch, levels
        self.reads = reads
        # Invariant: draws made so far by this consumer at this level; done[i]: channel i is exhausted.
        self.draws = draws
        self.done = done
        self.counts = [0] * len(reads)
        #: The channel the last record came from.
        self.last = -1

    def __next__(self) -> Any:
        weights = self.mix.weights
        while True:
            live = [i for i, d in enumerate(self.done) if not d]
            if not live or (self.mix.stop == "first" and len(live) < len(self.done)):
                raise StopIteration
            u = draw(self.mix.seed, self.epoch, self.consumer.index, len(self.levels) - 1, self.draws)
            self.draws += 1
            total = sum(weights[i] for i in live)
            pick, acc = live[-1], 0.0
            for i in live:
                acc += weights[i] / total
                if u < acc:
                    pick = i
                    break
            try:
                record = next(self.reads[pick])
            except StopIteration:
                self.done[pick] = True
                continue
            self.counts[pick] += 1
            self.last = pick
            return record

    def close(self) -> None:
        for r in self.reads:
            r.close()

    def state_dict(self) -> dict:
        return {"version": STATE_VERSION, **self.mix.settings(), "epoch": self.epoch, "levels": list(self.levels),
                "draws": {self.consumer.index: [self.draws, list(self.done)]},
                "children": [r.state_dict() for r in self.reads]}

