"""``channels pipe``: serve a job's Pipe channels as per-epoch FIFOs, as SageMaker does.

It also writes the job's channels into ``ROOT/input/config/inputdataconfig.json``
(keeping other channels already there): AWS's PipeModeDataset refuses a
channel that file does not declare in Pipe mode.
"""

from __future__ import annotations

import argparse
import signal
import sys

from channels.cli.args import add_cache_arguments, add_endpoint_argument, cache_config
from channels.cli.plan import add_plan_argument
from channels.container import Layout, merge_input_data_config
from channels.errors import ChannelsError
from channels.hosts import host_identity
from channels.modes.pipe.fifo import FifoServer
from channels.plan import load_plan, stale_plan_hint
from channels.spec import Job
from channels.store import Store
from channels.transport import TransportConfig
from channels.units import MIB

NAME = "pipe"
HELP = ("Serve every Pipe channel of a job as FIFOs ROOT/input/data/<channel>_<epoch>, "
        "one epoch after another, until stopped (SIGTERM, Ctrl-C) or --epochs are read; "
        "ROOT/input/config/inputdataconfig.json declares them.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("job", help="the job definition (JSON, as CreateTrainingJob takes it)")
    p.add_argument("--root", default="/opt/ml", help="container root; FIFOs go in ROOT/input/data "
                   "(default: %(default)s)")
    p.add_argument("--epochs", type=int, default=None,
                   help="epochs to serve per channel (default: until stopped, as SageMaker does)")
    p.add_argument("--hosts", type=int, help="host count (default: resourceconfig.json, SM_HOSTS, or 1)")
    p.add_argument("--host-index", type=int, help="this host's 0-based index (with --hosts)")
    p.add_argument("--channel", action="append", metavar="NAME",
                   help="serve only this Pipe channel (repeatable; default: all)")
    defaults = TransportConfig()
    p.add_argument("--budget-mib", type=int, default=defaults.budget_bytes // MIB,
                   help="memory budget per channel for reads in flight, MiB (default: %(default)s)")
    p.add_argument("--part-size-mib", type=int, default=defaults.part_size // MIB,
                   help="bytes per ranged GET of a large object, MiB (default: %(default)s)")
    p.add_argument("--mode", default="600", help="FIFO permission bits, octal: 600 or 640 (default: %(default)s)")
    p.add_argument("-v", "--verbose", action="store_true", help="one line per epoch served")
    add_cache_arguments(p)
    add_plan_argument(p)
    add_endpoint_argument(p)


def run(args: argparse.Namespace) -> int:
    job = Job.load(args.job)
    host_index, hosts, host = host_identity(args.hosts, args.host_index)
    pipe_channels = [ch.name for ch in job.channels if job.mode_of(ch) == "Pipe"]
    unknown = sorted(set(args.channel or ()) - set(pipe_channels))
    if unknown or not pipe_channels:
        print(f"channels pipe: error: no Pipe channel named {', '.join(unknown) or 'at all'} in {args.job}; "
              f"its Pipe channels: {', '.join(pipe_channels) or 'none'}", file=sys.stderr)
        return 2
    try:
        mode = int(args.mode, 8)
        config = TransportConfig(part_size=args.part_size_mib * MIB, budget_bytes=args.budget_mib * MIB,
                                 cache=cache_config(args, NAME))
        store = Store.from_env(args.endpoint_url)
        plan = None
        if args.plan is not None:  # read once for every channel, checked against the job
            plan = load_plan(args.plan, store=store)
            plan.check(job)
        server = FifoServer.from_job(job, args.root, epochs=args.epochs, hosts=hosts, host_index=host_index,
                                     mode=mode, store=store, config=config, only=args.channel, plan=plan)
    except ValueError as exc:
        print(f"channels pipe: error: {exc}", file=sys.stderr)
        return 2
    layout = Layout(args.root)
    try:
        merge_input_data_config(job, layout)
    except (OSError, ValueError) as exc:
        print(f"channels pipe: error: cannot write {layout.input_data_config_path}: {exc}", file=sys.stderr)
        server.close()
        return 2
    stopped_by: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        stopped_by.append(signum)
        server.stop()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    names = ", ".join(server.readers)
    epochs = "until stopped" if args.epochs is None else f"{args.epochs} epoch(s)"
    print(f"channels pipe: serving {names} in {server.data_dir} as <channel>_<epoch>, {epochs}, "
          f"host {host} ({host_index + 1} of {hosts})", file=sys.stderr, flush=True)
    try:
        with stale_plan_hint(plan):
            server.serve()
    except OSError as exc:
        if isinstance(exc, ChannelsError):
            raise
        # The FIFO directory cannot be made or written (a file in the way,
        # a read-only or immutable directory): one line, no traceback.
        print(f"channels pipe: error: cannot serve FIFOs in {server.data_dir}: {exc}", file=sys.stderr)
        return 2
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if args.verbose or stopped_by:
        for w in server.writers:
            print(f"channels pipe: {w.channel}: {w.epochs_done} epoch(s), {w.early_closes} closed early, "
                  f"{w.bytes_written} bytes", file=sys.stderr)
            cache = server.readers[w.channel].transport.cache_stats
            if cache is not None:
                print(f"channels pipe: {w.channel}: cache: {cache.hit_bytes} bytes served in {cache.hits} "
                      f"read(s), {cache.miss_bytes} bytes from the store, {cache.admitted} object(s) kept, "
                      f"{cache.evicted} evicted", file=sys.stderr)
    if stopped_by:
        print(f"channels pipe: stopped by {signal.Signals(stopped_by[0]).name}; FIFOs removed",
              file=sys.stderr)
        return 130 if stopped_by[0] == signal.SIGINT else 0
    return 0
