"""Resuming an epoch mid-way: bytes fetched after the resume, and time to the first record.

moto's S3 server runs in a child process (``channels.testing.services``).
A TFRecord dataset (fixed-size records, so the bytes left are known
exactly) is read by 4 ranks x 2 workers = 8 consumers, simulated in this
process, each with a reader (transport) of its own, as DataLoader workers
have. Each round:

* ``fresh``: every consumer, alone, starts the epoch: seconds from making its
  source (listing included) to its first record;
* the consumers read in turn until ``--kill`` of the epoch's records are
  out, and the merged state is saved;
* ``resume``: every consumer, alone, with a new source, loads the state:
  seconds to its first record; then it reads the rest of its share, and
  the bytes its transport fetched are summed.

Reports medians over rounds (per round, the median over consumers):
time to first record fresh and resumed, their ratio (the issue asks <= 1.2),
and bytes fetched after the resume / bytes left in the epoch, with the
excess in parts per consumer (the issue asks <= 1.0 + one part per
consumer). Writes every round to JSON.

Usage:
    python benchmarks/resume_bench.py [--rounds 5] [--objects 32] [--object-mib 4]
        [--kill 0.4] [--json .benchmarks/resume_bench.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import boto3

from channels.adapters import Consumers, PipeReaderSource, Split, merge_states
from channels.records import encode_tfrecord
from channels.testing import DUMMY_CREDENTIALS, MIB, dummy_credentials
from channels.testing.services import start_endpoint
from channels.transport import TransportConfig

RANKS, WORKERS = 4, 2
PAYLOAD = 4096 - 16  # a framed record is 4 KiB
BUCKET = "resume-bench"


def fill(url: str, objects: int, object_bytes: int) -> tuple[str, int]:
    client = boto3.client("s3", endpoint_url=url, region_name=DUMMY_CREDENTIALS["AWS_DEFAULT_REGION"])
    client.create_bucket(Bucket=BUCKET)
    per = object_bytes // (PAYLOAD + 16)
    for o in range(objects):
        body = b"".join(encode_tfrecord(f"{o:04d}:{r:06d}|".encode().ljust(PAYLOAD, b".")) for r in range(per))
        client.put_object(Bucket=BUCKET, Key=f"tf/o{o:04d}.tfrecord", Body=body)
    return f"s3://{BUCKET}/tf/", objects * per


def source(uri: str, config: TransportConfig) -> PipeReaderSource:
    return PipeReaderSource(uri, framing="tfrecord", shuffle_seed=1, config=config)


def first_record(uri: str, config: TransportConfig, c: int, n: int, state: dict | None):
    """(seconds from a new source to consumer c's first record, the read, its source)."""
    t0 = time.perf_counter()
    src = source(uri, config)
    read = Consumers(src, policy="none").open(Split(c, n), 0, state=state)
    next(read)
    return time.perf_counter() - t0, read, src


def one_round(uri: str, records: int, config: TransportConfig, kill: float) -> dict:
    n = RANKS * WORKERS
    fresh = []
    for c in range(n):  # each alone, as the resumed ones below: no other stream reading meanwhile
        dt, read, src = first_record(uri, config, c, n, None)
        fresh.append(dt)
        read.close()
        src.close()
    sources = [source(uri, config) for _ in range(n)]
    reads = [Consumers(src, policy="none").open(Split(c, n), 0) for c, src in enumerate(sources)]
    out = 0
    live = list(reads)
    while out < kill * records and live:
        for r in list(live):
            try:
                next(r)
                out += 1
            except StopIteration:
                live.remove(r)
    state = merge_states(*[r.state_dict() for r in reads])
    for r, src in zip(reads, sources):
        r.close()
        src.close()
    left = records - out
    resumed, fetched = [], 0
    for c in range(n):
        dt, read, src = first_record(uri, config, c, n, state)
        resumed.append(dt)
        got = 1 + sum(1 for _ in read)
        left -= got
        fetched += src.reader().counts["bytes_in"]
        src.close()
    assert left == 0, f"{left} records not delivered after the resume"
    remaining = (records - out) * (PAYLOAD + 16)
    return {"fresh_first_record_s": statistics.median(fresh), "resumed_first_record_s": statistics.median(resumed),
            "bytes_remaining": remaining, "bytes_fetched_after_resume": fetched,
            "fetched_over_remaining": fetched / remaining,
            "excess_parts_per_consumer": (fetched - remaining) / config.part_size / n}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--objects", type=int, default=32)
    p.add_argument("--object-mib", type=float, default=4)
    p.add_argument("--kill", type=float, default=0.4)
    p.add_argument("--json", default=".benchmarks/resume_bench.json")
    args = p.parse_args()
    config = TransportConfig(part_size=1 * MIB, budget_bytes=16 * MIB, max_workers=4)
    with dummy_credentials(), start_endpoint() as child:
        url = child.info["url"]
        os.environ["AWS_ENDPOINT_URL"] = url
        uri, records = fill(url, args.objects, int(args.object_mib * MIB))
        rounds = [one_round(uri, records, config, args.kill) for _ in range(args.rounds)]
    med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    print(f"{args.objects} x {args.object_mib} MiB TFRecord, {records} records; {RANKS} ranks x {WORKERS} workers; "
          f"part {config.part_size // MIB} MiB; killed at {args.kill:.0%}; medians of {args.rounds} rounds")
    print(f"time to first record: fresh {med['fresh_first_record_s'] * 1e3:.1f} ms, resumed "
          f"{med['resumed_first_record_s'] * 1e3:.1f} ms, ratio "
          f"{med['resumed_first_record_s'] / med['fresh_first_record_s']:.2f} (asked <= 1.2)")
    print(f"bytes fetched after the resume / bytes left: {med['fetched_over_remaining']:.4f} "
          f"({med['excess_parts_per_consumer']:+.3f} parts per consumer; asked <= 1.0 + 1 part per consumer)")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"python": sys.version.split()[0], "machine": platform.machine(),
                                           "args": vars(args), "rounds": rounds, "medians": med}, indent=1))


if __name__ == "__main__":
    main()
