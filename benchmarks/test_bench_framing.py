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
import sys

import crc32c
import numpy as np
import pytest

from channels.bench.report import versions
from framing_cases import CASES, CHUNK, chunks, frame, make_object
from medians import median_seconds

ROUNDS = 5


def _report(benchmark, label: str, nbytes: int, records: int) -> None:
    median = median_seconds(benchmark)
    if median is None:  # --benchmark-disable: the run above was a smoke test, no figures
        return
    mbps = nbytes / median / 1e6
    rps = records / median
    benchmark.extra_info.update({"MB_per_s": round(mbps, 1), "records_per_s": round(rps),
                                 "bytes": nbytes, "records": records, "chunk": CHUNK,
                                 **versions(), "crc32c_hardware": str(crc32c.hardware_based)})
    print(f"\n{label}: {mbps:,.0f} MB/s, {rps:,.0f} records/s (median of {ROUNDS}, "
          f"{nbytes / 1e6:.0f} MB, {records:,} records; python {sys.version.split()[0]}, "
          f"numpy {np.__version__}, crc32c {crc32c.__version__} hw={crc32c.hardware_based})")


@pytest.mark.parametrize("name, size, count", CASES,
                         ids=[f"{n}-{s}B" for n, s, _ in CASES])
def test_framing(benchmark, name, size, count):
    data = make_object(name, size, count)
    records = benchmark.pedantic(frame, args=(name, chunks(data)), rounds=ROUNDS, iterations=1,
                                 warmup_rounds=1)
    assert records == count
    _report(benchmark, f"{name} {size} B records", len(data), records)


@pytest.mark.parametrize("kind", ["memcpy", "crc32c"])
def test_baseline(benchmark, kind):
    data = os.urandom(128 << 20)
    work = bytearray if kind == "memcpy" else crc32c.crc32c
    benchmark.pedantic(work, args=(data,), rounds=ROUNDS, iterations=1)
    _report(benchmark, f"baseline {kind}", len(data), 0)
