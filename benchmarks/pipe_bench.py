"""Pipe mode against the best clients on the same loopback endpoint, same run.

Starts moto's S3 server in its own process (``channels.testing.services``), so
that its CPU time can be read from ``/proc/<pid>/stat`` and it shares no GIL
with a client. Uploads a large set (64 x 16 MiB) and a small one
(2000 x 64 KiB), then reads each, interleaved (one round of every client,
then the next round), ``--rounds`` times with:

* ``pipe``: :class:`channels.modes.pipe.PipeReader`, raw framing, one epoch
  per round (listed once, before the rounds, as a job lists once); records
  here are the chunks it yields;
* ``fifo``: the FIFO server (in process) writing the epoch into
  ``<channel>_<epoch>`` and ``dd`` (another process, as a training script
  is) reading it to EOF: the SageMaker path; client CPU includes ``dd``'s;
* ``boto3_8threads``: ``get_object(...)['Body'].read()`` on 8 threads
  (the ``boto3`` peer of :mod:`channels.bench.peers`);
* ``s3fs_open_read``: ``fs.open(path).read()`` one object after another
  (the ``s3fs`` peer of :mod:`channels.bench.peers`), large set only.

Prints a table of medians (MB/s with 1 MB = 10**6 bytes, objects/s,
records/s, client and endpoint CPU seconds per GB), the ratios the issue
asks for, framer throughput from memory (``framing_cases.py``, the records
benchmark's cases), and
writes every run to JSON for a notebook.

Usage:
    python benchmarks/pipe_bench.py [--rounds 5] [--only large|small]
        [--large 64x16MiB] [--small 2000x64KiB] [--clients pipe,boto3_8threads,...]
        [--json .benchmarks/pipe_bench.json]
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import framing_cases  # noqa: E402  benchmarks/framing_cases.py
from sets import chosen, set_parser, upload  # noqa: E402  benchmarks/sets.py

from channels.bench import peers  # noqa: E402
from channels.bench.base import reader  # noqa: E402
from channels.bench.report import versions  # noqa: E402
from channels.modes.pipe.fifo import FifoServer  # noqa: E402
from channels.modes.pipe.reader import PipeReader  # noqa: E402
from channels.store import Store  # noqa: E402
from channels.testing import DUMMY_CREDENTIALS  # noqa: E402
from channels.testing.services import start_endpoint  # noqa: E402
from channels.transport import Transport, TransportConfig  # noqa: E402
from channels.units import MIB  # noqa: E402

ALL_CLIENTS = ("pipe", "fifo", "boto3_8threads", "s3fs_open_read")
#: The peers among the clients: the catalog's runners, as ``channels bench`` runs them.
PEERS = {"boto3_8threads": peers.boto3_get, "s3fs_open_read": peers.s3fs_open_read}


class PipeClient:
    """A PipeReader listed once; each call reads the next epoch. Returns (bytes, records)."""

    def __init__(self, endpoint: str, uri: str, config: TransportConfig | None = None) -> None:
        self.reader = PipeReader(uri, store=Store(endpoint), config=config)
        self.reader.listing  # noqa: B018 - list before the clock starts, once
        self.epoch = 0

    def __call__(self) -> tuple[int, int]:
        total = records = 0
        for chunk in self.reader.epoch(self.epoch):
            total += len(chunk)
            records += 1
        self.epoch += 1
        return total, records


class FifoClient:
    """One epoch through the FIFO server (in this process) per call.

    The consumer is another process, as a training script is: ``dd`` reading
    the FIFO to EOF in 1 MiB reads. Its CPU time counts as client CPU (it is
    added to the records' place as ``consumer_cpu_s``).
    """

    def __init__(self, endpoint: str, uri: str) -> None:
        self.transport = Transport(Store(endpoint))
        self.reader = PipeReader(uri, store=Store(endpoint), transport=self.transport)
        self.reader.listing  # noqa: B018
        self.root = Path(tempfile.mkdtemp(prefix="pipe-bench-"))

    def __call__(self) -> tuple[int, int]:
        server = FifoServer({"train": self.reader}, self.root, epochs=1)
        path = server.data_dir / "train_0"
        result: dict[str, object] = {}

        def consume() -> None:
            while not path.exists():
                time.sleep(0.0005)
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            out = subprocess.run(["dd", f"if={path}", "of=/dev/null", "bs=1M"], capture_output=True, text=True)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            m = re.search(r"^(\d+) bytes", out.stderr, re.M)
            result["bytes"] = int(m.group(1)) if m else -1
            result["cpu"] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)

        consumer = threading.Thread(target=consume)
        consumer.start()
        server.serve()
        consumer.join()
        self.consumer_cpu_s = result["cpu"]
        return result["bytes"], 0


def run_rounds(clients: dict, rounds: int, endpoint_pid: int, expect: int) -> dict[str, list[dict]]:
    """Every client once per round, interleaved; each run timed with its CPU."""
    from channels.testing.services import cpu_seconds

    runs: dict[str, list[dict]] = {name: [] for name in clients}
    for r in range(rounds + 1):  # round 0 warms connections and caches, untimed
        for name, fn in clients.items():
            s0, c0, t0 = cpu_seconds(endpoint_pid), time.process_time(), time.perf_counter()
            out = fn()
            wall = time.perf_counter() - t0
            client_cpu, server_cpu = time.process_time() - c0, cpu_seconds(endpoint_pid) - s0
            client_cpu += getattr(fn, "consumer_cpu_s", 0.0)  # the FIFO's reading process
            nbytes, records = out if isinstance(out, tuple) else (out, 0)
            if nbytes != expect:
                raise RuntimeError(f"{name} read {nbytes} bytes, expected {expect}")
            if r:
                runs[name].append({"wall_s": wall, "client_cpu_s": client_cpu, "endpoint_cpu_s": server_cpu,
                                   "bytes": nbytes, "records": records})
            print(f"  round {r} {name:<16} {nbytes / wall / 1e6:8.0f} MB/s", file=sys.stderr, flush=True)
    return runs


def summarize(runs: list[dict], objects: int) -> dict[str, float]:
    wall = statistics.median(x["wall_s"] for x in runs)
    nbytes = runs[0]["bytes"]
    gb = nbytes / 1e9
    return {
        "mb_per_s": nbytes / wall / 1e6,
        "objects_per_s": objects / wall,
        "records_per_s": statistics.median(x["records"] / x["wall_s"] for x in runs),
        "client_cpu_s_per_gb": statistics.median(x["client_cpu_s"] for x in runs) / gb,
        "endpoint_cpu_s_per_gb": statistics.median(x["endpoint_cpu_s"] for x in runs) / gb,
        "median_wall_s": wall,
    }


def framer_throughput(rounds: int) -> dict[str, dict[str, float]]:
    """The records benchmark's cases, framed from memory (benchmarks/framing_cases.py)."""
    out = {}
    for name, size, count in framing_cases.CASES:
        data = framing_cases.make_object(name, size, count)
        pieces = framing_cases.chunks(data)
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            n = framing_cases.frame(name, pieces)
            times.append(time.perf_counter() - t0)
        wall = statistics.median(times)
        out[f"{name} {size} B"] = {"mb_per_s": len(data) / wall / 1e6, "records_per_s": n / wall}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = set_parser(__doc__, ALL_CLIENTS)
    ap.add_argument("--no-framers", action="store_true", help="skip framer throughput from memory")
    ap.add_argument("--json", default=".benchmarks/pipe_bench.json", help="where to write every run")
    args = ap.parse_args(argv)
    os.environ.update(DUMMY_CREDENTIALS)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    wanted, sets = chosen(ap, args)

    results: dict = {"versions": {**versions(), "cpus": str(os.cpu_count())}, "rounds": args.rounds,
                     "transport_config": dataclasses.asdict(TransportConfig()), "sets": {}, "framers": {}}
    with start_endpoint() as endpoint, contextlib.ExitStack() as stack:
        url, pid = endpoint.info["url"], endpoint.pid
        for name, (count, size) in sets.items():
            print(f"uploading {name}: {count} x {size} bytes", file=sys.stderr, flush=True)
            target, total = upload(url, f"bench-{name}", count, size)
            makers = {
                "pipe": lambda: PipeClient(url, target.uri),
                "fifo": lambda: FifoClient(url, target.uri),
                **{c: (lambda c=c: reader(PEERS[c], target, stack)) for c in PEERS},
            }
            clients = {c: makers[c]() for c in wanted if not (name == "small" and c == "s3fs_open_read")}
            runs = run_rounds(clients, args.rounds, pid, total)
            results["sets"][name] = {"count": count, "size": size, "runs": runs,
                                     "medians": {c: summarize(r, count) for c, r in runs.items()}}
    if not args.no_framers:
        results["framers"] = framer_throughput(args.rounds)
    results["ratios"] = ratios(results)
    print(table(results))
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {out}")
    return 0


def ratios(results: dict) -> dict[str, float]:
    out = {}
    large = results["sets"].get("large", {}).get("medians", {})
    small = results["sets"].get("small", {}).get("medians", {})
    for ours in ("pipe", "fifo"):
        for base, key in (("boto3_8threads", "mb_per_s"), ("s3fs_open_read", "mb_per_s")):
            if ours in large and base in large:
                out[f"large {ours} / {base} (MB/s)"] = large[ours][key] / large[base][key]
        if ours in small and "boto3_8threads" in small:
            out[f"small {ours} / boto3_8threads (objects/s)"] = (
                small[ours]["objects_per_s"] / small["boto3_8threads"]["objects_per_s"])
    return out


def table(results: dict) -> str:
    v = results["versions"]
    lines = [f"\nPipe benchmark, medians of {results['rounds']} interleaved rounds, one endpoint "
             f"(moto {v.get('moto')}, its own process); {v.get('cpus')} CPUs; boto3 {v.get('boto3')}, "
             f"s3fs {v.get('s3fs')}, urllib3 {v.get('urllib3')}"]
    c = results["transport_config"]
    lines.append(f"pipe/fifo transport: parts of {c['part_size'] // MIB} MiB, budget {c['budget_bytes'] // MIB} MiB, "
                 f"{c['max_workers']} workers, small-object threshold {c['small_object_threshold']}")
    for name, s in results["sets"].items():
        lines.append(f"\n{name}: {s['count']} x {s['size'] // 1024} KiB")
        lines.append(f"  {'client':<16} {'MB/s':>8} {'objects/s':>10} {'records/s':>10} "
                     f"{'client CPU-s/GB':>16} {'endpoint CPU-s/GB':>18}")
        for client, m in s["medians"].items():
            lines.append(f"  {client:<16} {m['mb_per_s']:8.0f} {m['objects_per_s']:10.0f} "
                         f"{m['records_per_s']:10.0f} {m['client_cpu_s_per_gb']:16.2f} "
                         f"{m['endpoint_cpu_s_per_gb']:18.2f}")
    if results["ratios"]:
        lines.append("\nratios (targets: large >= 1.0x boto3 and >= 2x s3fs; small >= 0.9x boto3):")
        lines += [f"  {k}: {r:.2f}x" for k, r in results["ratios"].items()]
    if results["framers"]:
        lines.append("\nframers from memory (4 MiB chunks, CRCs checked):")
        lines += [f"  {k:<18} {f['mb_per_s']:8.0f} MB/s {f['records_per_s']:12,.0f} records/s"
                  for k, f in results["framers"].items()]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
