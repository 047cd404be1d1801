"""Our modes near and far, two versions of the code in the same run: what latency costs each mode.

Starts moto's S3 server and one latency proxy per profile, each in its own
process (``channels.testing.services``), uploads the bench's ``large``
dataset (``--objects`` x ``--size-mib`` MiB of RecordIO records), then, for
``--rounds`` rounds, for each profile, runs every client once per code tree
(``--tree NAME=PATH``: a checkout whose ``channels`` package the client
imports), interleaved: the client order rotates with the round, the tree
order with the client, so no tree always goes first.

Each measurement is a fresh process of the tree being measured, made by
this script (``child``): it lists the dataset and prepares the runner
untimed, reads the whole dataset once untimed (buffers touched, connections
open, as in any epoch after the first), then waits until this script has
read the endpoint's and proxy's CPU counters, and reads it once more, timed.
The clients are ``channels bench``'s own runners
(:mod:`channels.bench.ours`, :mod:`channels.bench.peers`):

* ``pipe``: PipeReader with RecordIO framing, every record counted;
* ``fastfile``: a FastFileView, each file opened in key order and read to
  its end in 1 MiB ``readinto`` calls;
* ``file``: File mode's download of the whole prefix to tmpfs, listing
  included (as s5cmd lists it);
* ``s5cmd``: ``s5cmd cp`` of the prefix to tmpfs with 8 workers (the bench's
  peer); ``s5cmd-default``: the same with s5cmd's own worker count (256).
* ``all-at-once``: every object asked for at once, one whole-object GET
  each on a connection of its own, into memory, nothing done with the
  bytes (the transport's ``read_into`` from a pool of as many threads): what
  this endpoint delivers through each profile to a reader that hides
  latency by asking for everything. Its far/local ratio is the rig's own,
  the reference for the modes' (on moto, which serves its GETs in turn,
  far below 1: see the README's *Near and far*). Its time to first byte is
  that of its first whole object.
  These do not depend on the code tree: they run once per round (tree
  ``peer``).

``rss16`` is another measurement, made under ``--rss-profile`` only: one
FastFileView (default config) and 16 threads each reading whole files; it
reports peak RSS (``VmHWM``) over what the process held before reading,
beside the view's budget.

Prints, per profile, the medians (MB/s with 1 MB = 10**6 bytes, time to
first byte, CPU seconds per GB of the client, the endpoint and the proxy,
peak RSS), the ratios the latency acceptance asks for (each mode far over
its own local figure, FastFile over Pipe, File over s5cmd) beside the
reference's (``all-at-once`` far over local, and Pipe and FastFile over it),
and the load average; writes every run to ``--json``.

``--endpoints N`` starts N moto servers with the same objects, and the
proxies send each request to the next in turn: moto serves one GET at a
time (each a copy of the whole object), S3 serves many side by side. The
endpoint CPU reported is theirs together; the ``direct`` profile talks to
the first.

``--host-mb-per-s N`` caps all connections of each proxied profile together
at N MB/s (a host's network interface), so that the network rather than
this machine's 2 cores bounds every profile: what is left between a far
profile and ``local`` is then latency the client did not hide.

Usage:
    python benchmarks/latency_bench.py [--rounds 3] [--profiles local,s3-like,s3-40ms]
        [--clients pipe,fastfile,file,s5cmd,all-at-once] [--tree new=. --tree base=/path/to/checkout]
        [--objects 32] [--size-mib 16] [--host-mb-per-s N] [--endpoints 1]
        [--json .benchmarks/latency_bench.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()
CLIENTS = ("pipe", "fastfile", "file", "s5cmd", "s5cmd-default", "all-at-once", "rss16")
#: Clients that do not depend on the code tree: measured once per round, as tree ``peer``.
PEERS = ("s5cmd", "s5cmd-default", "all-at-once")
READERS = 16


def vm_hwm() -> int:
    """Peak resident bytes of this process so far."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM"))


# ---------------------------------------------------------------- the measured process

