"""FastFile mode against Pipe and s3fs, same endpoint, same run.

What it measures (MB/s are medians over rounds, modes interleaved per round):

- sequential reads of every object, ``cat``-like (1 MiB ``readinto`` a reused buffer):
  through the Python view (one reader thread, and ``--threads`` readers),
  through FUSE mounts (same two; ``--mounts`` picks them: the default mount,
  ``--page-cache``, ``--direct-io``, ``--fuse-api high-level`` (libfuse's
  high-level API instead of the low-level one), and the default mount over the
  system's libfuse where ``make system-deps`` built 3.17), against Pipe mode's reader
  (``PipeReader(framing="raw")``; ``Transport.stream`` if pipe.py is absent,
  labelled so) and s3fs ``open().read()`` one object after another; each
  mode's ratio to Pipe and each mount's to the view, and the CPU seconds per
  GiB each process spent (this one: the reader, and the view when it is in
  process; the mount's; moto's);
- random 4 KiB reads through the view: bytes fetched per byte returned;
- time from starting ``channels mount`` to the first listing of its root, on
  a prefix of ``--list-objects`` objects (100,000 by default; uploading them
  to moto takes minutes: pass a smaller number, or 0 to skip);
- peak RSS of a process reading 16 files at once through one view, against
  its budget.

moto's server runs in a child process (so it does not share our GIL), each
mount in another (as ``python -m channels mount ... --foreground``). Every
reader is measured in its steady state, as over a training job's epochs: made
once, warmed by an untimed pass; the mount's page cache is dropped after each
pass, so every pass reads through FUSE (see :func:`sequential`).

Run: .venv/bin/python benchmarks/fastfile_bench.py [--objects 64 --size-mib 16 --rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes.util
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from channels.bench import peers
from channels.bench.base import Target, reader, s3_client
from channels.bench.report import format_versions, versions
from channels.modes.fastfile.libfuse import ENV as LIBFUSE_ENV
from channels.modes.fastfile.libfuse import project_library
from channels.modes.fastfile.mount import is_mounted, wait_mounted
from channels.modes.fastfile.readahead import KIB, MIB, ReadaheadConfig
from channels.modes.fastfile.view import FastFileView
from channels.testing import DUMMY_CREDENTIALS, Dataset, fill_bucket, tiny_sizes, uniform_sizes
from channels.testing.services import Child, start_endpoint

BUCKET = "bench-fastfile"
READ = 1 * MIB  # cat-like reads


def start_server() -> tuple[Child, str]:
    """moto in a child process; its URL, also set in this process's environment (mounts inherit it)."""
    child = start_endpoint()
    endpoint = child.info["url"]
    os.environ.update(DUMMY_CREDENTIALS, AWS_ENDPOINT_URL=endpoint)
    return child, endpoint


def upload(endpoint: str, prefix: str, sizes, threads: int = 16) -> list[str]:
    dataset = Dataset(BUCKET, sizes, prefix=prefix)
    fill_bucket(s3_client(endpoint, max(16, threads)), BUCKET, dataset, threads=threads)
    return dataset.keys()


# ---------------------------------------------------------------- readers

def timed(fn):
    t0 = time.perf_counter()
    n = fn()
    return n, time.perf_counter() - t0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of every thread of process ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def read_pipe(uri: str) -> tuple[str, int]:
    try:
        from channels.modes.pipe.reader import PipeReader
    except ImportError:
        from channels.listing import list_prefix
        from channels.transport import Transport

        with Transport() as t, t.stream(list_prefix(uri).refs) as s:
            return "Transport.stream (Pipe stand-in)", sum(len(c.data) for c in s)
    with PipeReader(uri, framing="raw") as reader:
        return "Pipe (PipeReader raw)", sum(len(piece) for piece in reader.epoch(0))


