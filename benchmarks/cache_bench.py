"""The local cache under the s3-like profile: later epochs against the first, and against no cache at all.

Starts moto's S3 server and the latency proxy (``s3-like``: 20 ms to first
byte, 90 MB/s per connection) each in its own process, uploads one set
(default 32 x 16 MiB), then runs, interleaved in every round (one round of
each scenario, then the next round), ``--epochs`` epochs of a
:class:`~channels.modes.pipe.PipeReader` (raw framing, a shuffled order
every epoch, the default TransportConfig) with:

* ``nocache``: no cache, the baseline;
* ``fits``: a cache twice the dataset (every object is kept in epoch 1);
* ``half``: a cache half the dataset (the dataset is twice the cache);
  epoch 1 writes all that fits (``CacheConfig.fill="eager"``, the default);
* ``half-paid``: the same with ``fill="paid"``: each epoch writes only what
  its hits pay for.

Each scenario starts with an empty cache directory (under ``--cache-root``,
a local disk), so epoch 1 is always cold; later epochs read what it kept.
Kept objects are read back through the page cache (the machine has the RAM
for them): a later epoch runs at the speed of local reads of recently
written files, as it would on an instance whose cache fits its memory.

An epoch is timed from the reader's first call (its listing again, one LIST
request, included) to its last byte. The proxy counts the object GETs of
each epoch. Prints a table of medians (MB/s with 1 MB = 10**6 bytes, GETs
per epoch, cache hits), the ratios the issue asks for, the load average
before and after, and writes every run to JSON.

``--host-mb-per-s N`` caps all connections together at N MB/s (a host's
network interface, the proxy's ``listener_bandwidth``): the network, rather
than this machine's CPU, bounds the reads, as on an instance whose store
runs elsewhere.

Usage:
    flock /tmp/bench.lock python benchmarks/cache_bench.py [--rounds 3] [--set 32x16MiB]
        [--epochs 3] [--host-mb-per-s N] [--json .benchmarks/cache_bench.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sets import parse_set, upload  # noqa: E402  benchmarks/sets.py

from channels.bench.report import loadavg, versions  # noqa: E402
from channels.cache import CacheConfig  # noqa: E402
from channels.modes.pipe.reader import PipeReader  # noqa: E402
from channels.store import Store  # noqa: E402
from channels.testing import dummy_credentials  # noqa: E402
from channels.testing.profiles import get_profile  # noqa: E402
from channels.testing.services import start_endpoint, start_proxies  # noqa: E402
from channels.transport import TransportConfig  # noqa: E402

#: Cache size as a multiple of the dataset, per scenario (None: no cache).
SCENARIOS = {"nocache": None, "fits": (2.0, "eager"), "half": (0.5, "eager"), "half-paid": (0.5, "paid")}


def run_scenario(name: str, url: str, uri: str, total: int, epochs: int, cache_root: Path, proxy) -> list[dict]:
    """``epochs`` epochs of one fresh reader; one record per epoch."""
    scenario = SCENARIOS[name]
    cache = None
    if scenario is not None:
        factor, fill = scenario
        directory = cache_root / name
        shutil.rmtree(directory, ignore_errors=True)  # a cold cache: epoch 1 fills it
        cache = CacheConfig(directory, int(total * factor), fill=fill)
    reader = PipeReader(uri, store=Store(url), config=TransportConfig(cache=cache), framing="raw", shuffle_seed=11)
    reader.listing  # noqa: B018 - the first listing, untimed (a job lists before it starts)
    out = []
    try:
        for epoch in range(epochs):
            proxy.command("reset")
            before = reader.transport.cache_stats.snapshot() if cache else {}
            c0, t0 = time.process_time(), time.perf_counter()
            nbytes = sum(len(chunk) for chunk in reader.epoch(epoch))
            wall = time.perf_counter() - t0
            cpu = time.process_time() - c0
            if nbytes != total:
                raise RuntimeError(f"{name} epoch {epoch + 1} read {nbytes} bytes, expected {total}")
            gets = sum(s["object_gets"] for s in proxy.command("stats").values())
            row = {"scenario": name, "epoch": epoch + 1, "wall_s": wall, "mb_per_s": nbytes / wall / 1e6,
                   "client_cpu_s": cpu, "object_gets": gets}
            if cache:
                reader.transport.cache.flush()
                after = reader.transport.cache_stats.snapshot()
                row.update({k: after[k] - before.get(k, 0) for k in ("hits", "misses", "hit_bytes", "admitted",
                                                                     "rejected", "deferred", "evicted")})
            out.append(row)
    finally:
        reader.close()
    return out


def median_table(runs: list[dict], epochs: int) -> dict[str, dict[int, dict[str, float]]]:
    table: dict[str, dict[int, dict[str, float]]] = {}
    for name in SCENARIOS:
        for epoch in range(1, epochs + 1):
            rows = [r for r in runs if r["scenario"] == name and r["epoch"] == epoch]
            table.setdefault(name, {})[epoch] = {
                key: statistics.median(r[key] for r in rows) for key in rows[0]
                if key not in ("scenario", "epoch")}
    return table


def paired_ratios(runs: list[dict], epochs: int) -> dict[str, float]:
    """Per epoch, the median over rounds of each round's half / nocache (the labels of main's ratios)."""
    by = {(r["round"], r["scenario"], r["epoch"]): r["mb_per_s"] for r in runs}
    rounds = sorted({r["round"] for r in runs})
    return {f"{half} / nocache, epoch {epoch} (want >= 1.0)":
            statistics.median(by[n, half, epoch] / by[n, "nocache", epoch] for n in rounds)
            for half in ("half", "half-paid") for epoch in range(1, epochs + 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--set", type=parse_set, default=parse_set("32x16MiB"))
    ap.add_argument("--profile", default="s3-like")
    ap.add_argument("--host-mb-per-s", type=float, default=None,
                    help="cap all connections together at this many MB/s (a host's network interface; "
                         "default: none, the CPU is the bound)")
    ap.add_argument("--cache-root", type=Path, default=None, help="a local disk (default: a new temp dir)")
    ap.add_argument("--json", type=Path, default=Path(".benchmarks/cache_bench.json"))
    args = ap.parse_args(argv)
    count, size = args.set
    cache_root = args.cache_root or Path(tempfile.mkdtemp(prefix="cache-bench-"))
    load_before = loadavg()
    runs: list[dict] = []
    with dummy_credentials(), start_endpoint() as endpoint:
        target, total = upload(endpoint.info["url"], "bench-cache", count, size)
        uri = f"s3://{target.bucket}/{target.prefix}"
        host = args.host_mb_per_s * 1e6 if args.host_mb_per_s else None
        with start_proxies(endpoint.info["url"], [get_profile(args.profile)], listener_bandwidth=host) as proxy:
            url = proxy.info["urls"][args.profile][0]
            for r in range(args.rounds):
                for name in SCENARIOS:
                    for row in run_scenario(name, url, uri, total, args.epochs, cache_root, proxy):
                        row["round"] = r + 1
                        runs.append(row)
                        print(f"  round {r + 1} {name:<8} epoch {row['epoch']}: {row['mb_per_s']:8.0f} MB/s, "
                              f"{row['object_gets']:4d} GETs", file=sys.stderr, flush=True)
    shutil.rmtree(cache_root, ignore_errors=True)
    load_after = loadavg()
    table = median_table(runs, args.epochs)
    nic = f", {args.host_mb_per_s:g} MB/s per host" if args.host_mb_per_s else ""
    print(f"\n{count} x {size // (1 << 20)} MiB under {args.profile}{nic}, medians of {args.rounds} rounds; "
          f"load average before {load_before}, after {load_after}")
    print(f"{'scenario':<10} {'epoch':>5} {'MB/s':>8} {'GETs':>6} {'hits':>6} {'admitted':>9} {'deferred':>9} "
          f"{'CPU s':>7}")
    for name, epochs in table.items():
        for epoch, m in epochs.items():
            print(f"{name:<10} {epoch:>5} {m['mb_per_s']:8.0f} {m['object_gets']:6.0f} {m.get('hits', 0):6.0f} "
                  f"{m.get('admitted', 0):9.0f} {m.get('deferred', 0):9.0f} {m['client_cpu_s']:7.2f}")
    ratios = {"fits: epoch 2 / epoch 1 (want >= 3)": table["fits"][2]["mb_per_s"] / table["fits"][1]["mb_per_s"]}
    for epoch in range(1, args.epochs + 1):
        for half in ("half", "half-paid"):
            ratios[f"{half} / nocache, epoch {epoch} (want >= 1.0)"] = (table[half][epoch]["mb_per_s"]
                                                                        / table["nocache"][epoch]["mb_per_s"])
    paired = paired_ratios(runs, args.epochs)
    for label, value in ratios.items():
        # The median of each round's own ratio too: a round's scenarios run back to back, under one load.
        print(f"{label}: {value:.2f}x" + (f" (per round: {paired[label]:.2f}x)" if label in paired else ""))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"set": [count, size], "profile": args.profile,
                                     "host_mb_per_s": args.host_mb_per_s, "rounds": args.rounds,
                                     "load_average": {"before": load_before, "after": load_after},
                                     "versions": versions(), "runs": runs, "ratios": ratios,
                                     "ratios_per_round": paired}, indent=1))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