def child(args: argparse.Namespace) -> None:
    """One measurement, in the tree on PYTHONPATH: prepare, read untimed, wait for 'go', read timed."""
    import contextlib

    from channels.bench.base import Meter, Target, read_once, scratch_root

    target = Target.listed(args.url, args.bucket, args.prefix, args.rpo or None, scratch_root())
    with contextlib.ExitStack() as stack:
        body = stack.enter_context(prepare(args.client, target))
        read_once(body)  # untimed: an epoch after the first
        reset = getattr(body, "reset", None)
        if reset is not None:
            reset()
        before = vm_hwm()
        print("warm", flush=True)
        sys.stdin.readline()  # the parent has read the other processes' counters
        kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        c0 = time.process_time()
        meter = Meter()
        body(meter)
        seconds = meter.stop()
        c1 = time.process_time()
        kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if reset is not None:
            reset()
        kids = (kids1.ru_utime + kids1.ru_stime) - (kids0.ru_utime + kids0.ru_stime)
        out = {"seconds": seconds, "bytes": meter.bytes, "objects": meter.objects, "ttfb_s": meter.ttfb,
               "client_cpu_s": c1 - c0 + kids, "hwm_before": before, "hwm": vm_hwm(),
               "counters": meter.counters, "budget": getattr(body, "budget", None)}
    print(json.dumps(out), flush=True)


def prepare(name: str, target):
    from channels.bench import peers
    from channels.bench.catalog import get_runner

    if name == "s5cmd-default":
        return peers.s5cmd_cp(target, workers=None)
    if name == "rss16":
        return readers16(target)
    if name == "all-at-once":
        return all_at_once(target)
    if name == "file":  # listing included in every tree (older trees default to a listing made untimed)
        from channels.bench import ours

        return ours.file(target, relist=True)
    return get_runner(name).prepare(target)


def readers16(target):
    """A FastFileView read by :data:`READERS` threads at once, each whole files."""
    import contextlib
    from concurrent.futures import ThreadPoolExecutor

    from channels.modes.fastfile.view import FastFileView

    @contextlib.contextmanager
    def prepared():
        view = FastFileView(target.uri, target.store())
        names = [p for _, _, files in view.walk() for p in files]

        def body(meter) -> None:
            def cat(name: str) -> None:
                buf = bytearray(1 << 20)
                with view.open(name) as f:
                    while n := f.readinto(buf):
                        meter.add(n)
                meter.add(0, 1)

            with ThreadPoolExecutor(READERS) as pool:
                list(pool.map(cat, names))
            meter.counters = {"budget_peak": view.budget.peak_held}

        body.budget = view.config.budget_bytes
        try:
            yield body
        finally:
            view.close()

    return prepared()


def all_at_once(target):
    """Every object of ``target`` asked for at once, each a whole-object GET on its own connection."""
    import contextlib
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from channels.transport import Transport, TransportConfig

    @contextlib.contextmanager
    def prepared():
        refs = target.listing.refs
        bufs = [bytearray(ref.size) for ref in refs]
        transport = Transport(target.store(), TransportConfig(max_connections=len(refs)))
        pool = ThreadPoolExecutor(len(refs))

        def one(i: int) -> int:
            transport.read_into(refs[i], 0, bufs[i])
            return refs[i].size

        def body(meter) -> None:
            for done in as_completed([pool.submit(one, i) for i in range(len(refs))]):
                meter.add(done.result(), 1)

        try:
            yield body
        finally:
            pool.shutdown()
            transport.close()

    return prepared()


# ---------------------------------------------------------------- the parent

def measure(args, tree: str, path: str, client: str, url: str, prefix: str, rpo: int, services) -> dict:
    env = dict(os.environ, PYTHONPATH=path, OPENBLAS_NUM_THREADS="1")
    argv = [sys.executable, str(HERE), "child", "--client", client, "--url", url, "--bucket", args.bucket,
            "--prefix", prefix, "--rpo", str(rpo)]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=path)
    try:
        line = proc.stdout.readline()
        if line.strip() != "warm":
            raise RuntimeError(f"{tree} {client}: the child said {line!r} (exit {proc.wait()})")
        endpoints, proxies = services
        s0, p0 = sum(e.cpu() for e in endpoints), proxies.cpu()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        result = json.loads(proc.stdout.readline())
        s1, p1 = sum(e.cpu() for e in endpoints), proxies.cpu()
    finally:
        proc.stdin.close()
        proc.wait()
    gb = result["bytes"] / 1e9
    result.update(tree=tree, client=client, mb_per_s=result["bytes"] / result["seconds"] / 1e6,
                  server_cpu_s=s1 - s0, proxy_cpu_s=p1 - p0, load_average=os.getloadavg()[0],
                  cpu_per_gb={"client": result["client_cpu_s"] / gb, "server": (s1 - s0) / gb,
                              "proxy": (p1 - p0) / gb})
    return result