def cat(open_file, names: list[str], threads: int) -> tuple[int, float]:
    """Read every file as ``cat`` does (1 MiB ``readinto`` a reused buffer); (bytes, seconds)."""
    def one(name: str) -> int:
        n = 0
        buf = memoryview(bytearray(READ))
        with open_file(name) as f:
            while k := f.readinto(buf):
                n += k
        return n

    t0 = time.perf_counter()
    if threads == 1:
        n = sum(map(one, names))
    else:
        with ThreadPoolExecutor(threads) as pool:
            n = sum(pool.map(one, names))
    return n, time.perf_counter() - t0


def read_view(uri: str, threads: int, config: ReadaheadConfig | None = None) -> tuple[int, float]:
    """The view's listing counts (Pipe lists too)."""
    t0 = time.perf_counter()
    with FastFileView(uri, config=config) as view:
        n, _ = cat(view.open, view.listdir(""), threads)
    return n, time.perf_counter() - t0


#: Mounts ``--mounts`` can name: (``channels mount`` flags, extra environment).
MOUNTS = {
    "mount": ((), {}),
    "mount --page-cache": (("--page-cache",), {}),
    "mount --direct-io": (("--direct-io",), {}),
    "mount --fuse-api high-level": (("--fuse-api", "high-level"), {}),
    "mount (system libfuse)": ((), {LIBFUSE_ENV: ctypes.util.find_library("fuse3") or "libfuse3.so.3"}),
}


def default_mounts() -> str:
    """The default mount and the page-cache one; the system's libfuse too where 3.17 was built beside it."""
    return ",".join(["mount", "mount --page-cache"] + (["mount (system libfuse)"] if project_library() else []))


def start_mount(uri: str, mountpoint: str, extra: tuple[str, ...] = (), env: dict | None = None) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "channels", "mount", uri, mountpoint, "--foreground",
                             *extra], stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})
    if not wait_mounted(mountpoint, 900, alive=lambda: proc.poll() is None):
        raise RuntimeError(f"mount of {uri} did not come up (exit {proc.poll()})")
    return proc


def stop_mount(proc: subprocess.Popen, mountpoint: str) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    if is_mounted(mountpoint):
        raise RuntimeError(f"{mountpoint} still mounted after SIGTERM")


def read_mount(uri: str, mountpoint: str, threads: int, extra: tuple[str, ...] = ()) -> tuple[int, float]:
    """Mounted anew each time (a cold page cache); the time counts reading only."""
    proc = start_mount(uri, mountpoint, extra)
    try:
        names = sorted(os.listdir(mountpoint))
        return cat(lambda n: open(os.path.join(mountpoint, n), "rb", buffering=0), names, threads)
    finally:
        stop_mount(proc, mountpoint)


def s3fs_reader(endpoint: str, prefix: str, stack: contextlib.ExitStack):
    """The s3fs peer prepared on ``prefix`` (until ``stack`` closes): a call that returns the bytes read."""
    return reader(peers.s3fs_open_read, Target.listed(endpoint, BUCKET, prefix), stack)


# ---------------------------------------------------------------- the other figures

def random_ratio(uri: str, reads: int = 2000, seed: int = 0) -> dict:
    """Random 4 KiB reads across the objects: fetched / returned, and correctness against s3fs."""
    rng = random.Random(seed)
    with FastFileView(uri) as view:
        names = view.listdir("")
        files = {n: view.open(n) for n in names}
        checked = 0
        for i in range(reads):
            name = rng.choice(names)
            f = files[name]
            pos = rng.randrange(max(1, f.size - 4 * KIB))
            f.seek(pos)
            data = f.read(4 * KIB)
            if i < 20:  # spot-check against the object (the tests check every byte)
                want = view.transport.read_range(view.stat(name).ref, pos, pos + len(data))
                checked += bytes(want) == data
        s = view.stats.snapshot()
        for f in files.values():
            f.close()
    return {"reads": reads, "bytes_read": s["bytes_read"], "bytes_fetched": s["bytes_fetched"],
            "requests": s["requests"], "fetched_per_read": s["bytes_fetched"] / s["bytes_read"],
            "spot_checks_ok": checked}


