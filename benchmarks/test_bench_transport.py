"""Transport.stream against the best baseline clients, same endpoint, same run.

moto's S3 server (channels.testing.LocalS3) runs in a child process, so that
the time.process_time() of this process is the client's CPU alone (moto in
a thread would also share the client's GIL). Large objects: MB/s and client
CPU-seconds per GB; small objects: objects/s.

Run (default sizes take about a minute on 2 cores):
    .venv/bin/python -m pytest benchmarks/test_bench_transport.py --benchmark-only -s
Full sizes (64 x 16 MiB, 2000 x 64 KiB, 5 rounds):
    CHANNELS_BENCH_FULL=1 .venv/bin/python -m pytest benchmarks/test_bench_transport.py \
        --benchmark-only -s --benchmark-json=out/transport.json
Only the interleaved tests (every client once per round, order rotating):
    ... -k interleaved
The summary with ratios comes from the interleaved tests (fair on a shared
machine) and goes to .benchmarks/transport-summary.json.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import peers
from medians import round_seconds
from channels.listing import ObjectRef
from channels.transport import TransportConfig
from channels.testing import (DUMMY_CREDENTIALS, KIB, MIB, Dataset, dummy_credentials, fill_bucket, free_port,
                              uniform_sizes)

FULL = os.environ.get("CHANNELS_BENCH_FULL") == "1"
LARGE = (64, 16 * MIB) if FULL else (16, 16 * MIB)
SMALL = (2000, 64 * KIB) if FULL else (400, 64 * KIB)
ROUNDS = int(os.environ.get("CHANNELS_BENCH_ROUNDS", "5" if FULL else "3"))

_SERVER = """
import sys, time
from channels.testing import LocalS3
LocalS3(int(sys.argv[1])).start()
print("ready", flush=True)
time.sleep(1e9)
"""


@dataclass(frozen=True)
class Stored:
    endpoint: str
    bucket: str
    keys: list[str]
    refs: list[ObjectRef]
    total: int


@pytest.fixture(scope="module")
def endpoint():
    """LocalS3 in a child process; its URL."""
    port = free_port()
    env = {**os.environ, **DUMMY_CREDENTIALS}
    proc = subprocess.Popen([sys.executable, "-c", _SERVER, str(port)], env=env, stdout=subprocess.PIPE,
                            text=True)
    try:
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("moto server did not start")
        with dummy_credentials():  # for our transport, which reads the environment
            yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _store(endpoint: str, bucket: str, count: int, size: int) -> Stored:
    client = peers._boto3_client(endpoint, 16)
    dataset = Dataset(bucket, uniform_sizes(count, size))
    fill_bucket(client, bucket, dataset, threads=4)
    refs = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            refs.append(ObjectRef(f"s3://{bucket}/{obj['Key']}", obj["Size"], obj["ETag"].strip('"'),
                                  obj["Key"]))
    return Stored(endpoint, bucket, dataset.keys(), refs, dataset.total_bytes)


@pytest.fixture(scope="module")
def large(endpoint) -> Stored:
    return _store(endpoint, "bench-large", *LARGE)


@pytest.fixture(scope="module")
def small(endpoint) -> Stored:
    return _store(endpoint, "bench-small", *SMALL)


@pytest.fixture(scope="module")
def summary():
    """Interleaved results by dataset; printed and written at the end."""
    results: dict[str, dict] = {}
    yield results
    if not results:
        return
    lines = ["", "transport benchmark summary (interleaved rounds, medians, same endpoint):"]
    ratios = {}
    for kind, by_client in results.items():
        for client, r in by_client.items():
            lines.append(f"  {kind}/{client:<24} {r['mb_per_s']:8.0f} MB/s {r['objects_per_s']:8.0f} obj/s "
                         f"{r['cpu_s_per_gb']:6.2f} client CPU-s/GB")
        ours = by_client.get("channels")
        for client, r in by_client.items():
            if ours and not client.startswith("channels"):
                ratios[f"{kind}: channels / {client}"] = round(ours["mb_per_s"] / r["mb_per_s"], 2)
    lines += [f"  {k}: {v}x" for k, v in ratios.items()]
    print("\n".join(lines))
    out = Path(".benchmarks")
    out.mkdir(exist_ok=True)
    (out / "transport-summary.json").write_text(json.dumps(
        {"full": FULL, "rounds": ROUNDS, "results": results, "ratios": ratios,
         "versions": peers.versions()}, indent=2))


def _figures(stored: Stored, seconds: list[float], cpu: list[float]) -> dict:
    median = statistics.median(seconds)
    return {"mb_per_s": stored.total / median / 1e6, "objects_per_s": len(stored.keys) / median,
            "cpu_s_per_gb": statistics.median(cpu) / (stored.total / 1e9),
            "seconds": seconds, "objects": len(stored.keys), "bytes": stored.total}


def _timed(fn, stored: Stored) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    got = fn()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert got == stored.total
    return seconds, cpu


def _measure(benchmark, name: str, fn, stored: Stored) -> None:
    """One client alone, ROUNDS rounds after a warm-up (pytest-benchmark's table)."""
    cpu: list[float] = []
    benchmark.pedantic(lambda: cpu.append(_timed(fn, stored)[1]), rounds=ROUNDS, iterations=1,
                       warmup_rounds=1)
    seconds = round_seconds(benchmark)
    if seconds is None:  # --benchmark-disable: the run above was a smoke test, no figures
        return
    result = _figures(stored, seconds, cpu[-ROUNDS:])
    benchmark.extra_info.update(result, versions=peers.versions())
    print(f"\n{name}: {result['mb_per_s']:.0f} MB/s, {result['objects_per_s']:.0f} objects/s, "
          f"{result['cpu_s_per_gb']:.2f} client CPU-s/GB")


def _interleaved(benchmark, summary, kind: str, clients: dict, stored: Stored) -> None:
    """Every client once per round, the order rotating: load that comes and
    goes on a shared machine hits all clients alike. The summary's source."""
    times: dict[str, list[tuple[float, float]]] = {c: [] for c in clients}

    def run():
        for fn in clients.values():  # warm-up: connections, credentials, buffers
            fn(stored)
        names = list(clients)
        for r in range(ROUNDS):
            for name in names[r % len(names):] + names[: r % len(names)]:
                times[name].append(_timed(lambda: clients[name](stored), stored))

    benchmark.pedantic(run, rounds=1, iterations=1)
    summary[kind] = {name: _figures(stored, [t for t, _ in ts], [c for _, c in ts])
                     for name, ts in times.items()}
    benchmark.extra_info.update(summary[kind], versions=peers.versions())


LARGE_CLIENTS = {
    "channels": lambda s: peers.channels_stream(s.endpoint, s.refs),
    # Two ranged GETs per 16 MiB object: moto reads the whole object for each.
    "channels_8MiB_parts": lambda s: peers.channels_stream(s.endpoint, s.refs, TransportConfig(part_size=8 * MIB)),
    "boto3_8threads": lambda s: peers.boto3_threads(s.endpoint, s.bucket, s.keys, threads=8),
    "s3fs_open_read": lambda s: peers.s3fs_open_read(s.endpoint, s.bucket, s.keys),
}
SMALL_CLIENTS = {
    "channels": lambda s: peers.channels_stream(s.endpoint, s.refs),
    "boto3_8threads": lambda s: peers.boto3_threads(s.endpoint, s.bucket, s.keys, threads=8),
}


@pytest.mark.parametrize("client", list(LARGE_CLIENTS))
def test_large_objects(benchmark, large, client):
    benchmark.group = f"{LARGE[0]} x {LARGE[1] // MIB} MiB"
    _measure(benchmark, f"large/{client}", lambda: LARGE_CLIENTS[client](large), large)


@pytest.mark.parametrize("client", list(SMALL_CLIENTS))
def test_small_objects(benchmark, small, client):
    benchmark.group = f"{SMALL[0]} x {SMALL[1] // KIB} KiB"
    _measure(benchmark, f"small/{client}", lambda: SMALL_CLIENTS[client](small), small)


def test_large_objects_interleaved(benchmark, summary, large):
    benchmark.group = "interleaved"
    _interleaved(benchmark, summary, "large", LARGE_CLIENTS, large)


def test_small_objects_interleaved(benchmark, summary, small):
    benchmark.group = "interleaved"
    _interleaved(benchmark, summary, "small", SMALL_CLIENTS, small)
