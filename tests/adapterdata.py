"""Small datasets in every framing, and an in-process job of ranks x workers, for the adapters' tests.

Every record carries a unique id ("<object>:<record>"), so a test can say
which records came out, how often, and which were pads.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Sequence
from pathlib import Path

from channels.adapters import Consumers, Split, merge_states
from channels.records import encode_recordio, encode_tfrecord

FRAMINGS = ("tfrecord", "recordio", "lines", "parquet")


def record_id(record) -> str:
    """The id of a record (bytes, or a Parquet batch: the ids of its rows)."""
    if hasattr(record, "column"):
        return ",".join(record.column("id").to_pylist())
    return bytes(record).split(b"|", 1)[0].decode()


def encode(framing: str, ids: Sequence[str], pad: int) -> bytes:
    """One object holding records ``ids`` (each padded with ``pad`` filler bytes)."""
    payloads = [f"{i}|".encode() + b"x" * pad for i in ids]
    if framing == "tfrecord":
        return b"".join(encode_tfrecord(p) for p in payloads)
    if framing == "recordio":
        return b"".join(encode_recordio(p) for p in payloads)
    if framing == "lines":
        return b"".join(p + b"\n" for p in payloads)
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = io.BytesIO()
    pq.write_table(pa.table({"id": list(ids), "pad": ["x" * pad] * len(ids)}), out, row_group_size=3)
    return out.getvalue()


def write_dataset(root: Path, framing: str, records_per_object: Sequence[int], *, compressed: bool = False,
                  pad: int = 40) -> list[str]:
    """Objects ``o00``, ``o01``... under ``root``; the ids of every record (Parquet: of every batch)."""
    root.mkdir(parents=True, exist_ok=True)
    ids: list[str] = []
    for o, n in enumerate(records_per_object):
        rec = [f"o{o:02d}:{r:03d}" for r in range(n)]
        body = encode(framing, rec, pad)
        (root / f"o{o:02d}").write_bytes(gzip.compress(body, 1) if compressed else body)
        if framing == "parquet":  # a record is a batch, as pyarrow cuts them
            from channels.records import iter_parquet_batches

            ids.extend(record_id(b) for b in iter_parquet_batches(io.BytesIO(body)))
        else:
            ids.extend(rec)
    return ids


def interleave(reads: list, limit: int) -> list:
    """Up to ``limit`` records from ``reads`` taken in turn (as a DataLoader takes its workers' batches)."""
    out: list = []
    live = list(reads)
    while live and len(out) < limit:
        for r in list(live):
            if len(out) >= limit:
                break
            try:
                out.append(next(r))
            except StopIteration:
                live.remove(r)
    return out


def run_job(consumers: Consumers, ranks: int, workers: int, epoch: int, *, limit: int | None = None,
            state: dict | None = None) -> tuple[list, dict]:
    """``ranks`` x ``workers`` consumers read (at most ``limit`` records in all), in process.

    Returns:
        The records (tagged pairs when the consumers tag pads) and the
        merged state of every consumer at that point.
    """
    count = ranks * max(workers, 1)
    reads = [consumers.open(Split(c, count), epoch, state=state) for c in range(count)]
    try:
        got = interleave(reads, limit if limit is not None else 1 << 62)
        return got, merge_states(*[r.state_dict() for r in reads])
    finally:
        for r in reads:
            r.close()
