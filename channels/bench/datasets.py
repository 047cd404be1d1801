"""The benchmark's datasets: generated once per endpoint, reused after.

Every object is a RecordIO file of fixed-size records, so that a reader that
frames records (Pipe with ``framing="recordio"``) has real records to count
and every other client moves the very same bytes. A payload never holds the
RecordIO magic at an aligned offset (the top bit of every aligned word's last
byte is cleared), so each record is one whole part and the record count per
object is exact: ``object_size / record_size``.

Keys: ``bench/<name>-<count>x<size>/part-NNNNN.bin``. A dataset already on
the endpoint with the same keys and sizes is reused (one listing call);
anything else is (re)uploaded.
"""

from __future__ import annotations

import contextlib
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from channels.records import MAGIC
from channels.units import KIB, MIB

HEADER = 8


@dataclass(frozen=True)
class BenchDataset:
    """Objects of one size (``sizes`` None) or of given sizes.

    Attributes:
        name: short label (``large``, ``small``, ``skewed``).
        count: number of objects.
        object_size: bytes per object (uniform datasets).
        record_size: bytes per RecordIO record, header included (a multiple
            of 4 that divides ``object_size``).
        sizes: explicit sizes (skewed datasets); then content is random bytes.
        seed: content seed.
    """

    name: str
    count: int
    object_size: int = 0
    record_size: int = 0
    sizes: tuple[int, ...] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.sizes is None:
            if self.record_size % 4 or self.record_size <= HEADER or self.object_size % self.record_size:
                raise ValueError(f"dataset {self.name}: record_size {self.record_size} must be a multiple of 4 "
                                 f"above {HEADER} that divides object_size {self.object_size}")
        elif len(self.sizes) != self.count:
            raise ValueError(f"dataset {self.name}: {len(self.sizes)} sizes for {self.count} objects")

    @property
    def prefix(self) -> str:
        if self.sizes is None:
            return f"bench/{self.name}-{self.count}x{_size_label(self.object_size)}/"
        return f"bench/{self.name}-{self.count}-{zlib.crc32(np.asarray(self.sizes).tobytes()):08x}/"

    def keys(self) -> list[str]:
        return [f"{self.prefix}part-{i:05d}.bin" for i in range(self.count)]

    def size_array(self) -> np.ndarray:
        if self.sizes is None:
            return np.full(self.count, self.object_size, dtype=np.int64)
        return np.asarray(self.sizes, dtype=np.int64)

    @property
    def total_bytes(self) -> int:
        return int(self.size_array().sum())

    @property
    def records_per_object(self) -> int | None:
        return self.object_size // self.record_size if self.sizes is None else None

    @property
    def records(self) -> int | None:
        rpo = self.records_per_object
        return None if rpo is None else rpo * self.count

    def label(self) -> str:
        if self.sizes is None:
            return f"{self.count} x {_size_label(self.object_size)}"
        return f"{self.count} objects, {self.total_bytes / 1e6:.0f} MB"

    def to_dict(self) -> dict:
        d = {"name": self.name, "label": self.label(), "objects": self.count, "total_bytes": self.total_bytes,
             "prefix": self.prefix, "object_size": self.object_size or None,
             "record_size": self.record_size or None, "records": self.records}
        return d

    def content(self, index: int) -> bytes:
        """The bytes of object ``index``."""
        size = int(self.size_array()[index])
        rng = np.random.default_rng((self.seed, index, size))
        data = np.frombuffer(rng.bytes(size), dtype=np.uint8).copy()
        if self.sizes is not None:
            return data.tobytes()
        words = data.reshape(-1, 4)
        words[:, 3] &= 0x7F  # no aligned word can be the magic 0xced7230a (LE last byte 0xce)
        recs = data.reshape(-1, self.record_size)
        header = struct.pack("<II", MAGIC, self.record_size - HEADER)
        recs[:, :HEADER] = np.frombuffer(header, dtype=np.uint8)
        return data.tobytes()


def _size_label(n: int) -> str:
    if n % MIB == 0:
        return f"{n // MIB}MiB"
    if n % KIB == 0:
        return f"{n // KIB}KiB"
    return f"{n}B"


def ensure(client, bucket: str, dataset: BenchDataset, *, threads: int = 8) -> bool:
    """Upload ``dataset`` unless the endpoint has it already; True if uploaded.

    Args:
        client: a boto3 S3 client on the endpoint (not through a proxy).
        bucket: the bucket (created if missing).
        dataset: what to upload.
        threads: uploads in flight.
    """
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou, client.exceptions.BucketAlreadyExists):
        client.create_bucket(Bucket=bucket)
    want = dict(zip(dataset.keys(), dataset.size_array().tolist()))
    have = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=dataset.prefix):
        have.update({o["Key"]: o["Size"] for o in page.get("Contents", [])})
    if have == want:
        return False

    def put(i: int) -> None:
        client.put_object(Bucket=bucket, Key=dataset.keys()[i], Body=dataset.content(i))

    missing = [i for i, (k, n) in enumerate(want.items()) if have.get(k) != n]
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(put, missing))
    return True


def throughput_datasets(quick: bool) -> list[BenchDataset]:
    """The throughput suite's datasets: large objects, and small ones.

    ``large``: 16 MiB objects (one GET each for our transport),
    64 KiB records. ``small``: 64 KiB objects, 1 KiB records, where
    per-request cost and latency dominate.
    """
    if quick:
        return [BenchDataset("large", 32, 16 * MIB, 64 * KIB), BenchDataset("small", 256, 64 * KIB, KIB)]
    return [BenchDataset("large", 64, 16 * MIB, 64 * KIB), BenchDataset("small", 1024, 64 * KIB, KIB)]


def skewed_dataset(count: int = 240, median: int = 96 * KIB, sigma: float = 2.0, seed: int = 4,
                   max_size: int = 64 * MIB) -> BenchDataset:
    """Lognormal sizes (the host-imbalance suite's dataset).

    The default (240 objects, 148 MB, seed 4) plans to 1.61x for
    ShardedByS3Key and 1.00x for size-balanced over 8 hosts (its largest
    object is below a host's fair share). Few objects of some size keep the
    endpoint's request rate (moto: a few hundred GETs/s) from being what
    bounds the hosts, so their bandwidth is.
    """
    from channels.testing import lognormal_sizes

    sizes = lognormal_sizes(count, median=median, sigma=sigma, seed=seed, max_size=max_size)
    return BenchDataset("skewed", count, sizes=tuple(int(s) for s in sizes), seed=seed)
