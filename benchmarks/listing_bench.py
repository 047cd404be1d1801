"""Listing at scale: parallel against flat LIST streams, and the plan file at 10 M objects.

    python benchmarks/listing_bench.py listing [--keys 20480 --prefixes 64 --rounds 5]
    python benchmarks/listing_bench.py plan [--objects 10000000] [--save plan.parquet]
    python benchmarks/listing_bench.py plan-get plan.parquet      # one host's GET of it

``listing``: the same keys listed flat (one stream of ListObjectsV2 pages,
no delimiter) and by :func:`channels.listing.list_s3_keys` with 1 to 64
streams, through the proxy's ``s3-like`` profile (20 ms before each
response). Both use the same client and parser; only the fan-out differs.
The endpoint is a small ListObjectsV2 server (below) that answers from a
sorted key index, in its own process: moto spends about 0.6 s of CPU per
1000-key page when the bucket holds 20,000 keys (it scans and sorts every
key of the bucket per page) and is one process, so behind moto every listing
is moto-bound whatever the client does. Medians of ``--rounds``, flat and
parallel interleaved; the key order of every parallel listing is checked
against the flat one.

``plan``: a plan of N synthetic objects (sorted keys under 1000 common
prefixes, lognormal sizes, random MD5 ETags): seconds to encode, file size,
seconds to decode it into a Listing (refs made on demand), to plan one
host's share of 256 (shuffled) and make its refs, and to make every ref.

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import bisect
import json
import multiprocessing
import statistics
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlsplit


def _serve(keys: list[str], port_out) -> None:
    """A ListObjectsV2 endpoint over one sorted list of keys (any bucket), until killed.

    Each key's ``<Contents>`` element is rendered once, up front, so a page
    costs the server a join of 1000 strings, not the key store's scan.
    """
    keys.sort()
    xml = [f'<Contents><Key>{quote(k)}</Key><ETag>"{(hash(k) & (1 << 64) - 1):032x}"</ETag>'
           f"<Size>{len(k)}</Size><StorageClass>STANDARD</StorageClass></Contents>" for k in keys]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # head and body are two writes: no 40 ms wait for an ACK between

        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            q = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query, keep_blank_values=True).items()}
            prefix, delim = q.get("prefix", ""), q.get("delimiter")
            after = q.get("continuation-token") or q.get("start-after") or ""
            limit = int(q.get("max-keys", "1000"))
            i = bisect.bisect_right(keys, after) if after else bisect.bisect_left(keys, prefix)
            out, last = [], None
            if not delim:  # a flat page: one slice of the index
                j = min(i + limit, bisect.bisect_left(keys, prefix + "\U0010ffff"))
                out = [("k", x) for x in range(i, j)]
                i, last = j, keys[j - 1] if j > 0 else None
            while delim and i < len(keys) and keys[i].startswith(prefix) and len(out) < limit:
                k = keys[i]
                cut = k.find(delim, len(prefix)) if delim else -1
                if cut >= 0:
                    cp = k[:cut + 1]
                    out.append(("p", cp))
                    last = cp + "\U0010ffff"
                    i = bisect.bisect_left(keys, last)
                    continue
                out.append(("k", i))
                last = k
                i += 1
            more = i < len(keys) and keys[i].startswith(prefix)
            parts = ['<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><EncodingType>url</EncodingType>',
                     f"<IsTruncated>{'true' if more else 'false'}</IsTruncated>"]
            for kind, v in out:
                if kind == "k":
                    parts.append(xml[v])
                else:
                    parts.append(f"<CommonPrefixes><Prefix>{quote(v)}</Prefix></CommonPrefixes>")
            if more:
                parts.append(f"<NextContinuationToken>{quote(last)}</NextContinuationToken>")
            parts.append("</ListBucketResult>")
            body = "".join(parts).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    ThreadingHTTPServer.request_queue_size = 256  # the default backlog of 5 drops connections: 1 s SYN retries
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port_out.put(server.server_address[1])
    server.serve_forever()


def flat(lister, bucket: str, prefix: str) -> tuple[list[str], int]:
    keys, token, pages = [], None, 0
    while True:
        page = lister.page(bucket, prefix, token=token)
        pages += 1
        keys.extend(k for k, _, _ in page.keys)
        token = page.next_token
        if token is None:
            return keys, pages


def bench_listing(args) -> dict:
    from channels.listing import ListConfig, ListStats, list_s3_keys
    from channels.listing.s3api import S3Lister
    from channels.store import Store
    from channels.testing import dummy_credentials
    from channels.testing.profiles import get_profile
    from channels.testing.services import cpu_seconds, start_proxies

    keys = [f"data/shard-{i % args.prefixes:04d}/part-{i:08d}.tfrecord" for i in range(args.keys)]
    q = multiprocessing.Queue()
    server = multiprocessing.Process(target=_serve, args=(keys, q), daemon=True)
    server.start()
    port = q.get(timeout=30)
    results: dict = {"keys": args.keys, "prefixes": args.prefixes, "profile": args.profile, "rounds": args.rounds,
                     "runs": {}}
    expected = sorted(keys)
    runs: dict[str, list] = {}

    def measure(name: str, listing) -> None:
        proxy.command("reset")
        cpu = (time.process_time(), cpu_seconds(server.pid), proxy.cpu())
        t = time.monotonic()
        got, requests = listing()
        wall = time.monotonic() - t
        used = [b - a for a, b in zip(cpu, (time.process_time(), cpu_seconds(server.pid), proxy.cpu()))]
        stats = next(iter(proxy.command("stats").values()))
        runs.setdefault(name, []).append((wall, requests, stats["response_bytes"], *used))
        assert got == expected, f"{name}: not the flat listing's keys in its order"

    def fanned(streams: int):
        stats = ListStats()
        got = list_s3_keys("bench", "data/", store=store, config=ListConfig(streams=streams), stats=stats)
        return [k for k, _, _ in got], stats.requests

    try:
        with dummy_credentials(), start_proxies(f"http://127.0.0.1:{port}", [get_profile(args.profile)]) as proxy:
            store = Store(proxy.info["urls"][args.profile][0])
            for _ in range(args.rounds):
                measure("flat", lambda: flat(S3Lister(store), "bench", "data/"))
                for streams in args.streams:
                    measure(f"streams={streams}", lambda streams=streams: fanned(streams))
    finally:
        server.kill()
    base = statistics.median(r[0] for r in runs["flat"])
    for name, rs in runs.items():
        med = statistics.median(r[0] for r in rs)
        results["runs"][name] = {
            "seconds_median": round(med, 4), "seconds": [round(r[0], 4) for r in rs], "requests": rs[0][1],
            "response_bytes": rs[0][2], "speedup_vs_flat": round(base / med, 2),
            "cpu_seconds_median": {part: round(statistics.median(r[3 + i] for r in rs), 4)
                                   for i, part in enumerate(("client", "server", "proxy"))}}
    return results


def bench_plan(args) -> dict:
    import numpy as np

    from channels.listing import Listing, ObjectRef
    from channels.plan import JobPlan, PlannedChannel, plan_bytes, plan_from_bytes

    n = args.objects
    rng = np.random.default_rng(0)
    sizes = np.clip(np.exp(rng.normal(np.log(1 << 20), 1.5, n)), 1, 1 << 34).astype(np.int64).tolist()
    etags = [bytes(b).hex() for b in rng.integers(0, 256, (n, 16), dtype=np.uint8)]
    t = time.monotonic()
    refs = tuple(ObjectRef(f"s3://bucket/train/shard-{i // (n // 1000 or 1):04d}/part-{i:09d}.tfrecord", s, e,
                           f"shard-{i // (n // 1000 or 1):04d}/part-{i:09d}.tfrecord")
                 for i, (s, e) in enumerate(zip(sizes, etags)))
    build = time.monotonic() - t
    plan = JobPlan((PlannedChannel("train", "s3://bucket/train/", distribution="ShardedByS3Key", shuffle_seed=1,
                                   listing=Listing("s3://bucket/train/", refs)),), "bench")
    t = time.monotonic()
    data = plan_bytes(plan)
    encode = time.monotonic() - t
    if args.save:
        with open(args.save, "wb") as f:
            f.write(data)
    del plan, refs
    import pyarrow as pa
    import pyarrow.parquet as pq

    t = time.monotonic()
    pq.read_table(pa.BufferReader(data))
    decode_table = time.monotonic() - t
    t = time.monotonic()
    back = plan_from_bytes(data)
    load = time.monotonic() - t
    listing = back.channel("train").listing
    assert len(listing) == n
    from channels.sharding import plan as plan_epoch

    t = time.monotonic()
    share = listing.expand(plan_epoch(listing.unit_sizes(), 256, "sharded-by-s3-key", seed=1).units_for(7))
    one_share = time.monotonic() - t
    t = time.monotonic()
    every = sum(1 for _ in listing.refs)
    materialize = time.monotonic() - t
    assert every == n and len(share) in (n // 256, n // 256 + 1)
    return {"objects": n, "file_bytes": len(data), "bytes_per_object": round(len(data) / n, 2),
            "encode_seconds": round(encode, 2), "parquet_read_seconds": round(decode_table, 2),
            "load_seconds": round(load, 2), "one_host_share_of_256_seconds": round(one_share, 2),
            "every_object_ref_made_seconds": round(materialize, 2),
            "synthetic_refs_build_seconds": round(build, 2)}


def bench_plan_get(args) -> dict:
    """One host's read of a plan file: one GET from moto through the profile's proxy, then decoding."""
    from channels.plan import read_plan
    from channels.store import Store
    from channels.testing import LocalS3, dummy_credentials
    from channels.testing.profiles import get_profile
    from channels.testing.proxy import Proxy

    with open(args.file, "rb") as f:
        data = f.read()
    times = []
    with dummy_credentials(), LocalS3() as s3, Proxy(s3.endpoint_url, get_profile(args.profile)) as proxy:
        client = s3.client()
        client.create_bucket(Bucket="plans")
        client.put_object(Bucket="plans", Key="job.parquet", Body=data)
        for _ in range(args.rounds):
            proxy.reset_stats()
            t = time.monotonic()
            plan = read_plan("s3://plans/job.parquet", store=Store(proxy.url))
            times.append(time.monotonic() - t)
            proxy.quiesce()
            assert proxy.stats.requests == 1, proxy.stats.requests
        objects = sum(len(c.listing) for c in plan.channels)
    return {"file_bytes": len(data), "objects": objects, "profile": args.profile, "requests_per_read": 1,
            "seconds": [round(x, 2) for x in times], "seconds_median": round(statistics.median(times), 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    a = sub.add_parser("listing")
    a.add_argument("--keys", type=int, default=20480)
    a.add_argument("--prefixes", type=int, default=64)
    a.add_argument("--rounds", type=int, default=5)
    a.add_argument("--profile", default="s3-like")
    a.add_argument("--streams", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64])
    b = sub.add_parser("plan")
    b.add_argument("--objects", type=int, default=10_000_000)
    b.add_argument("--save", metavar="PATH", help="keep the plan file there (for plan-get)")
    c = sub.add_parser("plan-get")
    c.add_argument("file")
    c.add_argument("--profile", default="s3-like")
    c.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    out = {"listing": bench_listing, "plan": bench_plan, "plan-get": bench_plan_get}[args.what](args)
    out["python"] = sys.version.split()[0]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
