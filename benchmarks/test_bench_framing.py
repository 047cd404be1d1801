"""Framing throughput from memory (DESIGN layer 5 acceptance figures).

Run: ``.venv/bin/python -m pytest benchmarks/test_bench_framing.py --benchmark-only``
(add ``--benchmark-json=out.json`` for the notebook). Each case frames one
in-memory object fed in 4 MiB chunks (a transport-sized piece), CRCs
checked, and consumes every record with a plain for loop. MB/s and records/s
come from the median round and land in ``extra_info``. Baselines, the limits
framing can approach: a copy into a new buffer (page faults included) and
crc32c over the same bytes.

Targets: TFRecord >= 1 GB/s on 64 KiB records, >= 500,000 records/s on 100 B.
"""

from __future__ import annotations

import os
import platform
import random
import sys

import crc32c
import numpy as np
import pytest

from channels.records import encode_recordio, encode_tfrecord, framer
from medians import median_seconds

CHUNK = 4 << 20
ROUNDS = 5


def _versions() -> dict[str, str]:
    return {"python": platform.python_version(), "numpy": np.__version__,
            "crc32c": crc32c.__version__, "crc32c_hardware": str(crc32c.hardware_based)}


def _object(name: str, size: int, count: int) -> bytes:
    rnd = random.Random(size)
    payloads = [rnd.randbytes(size) for _ in range(min(count, 64))]
    if name == "lines":
        alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789,"
        payloads = [bytes(rnd.choice(alphabet) for _ in range(size)) for _ in range(64)]
        return b"".join(payloads[i % 64] + b"\n" for i in range(count))
    encode = {"tfrecord": encode_tfrecord, "recordio": encode_recordio}[name]
    encoded = [encode(p) for p in payloads]
    return b"".join(encoded[i % len(encoded)] for i in range(count))


def _frame(name: str, chunks: list[memoryview]) -> int:
    f = framer(name, "bench")
    for chunk in chunks:
        for _ in f.feed(chunk):
            pass
    for _ in f.finish():
        pass
    return f.records_out


def _report(benchmark, label: str, nbytes: int, records: int) -> None:
    median = median_seconds(benchmark)
    if median is None:  # --benchmark-disable: the run above was a smoke test, no figures
        return
    mbps = nbytes / median / 1e6
    rps = records / median
    benchmark.extra_info.update({"MB_per_s": round(mbps, 1), "records_per_s": round(rps),
                                 "bytes": nbytes, "records": records, "chunk": CHUNK,
                                 **_versions()})
    print(f"\n{label}: {mbps:,.0f} MB/s, {rps:,.0f} records/s (median of {ROUNDS}, "
          f"{nbytes / 1e6:.0f} MB, {records:,} records; python {sys.version.split()[0]}, "
          f"numpy {np.__version__}, crc32c {crc32c.__version__} hw={crc32c.hardware_based})")


CASES = [
    ("tfrecord", 65536, 2048),      # 128 MiB
    ("tfrecord", 100, 400_000),     # 45 MB
    ("recordio", 65536, 2048),
    ("recordio", 100, 400_000),
    ("lines", 100, 400_000),
]


@pytest.mark.parametrize("name, size, count", CASES,
                         ids=[f"{n}-{s}B" for n, s, _ in CASES])
def test_framing(benchmark, name, size, count):
    data = _object(name, size, count)
    view = memoryview(data)
    chunks = [view[i:i + CHUNK] for i in range(0, len(data), CHUNK)]
    records = benchmark.pedantic(_frame, args=(name, chunks), rounds=ROUNDS, iterations=1,
                                 warmup_rounds=1)
    assert records == count
    _report(benchmark, f"{name} {size} B records", len(data), records)


@pytest.mark.parametrize("kind", ["memcpy", "crc32c"])
def test_baseline(benchmark, kind):
    data = os.urandom(128 << 20)
    work = bytearray if kind == "memcpy" else crc32c.crc32c
    benchmark.pedantic(work, args=(data,), rounds=ROUNDS, iterations=1)
    _report(benchmark, f"baseline {kind}", len(data), 0)
