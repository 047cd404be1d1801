"""Baseline clients for the transport benchmarks, each used the way a user
would use it, and our own stream for comparison. Every function reads the
given objects completely and returns the number of bytes read.

Clients are made once per endpoint and reused (as a training job would), so
rounds after the first measure reading, not client construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

from channels.listing import ObjectRef
from channels.store import Store
from channels.testing import DUMMY_CREDENTIALS
from channels.transport import Transport, TransportConfig


@lru_cache(maxsize=8)
def _boto3_client(endpoint: str, pool: int):
    import boto3
    import botocore.config

    return boto3.client(
        "s3", endpoint_url=endpoint, region_name=DUMMY_CREDENTIALS["AWS_DEFAULT_REGION"],
        aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        config=botocore.config.Config(max_pool_connections=pool))


def boto3_threads(endpoint: str, bucket: str, keys: Sequence[str], threads: int = 8) -> int:
    """``get_object(...)['Body'].read()`` per object in a pool of ``threads``.

    Whole-object GETs, boto3's defaults (it checks the CRC32 of whole
    objects when the store returns one).
    """
    client = _boto3_client(endpoint, max(10, threads))

    def one(key: str) -> int:
        return len(client.get_object(Bucket=bucket, Key=key)["Body"].read())

    with ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(one, keys))


@lru_cache(maxsize=8)
def _s3fs(endpoint: str):
    import s3fs

    return s3fs.S3FileSystem(
        key=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"], secret=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        client_kwargs={"endpoint_url": endpoint, "region_name": DUMMY_CREDENTIALS["AWS_DEFAULT_REGION"]},
        use_listings_cache=False, skip_instance_cache=True)


def s3fs_open_read(endpoint: str, bucket: str, keys: Sequence[str]) -> int:
    """``fs.open(path).read()`` per object, one after another: s3fs's usual use."""
    fs = _s3fs(endpoint)
    total = 0
    for key in keys:
        with fs.open(f"{bucket}/{key}", "rb") as f:
            total += len(f.read())
    return total


@lru_cache(maxsize=8)
def _transport(endpoint: str, config: TransportConfig | None) -> Transport:
    return Transport(Store(endpoint), config)


def channels_stream(endpoint: str, refs: Sequence[ObjectRef], config: TransportConfig | None = None) -> int:
    """Every chunk of ``Transport.stream`` (the Pipe/File hot path)."""
    total = 0
    with _transport(endpoint, config).stream(refs) as stream:
        for chunk in stream:
            total += len(chunk.data)
    return total


def versions() -> dict[str, str]:
    """Library versions, for the benchmark record."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("channels", "boto3", "botocore", "s3fs", "fsspec", "urllib3", "moto"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    return out