def listing_time(uri: str, mountpoint: str) -> dict:
    t0 = time.perf_counter()
    proc = start_mount(uri, mountpoint)
    mounted = time.perf_counter() - t0
    try:
        count = len(os.listdir(mountpoint))
        first = time.perf_counter() - t0
    finally:
        stop_mount(proc, mountpoint)
    t0 = time.perf_counter()
    with FastFileView(uri) as view:
        view_count = len(view.listdir(""))
    return {"objects": count, "mount_to_first_listing_s": first, "mount_up_s": mounted,
            "view_first_listdir_s": time.perf_counter() - t0, "view_objects": view_count}


RSS_CHILD = """
import sys, threading
from concurrent.futures import ThreadPoolExecutor
from channels.modes.fastfile.view import FastFileView
from channels.modes.fastfile.readahead import ReadaheadConfig, MIB
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) * 1024
budget = int(sys.argv[2])
view = FastFileView(sys.argv[1], config=ReadaheadConfig(budget_bytes=budget))
names = view.listdir("")[:16]
import channels.transport, channels.modes.fastfile.readahead  # imports done: the baseline
before = hwm()
def one(n):
    with view.open(n) as f:
        while f.read(MIB):
            pass
with ThreadPoolExecutor(16) as pool:
    list(pool.map(one, names))
print(before, hwm(), view.budget.peak, len(names))
"""


def peak_rss(uri: str, budget: int) -> dict:
    out = subprocess.run([sys.executable, "-c", RSS_CHILD, uri, str(budget)], capture_output=True, text=True,
                         check=True).stdout.split()
    before, peak, budget_peak, files = map(int, out)
    return {"files": files, "budget_bytes": budget, "rss_before_reading": before, "peak_rss": peak,
            "budget_peak": budget_peak, "peak_minus_budget_mib": (peak - budget) / MIB}


# ---------------------------------------------------------------- main

