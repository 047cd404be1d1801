"""One fault at a time, aimed: a listing page cut short, a stalled response, a
retry budget spent, an object overwritten mid-read.

Each test breaks chosen requests through the rig's loopback proxy
(:class:`channels.testing.proxy.Proxy`) in front of moto and checks what the
reader does: retries it once per fault injected, or an error that names the
object, the offset, the attempts and the cause; never a mix of two versions
of an object. ``tests/test_faults.py`` breaks 5% of every mode's requests.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from faultload import CONFIG, PREFIX, READAHEAD, put_dataset
from faultproxy import fault_proxy

from channels.errors import ObjectChangedError, TransportError
from channels.listing import list_prefix
from channels.modes.fastfile.readahead import ReadaheadConfig
from channels.modes.fastfile.view import FastFileView
from channels.modes.file.download import download
from channels.modes.pipe.reader import PipeReader
from channels.store import Store
from channels.testing import KIB, object_bytes
from channels.testing.faults import Action, RequestInfo, object_gets
from channels.transport import Transport, TransportConfig

Policy = Callable[[RequestInfo], "Action | None"]


@pytest.fixture
def dataset(s3_client, bucket) -> dict[str, bytes]:
    """40 objects below PREFIX, 0 B to 400 KiB."""
    return put_dataset(s3_client, bucket)


def test_listing_page_cut_short_is_retried(s3, s3_client, bucket, dataset):
    """A listing response reset partway, then one cut short with a clean close: the lister retries both."""
    cuts = iter([Action("reset", after_bytes=300), Action("stall", after_bytes=500, seconds=0.0)])
    lists: list[RequestInfo] = []

    def policy(req: RequestInfo) -> Action | None:
        if req.method == "GET" and "list-type" in req.target:
            lists.append(req)
            return next(cuts, None)
        return None

    with fault_proxy(s3, policy) as proxy:
        listing = list_prefix(f"s3://{bucket}/{PREFIX}", store=Store(proxy.url))
    assert [r.key for r in listing.refs] == [k.removeprefix(PREFIX) for k in sorted(dataset)]
    assert [r.size for r in listing.refs] == [len(dataset[k]) for k in sorted(dataset)]
    assert len(proxy.stats.faults) == 2 and len(lists) == 3  # two cut pages, one whole


def stall_once(after: int = 1000) -> Policy:
    """A policy that stalls the first object GET for a long time."""
    done = []

    def policy(req: RequestInfo) -> Action | None:
        if object_gets(req) and not done:
            done.append(req)
            return Action("stall", after_bytes=after, seconds=30.0)
        return None

    return policy


def read_one(mode: str, uri: str, key: str, store: Store, config: TransportConfig, tmp_path: Path):
    """Read ``key`` below ``uri`` in one mode; returns (bytes, transport stats)."""
    if mode == "pipe":
        with PipeReader(uri, framing="object", store=store, config=config) as reader:
            got = b"".join(bytes(r) for r in reader.epoch(0))
            return got, reader.transport.stats.snapshot()
    if mode == "file":
        result = download(uri, tmp_path / "dest", store=store, config=config, progress=False)
        return (tmp_path / "dest" / key).read_bytes(), {"retries": result.retries}
    readahead = ReadaheadConfig(**{**READAHEAD, "whole_object_bytes": 0})  # ranged reads only
    with Transport(store, config) as t, FastFileView(uri, store, readahead, transport=t) as view, \
            view.open(key) as f:
        return f.read(), t.stats.snapshot()


@pytest.mark.parametrize("mode", ["pipe", "file", "fastfile"])
def test_a_stalled_response_is_timed_out_and_retried(s3, s3_client, bucket, tmp_path, mode):
    data = object_bytes("slow", 300 * KIB)
    s3_client.put_object(Bucket=bucket, Key="slow/x.bin", Body=data)
    config = TransportConfig(**{**CONFIG, "read_timeout": 0.3})
    with fault_proxy(s3, stall_once()) as proxy:
        started = time.monotonic()
        got, stats = read_one(mode, f"s3://{bucket}/slow/", "x.bin", Store(proxy.url), config, tmp_path)
        elapsed = time.monotonic() - started
    assert got == data
    assert stats["retries"] == 1 and len(proxy.stats.faults) == 1
    assert elapsed < 10, f"the stall (30 s) was waited out: {elapsed:.1f}s"


def range_start(req: RequestInfo) -> int | None:
    return int(req.range.removeprefix("bytes=").split("-")[0]) if req.range else None


def from_offset(key: str, offset: int, answer: Callable[[int], Action | None]) -> Policy:
    """A policy for the GETs of ``key`` whose range starts at ``offset`` or later.

    ``policy.starts`` records each one's range start; ``answer(n)``, called
    with how many there were so far, decides its fault.
    """
    def policy(req: RequestInfo) -> Action | None:
        start = range_start(req)
        if object_gets(req) and req.target.endswith(key) and start is not None and start >= offset:
            policy.starts.append(start)
            return answer(len(policy.starts))
        return None

    policy.starts = []
    return policy


def fail_from(key: str, offset: int) -> Policy:
    """503 SlowDown for every GET of ``key`` whose range starts at ``offset`` or later."""
    return from_offset(key, offset, lambda n: Action("status", status=503))


@pytest.mark.parametrize("mode", ["pipe", "file", "fastfile"])
def test_spent_retry_budget_names_object_offset_attempts_and_cause(s3, s3_client, bucket, tmp_path, mode):
    s3_client.put_object(Bucket=bucket, Key="down/x.bin", Body=object_bytes("down", 300 * KIB))
    config = TransportConfig(**{**CONFIG, "retries": 3, "max_workers": 1})
    url = f"s3://{bucket}/down/x.bin"
    policy = fail_from("down/x.bin", 128 * KIB)
    with fault_proxy(s3, policy) as proxy:
        with pytest.raises(TransportError) as info:
            read_one(mode, f"s3://{bucket}/down/", "x.bin", Store(proxy.url), config, tmp_path)
    err = info.value
    # Pipe and File read 64 KiB parts (the failing one starts at 128 KiB);
    # FastFile's windows grow, so its failing part starts somewhere past that.
    offset = err.details["offset"]
    assert offset == 128 * KIB if mode != "fastfile" else offset in policy.starts
    message = str(err)
    assert url in message and f"at offset {offset} " in message and "after 4 attempts" in message
    assert "SlowDown" in message and "503" in message
    assert err.details["url"] == url and err.details["attempts"] == 4
    assert err.__cause__ is not None
    assert policy.starts.count(offset) == 4 and len(proxy.stats.faults) == len(policy.starts)
    if mode == "file":
        assert not (tmp_path / "dest" / "x.bin").exists()


def overwrite_midway(s3_client, bucket: str, key: str, offset: int) -> Policy:
    """Overwrite ``key`` at the store just before the first GET of a range at ``offset`` or later.

    ``policy.starts[0]`` is that range's start.
    """
    def answer(n: int) -> None:
        if n == 1:
            s3_client.put_object(Bucket=bucket, Key=key, Body=b"new version " * 30_000)

    return from_offset(key, offset, answer)


@pytest.mark.parametrize("mode", ["pipe", "file", "fastfile"])
def test_an_object_overwritten_mid_read_is_reported_not_mixed(s3, s3_client, bucket, tmp_path, mode):
    s3_client.put_object(Bucket=bucket, Key="chg/x.bin", Body=object_bytes("old", 300 * KIB))
    config = TransportConfig(**{**CONFIG, "max_workers": 1})
    policy = overwrite_midway(s3_client, bucket, "chg/x.bin", 128 * KIB)
    url = f"s3://{bucket}/chg/x.bin"
    with fault_proxy(s3, policy) as proxy:
        with pytest.raises(ObjectChangedError) as info:
            read_one(mode, f"s3://{bucket}/chg/", "x.bin", Store(proxy.url), config, tmp_path)
    assert policy.starts, "the object was never overwritten"
    err = info.value
    offset = err.details["offset"]
    assert url in str(err) and "changed since it was listed" in str(err) and f"offset {offset}" in str(err)
    assert err.details["url"] == url
    # Pipe and File read parts in order (one worker): the first part after the
    # overwrite fails. FastFile fetches a window's parts on several threads, so
    # any part that reached the store after the overwrite may be the one.
    assert offset == policy.starts[0] if mode != "fastfile" else 0 <= offset < 300 * KIB
    if mode == "file":  # no file mixing two versions is left under its name
        assert not (tmp_path / "dest" / "x.bin").exists()
