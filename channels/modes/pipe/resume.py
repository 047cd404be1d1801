"""Where a reader stands in a list of objects, and which objects a saved state was made over.

A resumed read must neither repeat nor skip a record, and must not re-read
what was delivered. Three small values make that possible:

* :class:`Start`: where the read of one object begins (records already
  delivered, and a record boundary at or before the next one);
* :class:`Cursor`: the position of a running read (which object of the list,
  how many of its records are out, the last boundary the framer passed),
  read between records and saved as four integers;
* :func:`fingerprint`: the objects a state was made over (names, versions,
  and a small invertible sketch), so that :func:`check_fingerprint` can say
  which object changed instead of restarting the epoch silently.

The sketch is an invertible Bloom lookup table: 3 tables of 12 cells, each
cell the count, XOR of ids and XOR of check words of the objects hashed to
it (an object's id hashes its URL, size, ETag and inline bytes). The saved
sketch minus the current one holds only the objects that differ; peeling it
names up to about a dozen of them. Beyond that the error gives the counts.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from channels.errors import ResumeStateError
from channels.listing import ObjectRef

#: Cells per table, and tables, of the sketch (36 cells, 720 bytes).
SKETCH_CELLS = 12
SKETCH_TABLES = 3
#: Objects named at most in one error message.
NAMED = 5

_CELL = struct.Struct("<iQQ")


@dataclass(frozen=True, slots=True)
class Start:
    """Where a (resumed) read of one object begins.

    Attributes:
        record: records of the object delivered already (they are skipped).
        offset: an object byte offset where a record begins, at or before
            record ``record`` (0: the object's start).
        before: how many records come before ``offset``.

    Invariant: ``0 <= before <= record``; a reader that can seek fetches
    from ``offset`` and skips ``record - before`` records (at most a chunk's
    worth); one that cannot (Gzip, Parquet) reads from 0 and skips ``record``.
    """

    record: int = 0
    offset: int = 0
    before: int = 0

    def __post_init__(self) -> None:
        if not (0 <= self.before <= self.record and self.offset >= 0):
            raise ValueError(f"bad start {self}: need 0 <= before <= record and offset >= 0")


class Cursor:
    """The position of a read over a list of objects; read it between records.

    Invariant: every record of ``items[:item]`` is delivered, and ``record``
    records of ``items[item]``; that object's bytes from ``offset`` on hold
    its records from number ``before`` on. ``item == len(items)`` at the end.
    """

    __slots__ = ("item", "record", "offset", "before")

    def __init__(self, item: int = 0, record: int = 0, offset: int = 0, before: int = 0) -> None:
        self.item, self.record, self.offset, self.before = item, record, offset, before

    def at(self, item: int, start: Start) -> None:
        """Move to the start of ``items[item]``."""
        self.item, self.record, self.offset, self.before = item, start.record, start.offset, start.before

    def start(self) -> Start:
        """Where a resumed read of the current object begins."""
        return Start(self.record, self.offset, self.before)

    def state(self) -> list[int]:
        """``[item, record, offset, before]``: picklable, JSON-able."""
        return [self.item, self.record, self.offset, self.before]

    @classmethod
    def from_state(cls, state: Sequence[int], *, field: str = "position") -> Cursor:
        """The cursor a :meth:`state` describes.

        Raises:
            ResumeStateError: not four integers >= 0 with before <= record.
        """
        if (not isinstance(state, (list, tuple)) or len(state) != 4
                or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in state)
                or state[3] > state[1]):
            raise ResumeStateError(f"state field {field!r} must be [item, record, offset, before] (integers >= 0, "
                                   f"before <= record), got {state!r}", field=field)
        return cls(*state)

    def __repr__(self) -> str:
        return f"Cursor(item={self.item}, record={self.record}, offset={self.offset}, before={self.before})"


# ------------------------------------------------------------------ fingerprint

def _object_id(ref: ObjectRef) -> int:
    h = hashlib.blake2b(f"{ref.url}\0{ref.size}\0{ref.etag}\0".encode(), digest_size=8)
    if ref.inline is not None:
        h.update(ref.inline)
    return int.from_bytes(h.digest(), "little")


def _check_word(oid: int) -> int:
    return int.from_bytes(hashlib.blake2b(oid.to_bytes(8, "little"), digest_size=8, person=b"chk").digest(),
                          "little")


def _cells(oid: int) -> list[int]:
    return [t * SKETCH_CELLS + ((oid >> (16 * t)) & 0xFFFF) % SKETCH_CELLS for t in range(SKETCH_TABLES)]


def _sketch(ids: Sequence[int]) -> list[list[int]]:
    cells = [[0, 0, 0] for _ in range(SKETCH_CELLS * SKETCH_TABLES)]
    for oid in ids:
        chk = _check_word(oid)
        for c in _cells(oid):
            cell = cells[c]
            cell[0] += 1
            cell[1] ^= oid
            cell[2] ^= chk
    return cells


def _digest(parts: Sequence[str]) -> str:
    h = hashlib.blake2b(digest_size=12)
    for p in parts:
        h.update(p.encode())
        h.update(b"\0")
    return h.hexdigest()


def fingerprint(refs: Sequence[ObjectRef]) -> dict:
    """What a state records of the objects it was made over (about 1 KiB).

    Returns:
        ``{"objects": n, "names": digest of the URLs in order, "versions":
        digest of URLs, sizes, ETags and inline values, "sketch": base64}``.
    """
    ids = [_object_id(r) for r in refs]
    packed = b"".join(_CELL.pack(n, i, c) for n, i, c in _sketch(ids))
    return {"objects": len(refs), "names": _digest([r.url for r in refs]),
            "versions": _digest([f"{oid:016x}" for oid in ids]), "sketch": base64.b64encode(packed).decode()}


def _peel(saved: str, refs: Sequence[ObjectRef]) -> tuple[list[str], int] | None:
    """``(current objects that differ, saved objects that differ)``, or None when
    the sketch holds too many differences to name them."""
    try:
        raw = base64.b64decode(saved, validate=True)
        cells = [list(_CELL.unpack_from(raw, i * _CELL.size)) for i in range(SKETCH_CELLS * SKETCH_TABLES)]
    except (ValueError, struct.error, TypeError):
        return None
    ids = [_object_id(ref) for ref in refs]
    by_id = dict(zip(ids, (ref.url for ref in refs)))
    for cell, now in zip(cells, _sketch(ids)):
        cell[0] -= now[0]
        cell[1] ^= now[1]
        cell[2] ^= now[2]
    current: list[str] = []
    gone = 0
    progress = True
    while progress:
        progress = False
        for cell in cells:
            if cell[0] in (1, -1) and cell[2] == _check_word(cell[1]):
                oid, sign = cell[1], cell[0]
                if sign < 0:
                    current.append(by_id.get(oid, f"object id {oid:016x}"))
                else:
                    gone += 1
                chk = _check_word(oid)
                for c in _cells(oid):
                    cells[c][0] -= sign
                    cells[c][1] ^= oid
                    cells[c][2] ^= chk
                progress = True
    if any(cell != [0, 0, 0] for cell in cells):
        return None
    return sorted(current), gone


def check_fingerprint(saved: dict, refs: Sequence[ObjectRef], label: str) -> None:
    """Raise unless ``refs`` are the objects ``saved`` (a :func:`fingerprint`) was made over.

    Raises:
        ResumeStateError: other objects (``field="objects"``) or changed
            versions (``field="versions"``); ``details["objects"]`` lists the
            URLs of current objects that differ, where the sketch can name them.
    """
    if not isinstance(saved, dict) or not {"objects", "names", "versions", "sketch"} <= set(saved):
        raise ResumeStateError(f"the state has no valid record of the objects of {label}: it is not from this "
                               f"version of channels, or was edited", field="listing")
    now = fingerprint(refs)
    if now["versions"] == saved["versions"]:
        return
    peeled = _peel(saved["sketch"], refs)
    named = ""
    objects: list[str] = []
    if peeled is not None:
        objects, gone = peeled
        if objects:
            more = f" and {len(objects) - NAMED} more" if len(objects) > NAMED else ""
            named = f": {', '.join(objects[:NAMED])}{more}"
        if gone and not objects:
            named = f": {gone} object(s) listed at save time are gone"
    if now["names"] == saved["names"]:
        raise ResumeStateError(
            f"objects of {label} changed since the state was saved (new ETag or size){named}; the saved position "
            f"no longer points at the same records: start the epoch afresh (load no state) or restore the objects",
            field="versions", objects=objects)
    raise ResumeStateError(
        f"{label} lists other objects than when the state was saved ({now['objects']} now, {saved['objects']} "
        f"then; differing{named or ' objects: too many to name'}); the state belongs to another dataset or the "
        f"data changed: start the epoch afresh (load no state) or point at the data it was saved with",
        field="objects", objects=objects)


#: The layout of saved states; a state of another version is refused, naming both.
STATE_VERSION = 1
_MISSING = object()


def check_settings(state: dict, expected: dict, label: str) -> None:
    """Raise unless every field of ``expected`` has the same value in ``state``.

    Raises:
        ResumeStateError: names each differing field with both values
            (``details["field"]`` is the first, ``details["fields"]`` all).
    """
    if not isinstance(state, dict):
        raise ResumeStateError(f"a state must be a dict, not {type(state).__name__}", field="state")
    if state.get("version", _MISSING) != STATE_VERSION:
        raise ResumeStateError(f"the state has layout version {state.get('version')!r}; this channels reads "
                               f"version {STATE_VERSION}: it was saved by another release", field="version")
    diffs = [k for k, v in expected.items() if state.get(k, _MISSING) != v]
    if diffs:
        said = "; ".join(f"{k}: saved {state.get(k)!r}, here {expected[k]!r}" for k in diffs)
        raise ResumeStateError(f"the state does not fit {label}: {said}; load it where the same settings are "
                               f"used, or start the epoch afresh (load no state)", field=diffs[0], fields=diffs)