def sequential(uri: str, endpoint: str, mnt: str, args, server_pid: int) -> dict:
    """Every mode once per round, interleaved, each in its steady state; medians.

    As over a training job's epochs, each reader is made once and warmed by
    an untimed pass: the Pipe reader (its transport keeps its buffers between
    epochs), each view (its budget keeps its windows' buffers), and each mount
    (one process for the whole run; after each pass every file's pages are
    dropped from the page cache with ``posix_fadvise(DONTNEED)``, so that the
    next pass reads through FUSE again, which the mount process's bytes
    written to /dev/fuse confirm). A reader made anew each round would time
    this VM's first touch of fresh memory instead (about 0.6 CPU-s per GiB:
    Pipe's 512 MiB of buffers alone cost ~0.3 s), and how much of it
    malloc's heap happens to spare depends on what ran before.

    Around each pass the CPU seconds of this process (the reader; the view
    too when it runs here), of the pass's mount process and of moto are
    taken from /proc.
    """
    total = args.objects * args.size_mib * MIB
    config, extra = None, ()
    if args.prefetch_files is not None:
        config = ReadaheadConfig(prefetch_files=args.prefetch_files)
        extra = ("--prefetch-files", str(args.prefetch_files))
    with contextlib.ExitStack() as stack:
        from channels.modes.pipe.reader import PipeReader

        pipe = stack.enter_context(PipeReader(uri, framing="raw"))
        s3fs_read = s3fs_reader(endpoint, "seq/", stack)
        views = {n: stack.enter_context(FastFileView(uri, config=config)) for n in (1, args.threads)}
        mounts = {}
        for i, kind in enumerate(k for k in args.mounts.split(",") if k):
            flags, env = MOUNTS[kind]
            point = f"{mnt}-{i}"
            os.makedirs(point, exist_ok=True)
            stack.callback(os.rmdir, point)  # after the unmount below
            mounts[kind] = (start_mount(uri, point, (*extra, *flags), env), point)
            stack.callback(stop_mount, *mounts[kind])
        points = [point for _, point in mounts.values()]
        names = sorted(os.listdir(points[0])) if points else []

        def mount_pass(threads: int, kind: str) -> tuple[int, float]:
            proc, point = mounts[kind]
            written = fuse_bytes_written(proc.pid)
            got = cat(lambda n: open(os.path.join(point, n), "rb", buffering=0), names, threads)
            served = fuse_bytes_written(proc.pid) - written
            if served < total:
                raise RuntimeError(f"the mount served {served} of {total} bytes: the rest came from the page "
                                   "cache, so the figure would not measure FastFile")
            drop_page_cache([os.path.join(point, n) for n in names])
            return got

        modes = {
            "Pipe (PipeReader raw)": (lambda: timed(lambda: sum(len(p) for p in pipe.epoch(0))), None),
            "s3fs open().read()": (lambda: timed(s3fs_read), None),
            "view, 1 reader": (lambda: cat(views[1].open, views[1].listdir(""), 1), None),
            f"view, {args.threads} readers": (lambda: cat(views[args.threads].open, views[args.threads].listdir(""),
                                                          args.threads), None),
        }
        for kind, (proc, _) in mounts.items():
            for n in (1, args.threads):
                modes[f"{kind}, {n} reader{'s' if n > 1 else ''}"] = (lambda n=n, k=kind: mount_pass(n, k), proc.pid)
        times: dict[str, list[float]] = {m: [] for m in modes}
        cpu: dict[str, dict[str, list[float]]] = {m: {"reader": [], "mount": [], "moto": []} for m in modes}
        for round_ in range(args.rounds + 1):  # round 0 warms every reader up, untimed
            for name, (fn, mount_pid) in modes.items():
                pids = {"reader": os.getpid(), "moto": server_pid, "mount": mount_pid}
                before = {k: cpu_seconds(pid) for k, pid in pids.items() if pid}
                got, seconds = fn()
                if got != total:
                    raise RuntimeError(f"{name} read {got} bytes, expected {total}")
                if round_:
                    times[name].append(seconds)
                    for k, pid in pids.items():
                        if pid:
                            cpu[name][k].append((cpu_seconds(pid) - before[k]) / (total / 2**30))
    pipe_label = "Pipe (PipeReader raw)"
    mbs = {m: total / statistics.median(t) / 1e6 for m, t in times.items()}
    # Each round's ratio to the same round's Pipe pass: what drifts between
    # rounds on a shared machine (Pipe alone ranges 2.9 to 3.3 GB/s) cancels.
    paired = {m: statistics.median(p / s for p, s in zip(times[pipe_label], t)) for m, t in times.items()}
    # Each mount against the view with as many readers, the same two ways.
    vs_view, vs_view_paired = {}, {}
    for m, t in times.items():
        if m.startswith("mount"):
            view = f"view, {m.rpartition(', ')[2]}"
            vs_view[m] = mbs[m] / mbs[view]
            vs_view_paired[m] = statistics.median(v / s for v, s in zip(times[view], t))
    cpu_per_gib = {m: {k: statistics.median(v) for k, v in d.items() if v} for m, d in cpu.items()}
    return {"objects": args.objects, "size_mib": args.size_mib, "rounds": args.rounds, "mb_per_s": mbs,
            "vs_pipe": {m: v / mbs[pipe_label] for m, v in mbs.items()}, "vs_pipe_paired": paired,
            "mount_vs_view": vs_view, "mount_vs_view_paired": vs_view_paired, "cpu_s_per_gib": cpu_per_gib,
            "seconds": times}


