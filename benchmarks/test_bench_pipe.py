"""Pipe reader and FIFO server against boto3 and s3fs: pytest-benchmark variant.

Same clients as ``benchmarks/pipe_bench.py`` (which interleaves rounds and
reports the endpoint's CPU; use it for the figures), at small default sizes
so that a run takes well under a minute on 2 cores. moto runs in a child
process (``channels.testing.services``, fixtures in ``conftest.py``), so this
process's CPU is the client's.

Run:
    .venv/bin/python -m pytest benchmarks/test_bench_pipe.py --benchmark-only -s
Full sizes (64 x 16 MiB, 2000 x 64 KiB, 5 rounds):
    CHANNELS_BENCH_FULL=1 .venv/bin/python -m pytest benchmarks/test_bench_pipe.py --benchmark-only -s
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time

import pytest
from pipe_bench import PEERS, FifoClient, PipeClient

from channels.bench.base import Target, reader
from channels.bench.report import versions
from channels.testing import KIB, MIB
from medians import median_seconds

FULL = os.environ.get("CHANNELS_BENCH_FULL") == "1"
LARGE = (64, 16 * MIB) if FULL else (8, 16 * MIB)
SMALL = (2000, 64 * KIB) if FULL else (200, 64 * KIB)
ROUNDS = 5 if FULL else 3


@pytest.fixture
def client():
    """``client(name, target)``: a call that reads the whole target once (peers prepared until the test ends)."""
    with contextlib.ExitStack() as stack:
        def make(name: str, target: Target):
            if name == "pipe":
                return PipeClient(target.endpoint_url, target.uri)
            if name == "fifo":
                return FifoClient(target.endpoint_url, target.uri)
            return reader(PEERS[name], target, stack)

        yield make


def _measure(benchmark, fn, total: int, objects: int) -> None:
    cpu: list[float] = []

    def run():
        c0 = time.process_time()
        out = fn()
        cpu.append(time.process_time() - c0 + getattr(fn, "consumer_cpu_s", 0.0))
        nbytes = out[0] if isinstance(out, tuple) else out
        assert nbytes == total

    benchmark.pedantic(run, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    median = median_seconds(benchmark)
    if median is None:  # --benchmark-disable: the run above was a smoke test, no figures
        return
    info = {"mb_per_s": round(total / median / 1e6, 1), "objects_per_s": round(objects / median, 1),
            "client_cpu_s_per_gb": round(statistics.median(cpu[-ROUNDS:]) / (total / 1e9), 3)}
    benchmark.extra_info.update(info, versions=versions())
    print(f"\n{benchmark.group} {benchmark.name}: {info}")


@pytest.mark.parametrize("name", ["pipe", "fifo", "boto3_8threads", "s3fs_open_read"])
def test_large_objects(benchmark, large, client, name):
    target, total = large
    benchmark.group = f"pipe {LARGE[0]} x {LARGE[1] // MIB} MiB"
    _measure(benchmark, client(name, target), total, len(target.keys))


@pytest.mark.parametrize("name", ["pipe", "boto3_8threads"])
def test_small_objects(benchmark, small, client, name):
    target, total = small
    benchmark.group = f"pipe {SMALL[0]} x {SMALL[1] // KIB} KiB"
    _measure(benchmark, client(name, target), total, len(target.keys))
