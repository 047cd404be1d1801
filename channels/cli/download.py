"""``channels download``: File mode from the command line.

``channels download URI DEST`` downloads this host's share of a prefix (or a
manifest, with ``--data-type ManifestFile``); ``channels download JOB.json
--root DIR`` every File channel of a job to ``DIR/input/data/<channel>/``.
Host identity: ``--hosts/--host-index``, else resourceconfig.json, else
SM_HOSTS + SM_CURRENT_HOST, else one host (:mod:`channels.hosts`).

SIGTERM (a job's stopping condition) and Ctrl-C stop the download within
seconds: temporary files are removed, completed files kept and recorded, so
a rerun fetches only the rest. Exit status 143 after SIGTERM, 130 after Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import time

from channels.cli.args import add_endpoint_argument
from channels.cli.plan import add_plan_argument
from channels.hosts import host_identity
from channels.listing import MANIFEST_FILE, S3_PREFIX, ListingAhead, list_source
from channels.sharding import DISTRIBUTION_TYPES, SHARDED_BY_S3_KEY, STRATEGIES
from channels.store import Store
from channels.units import MIB

NAME = "download"
HELP = ("File mode: download this host's share of a prefix (or every File channel of a job) to a "
        "directory, in parallel, resumably, never leaving a partial file under its final name.")
#: The process ends as soon as the download returns (:func:`channels.cli.main.exit_at_once`).
EXIT_AT_ONCE = True


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: unwinds like Ctrl-C so every ``finally`` cleans up."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("uri", help="prefix (s3://bucket/prefix/), manifest URL, or a job's JSON with --root")
    p.add_argument("dest", nargs="?", help="destination directory (not with --root)")
    p.add_argument("--root", metavar="DIR",
                   help="with a job's JSON: download every File channel to DIR/input/data/<channel>/")
    p.add_argument("--hosts", type=int, help="number of hosts (default: resourceconfig.json, SM_HOSTS, or 1)")
    p.add_argument("--host-index", type=int, help="this host's 0-based index, with --hosts")
    p.add_argument("--strategy", choices=[*STRATEGIES, *DISTRIBUTION_TYPES],
                   help=f"sharding (default: {SHARDED_BY_S3_KEY}; a job's channels use their "
                        "S3DataDistributionType)")
    p.add_argument("--data-type", choices=[S3_PREFIX, MANIFEST_FILE], default=S3_PREFIX,
                   help="what URI names (default: %(default)s)")
    p.add_argument("--volume-size-gb", type=float, metavar="G",
                   help="VolumeSizeInGB (GiB): fail before downloading if this host's share does not fit "
                        "(a job's own value by default)")
    p.add_argument("--max-workers", type=int, help="GETs in flight (default: the transport's)")
    p.add_argument("--part-size-mib", type=int, help="bytes per ranged GET of a large object, in MiB")
    p.add_argument("--fsync", action="store_true", help="fsync each file before renaming it into place")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    add_plan_argument(p)
    add_endpoint_argument(p)


def run(args: argparse.Namespace) -> int:
    job_path = _job_path(args)
    if job_path is None and not args.dest:
        print("channels download: error: give a destination directory (channels download URI DEST), or a "
              "job's JSON with --root DIR", file=sys.stderr)
        return 2
    if job_path is not None and not args.root:
        print(f"channels download: error: {job_path} is a job's JSON: give --root DIR (channels land in "
              "DIR/input/data/<channel>/)", file=sys.stderr)
        return 2
    if job_path is not None and args.dest:
        print("channels download: error: a job's JSON takes --root DIR, not a DEST argument", file=sys.stderr)
        return 2
    index, count, host = host_identity(args.hosts, args.host_index)
    store = Store.from_env(args.endpoint_url)
    started = time.monotonic()
    # A prefix (or manifest) without --plan: the store lists (about 25 ms for 64 keys from moto)
    # while the transport and the file writer are imported (about as long).
    ahead = (ListingAhead(lambda: list_source(args.uri, args.data_type, store=store))
             if job_path is None and args.plan is None else None)
    from channels.transport import TransportConfig

    knobs = {}
    if args.max_workers:
        knobs["max_workers"] = args.max_workers
    if args.part_size_mib:
        knobs["part_size"] = args.part_size_mib * MIB
    config = TransportConfig(**knobs) if knobs else None
    common = dict(hosts=count, host_index=index, host=host, volume_size_gb=args.volume_size_gb, store=store,
                  config=config, progress=False if args.quiet else None, log=None if args.quiet else _say,
                  fsync=args.fsync)
    # channels.plan reads Parquet (pyarrow, numpy: a fifth of a second at start): only with --plan.
    if args.plan is not None:
        from channels.plan import load_plan, stale_plan_hint

        plan_hint = stale_plan_hint(args.plan)
    else:
        plan_hint = contextlib.nullcontext()
    with _sigterm_raises(), plan_hint:
        try:
            if job_path is not None:
                from channels.modes.file.job import download_job

                download_job(job_path, args.root, strategy=args.strategy, plan=args.plan, **common)
            else:
                from channels.modes.file.download import download  # imported while the store lists

                if ahead is not None:
                    source = ahead.result()
                else:
                    source = load_plan(args.plan, store=store).for_source(args.uri, args.data_type)
                download(source, args.dest, strategy=args.strategy or SHARDED_BY_S3_KEY,
                         data_type=args.data_type, started=started, **common)
        except Terminated:
            print("channels download: stopped by SIGTERM; rerun to finish", file=sys.stderr)
            return 128 + signal.SIGTERM
    return 0


def _job_path(args: argparse.Namespace) -> str | None:
    if args.root:
        return args.uri
    uri = args.uri
    if "://" not in uri and uri.endswith(".json") and os.path.isfile(uri) and not args.dest:
        return uri  # caught below: a job's JSON needs --root
    return None


def _say(line: str) -> None:
    print(line, flush=True)


class _sigterm_raises:
    """Turn SIGTERM into :class:`Terminated` in the main thread while active.

    A second SIGTERM during the clean-up is ignored, so the clean-up finishes.
    """

    def __enter__(self) -> None:
        self._old = None
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGTERM, self._handle)

    def __exit__(self, *exc) -> None:
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)

    @staticmethod
    def _handle(signum, frame) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated()