def fuse_bytes_written(pid: int) -> int:
    """Bytes a process wrote (``wchar``: the mount's replies to /dev/fuse)."""
    with open(f"/proc/{pid}/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("wchar:"))


def drop_page_cache(paths: list[str]) -> None:
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--objects", type=int, default=int(os.environ.get("FASTFILE_BENCH_OBJECTS", 64)))
    p.add_argument("--size-mib", type=int, default=16)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=4, help="parallel readers for the threaded figures")
    p.add_argument("--prefetch-files", type=int, default=None,
                   help="ReadaheadConfig.prefetch_files for the view and the mount (default: its default)")
    p.add_argument("--list-objects", type=int, default=int(os.environ.get("FASTFILE_BENCH_LIST_N", 100_000)))
    p.add_argument("--mounts", default=default_mounts(),
                   help=f"comma-separated mounts to measure, of: {', '.join(MOUNTS)} (default: %(default)s)")
    p.add_argument("--only", default="sequential,random,rss,listing",
                   help="comma-separated parts to run (default: %(default)s)")
    p.add_argument("--json", default=".benchmarks/fastfile-summary.json")
    args = p.parse_args(argv)
    server, endpoint = start_server()
    mnt = tempfile.mkdtemp(prefix="channels-bench-mnt-")
    results: dict = {"config": vars(args), "versions": versions()}
    try:
        parts = set(args.only.split(","))
        uri = f"s3://{BUCKET}/seq/"
        if parts & {"sequential", "random", "rss"}:
            upload(endpoint, "seq/", uniform_sizes(args.objects, args.size_mib * MIB))
        if "sequential" in parts:
            results["sequential"] = sequential(uri, endpoint, mnt, args, server.pid)
        if "random" in parts:
            results["random_4k"] = random_ratio(uri)
        if "rss" in parts:
            results["rss"] = peak_rss(uri, 128 * MIB)
        if "listing" in parts and args.list_objects:
            t0 = time.perf_counter()
            upload(endpoint, "many/", tiny_sizes(args.list_objects, 10), threads=64)
            results["listing"] = {"upload_s": time.perf_counter() - t0,
                                  **listing_time(f"s3://{BUCKET}/many/", mnt)}
    finally:
        server.stop()
        os.rmdir(mnt)
    report(results)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2))
    return results


def report(r: dict) -> None:
    """Print what was measured, section by section."""
    if s := r.get("sequential"):
        print(f"sequential reads, {s['objects']} x {s['size_mib']} MiB, 1 MiB reads, median of {s['rounds']} "
              "(x Pipe: ratio of the medians; paired: median of each round's ratio):")
        for m, v in s["mb_per_s"].items():
            line = f"  {m:<38} {v:6.0f} MB/s {s['vs_pipe'][m]:5.2f}x Pipe (paired {s['vs_pipe_paired'][m]:4.2f})"
            if m in s["mount_vs_view"]:
                line += f" {s['mount_vs_view'][m]:5.2f}x view (paired {s['mount_vs_view_paired'][m]:4.2f})"
            print(line)
        print("  CPU-s per GiB read (medians): reader process (with the view when in process) / mount / moto:")
        for m, c in s["cpu_s_per_gib"].items():
            mount = f"{c['mount']:5.2f}" if "mount" in c else "    -"
            print(f"  {m:<38} {c['reader']:5.2f} / {mount} / {c['moto']:5.2f}")
    if q := r.get("random_4k"):
        print(f"random 4 KiB reads: {q['reads']} reads, fetched {q['fetched_per_read']:.2f}x the bytes returned "
              f"({q['requests']} requests)")
    if m := r.get("rss"):
        print(f"peak RSS, {m['files']} files at once: {m['peak_rss'] / MIB:.0f} MiB with a "
              f"{m['budget_bytes'] / MIB:.0f} MiB budget (budget + {m['peak_minus_budget_mib']:.0f} MiB; "
              f"{m['rss_before_reading'] / MIB:.0f} MiB before reading)")
    if li := r.get("listing"):
        print(f"listing {li['objects']} objects: mount to first listing {li['mount_to_first_listing_s']:.1f} s "
              f"(view: {li['view_first_listdir_s']:.1f} s; upload took {li['upload_s']:.0f} s)")
    print(format_versions(r["versions"]))


if __name__ == "__main__":
    main()
