"""FastFile mode (view and FUSE mount) against Pipe and s3fs, same endpoint, same run (pytest-benchmark).

The measuring code lives in fastfile_bench.py (also a script). moto runs in
a child process; the mount in another, mounted anew before each round (cold
page cache) and timed for reading only.

Run (16 x 16 MiB, 3 rounds, 10,000 objects to list; a few minutes on 2 cores):
    .venv/bin/python -m pytest benchmarks/test_bench_fastfile.py --benchmark-only -s
Full sizes (64 x 16 MiB, 5 rounds, 100,000 objects to list; the upload alone takes minutes):
    CHANNELS_BENCH_FULL=1 .venv/bin/python -m pytest benchmarks/test_bench_fastfile.py --benchmark-only -s
A summary with ratios to Pipe goes to .benchmarks/fastfile-pytest-summary.json.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

import fastfile_bench as fb
from channels.bench.report import versions
from channels.testing import MIB, tiny_sizes, uniform_sizes

FULL = os.environ.get("CHANNELS_BENCH_FULL") == "1"
OBJECTS = int(os.environ.get("FASTFILE_BENCH_OBJECTS", 64 if FULL else 16))
ROUNDS = int(os.environ.get("CHANNELS_BENCH_ROUNDS", 5 if FULL else 3))
LIST_N = int(os.environ.get("FASTFILE_BENCH_LIST_N", 100_000 if FULL else 10_000))
THREADS = 4

fuse = pytest.mark.skipif(not os.path.exists("/dev/fuse") or not shutil.which("fusermount3"),
                          reason="FUSE unavailable: /dev/fuse or fusermount3 missing")


@pytest.fixture(scope="module")
def endpoint():
    child, url = fb.start_server()
    with child:
        yield url


@pytest.fixture(scope="module")
def data(endpoint):
    keys = fb.upload(endpoint, "seq/", uniform_sizes(OBJECTS, 16 * MIB))
    return f"s3://{fb.BUCKET}/seq/", keys, OBJECTS * 16 * MIB


@pytest.fixture(scope="module")
def mountpoint():
    path = tempfile.mkdtemp(prefix="channels-bench-mnt-")
    yield path
    os.rmdir(path)


@pytest.fixture(scope="module")
def summary():
    results: dict[str, float] = {}
    extra: dict[str, dict] = {}
    yield results, extra
    pipe = next((v for k, v in results.items() if k.startswith(("Pipe", "Transport"))), None)
    print(f"\nFastFile benchmark ({OBJECTS} x 16 MiB, 1 MiB reads, medians of {ROUNDS}):")
    for name, mbs in results.items():
        print(f"  {name:<34} {mbs:8.0f} MB/s" + (f"  {mbs / pipe:5.2f}x Pipe" if pipe else ""))
    for name, info in extra.items():
        print(f"  {name}: {info}")
    out = Path(".benchmarks")
    out.mkdir(exist_ok=True)
    (out / "fastfile-pytest-summary.json").write_text(json.dumps(
        {"objects": OBJECTS, "rounds": ROUNDS, "mb_per_s": results, "other": extra,
         "vs_pipe": {k: v / pipe for k, v in results.items()} if pipe else None,
         "versions": versions()}, indent=2))


def _sequential(benchmark, summary, name: str, total: int, fn, setup=None) -> None:
    seconds: list[float] = []

    def run(*args):
        got, s = fn(*args)
        assert got == total
        seconds.append(s)

    benchmark.pedantic(run, setup=setup, rounds=ROUNDS, iterations=1)
    mbs = total / sorted(seconds)[len(seconds) // 2] / 1e6
    benchmark.extra_info.update(mb_per_s=mbs, objects=OBJECTS, versions=versions())
    summary[0][name] = mbs


def test_pipe(benchmark, summary, data):
    uri, _, total = data
    label = fb.read_pipe(uri)[0]
    _sequential(benchmark, summary, label, total, lambda: fb.timed(lambda: fb.read_pipe(uri)[1]))


def test_s3fs_open_read(benchmark, summary, endpoint, data):
    _, _, total = data
    with contextlib.ExitStack() as stack:
        read = fb.s3fs_reader(endpoint, "seq/", stack)
        _sequential(benchmark, summary, "s3fs open().read()", total, lambda: fb.timed(read))


@pytest.mark.parametrize("readers", [1, THREADS])
def test_view(benchmark, summary, data, readers):
    uri, _, total = data
    _sequential(benchmark, summary, f"view, {readers} reader(s)", total, lambda: fb.read_view(uri, readers))


@fuse
@pytest.mark.parametrize("readers", [1, THREADS])
@pytest.mark.parametrize("flags", [(), ("--page-cache",)], ids=["default", "page-cache"])
def test_mount(benchmark, summary, data, mountpoint, readers, flags):
    uri, _, total = data
    procs: list = []

    def setup():  # not timed: unmount the last round's mount, mount anew
        while procs:
            fb.stop_mount(procs.pop(), mountpoint)
        procs.append(fb.start_mount(uri, mountpoint, flags))
        return (), {}

    def read():
        names = sorted(os.listdir(mountpoint))
        return fb.cat(lambda n: open(os.path.join(mountpoint, n), "rb", buffering=0), names, readers)

    try:
        _sequential(benchmark, summary, " ".join(("mount", *flags)) + f", {readers} reader(s)", total, read,
                    setup=setup)
    finally:
        while procs:
            fb.stop_mount(procs.pop(), mountpoint)


def test_random_4k_reads(benchmark, summary, data):
    uri, _, _ = data
    result = benchmark.pedantic(fb.random_ratio, args=(uri,), rounds=1, iterations=1)
    benchmark.extra_info.update(result)
    summary[1]["random 4 KiB reads"] = result
    assert result["fetched_per_read"] <= 4 and result["spot_checks_ok"] == 20


def test_peak_rss_16_files(benchmark, summary, data):
    uri, _, _ = data
    result = benchmark.pedantic(fb.peak_rss, args=(uri, 128 * MIB), rounds=1, iterations=1)
    benchmark.extra_info.update(result)
    summary[1]["peak RSS"] = result
    assert result["peak_rss"] <= result["budget_bytes"] + 150 * MIB


@fuse
def test_mount_to_first_listing(benchmark, summary, endpoint, mountpoint):
    fb.upload(endpoint, "many/", tiny_sizes(LIST_N, 10), threads=64)
    result = benchmark.pedantic(fb.listing_time, args=(f"s3://{fb.BUCKET}/many/", mountpoint),
                                rounds=1, iterations=1)
    benchmark.extra_info.update(result)
    summary[1]["listing"] = result
    assert result["objects"] == LIST_N
