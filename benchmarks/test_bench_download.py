"""File-mode download vs boto3 ``download_file`` on 8 threads vs s5cmd ``cp``
(pytest-benchmark; smaller sets than ``download_bench.py`` by default).

The clients (channels.bench runners) come from ``download_bench.py`` (the
interleaved, medians-of-5 script the issue's figures come from); this file
puts the same runs under pytest-benchmark, moto in a child process
(``conftest.py``).

Run:
    .venv/bin/python -m pytest benchmarks/test_bench_download.py --benchmark-only -s
Full sizes (64 x 16 MiB, 2000 x 64 KiB, 5 rounds):
    CHANNELS_BENCH_FULL=1 .venv/bin/python -m pytest benchmarks/test_bench_download.py --benchmark-only -s
A summary with ratios goes to .benchmarks/download-summary.json.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

import download_bench as bench
from channels.bench import peers
from channels.bench.base import read_once
from channels.testing import KIB, MIB
from medians import median_seconds

FULL = os.environ.get("CHANNELS_BENCH_FULL") == "1"
LARGE = (64, 16 * MIB) if FULL else (16, 16 * MIB)
SMALL = (2000, 64 * KIB) if FULL else (400, 64 * KIB)
SETS = {"large": LARGE, "small": SMALL}
ROUNDS = int(os.environ.get("CHANNELS_BENCH_ROUNDS", "5" if FULL else "3"))
CLIENTS = tuple(bench.CLIENTS)
MEDIANS: dict[tuple[str, str], float] = {}


@pytest.fixture(scope="module", autouse=True)
def summary():
    yield
    out: dict = {}
    for name in SETS:
        unit = "mb_per_s" if name == "large" else "objects_per_s"
        mine = MEDIANS.get((name, "channels"))
        for base in ("boto3", "s5cmd"):
            theirs = MEDIANS.get((name, base))
            if mine and theirs:
                out[f"{name} channels/{base} {unit}"] = round(theirs / mine, 3)  # seconds ratio inverted
    if out:
        Path(".benchmarks").mkdir(exist_ok=True)
        Path(".benchmarks/download-summary.json").write_text(json.dumps(out, indent=2))
        print("\n" + "\n".join(f"{k}: {v:.2f}x" for k, v in out.items()))


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("name", list(SETS))
def test_download(benchmark, request, tmp_path, name, client):
    count, size = SETS[name]
    if client == "s5cmd" and peers.s5cmd_path() is None:
        pytest.skip(peers.S5CMD_MISSING)
    target, _ = request.getfixturevalue(name)  # conftest.py's large or small set
    target = dataclasses.replace(target, workdir=str(tmp_path))
    with bench.CLIENTS[client](target) as body:
        done = []

        def settled() -> None:
            if done:  # the previous round's files, untimed
                bench.verify(body, count, size)
                bench.settle(body)
            done.append(True)

        benchmark.pedantic(read_once, args=(body,), setup=settled, rounds=ROUNDS, iterations=1)
        bench.verify(body, count, size)
    median = median_seconds(benchmark)
    if median is None:  # --benchmark-disable: the run above was a smoke test, no figures
        return
    MEDIANS[(name, client)] = median
    benchmark.extra_info.update(objects=count, bytes=count * size, mb_per_s=count * size / 1e6 / median,
                                objects_per_s=count / median)
    print(f"\n{name} {client}: {count * size / 1e6 / median:,.0f} MB/s, {count / median:,.0f} objects/s")
