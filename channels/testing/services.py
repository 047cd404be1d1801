"""The benchmark's endpoint and proxies, each in its own process.

The harness measures three parties on one machine: the client (in the
harness's process), the endpoint and the proxy. Each runs in its own process
so that none holds another's GIL, and so that each one's CPU time can be read
from ``/proc/<pid>/stat`` around every measurement.

Children are started with ``python -m channels.testing.services KIND ...``;
each prints one JSON line (its URLs) when ready and runs until its standard
input closes, so a harness that dies takes them with it. The proxy child
also answers one-word commands on stdin, one JSON line each: ``stats``
(every listener's :class:`~channels.testing.proxy.ProxyStats`) and ``reset``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence

from channels.testing.profiles import Profile, get_profile

_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process (all its threads), or None.

    Reads ``/proc/<pid>/stat`` (Linux); None where it cannot be read.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name may hold spaces: fields start after its closing ")".
    fields = stat[stat.rindex(b")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime, stime (fields 14, 15)


class Child:
    """A ``channels.testing.services`` child process and what it announced.

    Attributes:
        info: the JSON object the child printed when ready.
        pid: its process id.
    """

    def __init__(self, argv: Sequence[str], *, timeout: float = 60.0) -> None:
        env = dict(os.environ)
        env.setdefault("OPENBLAS_NUM_THREADS", "1")
        self._proc = subprocess.Popen([sys.executable, "-m", "channels.testing.services", *argv],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self.pid = self._proc.pid
        deadline = time.monotonic() + timeout
        line = self._proc.stdout.readline()
        if not line or time.monotonic() > deadline:
            self.stop()
            raise RuntimeError(f"benchmark service {' '.join(argv)} did not start (exit {self._proc.poll()})")
        self.info = json.loads(line)

    def cpu(self) -> float | None:
        """CPU seconds used so far."""
        return cpu_seconds(self.pid)

    def command(self, word: str) -> dict:
        """Send a one-word command (``stats``, ``reset``); its one-line JSON answer."""
        self._proc.stdin.write(word.encode() + b"\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"benchmark service exited (exit {self._proc.poll()}) instead of answering {word!r}")
        return json.loads(line)

    def stop(self) -> None:
        """Close its stdin (it exits), kill it if it does not within 10 s."""
        if self._proc.poll() is None:
            try:
                self._proc.stdin.close()
                self._proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()
        if self._proc.stdout:
            self._proc.stdout.close()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_endpoint() -> Child:
    """moto's server on loopback, in a child; ``info["url"]`` is its endpoint."""
    return Child(["endpoint"])


def start_proxies(upstream: str | Sequence[str], profiles: Sequence[Profile], *,
                  listeners: int = 1, listener_bandwidth: float | None = None) -> Child:
    """One child serving a proxy per profile (``listeners`` each), in front of
    ``upstream`` (a list: replicas, taken in turn; see :class:`~channels.testing.proxy.Proxy`).

    ``info["urls"]`` maps each profile name to a list of ``listeners`` URLs;
    with ``listener_bandwidth`` every listener is capped on its own (one
    simulated host's network interface each).
    """
    argv = ["proxy", "--listeners", str(listeners)]
    for url in [upstream] if isinstance(upstream, str) else upstream:
        argv += ["--upstream", url]
    if listener_bandwidth:
        argv += ["--listener-bandwidth", str(listener_bandwidth)]
    for p in profiles:
        argv += ["--profile", json.dumps(p.to_dict())]
    return Child(argv)


def _serve_endpoint() -> None:
    from channels.testing.s3 import LocalS3, dummy_credentials

    with dummy_credentials(), LocalS3() as s3:
        print(json.dumps({"url": s3.endpoint_url, "pid": os.getpid()}), flush=True)
        sys.stdin.read()  # until the parent closes our stdin or dies


def _serve_proxies(args: argparse.Namespace) -> None:
    from dataclasses import replace

    from channels.testing.proxy import Proxy

    proxies, urls = [], {}
    for spec in args.profile:
        d = json.loads(spec)
        profile = Profile(**d) if isinstance(d, dict) else get_profile(d)
        if args.listener_bandwidth:
            profile = replace(profile, listener_bandwidth=args.listener_bandwidth)
        ps = [Proxy(args.upstream, profile).start() for _ in range(args.listeners)]
        proxies.extend(ps)
        urls[profile.name] = [p.url for p in ps]
    print(json.dumps({"urls": urls, "pid": os.getpid()}), flush=True)
    try:
        for line in sys.stdin:  # commands, one a line, until the parent closes our stdin
            word = line.strip()
            if word == "stats":
                for p in proxies:
                    p.quiesce()  # a client may hold its last byte before the proxy has noted it
                answer = {p.url: p.stats.to_dict() for p in proxies}
            elif word == "reset":
                for p in proxies:
                    p.reset_stats()
                answer = {"reset": len(proxies)}
            else:
                answer = {"error": f"unknown command {word!r}: use stats or reset"}
            print(json.dumps(answer), flush=True)
    finally:
        for p in proxies:
            p.stop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m channels.testing.services")
    sub = parser.add_subparsers(dest="kind", required=True)
    sub.add_parser("endpoint", help="moto's S3 server on a free loopback port")
    p = sub.add_parser("proxy", help="latency proxies in front of an endpoint")
    p.add_argument("--upstream", action="append", required=True, help="an endpoint; repeat for replicas")
    p.add_argument("--profile", action="append", default=[], help="a profile as JSON (Profile fields) or a name")
    p.add_argument("--listeners", type=int, default=1)
    p.add_argument("--listener-bandwidth", type=float)
    args = parser.parse_args(argv)
    if args.kind == "endpoint":
        _serve_endpoint()
    else:
        _serve_proxies(args)


if __name__ == "__main__":
    main()
