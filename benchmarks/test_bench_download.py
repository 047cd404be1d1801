"""File-mode download vs boto3 ``download_file`` on 8 threads vs s5cmd ``cp``
(pytest-benchmark; smaller sets than ``download_bench.py`` by default).

The runners and the moto server in a child process come from
``download_bench.py`` (the interleaved, medians-of-5 script the issue's figures
come from); this file puts the same runs under pytest-benchmark.

Run:
    .venv/bin/python -m pytest benchmarks/test_bench_download.py --benchmark-only -s
Full sizes (64 x 16 MiB, 2000 x 64 KiB, 5 rounds):
    CHANNELS_BENCH_FULL=1 .venv/bin/python -m pytest benchmarks/test_bench_download.py --benchmark-only -s
A summary with ratios goes to .benchmarks/download-summary.json.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

import download_bench as bench
from channels.testing import DUMMY_CREDENTIALS, KIB, MIB, Dataset, dummy_credentials, fill_bucket, uniform_sizes
from medians import median_seconds

FULL = os.environ.get("CHANNELS_BENCH_FULL") == "1"
SETS = {"large": (64, 16 * MIB) if FULL else (16, 16 * MIB),
        "small": (2000, 64 * KIB) if FULL else (400, 64 * KIB)}
ROUNDS = int(os.environ.get("CHANNELS_BENCH_ROUNDS", "5" if FULL else "3"))
CLIENTS = ("channels", "boto3", "s5cmd")
MEDIANS: dict[tuple[str, str], float] = {}


@pytest.fixture(scope="module")
def endpoint():
    """moto in a child process, both sets uploaded; its URL and a boto3 client."""
    import boto3
    import botocore.config

    server = bench.Server()
    try:
        with dummy_credentials():
            client = boto3.client("s3", endpoint_url=server.endpoint_url,
                                  region_name=DUMMY_CREDENTIALS["AWS_DEFAULT_REGION"],
                                  config=botocore.config.Config(max_pool_connections=64))
            for name, (count, size) in SETS.items():
                fill_bucket(client, f"bench-{name}", Dataset(name, uniform_sizes(count, size)),
                            content=lambda k, n: os.urandom(n), threads=4)
            yield server.endpoint_url, client
    finally:
        server.stop()


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
def test_download(benchmark, endpoint, tmp_path, name, client):
    url, boto = endpoint
    count, size = SETS[name]
    s5cmd, why = bench.find_s5cmd()
    if client == "s5cmd" and s5cmd is None:
        pytest.skip(why)
    run = {"channels": lambda d: bench.run_channels(url, f"bench-{name}", "data/", d),
           "boto3": lambda d: bench.run_boto3(url, f"bench-{name}", "data/", d, boto),
           "s5cmd": lambda d: bench.run_s5cmd(url, f"bench-{name}", "data/", d, s5cmd)}[client]
    dests: list[Path] = []

    def fresh_dest():
        if dests:  # the previous round's files, untimed
            bench.verify(dests[-1], count, size)
            bench.settle(dests[-1])
        dests.append(Path(tempfile.mkdtemp(prefix=f"dl-{client}-", dir=tmp_path)))
        return (dests[-1],), {}

    benchmark.pedantic(run, setup=fresh_dest, rounds=ROUNDS, iterations=1)
    bench.verify(dests[-1], count, size)
    shutil.rmtree(dests[-1])
    median = median_seconds(benchmark)
    if median is None:  # --benchmark-disable: the run above was a smoke test, no figures
        return
    MEDIANS[(name, client)] = median
    benchmark.extra_info.update(objects=count, bytes=count * size, mb_per_s=count * size / 1e6 / median,
                                objects_per_s=count / median)
    print(f"\n{name} {client}: {count * size / 1e6 / median:,.0f} MB/s, {count / median:,.0f} objects/s")