def summarize(runs: list[dict]) -> dict:
    rows: dict = {}
    for key in sorted({(r["profile"], r["client"], r["tree"]) for r in runs}):
        mine = [r for r in runs if (r["profile"], r["client"], r["tree"]) == key]

        def med(f, mine=mine):
            return statistics.median(f(r) for r in mine)

        rows.setdefault(key[0], {}).setdefault(key[1], {})[key[2]] = {
            "runs": len(mine), "mb_per_s": med(lambda r: r["mb_per_s"]),
            "mb_per_s_all": [round(r["mb_per_s"]) for r in mine],
            "ttfb_ms": med(lambda r: (r["ttfb_s"] or 0) * 1000),
            "client_cpu_per_gb": med(lambda r: r["cpu_per_gb"]["client"]),
            "server_cpu_per_gb": med(lambda r: r["cpu_per_gb"]["server"]),
            "proxy_cpu_per_gb": med(lambda r: r["cpu_per_gb"]["proxy"]),
            "rss_over_before_mib": med(lambda r: (r["hwm"] - r["hwm_before"]) / 2**20),
            "peak_rss_mib": med(lambda r: r["hwm"] / 2**20),
            "budget_mib": (mine[0]["budget"] or 0) / 2**20,
            "load_average": med(lambda r: r["load_average"])}
    return rows


