"""An object in memory behind ReadaheadFile's fetch contract, and a random-read workload, for FastFile's tests."""

from __future__ import annotations

import random

from channels.modes.fastfile.config import ReadaheadConfig
from channels.modes.fastfile.readahead import ReadaheadFile
from channels.units import KIB, MIB

DATA = random.Random(7).randbytes(9 * MIB + 12345)


def memory_fetch(data: bytes, log: list | None = None, step: int = 256 * KIB):
    """``fetch(start, buf, cancel, progress)`` over bytes, recording each call's
    (start, length); it fills ``buf`` ``step`` bytes at a time, telling ``progress``."""

    def fetch(start: int, buf: memoryview, cancel=None, progress=None) -> None:
        if start < 0 or start + len(buf) > len(data):
            raise AssertionError(f"fetch past the end: [{start}, {start + len(buf)})")
        if log is not None:
            log.append((start, len(buf)))
        for lo in range(0, len(buf), step):
            hi = min(lo + step, len(buf))
            buf[lo:hi] = data[start + lo:start + hi]
            if progress is not None:
                progress(start + hi)

    return fetch


def open_mem(data: bytes = DATA, log: list | None = None, **config) -> ReadaheadFile:
    return ReadaheadFile(memory_fetch(data, log), len(data), name="mem",
                         config=ReadaheadConfig(**config) if config else None)


def random_4k_reads(f, data: bytes, reads: int, seed: int) -> int:
    """Seek and read 4 KiB at random ``reads`` times, checking each against ``data``; bytes returned."""
    rng = random.Random(seed)
    returned = 0
    for _ in range(reads):
        pos = rng.randrange(len(data))
        f.seek(pos)
        got = f.read(4 * KIB)
        assert got == data[pos:pos + 4 * KIB]
        returned += len(got)
    return returned
