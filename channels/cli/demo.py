"""``channels demo``: the main jobs on an embedded S3 endpoint, no set-up."""

from __future__ import annotations

import argparse
import os

from channels.balance import compare, format_table
from channels.listing import list_prefix
from channels.store import Store

NAME = "demo"
HELP = "Start an embedded S3 endpoint on loopback, fill it with a skewed dataset, and run the main jobs on it."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--objects", type=int, default=1000, help="objects in the skewed dataset (default: %(default)s)")
    p.add_argument("--hosts", type=int, default=8, help="hosts to plan for (default: %(default)s)")
    p.add_argument("--no-bench", action="store_true", help="skip the quick benchmark at the end")


def run(args: argparse.Namespace) -> int:
    from channels.testing import (
        Dataset,
        LocalS3,
        dummy_credentials,
        fill_bucket,
        lognormal_sizes,
    )

    with dummy_credentials(), LocalS3() as s3:
        os.environ["AWS_ENDPOINT_URL"] = s3.endpoint_url
        bucket = "demo"
        ds = Dataset("lognormal", lognormal_sizes(args.objects, median=8 * 1024, sigma=2.0, seed=7,
                                                  max_size=32 * 1024 * 1024), prefix="train/")
        print(f"embedded S3 endpoint at {s3.endpoint_url}")
        print(f"uploading {len(ds.sizes)} objects ({ds.total_bytes / 1e6:.1f} MB, lognormal sizes, sigma 2) "
              f"to s3://{bucket}/{ds.prefix} ...", flush=True)
        fill_bucket(s3.client(), bucket, ds)
        uri = f"s3://{bucket}/{ds.prefix}"
        print(f"\n== shard-balance report: channels shard-report {uri} --hosts {args.hosts} --compare\n")
        listing = list_prefix(uri, store=Store.from_env(s3.endpoint_url))
        print(format_table(compare(listing.unit_sizes(), args.hosts, source=uri)))
    if not args.no_bench:
        from channels.bench.suite import BenchOptions, format_report, run_bench

        print("\n== quick benchmark: channels bench --quick (Pipe, File, FastFile against boto3, s3fs, pyarrow; "
              "local and s3-like latency; 8 hosts at once)\n", flush=True)
        doc = run_bench(BenchOptions(quick=True), log=lambda line: print(line, flush=True),
                        argv=["channels", "demo"])
        print()
        print(format_report(doc))
    return 0
