"""``channels plan JOB.json --out URL``: list every channel of a job once and write the job plan.

Every host (``channels run``, ``download``, ``pipe``, ``mount`` and the
adapters, with ``--plan URL``) then reads the plan with one GET instead of
listing the store, and plans each epoch from it as from its own listing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from channels.cli.args import add_endpoint_argument
from channels.listing import ListConfig
from channels.units import human_bytes

NAME = "plan"
HELP = ("List every channel of a job once and write the job plan (Parquet: key, size and ETag per object, "
        "the job's seeds and distributions) for every host to read with one GET (--plan URL).")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("job", help="the job definition (either JSON shape)")
    p.add_argument("--out", required=True, metavar="URL",
                   help="where to write the plan: a local path or an object-store URL (s3://bucket/plan.parquet)")
    p.add_argument("--list-streams", type=int, default=ListConfig().streams, metavar="N",
                   help="LIST requests in flight at most while listing a prefix (default: %(default)s; 1: flat)")
    p.add_argument("--json", action="store_true", help="print what was planned as JSON")
    add_endpoint_argument(p)


def add_plan_argument(p: argparse.ArgumentParser) -> None:
    """``--plan URL`` for the commands that would otherwise list the store."""
    p.add_argument("--plan", metavar="URL",
                   help="read the objects from this job plan (made by channels plan) with one GET instead "
                        "of listing; a plan made for another job, or an object changed since, is an error")


def run(args: argparse.Namespace) -> int:
    from channels.plan import make_plan, write_plan
    from channels.spec import Job
    from channels.store import Store

    job = Job.load(args.job)
    store = Store.from_env(args.endpoint_url)
    started = time.monotonic()
    plan = make_plan(job, store=store, config=ListConfig(streams=args.list_streams))
    listed = time.monotonic() - started
    size = write_plan(plan, args.out, store=store)
    report = {"out": args.out, "bytes": size, "seconds": round(time.monotonic() - started, 3),
              "listing_seconds": round(listed, 3), "channels": []}
    for c in plan.channels:
        stats = c.listing.stats
        report["channels"].append({**c.describe(), "objects": len(c.listing), "total_bytes": c.listing.total_bytes,
                                   "list_requests": stats.requests if stats is not None else None})
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for c in report["channels"]:
        requests = "" if c["list_requests"] is None else f", {c['list_requests']} LIST request(s)"
        print(f"{c['name']}: {c['objects']:,} objects, {human_bytes(c['total_bytes'])} ({c['uri']}, "
              f"{c['distribution']}, seed {c['shuffle_seed']}){requests}", file=sys.stderr)
    print(f"channels plan: wrote {args.out} ({human_bytes(size)}) in {report['seconds']:.2f} s", file=sys.stderr)
    return 0