def ratios(rows: dict, trees: list[str]) -> list[str]:
    """The acceptance ratios, per tree."""
    def mb(profile, client, tree):
        return rows.get(profile, {}).get(client, {}).get(tree, {}).get("mb_per_s")

    lines = []
    for tree in trees:
        for profile in rows:
            parts = []
            for client in ("pipe", "fastfile", "file"):
                near, far = mb("local", client, tree), mb(profile, client, tree)
                if profile != "local" and near and far:
                    parts.append(f"{client} {far / near:.2f}x local")
            ref, near_ref = mb(profile, "all-at-once", "peer"), mb("local", "all-at-once", "peer")
            if ref and near_ref and profile != "local":
                parts.append(f"all-at-once {ref / near_ref:.2f}x local")
            if ref:
                parts += [f"{client}/all-at-once {mb(profile, client, tree) / ref:.2f}x"
                          for client in ("pipe", "fastfile") if mb(profile, client, tree)]
            view, pipe = mb(profile, "fastfile", tree), mb(profile, "pipe", tree)
            if view and pipe:
                parts.append(f"fastfile/pipe {view / pipe:.2f}x")
            for peer in ("s5cmd", "s5cmd-default"):
                f, s = mb(profile, "file", tree), mb(profile, peer, "peer")
                if f and s:
                    parts.append(f"file/{peer} {f / s:.2f}x")
            if parts:
                lines.append(f"{tree:6} {profile:8} " + "; ".join(parts))
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd")
    c = sub.add_parser("child")
    for flag in ("--client", "--url", "--bucket", "--prefix"):
        c.add_argument(flag, required=True)
    c.add_argument("--rpo", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--profiles", default="local,s3-like,s3-40ms")
    ap.add_argument("--clients", default="pipe,fastfile,file,s5cmd,all-at-once")
    ap.add_argument("--rss-profile", default="s3-like", help="the profile rss16 runs under")
    ap.add_argument("--tree", action="append", default=[], help="NAME=PATH of a checkout (default: new=this one)")
    ap.add_argument("--objects", type=int, default=32)
    ap.add_argument("--size-mib", type=int, default=16)
    ap.add_argument("--bucket", default="channels-bench")
    ap.add_argument("--host-mb-per-s", type=float, default=None,
                    help="cap all connections of each proxied profile together at this many MB/s (a host's "
                         "network interface; default: none, the CPU is the bound)")
    ap.add_argument("--endpoints", type=int, default=1,
                    help="moto servers holding the same objects, the proxies sending requests to each in turn "
                         "(default 1: moto serves one GET at a time; S3 serves many)")
    ap.add_argument("--json", default=".benchmarks/latency_bench.json")
    args = ap.parse_args(argv)
    if args.cmd == "child":
        child(args)
        return 0

    from channels.bench.base import s3_client
    from channels.bench.datasets import BenchDataset, ensure
    from channels.store import Store
    from channels.testing import DUMMY_CREDENTIALS
    from channels.testing.profiles import get_profile
    from channels.testing.services import start_endpoint, start_proxies
    from channels.transport import Transport
    from channels.units import KIB, MIB

    os.environ.update(DUMMY_CREDENTIALS)
    clients = [x for x in args.clients.split(",") if x]
    unknown = set(clients) - set(CLIENTS)
    if unknown:
        ap.error(f"unknown client(s) {', '.join(sorted(unknown))}: use {', '.join(CLIENTS)}")
    trees = dict(t.split("=", 1) for t in args.tree) or {"new": str(HERE.parent.parent)}
    trees = {k: str(Path(v).resolve()) for k, v in trees.items()}
    profiles = [get_profile(p) for p in args.profiles.split(",")]
    ds = BenchDataset("large", args.objects, args.size_mib * MIB, 64 * KIB)
    runs: list[dict] = []
    host = args.host_mb_per_s * 1e6 if args.host_mb_per_s else None
    with contextlib.ExitStack() as stack:
        endpoints = [stack.enter_context(start_endpoint()) for _ in range(args.endpoints)]
        direct = [e.info["url"] for e in endpoints]
        px = stack.enter_context(start_proxies(direct, [p for p in profiles if p.proxied], listener_bandwidth=host))
        for endpoint_url in direct:  # the same bytes on every replica, so the same ETags
            ensure(s3_client(endpoint_url), args.bucket, ds)
            with Transport(Store(endpoint_url)) as t:  # warm the server, untimed
                from channels.listing import list_prefix

                for _ in t.stream(list_prefix(f"s3://{args.bucket}/{ds.prefix}", store=Store(endpoint_url)).refs):
                    pass
        names = list(trees)
        for rnd in range(args.rounds):
            order = clients[rnd % len(clients):] + clients[:rnd % len(clients)]
            for profile in profiles:
                url = px.info["urls"][profile.name][0] if profile.proxied else direct[0]
                for i, client in enumerate(order):
                    if client == "rss16" and profile.name != args.rss_profile:
                        continue
                    k = (rnd + i) % len(names)
                    for tree in (["peer"] if client in PEERS else names[k:] + names[:k]):
                        path = trees[names[0]] if tree == "peer" else trees[tree]
                        r = measure(args, tree, path, client, url, ds.prefix, ds.records_per_object,
                                    (endpoints, px))
                        r.update(round=rnd, profile=profile.name)
                        runs.append(r)
                        print(f"  [{rnd}] {profile.name:8} {client:13} {tree:5} {r['mb_per_s']:7.0f} MB/s "
                              f"ttfb {(r['ttfb_s'] or 0) * 1000:5.0f} ms  load {r['load_average']:.1f}",
                              file=sys.stderr, flush=True)
    rows = summarize(runs)
    nic = f"; {args.host_mb_per_s:g} MB/s per host" if args.host_mb_per_s else ""
    nic += f"; {args.endpoints} endpoints" if args.endpoints > 1 else ""
    print(f"medians of {args.rounds} rounds; {ds.label()}{nic}; MB = 10**6 bytes; CPU-s per GB of client, "
          f"endpoint (moto), proxy")
    for profile, by_client in rows.items():
        print(f"\n== {profile}")
        for client, by_tree in by_client.items():
            for tree, m in by_tree.items():
                extra = (f" RSS +{m['rss_over_before_mib']:.0f} MiB (peak {m['peak_rss_mib']:.0f}; budget "
                         f"{m['budget_mib']:.0f})" if client == "rss16" else "")
                print(f"{client:13} {tree:5} {m['mb_per_s']:7.0f} MB/s {m['mb_per_s_all']} ttfb "
                      f"{m['ttfb_ms']:5.0f} ms cpu {m['client_cpu_per_gb']:.2f}/{m['server_cpu_per_gb']:.2f}/"
                      f"{m['proxy_cpu_per_gb']:.2f} load {m['load_average']:.1f}{extra}")
    print()
    print("\n".join(ratios(rows, list(trees))))
    print(f"load average at the end: {os.getloadavg()}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"trees": trees, "dataset": ds.to_dict(), "rows": rows, "runs": runs},
                                          indent=1))
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
