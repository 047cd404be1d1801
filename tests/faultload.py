"""What the fault tests put through the proxy: 40 objects below PREFIX, and transport and readahead settings."""

from __future__ import annotations

import random

from channels.testing import KIB, object_bytes

#: A short read timeout, so that a stalled response (2 s in MixedFaults) is abandoned quickly.
READ_TIMEOUT = 0.5
PREFIX = "ds/"

#: Small parts, so that a few MiB make a few hundred GETs (5% of them faulted).
CONFIG = dict(part_size=64 * KIB, budget_bytes=1024 * KIB, max_workers=8, retries=6,
              backoff_base=0.001, backoff_max=0.01, read_timeout=READ_TIMEOUT, connect_timeout=2.0)
#: FastFile windows of 64 to 256 KiB in 64 KiB parts; objects up to 128 KiB read whole.
READAHEAD = dict(initial_window=64 * KIB, part_size=64 * KIB, max_window=256 * KIB, budget_bytes=2048 * KIB,
                 max_workers=8, whole_object_bytes=128 * KIB)


def put_dataset(s3_client, bucket: str) -> dict[str, bytes]:
    """40 objects below PREFIX, 0 B to 400 KiB (about 8 MiB): a few hundred 64 KiB GETs; key -> bytes."""
    rng = random.Random(8)
    sizes = [0, 1, 64 * KIB, 64 * KIB + 1] + [rng.randint(1, 400 * KIB) for _ in range(36)]
    data = {}
    for i, size in enumerate(sizes):
        key = f"{PREFIX}obj-{i:03d}.bin"
        data[key] = object_bytes(key, size)
        s3_client.put_object(Bucket=bucket, Key=key, Body=data[key])
    return data
