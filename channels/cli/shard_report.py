"""``channels shard-report``: how evenly a channel splits across hosts."""

from __future__ import annotations

import argparse
import json
import sys

from channels.balance import compare, format_table, report
from channels.cli.args import add_endpoint_argument
from channels.listing import MANIFEST_FILE, S3_PREFIX, list_source
from channels.sharding import SHARDED_BY_S3_KEY, STRATEGIES
from channels.store import Store

NAME = "shard-report"
HELP = "Report per-host objects and bytes for a sharding strategy, from the listing alone (no download)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("uri", nargs="?", help="prefix to list (s3://bucket/prefix/, file:///path/...)")
    p.add_argument("--hosts", type=int, required=True, help="number of hosts")
    p.add_argument("--strategy", default=SHARDED_BY_S3_KEY, choices=STRATEGIES, help="default: %(default)s")
    p.add_argument("--compare", action="store_true", help="show every strategy side by side")
    p.add_argument("--manifest", metavar="FILE", help="a ManifestFile (JSON array) instead of a prefix")
    p.add_argument("--seed", type=int, help="ShuffleConfig seed (default: no shuffle)")
    p.add_argument("--epoch", type=int, default=0, help="epoch to plan, with --seed (default: 0)")
    p.add_argument("--json", action="store_true", help="print one JSON object (a list with --compare)")
    add_endpoint_argument(p)


def run(args: argparse.Namespace) -> int:
    if bool(args.uri) == bool(args.manifest):
        print("channels shard-report: error: give a prefix URI or --manifest FILE (one of them)", file=sys.stderr)
        return 2
    store = Store.from_env(args.endpoint_url)
    source = args.manifest or args.uri
    listing = list_source(source, MANIFEST_FILE if args.manifest else S3_PREFIX, store=store)
    sizes = listing.unit_sizes()
    if args.compare:
        reports = compare(sizes, args.hosts, seed=args.seed, epoch=args.epoch, source=source)
    else:
        reports = [report(sizes, args.hosts, args.strategy, seed=args.seed, epoch=args.epoch, source=source)]
    if args.json:
        out = [r.to_dict() for r in reports] if args.compare else reports[0].to_dict()
        print(json.dumps(out, indent=2))
    else:
        print(format_table(reports))
    for w in dict.fromkeys(w for r in reports for w in r.warnings):
        print(f"warning: {w}", file=sys.stderr)
    return 0
