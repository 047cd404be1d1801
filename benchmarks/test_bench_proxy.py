"""The latency proxy's own cost: is it ever the bottleneck? (pytest-benchmark)

The same 256 MiB (16 x 16 MiB) read by the transport (32 ranged GETs of
8 MiB in flight) straight from moto (``direct``), through the proxy in
pass-through (``local``), and through ``s3-like`` (20 ms first byte, 90 MB/s
per connection). Endpoint and proxy each run in their own process; their CPU
seconds per GB land in ``extra_info`` beside MB/s, with the library versions.
``local`` should be close to ``direct``: the proxy is then not what limits a
benchmark run through it.

Run: ``.venv/bin/python -m pytest benchmarks/test_bench_proxy.py --benchmark-only -s``
(``make bench`` runs every suite in benchmarks/).
"""

from __future__ import annotations

import pytest

from channels.bench.datasets import KIB, MIB, BenchDataset, ensure
from channels.bench.base import s3_client
from channels.testing.profiles import PROFILES
from channels.bench.report import format_versions, versions
from channels.testing.services import start_endpoint, start_proxies
from channels.listing import list_prefix
from channels.store import Store
from channels.testing import dummy_credentials
from channels.transport import Transport
from medians import median_seconds

DATA = BenchDataset("proxy", 16, 16 * MIB, 64 * KIB)
BUCKET = "proxy-bench"


@pytest.fixture(scope="module")
def services():
    with dummy_credentials(), start_endpoint() as endpoint, \
            start_proxies(endpoint.info["url"], [PROFILES["local"], PROFILES["s3-like"]]) as proxies:
        ensure(s3_client(endpoint.info["url"]), BUCKET, DATA)
        urls = {"direct": endpoint.info["url"], **{k: v[0] for k, v in proxies.info["urls"].items()}}
        yield endpoint, proxies, urls


@pytest.mark.parametrize("profile", ["direct", "local", "s3-like"])
def test_proxy_throughput(benchmark, services, profile):
    endpoint, proxies, urls = services
    store = Store(urls[profile])
    refs = list_prefix(f"s3://{BUCKET}/{DATA.prefix}", store=store).refs
    transport = Transport(store)
    cpu = {"server": 0.0, "proxy": 0.0}

    def read() -> int:
        s0, p0 = endpoint.cpu(), proxies.cpu()
        n = sum(len(c.data) for c in transport.stream(refs))
        cpu["server"] += endpoint.cpu() - s0
        cpu["proxy"] += proxies.cpu() - p0
        return n

    read()  # warm
    cpu.update(server=0.0, proxy=0.0)
    n = benchmark.pedantic(read, rounds=5, iterations=1)
    transport.close()
    assert n == DATA.total_bytes
    median = median_seconds(benchmark)
    if median is None:  # --benchmark-disable: the run above was a smoke test, no figures
        return
    gb = 5 * DATA.total_bytes / 1e9
    benchmark.extra_info.update(profile=profile, mb_per_s=DATA.total_bytes / median / 1e6,
                                server_cpu_s_per_gb=cpu["server"] / gb, proxy_cpu_s_per_gb=cpu["proxy"] / gb,
                                versions=versions())
    print(f"\n{profile:>8}: {DATA.total_bytes / median / 1e6:,.0f} MB/s (median of 5), server "
          f"{cpu['server'] / gb:.2f} s/GB, proxy {cpu['proxy'] / gb:.2f} s/GB; {format_versions(versions())}")
