"""The benchmarks' two object sets (large, small): the arguments that choose them, and their upload.

``pipe_bench.py`` and ``download_bench.py`` read a large set (64 x 16 MiB)
and a small one (2000 x 64 KiB) with several clients, interleaved, for
``--rounds`` rounds; both take the same arguments for that. They and the
pytest-benchmark suites (smaller sets, ``conftest.py``) upload a set with
:func:`upload`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from channels.bench.base import Target, s3_client
from channels.testing import Dataset, fill_bucket, uniform_sizes
from channels.units import GIB, KIB, MIB

UNITS = {"B": 1, "KiB": KIB, "MiB": MIB, "GiB": GIB}
LARGE = "64x16MiB"
SMALL = "2000x64KiB"


def parse_set(text: str) -> tuple[int, int]:
    """``64x16MiB`` -> (64, 16 MiB)."""
    import re

    m = re.fullmatch(r"(\d+)x(\d+)(B|KiB|MiB|GiB)", text)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r}: expected COUNTxSIZE like 64x16MiB or 2000x64KiB")
    return int(m.group(1)), int(m.group(2)) * UNITS[m.group(3)]


def set_parser(doc: str, clients: Sequence[str]) -> argparse.ArgumentParser:
    """A parser with ``--rounds``, ``--large``, ``--small``, ``--only`` and ``--clients`` (of ``clients``).

    Args:
        doc: the script's docstring; its first paragraph describes the parser.
        clients: every client the script knows, in its default order.
    """
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--large", type=parse_set, default=parse_set(LARGE))
    ap.add_argument("--small", type=parse_set, default=parse_set(SMALL))
    ap.add_argument("--only", choices=["large", "small"])
    ap.add_argument("--clients", default=",".join(clients), help="comma-separated subset")
    ap.set_defaults(known_clients=tuple(clients))
    return ap


def chosen(ap: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[list[str], dict[str, tuple[int, int]]]:
    """The clients asked for (unknown ones end the script with a usage error) and the sets by name."""
    wanted = [c for c in args.clients.split(",") if c]
    unknown = set(wanted) - set(args.known_clients)
    if unknown:
        ap.error(f"unknown client(s) {', '.join(sorted(unknown))}: use {', '.join(args.known_clients)}")
    sets = {"large": args.large, "small": args.small}
    return wanted, {args.only: sets[args.only]} if args.only else sets


def upload(endpoint_url: str, bucket: str, count: int, size: int, *, threads: int = 4,
           workdir: str = "") -> tuple[Target, int]:
    """``count`` objects of ``size`` random bytes into ``bucket`` (under ``data/``), then listed.

    Returns:
        the set as a runner's :class:`~channels.bench.base.Target` (with
        ``workdir`` for runners that write), and its bytes.
    """
    dataset = Dataset(bucket, uniform_sizes(count, size))
    fill_bucket(s3_client(endpoint_url, max(16, threads)), bucket, dataset, content=lambda k, n: os.urandom(n),
                threads=threads)
    return Target.listed(endpoint_url, bucket, dataset.prefix, workdir=workdir), dataset.total_bytes
