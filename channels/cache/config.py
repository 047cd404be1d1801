"""What a local cache is: a directory and a size limit, one frozen, validated value."""

from __future__ import annotations

import os
from dataclasses import dataclass

from channels.units import human_bytes, parse_size

#: How a dataset larger than the cache fills it (:attr:`CacheConfig.fill`).
FILLS = ("eager", "paid")


@dataclass(frozen=True)
class CacheConfig:
    """A local cache of whole objects for later epochs, enabled by its size limit.

    Picklable (it travels inside :class:`~channels.transport.TransportConfig`
    to DataLoader workers); each process opens the directory itself, and
    several processes may share one directory (see :mod:`channels.cache`).

    Attributes:
        directory: where the entries live; made (0700) if missing. Give it a
            local disk: a cache on network storage only moves the far store
            nearer by one hop.
        size_bytes: the most bytes of whole objects kept. A size string
            (``"20GiB"``, ``"500MB"``) is read with
            :func:`channels.units.parse_size`. Objects being written (at most
            the objects in flight, and never more than this limit per process)
            come on top until they are whole.
        fill: how a dataset larger than the cache fills it (see
            :mod:`channels.cache.policy`). ``"eager"`` (the default): every
            object that fits is written from the first epoch on; that epoch
            pays for the copies (about 0.1 CPU-s per 256 MiB) and every later
            one gets the full gain. ``"paid"``: the first epoch writes 1/16
            of the limit, each later one as many bytes as it finds kept, so
            that no epoch spends more on writes than its hits save, for jobs
            whose reads need the CPU the copies take; the full gain comes in
            the fifth or sixth epoch. A dataset that fits is written whole in
            its first epoch either way.
    """

    directory: str
    size_bytes: int
    fill: str = "eager"

    def __post_init__(self) -> None:
        problems = []
        directory = self.directory
        if isinstance(directory, os.PathLike):
            directory = os.fspath(directory)
        if not isinstance(directory, str) or not directory:
            problems.append(f"directory must be a non-empty path, got {self.directory!r}")
        size = self.size_bytes
        if isinstance(size, str):
            try:
                size = parse_size(size)
            except ValueError as exc:
                problems.append(f"size_bytes: {exc}")
        if not problems and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            problems.append(f"size_bytes must be a positive number of bytes, got {self.size_bytes!r}")
        if self.fill not in FILLS:
            problems.append(f"fill must be one of {', '.join(map(repr, FILLS))}, got {self.fill!r}")
        if problems:
            raise ValueError("invalid CacheConfig: " + "; ".join(problems))
        object.__setattr__(self, "directory", os.path.abspath(directory))
        object.__setattr__(self, "size_bytes", size)

    def describe(self) -> str:
        return f"{self.directory} (up to {human_bytes(self.size_bytes)})"
