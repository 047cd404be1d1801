"""The saved state of an epoch's consumers: its layout, merging, and checking on load.

A state is a small dict of plain values (picklable, JSON-able)::

    {"version": 1, "kind": "channels.consumers", "epoch": 3,
     "seed": 7, "split": "bytes", "policy": "pad", "framing": "tfrecord",
     "compression": "None", "scope": "job", "host": None,
     "objects": {...},                       # fingerprint of the listing, about 1 KiB
     "levels": [[8, None], [6, [[i, r, o, b], ...]]],   # consumers per level, and each cut
     "positions": {5: [item, record, offset, before, delivered, pads]}}

``levels`` grows by one entry each time the epoch is resumed on another
consumer count (see :mod:`channels.adapters.plan`); ``positions`` holds the
consumers of the last level that this state saw: one in a DataLoader
worker's state, all of them after :func:`merge_states`.

Loading (:func:`resume`): the settings must be the same (another seed,
split, policy, framing, compression, scope or host is an error naming both
values), the objects too (other objects, changed ETags or sizes: an error
naming them). On the same consumer count each consumer continues from its
own position; on another count every position of the last level must be
there, and the remainder is planned again among the new consumers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from channels.errors import ResumeStateError
from channels.listing import ObjectRef
from channels.modes.pipe.resume import (
    STATE_VERSION,
    Cursor,
    check_fingerprint,
    check_settings,
)

KIND = "channels.consumers"
MIX_KIND = "channels.mix"
#: A consumer's position: the cursor's four integers, then records and pads delivered at this level.
FRESH = (0, 0, 0, 0, 0, 0)


def make_state(settings: dict, objects: dict, epoch: int, levels: Sequence[tuple[int, Sequence[Cursor] | None]],
               positions: dict[int, Sequence[int]]) -> dict:
    """A state (see the module docstring)."""
    return {"version": STATE_VERSION, "kind": KIND, "epoch": epoch, **settings, "objects": objects,
            "levels": [[n, None if cut is None else [c.state() for c in cut]] for n, cut in levels],
            "positions": {int(c): list(p) for c, p in positions.items()}}


def found(obj: Any, kind: str = KIND) -> Iterable[dict]:
    """Every state of ``kind`` inside ``obj`` (a state, a DataLoader's state dict, lists of
    them); the states inside another kind's (a mix's children) are not searched."""
    if isinstance(obj, dict):
        if obj.get("kind") == kind:
            yield obj
            return
        if obj.get("kind") in (KIND, MIX_KIND):
            return
        for v in obj.values():
            yield from found(v, kind)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from found(v, kind)


def merge_states(*states: Any) -> dict:
    """One state with every consumer's position, from the states of all ranks and workers.

    Takes consumer states (or mix states: :func:`channels.adapters.mix.merge_mix_states`),
    or anything holding them: the dicts of
    ``StatefulDataLoader.state_dict()`` (each worker's state is inside), the
    list ``torch.distributed.all_gather_object`` fills, a mix of those.

    Raises:
        ResumeStateError: no state found; states of different epochs,
            settings, objects or levels; or one consumer with two different
            positions.
    """
    if any(True for obj in states for _ in found(obj, MIX_KIND)):
        from channels.adapters.mix import merge_mix_states

        return merge_mix_states(*states)
    states_ = [s for obj in states for s in found(obj)]
    if not states_:
        raise ResumeStateError("no channels consumer state found in what was given: pass the states that "
                               "ChannelDataset.state_dict() or StatefulDataLoader.state_dict() returned",
                               field="state")
    first = states_[0]
    merged = {k: v for k, v in first.items() if k != "positions"}
    positions: dict[int, list[int]] = {}
    for s in states_:
        for key in merged:
            if _normal(s.get(key)) != _normal(merged[key]):
                raise ResumeStateError(f"the states to merge differ in {key!r} ({merged[key]!r} and {s.get(key)!r}): "
                                       "merge only the states saved together, at one step", field=key)
        for c, pos in s.get("positions", {}).items():
            c = int(c)
            if c in positions and positions[c] != list(pos):
                raise ResumeStateError(f"consumer {c} has two positions ({positions[c]} and {list(pos)}): the "
                                       "states come from different steps; merge the states saved at one step",
                                       field="positions", consumer=c)
            positions[c] = list(pos)
    merged["positions"] = positions
    return merged


def _normal(value: Any) -> Any:
    """Lists for tuples, all the way down (a state may have been through JSON or pickle)."""
    if isinstance(value, (list, tuple)):
        return [_normal(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _normal(v) for k, v in value.items()}
    return value


def _position(pos: Any, consumer: int) -> list[int]:
    field = f"positions[{consumer}]"
    if not isinstance(pos, (list, tuple)) or len(pos) != 6:
        raise ResumeStateError(f"state field {field} must be six integers, got {pos!r}", field=field)
    Cursor.from_state(list(pos[:4]), field=field)
    if not all(isinstance(v, int) and v >= 0 for v in pos[4:]):
        raise ResumeStateError(f"state field {field} must end with records and pads delivered (>= 0), got {pos!r}",
                               field=field)
    return list(pos)


def _levels(state: dict) -> list[tuple[int, list[Cursor] | None]]:
    levels = state.get("levels")
    if not isinstance(levels, list) or not levels:
        raise ResumeStateError(f"state field 'levels' must be a non-empty list, got {levels!r}", field="levels")
    out: list[tuple[int, list[Cursor] | None]] = []
    for k, level in enumerate(levels):
        if (not isinstance(level, (list, tuple)) or len(level) != 2 or not isinstance(level[0], int) or level[0] < 1
                or (k == 0) != (level[1] is None)):
            raise ResumeStateError(f"state field levels[{k}] must be [consumers, cut] (cut null only at level 0), "
                                   f"got {level!r}", field="levels")
        cut = None
        if k:
            if len(level[1]) != out[-1][0]:
                raise ResumeStateError(f"levels[{k}] cuts {len(level[1])} consumers; level {k - 1} had {out[-1][0]}",
                                       field="levels")
            cut = [Cursor.from_state(list(c), field=f"levels[{k}]") for c in level[1]]
        out.append((level[0], cut))
    return out


def check(state: dict, settings: dict, refs: Sequence[ObjectRef], label: str) -> list[tuple[int, list[Cursor] | None]]:
    """Check what does not depend on the consumer count; the state's levels.

    Raises:
        ResumeStateError: another layout version, kind or setting, other
            objects or changed ones, a malformed epoch or levels.
    """
    check_settings(state, settings, label)
    if state.get("kind") != KIND:
        raise ResumeStateError(f"not a channels consumer state (kind {state.get('kind')!r})", field="kind")
    check_fingerprint(state.get("objects"), refs, label)
    epoch = state.get("epoch")
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        raise ResumeStateError(f"the state's epoch must be an integer >= 0, got {epoch!r}", field="epoch")
    return _levels(state)


def resume(state: dict, settings: dict, refs: Sequence[ObjectRef], label: str,
           consumers: int) -> tuple[int, list[tuple[int, list[Cursor] | None]], dict[int, list[int]] | None]:
    """``(epoch, levels, positions)`` for ``consumers`` consumers resuming ``state``.

    ``positions`` is None on another consumer count: a level is added, and
    every new consumer starts its share of the remainder.

    Raises:
        ResumeStateError: the state does not fit (see the module docstring),
            or, on another consumer count, lacks some consumer's position.
    """
    levels = check(state, settings, refs, label)
    epoch = state["epoch"]
    raw = state.get("positions")
    if not isinstance(raw, dict):
        raise ResumeStateError(f"state field 'positions' must be a dict, got {type(raw).__name__}", field="positions")
    saved = levels[-1][0]
    positions = {int(c): _position(p, int(c)) for c, p in raw.items()}
    bad = sorted(c for c in positions if not 0 <= c < saved)
    if bad:
        raise ResumeStateError(f"positions of consumers {bad} are out of range for the state's {saved} consumers",
                               field="positions")
    if consumers == saved:
        return epoch, levels, positions
    missing = sorted(set(range(saved)) - set(positions))
    if missing:
        shown = ", ".join(map(str, missing[:8])) + (" ..." if len(missing) > 8 else "")
        raise ResumeStateError(
            f"resuming {saved} consumers' epoch on {consumers} consumers needs the position of every one of the "
            f"{saved}; {len(missing)} missing (consumers {shown}): merge the states of all ranks and workers with "
            f"channels.adapters.merge_states and load the result", field="positions", missing=missing)
    cut = [Cursor(*positions[c][:4]) for c in range(saved)]
    return epoch, [*levels, (consumers, cut)], None
