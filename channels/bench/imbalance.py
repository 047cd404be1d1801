"""Host imbalance: N host processes download their shares at once.

For each strategy (ShardedByS3Key, size-balanced), N real processes are
started together, each ``python -m channels download URI DEST --hosts N
--host-index i --strategy S``, the command a File-mode host runs. The
straggler ratio is the slowest host's seconds over the mean, set next to the
planner's predicted imbalance (the busiest host's bytes over the mean,
:func:`channels.balance.report`).

Why per-host seconds follow bytes here (the method): on one small machine,
N hosts share the CPUs and one endpoint, so without care a host's time
would measure the contention, not its share. Each host therefore talks to
its own proxy listener, capped at ``host_bandwidth`` bytes/s shared by all
its connections: a simulated network interface, as each real instance has.
The caps add up to a small part of what the machine can move (8 hosts x
6 MB/s = 48 MB/s, against roughly 1 GB/s through moto), so every host is
bound by its own interface, provided the endpoint's request rate is not the
limit instead: moto serves a few hundred GETs/s in all, shared by every host,
which would make a host's time follow its object count. The dataset is
therefore a few hundred objects of some size (about 100 GETs/s needed), not
thousands of tiny ones. The profile's first-byte delay (20 ms,
``s3-like``) is paid per request, as on S3, and hidden by each host's
concurrent GETs.

A host's seconds are its transfer window, timed by its own listener: from
the arrival of its first object GET to the last byte of its last one, so
about its bytes over its bandwidth. Host start-up (interpreter and imports,
which contend for the CPUs when N start at once) and the CPU-bound listing
and planning fall outside it. Two more clocks are kept in the JSON with
their own straggler ratios: the download's own seconds (from the summary
line it prints: listing, planning, transfer) and the process wall time.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from channels.balance import report as balance_report
from channels.bench.base import s3_client, scratch_root
from channels.bench.datasets import BenchDataset, ensure, skewed_dataset
from channels.sharding import SHARDED_BY_S3_KEY, SIZE_BALANCED, host_name
from channels.testing.profiles import get_profile
from channels.testing.services import start_proxies
from channels.units import MB

_SUMMARY = re.compile(r"downloaded (\d+) objects?, .*? in ([0-9.]+) s")


@dataclass(frozen=True)
class ImbalanceConfig:
    """What the host-imbalance suite runs.

    Attributes:
        hosts: host processes started at once.
        strategies: sharding strategies, one round each.
        dataset: the skewed dataset (lognormal sizes, sigma 2).
        host_bandwidth: bytes/s of each host's simulated network interface.
        profile: the latency profile in front of every host.
        bucket: where the dataset lives.
        timeout: seconds one round may take before its hosts are killed.
    """

    hosts: int = 8
    strategies: tuple[str, ...] = (SHARDED_BY_S3_KEY, SIZE_BALANCED)
    dataset: BenchDataset | None = None
    host_bandwidth: float = 6 * MB
    profile: str = "s3-like"
    bucket: str = "channels-bench"
    timeout: float = 300.0

    def skewed(self) -> BenchDataset:
        return self.dataset or skewed_dataset()


def run_imbalance(config: ImbalanceConfig, endpoint_url: str, *, log=print, workdir: str = "") -> dict:
    """Run every strategy's round against ``endpoint_url``; the JSON's imbalance part."""
    ds = config.skewed()
    t = time.perf_counter()
    uploaded = ensure(s3_client(endpoint_url), config.bucket, ds)
    log(f"dataset {ds.name}: {ds.label()} {'uploaded' if uploaded else 'reused'} in "
        f"{time.perf_counter() - t:.1f} s")
    sizes = ds.size_array()
    uri = f"s3://{config.bucket}/{ds.prefix}"
    profile = get_profile(config.profile)
    rounds = {}
    with start_proxies(endpoint_url, [profile], listeners=config.hosts,
                       listener_bandwidth=config.host_bandwidth) as proxies:
        urls = proxies.info["urls"][profile.name]
        for strategy in config.strategies:
            predicted = balance_report(sizes, config.hosts, strategy, source=uri)
            proxies.command("reset")
            hosts = _round(uri, strategy, urls, config, workdir)
            windows = proxies.command("stats")
            for h, share, url in zip(hosts, predicted.hosts, urls):
                h.update(planned_objects=share.objects, planned_bytes=share.bytes,
                         transfer_seconds=windows[url]["transfer_seconds"], gets=windows[url]["object_gets"])
                h["seconds"] = h["transfer_seconds"] or h["download_seconds"]
            secs = [h["seconds"] for h in hosts]
            mean = sum(secs) / len(secs)
            rounds[strategy] = {
                "predicted_imbalance": predicted.imbalance, "lower_bound": predicted.lower_bound,
                "straggler_ratio": max(secs) / mean if mean > 0 else None,
                "straggler_ratio_download": _ratio([h["download_seconds"] for h in hosts]),
                "straggler_ratio_process": _ratio([h["process_seconds"] for h in hosts]),
                "slowest_host": host_name(secs.index(max(secs))), "mean_seconds": mean,
                "hosts": hosts, "ok": all(h["returncode"] == 0 for h in hosts),
            }
            r = rounds[strategy]
            log(f"  {strategy:<18} predicted imbalance {r['predicted_imbalance']:.2f}x, straggler ratio "
                f"{r['straggler_ratio']:.2f}x (slowest {r['slowest_host']}, mean {mean:.2f} s)")
    return {"hosts": config.hosts, "dataset": ds.to_dict(), "sizes": sizes.tolist(), "uri": uri,
            "profile": profile.to_dict(),
            "host_bandwidth": config.host_bandwidth,
            "method": "one proxy listener per host, capped at host_bandwidth; a host's seconds are its transfer "
                      "window at its listener (first object GET in to last byte out)", "strategies": rounds}


def _round(uri: str, strategy: str, urls: list[str], config: ImbalanceConfig, workdir: str) -> list[dict]:
    """Start every host at once; wait for all; per-host figures."""
    root = tempfile.mkdtemp(prefix="channels-bench-hosts-", dir=workdir or scratch_root())
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    procs, started = [], []
    try:
        for i, url in enumerate(urls):
            dest = os.path.join(root, host_name(i))
            argv = [sys.executable, "-m", "channels", "download", uri, dest, "--hosts", str(config.hosts),
                    "--host-index", str(i), "--strategy", strategy, "--endpoint-url", url]
            started.append(time.perf_counter())
            procs.append(subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                          env=env))
        t0 = started[0]
        hosts = []
        for i, p in enumerate(procs):
            try:
                out, err = p.communicate(timeout=max(1.0, config.timeout - (time.perf_counter() - t0)))
            except subprocess.TimeoutExpired:
                p.kill()
                out, err = p.communicate()
            ended = time.perf_counter()
            objects, nbytes = _on_disk(os.path.join(root, host_name(i)))
            m = _SUMMARY.search(out or "")
            process_seconds = ended - started[i]
            hosts.append({"host": host_name(i), "index": i, "objects": objects, "bytes": nbytes,
                          "download_seconds": float(m.group(2)) if m else None,
                          "process_seconds": process_seconds,
                          "end_s": ended - t0, "returncode": p.returncode,
                          "stderr": (err or "")[-500:] if p.returncode else ""})
        return hosts
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(root, ignore_errors=True)


def _ratio(values: list[float | None]) -> float | None:
    """Largest over mean, or None where a value is missing."""
    if not values or any(v is None for v in values):
        return None
    mean = sum(values) / len(values)
    return max(values) / mean if mean > 0 else None


def _on_disk(dest: str) -> tuple[int, int]:
    """Objects and bytes downloaded under ``dest`` (journal and hidden files left out)."""
    objects = nbytes = 0
    for folder, dirs, files in os.walk(dest):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if name.startswith("."):
                continue
            objects += 1
            nbytes += os.path.getsize(os.path.join(folder, name))
    return objects, nbytes


def format_imbalance(part: dict) -> str:
    """Per-host bytes and seconds, one column pair per strategy."""
    strategies = list(part["strategies"])
    lines = [f"{part['hosts']} hosts, {part['dataset']['label']} (lognormal sizes), each host capped at "
             f"{part['host_bandwidth'] / MB:g} MB/s, profile {part['profile']['name']}", ""]
    head = f"{'host':<8}" + "".join(f"{s:>28}" for s in strategies)
    lines += [head, "-" * len(head)]
    n = part["hosts"]
    for i in range(n):
        cells = ""
        for s in strategies:
            h = part["strategies"][s]["hosts"][i]
            cells += f"{h['bytes'] / MB:>12.1f} MB {h['seconds']:>9.2f} s  "
        lines.append(f"{host_name(i):<8}{cells}")
    lines.append("-" * len(head))
    lines.append(f"{'planned':<8}" + "".join(
        f"{part['strategies'][s]['predicted_imbalance']:>24.2f}x   " for s in strategies) + " (busiest host bytes / mean)")
    lines.append(f"{'measured':<8}" + "".join(
        f"{part['strategies'][s]['straggler_ratio']:>24.2f}x   " for s in strategies)
        + " (slowest host's transfer seconds / mean)")
    lines.append(f"{'download':<8}" + "".join(
        f"{_fmt(part['strategies'][s]['straggler_ratio_download']):>25}   " for s in strategies)
        + " (the same from each download's own seconds, listing and planning included)")
    return "\n".join(lines)


def _fmt(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}x"
