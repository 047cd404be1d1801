"""Transport.stream against the best baseline clients, same endpoint, same run.

moto's S3 server (the ``endpoint`` fixture of conftest.py) runs in a child process, so that
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

import contextlib
import functools
import json
import os
import statistics
import time
from pathlib import Path

import pytest

from channels.bench import ours, peers
from channels.bench.base import Target, reader
from channels.bench.report import versions
from channels.testing import KIB, MIB
from channels.transport import TransportConfig
from medians import round_seconds

FULL = os.environ.get("CHANNELS_BENCH_FULL") == "1"
LARGE = (64, 16 * MIB) if FULL else (16, 16 * MIB)
SMALL = (2000, 64 * KIB) if FULL else (400, 64 * KIB)
ROUNDS = int(os.environ.get("CHANNELS_BENCH_ROUNDS", "5" if FULL else "3"))

#: The clients, each a runner of channels.bench (ours, or a peer as ``channels bench`` runs it).
LARGE_CLIENTS = {
    "channels": ours.stream,
    # Two ranged GETs per 16 MiB object: moto reads the whole object for each.
    "channels_8MiB_parts": functools.partial(ours.stream, config=TransportConfig(part_size=8 * MIB)),
    "boto3_8threads": peers.boto3_get,
    "s3fs_open_read": peers.s3fs_open_read,
}
SMALL_CLIENTS = {name: LARGE_CLIENTS[name] for name in ("channels", "boto3_8threads")}


@pytest.fixture(scope="module")
def prepared(endpoint):
    """``prepared(clients, stored)``: each client's runner prepared on the target, as a call returning
    the bytes read; prepared once per module, as a job makes its clients once."""
    cache: dict = {}
    with contextlib.ExitStack() as stack:
        def get(clients: dict, stored) -> dict:
            target, _ = stored
            for name, prepare in clients.items():
                if (name, target.bucket) not in cache:
                    cache[(name, target.bucket)] = reader(prepare, target, stack)
            return {name: cache[(name, target.bucket)] for name in clients}

        yield get


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
         "versions": versions()}, indent=2))


def _figures(stored: tuple[Target, int], seconds: list[float], cpu: list[float]) -> dict:
    target, total = stored
    median = statistics.median(seconds)
    return {"mb_per_s": total / median / 1e6, "objects_per_s": len(target.keys) / median,
            "cpu_s_per_gb": statistics.median(cpu) / (total / 1e9),
            "seconds": seconds, "objects": len(target.keys), "bytes": total}


def _timed(fn, stored: tuple[Target, int]) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    got = fn()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert got == stored[1]
    return seconds, cpu


def _measure(benchmark, name: str, fn, stored: tuple[Target, int]) -> None:
    """One client alone, ROUNDS rounds after a warm-up (pytest-benchmark's table)."""
    cpu: list[float] = []
    benchmark.pedantic(lambda: cpu.append(_timed(fn, stored)[1]), rounds=ROUNDS, iterations=1,
                       warmup_rounds=1)
    seconds = round_seconds(benchmark)
    if seconds is None:  # --benchmark-disable: the run above was a smoke test, no figures
        return
    result = _figures(stored, seconds, cpu[-ROUNDS:])
    benchmark.extra_info.update(result, versions=versions())
    print(f"\n{name}: {result['mb_per_s']:.0f} MB/s, {result['objects_per_s']:.0f} objects/s, "
          f"{result['cpu_s_per_gb']:.2f} client CPU-s/GB")


def _interleaved(benchmark, summary, kind: str, clients: dict, stored: tuple[Target, int]) -> None:
    """Every client once per round, the order rotating: load that comes and
    goes on a shared machine hits all clients alike. The summary's source."""
    times: dict[str, list[tuple[float, float]]] = {c: [] for c in clients}

    def run():
        for fn in clients.values():  # warm-up: connections, credentials, buffers
            fn()
        names = list(clients)
        for r in range(ROUNDS):
            for name in names[r % len(names):] + names[: r % len(names)]:
                times[name].append(_timed(clients[name], stored))

    benchmark.pedantic(run, rounds=1, iterations=1)
    summary[kind] = {name: _figures(stored, [t for t, _ in ts], [c for _, c in ts])
                     for name, ts in times.items()}
    benchmark.extra_info.update(summary[kind], versions=versions())


@pytest.mark.parametrize("client", list(LARGE_CLIENTS))
def test_large_objects(benchmark, prepared, large, client):
    benchmark.group = f"{LARGE[0]} x {LARGE[1] // MIB} MiB"
    _measure(benchmark, f"large/{client}", prepared({client: LARGE_CLIENTS[client]}, large)[client], large)


@pytest.mark.parametrize("client", list(SMALL_CLIENTS))
def test_small_objects(benchmark, prepared, small, client):
    benchmark.group = f"{SMALL[0]} x {SMALL[1] // KIB} KiB"
    _measure(benchmark, f"small/{client}", prepared({client: SMALL_CLIENTS[client]}, small)[client], small)


def test_large_objects_interleaved(benchmark, summary, prepared, large):
    benchmark.group = "interleaved"
    _interleaved(benchmark, summary, "large", prepared(LARGE_CLIENTS, large), large)


def test_small_objects_interleaved(benchmark, summary, prepared, small):
    benchmark.group = "interleaved"
    _interleaved(benchmark, summary, "small", prepared(SMALL_CLIENTS, small), small)
