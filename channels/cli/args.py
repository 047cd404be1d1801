"""Arguments that several subcommands share."""

from __future__ import annotations

import argparse


def add_endpoint_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--endpoint-url",
        help="S3 endpoint (default: $AWS_ENDPOINT_URL_S3, then $AWS_ENDPOINT_URL, then AWS)",
    )


def add_cache_arguments(parser: argparse.ArgumentParser) -> None:
    """``--cache-dir``, ``--cache-size`` and ``--cache-fill``: a local cache of whole objects for later epochs."""
    from channels.cache.config import FILLS  # the commands with a cache load it anyway
    parser.add_argument("--cache-dir", metavar="DIR",
                        help="keep whole objects in DIR (a local disk) so that later epochs read them from "
                             "there; needs --cache-size. Processes may share one DIR")
    parser.add_argument("--cache-size", metavar="SIZE", type=_size,
                        help="the most bytes the cache keeps, e.g. 20GiB or 500MB; needs --cache-dir")
    parser.add_argument("--cache-fill", choices=FILLS, default=FILLS[0],
                        help="how a dataset larger than the cache fills it: 'eager' (default) writes all that "
                             "fits in the first epoch; 'paid' writes 1/16 of the cache in the first epoch, then "
                             "per epoch as much as it finds kept (no epoch spends more CPU on copies than its "
                             "hits save)")


def cache_config(args: argparse.Namespace, command: str):
    """The :class:`~channels.cache.CacheConfig` the arguments ask for, or None.

    Raises:
        ValueError: one of the two flags without the other (the message says which).
    """
    from channels.cache import CacheConfig

    directory, size = getattr(args, "cache_dir", None), getattr(args, "cache_size", None)
    if directory is None and size is None:
        return None
    if directory is None or size is None:
        missing = "--cache-dir DIR" if directory is None else "--cache-size SIZE (e.g. 20GiB)"
        raise ValueError(f"a cache needs a directory and a size limit: add {missing} "
                         f"(channels {command} ... --cache-dir DIR --cache-size 20GiB)")
    return CacheConfig(directory, size, fill=getattr(args, "cache_fill", "eager"))


def cache_argv(args: argparse.Namespace) -> list[str]:
    """The cache flags again, for a child ``channels`` command."""
    if getattr(args, "cache_dir", None) is None or getattr(args, "cache_size", None) is None:
        return []
    return ["--cache-dir", args.cache_dir, "--cache-size", str(args.cache_size),
            "--cache-fill", getattr(args, "cache_fill", "eager")]


def _size(text: str) -> int:
    from channels.units import parse_size

    try:
        size = parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if size < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is 0 bytes: a cache needs room for at least one object")
    return size
