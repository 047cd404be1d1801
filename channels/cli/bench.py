"""``channels bench``: our modes against their peers, in one run, on one endpoint.

Examples::

    channels bench --quick --json out.json          # a few minutes on 2 cores
    channels bench --profile local,s3-like --repeat 5
    channels bench --suites imbalance --hosts 8
    channels bench --endpoint-url http://127.0.0.1:9000 --bucket scratch --profile direct,s3-like

The JSON's schema is described in :mod:`channels.bench.suite`; the notebooks
in ``notebooks/`` plot it.
"""

from __future__ import annotations

import argparse
import os
import sys

from channels.bench.suite import SUITES, BenchOptions, format_report, run_bench, write_json
from channels.testing.profiles import PROFILES

NAME = "bench"
HELP = ("Benchmark Pipe and FastFile against streaming readers (boto3, s3fs, pyarrow, s3torchconnector, obstore) "
        "and File against download tools (s5cmd cp, boto3 download_file) on the same data, with latency profiles "
        "and a host-imbalance run; prints medians and ratios, writes JSON.")


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true",
                   help="small datasets, 3 repeats, 1.5 s cap per measurement (2-3 minutes on 2 cores)")
    p.add_argument("--modes", type=_names, metavar="LIST", help="our modes (default: pipe,file,fastfile)")
    p.add_argument("--peers", type=_names, metavar="LIST",
                   help="peer clients (default: boto3,s3fs,pyarrow,s3torchconnector,obstore,s5cmd,boto3-download; "
                        "missing ones are skipped with a note)")
    p.add_argument("--profile", type=_names, metavar="LIST",
                   help=f"latency profiles: {', '.join(PROFILES)} (default: local,s3-like)")
    p.add_argument("--repeat", type=int, metavar="K", help="measurements per case (default: 5; 3 with --quick)")
    p.add_argument("--suites", type=_names, default=SUITES, metavar="LIST",
                   help=f"which suites (default: {','.join(SUITES)})")
    p.add_argument("--hosts", type=int, default=8, help="host processes in the imbalance suite (default: 8)")
    p.add_argument("--host-bandwidth", type=float, metavar="MB/s",
                   help="each simulated host's network bandwidth (default: 6; 4 with --quick)")
    p.add_argument("--max-seconds", type=float, metavar="S",
                   help="soft cap of one measurement (default: 10; 1.5 with --quick)")
    p.add_argument("--json", metavar="OUT", help="write every run's raw figures, the machine and versions here")
    p.add_argument("--endpoint-url", help="an S3 endpoint to use instead of the embedded moto server "
                                          "(credentials from the environment)")
    p.add_argument("--bucket", default="channels-bench", help="bucket for the datasets (default: %(default)s)")
    p.add_argument("--workdir", default="", help="scratch folder for downloads (default: /dev/shm or the temp dir)")


def options(args: argparse.Namespace) -> BenchOptions:
    if args.workdir:  # a scratch folder the user named: make it rather than fail deep inside a run
        os.makedirs(args.workdir, exist_ok=True)
    return BenchOptions(quick=args.quick, modes=args.modes, peers=args.peers, profiles=args.profile,
                        repeat=args.repeat, suites=tuple(args.suites), endpoint_url=args.endpoint_url,
                        bucket=args.bucket, hosts=args.hosts,
                        host_bandwidth=args.host_bandwidth * 1e6 if args.host_bandwidth else None,
                        max_seconds=args.max_seconds, workdir=args.workdir)


def run(args: argparse.Namespace) -> int:
    try:
        opts = options(args)
    except ValueError as exc:
        print(f"channels bench: error: {exc}", file=sys.stderr)
        return 2
    doc = run_bench(opts, log=lambda line: print(line, flush=True))
    print()
    print(format_report(doc))
    if args.json:
        write_json(doc, args.json)
        print(f"wrote {args.json}")
    return 0
