"""A real S3 endpoint on loopback, and generated datasets to fill it.

Used by the test suite, the demo and the benchmark harness. The endpoint is
moto's server (``moto[server]``, installed with the ``test`` extra), the same
rig s3fs tests itself with: real HTTP on 127.0.0.1, real signed requests.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}

KIB = 1024
MIB = 1024 * 1024


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.01) -> bool:
    """Poll ``predicate`` until it is true (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalS3:
    """moto's S3 server on a free loopback port.

    Example:
        >>> with LocalS3() as s3:           # doctest: +SKIP
        ...     s3.client().create_bucket(Bucket="b")
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self._server = None

    def start(self) -> "LocalS3":
        try:
            from moto.server import ThreadedMotoServer
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError(
                "the embedded S3 endpoint needs moto's server: pip install 'channels[test]'"
            ) from exc
        import logging

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return self
            time.sleep(0.02)
        raise RuntimeError(f"moto server did not start on port {self.port}")

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def reset(self) -> None:
        """Forget every bucket (moto's reset API), between tests."""
        import urllib.request

        req = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        urllib.request.urlopen(req, timeout=10).close()

    def client(self, **config):
        import boto3
        import botocore.config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=DUMMY_CREDENTIALS["AWS_DEFAULT_REGION"],
            config=botocore.config.Config(max_pool_connections=64, **config),
        )

    def __enter__(self) -> "LocalS3":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@contextlib.contextmanager
def dummy_credentials() -> Iterator[None]:
    """Set dummy AWS credentials in this process only, restoring after."""
    saved = {k: os.environ.get(k) for k in DUMMY_CREDENTIALS}
    os.environ.update(DUMMY_CREDENTIALS)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# ---------------------------------------------------------------- datasets

@dataclass(frozen=True)
class Dataset:
    """Generated object sizes, keys and a seed for their content."""

    name: str
    sizes: np.ndarray  # int64 bytes per object
    prefix: str = "data/"
    seed: int = 0

    def keys(self) -> list[str]:
        width = max(5, len(str(len(self.sizes))))
        return [f"{self.prefix}part-{i:0{width}d}.bin" for i in range(len(self.sizes))]

    @property
    def total_bytes(self) -> int:
        return int(self.sizes.sum())


def uniform_sizes(count: int, size: int) -> np.ndarray:
    return np.full(count, size, dtype=np.int64)


def lognormal_sizes(count: int, median: int = 64 * KIB, sigma: float = 2.0, seed: int = 0,
                    max_size: int = 256 * MIB) -> np.ndarray:
    """Sizes drawn from a lognormal distribution around ``median`` bytes."""
    rng = np.random.default_rng(seed)
    sizes = np.exp(rng.normal(np.log(median), sigma, count))
    return np.clip(sizes, 1, max_size).astype(np.int64)


def one_giant_sizes(count: int, small: int = 4 * KIB, giant: int = 64 * MIB) -> np.ndarray:
    sizes = np.full(count, small, dtype=np.int64)
    sizes[count // 2] = giant
    return sizes


def tiny_sizes(count: int, size: int = 100) -> np.ndarray:
    return np.full(count, size, dtype=np.int64)


def object_bytes(key: str, size: int, seed: int = 0) -> bytes:
    """Deterministic, incompressible-ish content for an object."""
    h = (hash_key(key) ^ seed) & 0xFFFFFFFF
    rng = np.random.default_rng(h)
    return rng.integers(0, 256, size, dtype=np.uint8).tobytes()


def hash_key(key: str) -> int:
    import zlib

    return zlib.crc32(key.encode())


def fill_bucket(client, bucket: str, dataset: Dataset, *, create: bool = True,
                threads: int = 16, content=None) -> dict[str, bytes | int]:
    """Upload a dataset; returns {key: size}.

    ``content(key, size) -> bytes`` overrides the generated bytes.
    """
    from concurrent.futures import ThreadPoolExecutor

    if create:
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket=bucket)
    make = content or (lambda k, n: object_bytes(k, n, dataset.seed))

    def put(item):
        key, size = item
        client.put_object(Bucket=bucket, Key=key, Body=make(key, int(size)))
        return key, int(size)

    with ThreadPoolExecutor(threads) as pool:
        return dict(pool.map(put, zip(dataset.keys(), dataset.sizes.tolist())))
