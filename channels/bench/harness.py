"""The throughput suite: every runner on the same data, interleaved, K times.

Method (DESIGN.md: measure against the limit, peers in the same run):

1. The endpoint (moto on loopback by default) runs in its own process, and
   one more process holds a latency proxy per profile
   (:mod:`channels.testing.services`), so the CPU of each party can be read
   from ``/proc/<pid>/stat`` around every measurement.
2. Datasets are uploaded straight to the endpoint (or reused when there),
   then read once, untimed, to warm the server's caches.
3. For each repeat, for each profile, for each dataset, every runner runs
   once; the runner order rotates with the repeat, so no runner always goes
   first (or always follows the same neighbour). Set-up (clients, listing,
   destination folders) is outside the clock.
4. Each measurement records wall seconds, bytes, objects, records, time to
   first byte, client CPU (``time.process_time`` of this process, plus the
   children's rusage for runners that spawn one), server and proxy CPU.
   A soft cap (``max_seconds``) stops slow runners from starting new
   objects; such runs are marked incomplete and rate over what they read.
5. Rows summarise each (profile, dataset, runner): median, min and max MB/s,
   medians of the rest, and the ratios to the peers doing the same job
   (reading into memory, or writing files: :data:`~channels.bench.base.JOBS`).
"""

from __future__ import annotations

import contextlib
import gc
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from channels.bench import report
from channels.bench.base import Body, Meter, Target, s3_client
from channels.bench.catalog import get_runner
from channels.bench.datasets import BenchDataset, ensure
from channels.testing.profiles import Profile, get_profile
from channels.testing.services import Child, start_endpoint, start_proxies

Log = Callable[[str], None]


@dataclass(frozen=True)
class ThroughputConfig:
    """What one throughput suite runs.

    Attributes:
        runners: runner names (modes and peers), in registry order.
        profiles: latency profile names.
        datasets: the datasets.
        repeat: measurements per (profile, dataset, runner).
        max_seconds: soft cap of one measurement (None: read everything).
        bucket: the bucket holding the datasets.
    """

    runners: tuple[str, ...]
    profiles: tuple[str, ...] = ("local", "s3-like")
    datasets: tuple[BenchDataset, ...] = ()
    repeat: int = 3
    max_seconds: float | None = None
    bucket: str = "channels-bench"

    def __post_init__(self) -> None:
        if self.repeat < 1:
            raise ValueError(f"repeat must be >= 1, got {self.repeat}")
        for name in self.profiles:
            get_profile(name)
        for name in self.runners:
            get_runner(name)


@dataclass
class Services:
    """The endpoint and proxies of a run, and their CPU meters.

    Args:
        endpoint_url: an existing endpoint, or None to start moto in a child.
        profiles: the profiles the run needs.
    """

    endpoint_url: str | None = None
    profiles: tuple[Profile, ...] = ()
    _endpoint: Child | None = field(default=None, init=False)
    _proxies: Child | None = field(default=None, init=False)

    def __enter__(self) -> Services:
        try:
            if self.endpoint_url is None:
                self._endpoint = start_endpoint()
                self.endpoint_url = self._endpoint.info["url"]
            proxied = [p for p in self.profiles if p.proxied]
            if proxied:
                self._proxies = start_proxies(self.endpoint_url, proxied)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        for child in (self._proxies, self._endpoint):
            if child is not None:
                child.stop()

    @property
    def embedded(self) -> bool:
        return self._endpoint is not None

    def url(self, profile: Profile) -> str:
        """The URL clients use under ``profile``."""
        if not profile.proxied:
            return self.endpoint_url
        return self._proxies.info["urls"][profile.name][0]

    def server_cpu(self) -> float | None:
        return self._endpoint.cpu() if self._endpoint else None

    def proxy_cpu(self) -> float | None:
        return self._proxies.cpu() if self._proxies else None


