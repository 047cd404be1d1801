"""``channels mount``: a channel (or every FastFile channel of a job) as a read-only FUSE mount.

``channels mount s3://bucket/prefix/ /mnt/train`` mounts one prefix;
``channels mount JOB.json --root /opt/ml`` mounts each FastFile channel of
the job at ``/opt/ml/input/data/<channel>/``, one FUSE process per channel.

With ``--foreground`` the command serves until SIGTERM or Ctrl-C and then
unmounts; without it the mounts are served by background processes and the
command returns once every mount is up (unmount with ``fusermount3 -u`` or by
signalling the pid it prints).

By default a mount bypasses the kernel's page cache where the libfuse it
loads (3.17+, which ``make system-deps`` builds where the system's is older)
and the kernel allow shared mmap under direct I/O, and reads through the page
cache otherwise; ``--direct-io`` and ``--page-cache`` choose. ``--verbose``
says which libfuse was loaded and what the kernel granted.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import tempfile

from channels.cli.args import add_cache_arguments, add_endpoint_argument, cache_argv, cache_config
from channels.cli.plan import add_plan_argument
from channels.errors import MountError

NAME = "mount"
HELP = "Mount a channel (S3 prefix) or a job's FastFile channels read-only with FUSE."

#: Seconds to wait for a background mount to appear (the listing comes first).
READY_TIMEOUT = 600.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="an S3 prefix (s3://bucket/prefix/) or a job definition (JOB.json)")
    p.add_argument("mountpoint", nargs="?", help="an empty directory (with a prefix)")
    p.add_argument("--root", help="with a job: mount each FastFile channel at ROOT/input/data/<channel>/")
    p.add_argument("--foreground", action="store_true", help="serve until SIGTERM or Ctrl-C, then unmount")
    p.add_argument("--budget-mib", type=int, default=None,
                   help="readahead memory shared by all open files, per mount (default: the view's, 512)")
    p.add_argument("--prefetch-files", type=_int_at_least(0), default=None, metavar="N",
                   help="files fetched ahead of a reader going from file to file, 0 for none "
                        "(default: 8)")
    p.add_argument("--threads", type=_int_at_least(1), default=None, metavar="N",
                   help="FUSE worker threads, the reads served at once (default: 8)")
    io = p.add_mutually_exclusive_group()
    io.add_argument("--direct-io", action="store_const", dest="io", const="direct",
                    help="bypass the kernel's page cache even where mmap of a mounted file (np.memmap, "
                         "pyarrow.memory_map) then fails with ENODEV (libfuse older than 3.17); "
                         "default: bypass it only where mmap still works")
    io.add_argument("--page-cache", action="store_const", dest="io", const="page-cache",
                    help="read through the kernel's page cache: a file read twice comes from memory the "
                         "second time, but each byte costs a copy more")
    p.add_argument("--fuse-api", choices=("auto", "low-level", "high-level"), default=None,
                   help="which libfuse API serves the mount: its low-level one answers reads straight from the "
                        "readahead memory (libfuse 3.12+); default auto: the low-level one where the library has it")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="log which libfuse is loaded and how the kernel reads (on stderr, or in the log file)")
    p.add_argument("--debug", action="store_true", help="--verbose, and libfuse's trace of every request")
    add_cache_arguments(p)
    add_plan_argument(p)
    add_endpoint_argument(p)


def _int_at_least(minimum: int):
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {minimum} or more, got {value}")
        return value

    parse.__name__ = "int"  # argparse names the type in "invalid int value"
    return parse


def is_job_file(source: str) -> bool:
    return "://" not in source and source.endswith(".json")


def run(args: argparse.Namespace) -> int:
    try:
        cache_config(args, NAME)  # both flags or neither, before anything is mounted
    except ValueError as exc:
        raise MountError(str(exc)) from None
    if is_job_file(args.source):
        if args.mountpoint or not args.root:
            raise MountError(f"with a job definition give --root DIR and no MOUNTPOINT "
                             f"(channels mount {args.source} --root /opt/ml)")
        targets = job_targets(args.source, args.root, args.plan, args.endpoint_url)
    else:
        if not args.mountpoint or args.root:
            raise MountError(f"with a prefix give a MOUNTPOINT and no --root "
                             f"(channels mount {args.source} /mnt/data)")
        targets = [(args.source, args.mountpoint)]
    if args.foreground and len(targets) == 1:
        return serve(targets[0][0], targets[0][1], args)
    return supervise(targets, args)


def job_targets(path: str, root: str, plan: str | None = None,
                endpoint_url: str | None = None) -> list[tuple[str, str]]:
    """``(S3Uri, mount point)`` of each FastFile channel; the directories are created.

    With ``plan``, the plan is read and checked against the job first.
    """
    from channels.spec import Job

    job = Job.load(path)
    if plan is not None:
        from channels.plan import load_plan
        from channels.store import Store

        load_plan(plan, store=Store.from_env(endpoint_url)).check(job)
    targets = []
    for channel in job.channels:
        if job.mode_of(channel) != "FastFile":
            continue
        if channel.data_source.s3_data_type != "S3Prefix":
            raise MountError(f"channel {channel.name!r} is {channel.data_source.s3_data_type}; FastFile "
                             "mounts only an S3Prefix", channel=channel.name)
        target = os.path.join(root, "input", "data", channel.name)
        os.makedirs(target, exist_ok=True)
        targets.append((channel.data_source.s3_uri, target))
    if not targets:
        modes = ", ".join(f"{c.name}: {job.mode_of(c)}" for c in job.channels)
        raise MountError(f"{path} has no FastFile channels ({modes}); nothing to mount")
    return targets


def serve(uri: str, mountpoint: str, args: argparse.Namespace) -> int:
    """Mount one prefix in this process and block until a signal unmounts it."""
    from channels.modes.fastfile.mount import check_fuse, mount
    from channels.modes.fastfile.readahead import MIB, ReadaheadConfig
    from channels.modes.fastfile.view import FastFileView
    from channels.store import Store

    if args.verbose or args.debug:  # our messages only: botocore's would drown them
        logging.basicConfig(level=logging.WARNING, format="channels mount: %(message)s")
        logging.getLogger("channels").setLevel(logging.DEBUG if args.debug else logging.INFO)
    check_fuse(mountpoint)  # before the listing: a bad mount point fails fast
    budget = ReadaheadConfig().budget_bytes if args.budget_mib is None else args.budget_mib * MIB
    ahead = {} if args.prefetch_files is None else {"prefetch_files": args.prefetch_files}
    config = ReadaheadConfig(budget_bytes=budget, max_window=min(64 * MIB, max(MIB, budget // 4)), **ahead)
    view = FastFileView(uri, Store.from_env(args.endpoint_url), config, plan=args.plan,
                        cache=cache_config(args, NAME))
    if view.cache is not None:
        view.transport  # noqa: B018 - opens the cache: a directory that cannot be written fails before the mount
    threads = {} if args.threads is None else {"threads": args.threads}
    io = {} if args.io is None else {"io": args.io}
    api = {} if args.fuse_api is None else {"api": args.fuse_api}
    mount(view, mountpoint, debug=args.debug, **io, **threads, **api)
    return 0


def supervise(targets: list[tuple[str, str]], args: argparse.Namespace) -> int:
    """One ``--foreground`` child per mount; wait until all are up, then wait or return."""
    from channels.modes.fastfile.mount import check_fuse

    for _, mountpoint in targets:
        check_fuse(mountpoint)
    children: list = []
    stopping: list[int] = []
    old = None
    if args.foreground:
        # Forward signals from the start: a SIGTERM that lands while the mounts
        # are still coming up must unmount them too, not kill this process.
        def forward(signum, _frame):
            stopping.append(signum)
            for proc, *_ in children:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)

        old = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        return _start_and_wait(targets, args, children, stopping)
    finally:
        if old:
            for s, h in old.items():
                signal.signal(s, h)


def _start_and_wait(targets, args, children: list, stopping: list[int]) -> int:
    from channels.modes.fastfile.mount import wait_mounted

    for uri, mountpoint in targets:
        if stopping:
            break
        cmd = [sys.executable, "-m", "channels", "mount", uri, mountpoint, "--foreground"]
        if args.budget_mib is not None:
            cmd += ["--budget-mib", str(args.budget_mib)]
        if args.prefetch_files is not None:
            cmd += ["--prefetch-files", str(args.prefetch_files)]
        if args.threads is not None:
            cmd += ["--threads", str(args.threads)]
        if args.io is not None:
            cmd.append({"direct": "--direct-io", "page-cache": "--page-cache"}[args.io])
        if args.fuse_api is not None:
            cmd += ["--fuse-api", args.fuse_api]
        cmd += [flag for flag, on in (("--verbose", args.verbose), ("--debug", args.debug)) if on]
        cmd += cache_argv(args)
        if args.plan:
            cmd += ["--plan", args.plan]
        if args.endpoint_url:
            cmd += ["--endpoint-url", args.endpoint_url]
        logfile = tempfile.NamedTemporaryFile("w+", prefix="channels-mount-", suffix=".log", delete=False)
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logfile, stderr=subprocess.STDOUT,
                                start_new_session=not args.foreground)
        children.append((proc, uri, mountpoint, logfile))
    failed = []
    for proc, uri, mountpoint, logfile in children:
        if stopping:
            break
        if not wait_mounted(mountpoint, READY_TIMEOUT, alive=lambda p=proc: p.poll() is None):
            failed.append((proc, uri, mountpoint, logfile))
    if stopping:  # stopped while starting (a child may have started after the signal)
        _stop(children)
        return 0
    if failed:
        _stop(children)
        for _, uri, mountpoint, logfile in failed:
            logfile.seek(0)
            print(f"channels mount: {uri} at {mountpoint} failed:\n{logfile.read().strip()}", file=sys.stderr)
        return 2
    for proc, uri, mountpoint, logfile in children:
        print(f"mounted {uri} at {mountpoint} (pid {proc.pid}, log {logfile.name})", flush=True)
    if not args.foreground:
        print("unmount with: fusermount3 -u MOUNTPOINT (or kill PID)", flush=True)
        return 0
    return _wait(children)


def _wait(children) -> int:
    """Wait for every child to unmount (``supervise`` forwards the signals)."""
    codes = [proc.wait() for proc, *_ in children]
    return 1 if any(codes) else 0


def _stop(children) -> None:
    for proc, *_ in children:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc, *_ in children:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
