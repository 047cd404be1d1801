"""Pipe reader and FIFO server against boto3 and s3fs: pytest-benchmark variant.

Same clients as ``benchmarks/pipe_bench.py`` (which interleaves rounds and
reports the endpoint's CPU; use it for the figures), at small default sizes
so that a run takes well under a minute on 2 cores. moto runs in a child
process (``channels.testing.services``), so this process's CPU is the client's.

Run:
    .venv/bin/python -m pytest benchmarks/test_bench_pipe.py --benchmark-only -s
Full sizes (64 x 16 MiB, 2000 x 64 KiB, 5 rounds):
    CHANNELS_BENCH_FULL=1 .venv/bin/python -m pytest benchmarks/test_bench_pipe.py --benchmark-only -s
"""

from __future__ import annotations

import os
import statistics
import time

import peers
import pytest
from pipe_bench import FifoClient, PipeClient

from channels.testing.services import start_endpoint
from channels.testing import DUMMY_CREDENTIALS, KIB, MIB, Dataset, dummy_credentials, fill_bucket, uniform_sizes
from medians import median_seconds

FULL = os.environ.get("CHANNELS_BENCH_FULL") == "1"
LARGE = (64, 16 * MIB) if FULL else (8, 16 * MIB)
SMALL = (2000, 64 * KIB) if FULL else (200, 64 * KIB)
ROUNDS = 5 if FULL else 3


@pytest.fixture(scope="module")
def endpoint():
    with dummy_credentials(), start_endpoint() as child:
        os.environ.setdefault("AWS_ACCESS_KEY_ID", DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"])
        yield child.info["url"]


def _fill(url: str, bucket: str, count: int, size: int) -> tuple[str, list[str], int]:
    dataset = Dataset(bucket, uniform_sizes(count, size))
    fill_bucket(peers._boto3_client(url, 16), bucket, dataset, content=lambda k, n: os.urandom(n), threads=4)
    return f"s3://{bucket}/{dataset.prefix}", dataset.keys(), dataset.total_bytes


@pytest.fixture(scope="module")
def large(endpoint):
    return (endpoint, "bench-large", *_fill(endpoint, "bench-large", *LARGE))


@pytest.fixture(scope="module")
def small(endpoint):
    return (endpoint, "bench-small", *_fill(endpoint, "bench-small", *SMALL))


def _client(name: str, url: str, bucket: str, uri: str, keys: list[str]):
    if name == "pipe":
        return PipeClient(url, uri)
    if name == "fifo":
        return FifoClient(url, uri)
    if name == "boto3_8threads":
        return lambda: peers.boto3_threads(url, bucket, keys, threads=8)
    return lambda: peers.s3fs_open_read(url, bucket, keys)


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
    benchmark.extra_info.update(info, versions=peers.versions())
    print(f"\n{benchmark.group} {benchmark.name}: {info}")


@pytest.mark.parametrize("client", ["pipe", "fifo", "boto3_8threads", "s3fs_open_read"])
def test_large_objects(benchmark, large, client):
    url, bucket, uri, keys, total = large
    benchmark.group = f"pipe {LARGE[0]} x {LARGE[1] // MIB} MiB"
    _measure(benchmark, _client(client, url, bucket, uri, keys), total, len(keys))


@pytest.mark.parametrize("client", ["pipe", "boto3_8threads"])
def test_small_objects(benchmark, small, client):
    url, bucket, uri, keys, total = small
    benchmark.group = f"pipe {SMALL[0]} x {SMALL[1] // KIB} KiB"
    _measure(benchmark, _client(client, url, bucket, uri, keys), total, len(keys))