def measure(body: Body, target: Target, services: Services, max_seconds: float | None) -> dict:
    """One timed call of a prepared ``body``; the raw figures as a dict.

    A body may carry a ``reset()`` attribute (File mode: remove what it
    wrote); it is called after the clock stops.
    """
    gc.collect()
    meter = Meter(max_seconds)
    s0, p0 = services.server_cpu(), services.proxy_cpu()
    kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    c0 = time.process_time()
    meter.start = time.perf_counter()
    error = None
    try:
        body(meter)
    except Exception as exc:  # recorded in the run, reported in the table
        error = f"{type(exc).__name__}: {exc}"
    seconds = meter.stop()
    c1 = time.process_time()
    kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    s1, p1 = services.server_cpu(), services.proxy_cpu()
    reset = getattr(body, "reset", None)
    if reset is not None:
        reset()
    kids = (kids1.ru_utime + kids1.ru_stime) - (kids0.ru_utime + kids0.ru_stime)
    complete = error is None and meter.objects >= len(target.listing.refs)
    return {
        "seconds": seconds, "bytes": meter.bytes, "objects": meter.objects, "records": meter.records,
        "mb_per_s": meter.bytes / seconds / 1e6 if seconds > 0 else 0.0,
        "objects_per_s": meter.objects / seconds if seconds > 0 else 0.0,
        "records_per_s": meter.records / seconds if seconds > 0 and meter.records else None,
        "ttfb_s": meter.ttfb, "complete": complete, "error": error,
        "client_cpu_s": (c1 - c0) + kids,
        "server_cpu_s": None if s0 is None or s1 is None else s1 - s0,
        "proxy_cpu_s": None if p0 is None or p1 is None else p1 - p0,
        "counters": meter.counters,
        "load_average": report.loadavg(),  # how busy the machine was: a noisy run shows here
    }


def run_throughput(config: ThroughputConfig, services: Services, *, log: Log = print,
                   workdir: str = "") -> dict:
    """Run the suite on running ``services``; the JSON's throughput part.

    Returns:
        ``{"config", "datasets", "runs", "summary", "checks"}``; every run
        carries its repeat, profile, dataset and runner besides its figures.
    """
    from channels.listing import list_prefix
    from channels.store import Store
    from channels.transport import Transport

    client = s3_client(services.endpoint_url)
    runners = [get_runner(n) for n in config.runners]
    profiles = [get_profile(n) for n in config.profiles]
    listings = {}
    for ds in config.datasets:
        t = time.perf_counter()
        uploaded = ensure(client, config.bucket, ds)
        log(f"dataset {ds.name}: {ds.label()} ({ds.total_bytes / 1e6:,.0f} MB) "
            f"{'uploaded' if uploaded else 'reused'} in {time.perf_counter() - t:.1f} s")
        for profile in profiles:
            listings[(profile.name, ds.name)] = list_prefix(f"s3://{config.bucket}/{ds.prefix}",
                                                            store=Store(services.url(profile)))
        with Transport(Store(services.endpoint_url)) as tr:  # warm the server, untimed
            for _ in tr.stream(listings[(profiles[0].name, ds.name)].refs):
                pass
    runs = []
    with contextlib.ExitStack() as stack:
        # Every runner is prepared once per (profile, dataset) and reused by
        # every repeat, as a training job reuses its clients: the repeats
        # measure reading, not client construction.
        cases = {}
        for profile in profiles:
            for ds in config.datasets:
                target = Target(services.url(profile), config.bucket, ds.prefix,
                                listings[(profile.name, ds.name)], ds.records_per_object, workdir)
                for runner in runners:
                    cases[(profile.name, ds.name, runner.name)] = (target, stack.enter_context(runner.prepare(target)))
        for rep in range(config.repeat):
            order = runners[rep % len(runners):] + runners[:rep % len(runners)]
            for profile in profiles:
                for ds in config.datasets:
                    for runner in order:
                        target, body = cases[(profile.name, ds.name, runner.name)]
                        r = measure(body, target, services, config.max_seconds)
                        r.update(repeat=rep, profile=profile.name, dataset=ds.name, runner=runner.name,
                                 kind=runner.kind, job=runner.job)
                        runs.append(r)
                        log(_progress_line(r))
    rows = report.summarize(runs)
    return {
        "config": {"runners": list(config.runners), "profiles": list(config.profiles), "repeat": config.repeat,
                   "max_seconds": config.max_seconds, "bucket": config.bucket},
        "profiles": {p.name: p.to_dict() for p in profiles},
        "datasets": {ds.name: ds.to_dict() for ds in config.datasets},
        "runners": {r.name: {"kind": r.kind, "job": r.job, "description": r.description} for r in runners},
        "runs": runs,
        "summary": rows,
        "checks": report.checks(rows) if {"local", "s3-like"} <= set(config.profiles) else None,
    }


def _progress_line(r: dict) -> str:
    status = "" if r["complete"] else " (capped)" if not r["error"] else f" FAILED: {r['error']}"
    return (f"  [{r['repeat'] + 1}] {r['profile']:<8} {r['dataset']:<6} {r['runner']:<17}"
            f"{r['mb_per_s']:>9,.0f} MB/s {r['seconds']:>6.2f} s{status}")
