"""Streams with a sink: bytes go to the consumer's callable as they arrive.

File mode writes through this path; these tests hold the sink's contract for
every backend: each byte once, in offset order within a part, through a
landing buffer of at most SINK_BUFFER per part, failures in their place.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from transporting import put

import channels.transport.stream as stream_module
from channels.listing import ObjectRef
from channels.store import Store
from channels.transport import Backend, PartialRead, Transport, TransportConfig, plan_parts, register_backend
from channels.units import KIB, MIB


class Collector:
    """A thread-safe sink that rebuilds each object and checks each byte comes once."""

    def __init__(self, refs, max_run: int) -> None:
        self.objects = {r.url: bytearray(r.size) for r in refs}
        self.handed = {r.url: 0 for r in refs}
        self.max_run = max_run
        self.lock = threading.Lock()

    def __call__(self, ref: ObjectRef, offset: int, data: memoryview) -> None:
        assert 0 < len(data) <= self.max_run
        with self.lock:
            self.objects[ref.url][offset:offset + len(data)] = data
            self.handed[ref.url] += len(data)


def test_every_backend_hands_each_byte_once_through_small_landing_buffers(stored, monkeypatch):
    monkeypatch.setattr(stream_module, "SINK_BUFFER", 16 * KIB)  # smaller than a part: runs must split
    t, refs, blobs, _ = stored  # parts of 64 KiB, 4 workers
    sink = Collector(refs, max_run=16 * KIB)
    stream = t.stream(refs, sink=sink)
    chunks = [(c.ref.url, c.offset, c.nbytes, c.last, len(c.data)) for c in stream]
    assert [bytes(sink.objects[r.url]) for r in refs] == blobs
    assert sink.handed == {r.url: r.size for r in refs}  # no byte twice, none missing
    # Every part still comes to the consumer, in order, with its length and no data.
    assert chunks == [(r.url, o, n, last, 0) for r, o, n, last in plan_parts(refs, 64 * KIB, 64 * KIB)]
    # Four runs in flight (and a smaller class kept free), not four whole 64 KiB parts.
    assert 0 < stream.buffer_peak <= 5 * 16 * KIB


def test_large_parts_in_flight_hold_one_landing_buffer_each(s3_client, bucket, s3):
    data = np.random.default_rng(3).bytes(9 * MIB + 5)
    refs = [put(s3_client, bucket, f"p{i}", data) for i in range(3)]
    # max_connections pins the ceiling at max_workers: on a loaded machine, moto's first bytes come late
    # enough for the link to look far, and the transport may then widen to max_connections GETs.
    cfg = TransportConfig(part_size=4 * MIB, budget_bytes=8 * MIB, max_workers=6, max_connections=6)
    sink = Collector(refs, max_run=stream_module.SINK_BUFFER)
    with Transport(Store(s3.endpoint_url), cfg) as t:
        stream = t.stream(refs, sink=sink)
        assert sum(c.nbytes for c in stream) == 3 * len(data)
        # Without a sink, 8 MiB of budget holds two 4 MiB parts; with one, six in flight need 6 MiB.
        assert stream.buffer_peak < (cfg.max_workers + 1) * stream_module.SINK_BUFFER  # + a small free class
    assert all(bytes(sink.objects[r.url]) == data for r in refs)


def test_a_failing_sink_fails_its_part_in_order_and_is_not_retried(s3_client, bucket, s3):
    refs = [put(s3_client, bucket, k, k.encode() * 100) for k in ("s1", "s2", "s3")]

    def sink(ref, offset, data):
        if ref.key == "s2":  # an OSError, as a full disk gives: not to be taken for a network failure
            raise OSError(28, "No space left on device")

    with Transport(Store(s3.endpoint_url), TransportConfig(max_workers=1)) as t:
        stream = t.stream(refs, sink=sink)
        assert next(stream).ref.key == "s1"
        with pytest.raises(OSError, match="No space left"):
            next(stream)
        assert t.stats.retries == 0 and t.stats.errors == 1


class _Flaky(Backend):
    """In-memory objects; the n-th call fails after writing some bytes (scripted)."""

    name = "flaky-sink"
    blob = bytes(range(256)) * 64
    script: list = []  # per call: None, or bytes written before a ConnectionResetError

    def _read_into(self, url, start, buf, size, etag, cancel):
        self.stats.add(requests=1)
        step = self.script.pop(0) if self.script else None
        data = self.blob[start:start + len(buf)]
        if step is None:
            buf[:] = data
            return
        buf[:step] = data[:step]
        raise PartialRead(step, ConnectionResetError("scripted"))

    def _get(self, url):
        return self.blob


def test_a_read_through_the_landing_buffer_resumes_where_it_failed(monkeypatch):
    monkeypatch.setattr(stream_module, "SINK_BUFFER", 1000)
    register_backend(_Flaky, clobber=True)
    try:
        _Flaky.script = [None, 300, None, 0, None]  # second run cut after 300 bytes, then a bare failure
        ref = ObjectRef("s3://b/k", len(_Flaky.blob))
        cfg = TransportConfig(s3_backend="flaky-sink", part_size=len(_Flaky.blob), backoff_base=0.0,
                              backoff_max=0.0, budget_bytes=1 * MIB)
        sink = Collector([ref], max_run=1000)
        with Transport(Store("http://unused"), cfg) as t:
            assert [c.nbytes for c in t.stream([ref], sink=sink)] == [len(_Flaky.blob)]
            assert t.stats.retries == 2
        assert bytes(sink.objects[ref.url]) == _Flaky.blob
        assert sink.handed[ref.url] == len(_Flaky.blob)  # the 300 bytes of the cut run came once
    finally:
        from channels.transport.backends import _REGISTRY

        _REGISTRY.pop("flaky-sink", None)


def test_read_into_tells_progress_rising_to_the_end_on_every_backend(stored):
    t, refs, blobs, kind = stored
    for ref, blob in zip(refs, blobs):
        if not ref.size:
            continue
        start = 1 if ref.size > 1 else 0
        buf = bytearray(ref.size - start)
        seen: list[int] = []
        t.read_into(ref, start, buf, progress=seen.append)
        assert bytes(buf) == blob[start:]
        assert seen == sorted(seen) and seen[-1] == ref.size, (kind, seen)
        assert all(start < end <= ref.size for end in seen)


def test_s3_progress_comes_per_socket_read_and_resumes_after_a_cut(s3_client, bucket, s3):
    data = np.random.default_rng(5).bytes(5 * MIB + 3)
    ref = put(s3_client, bucket, "prog", data)
    with Transport(Store(s3.endpoint_url)) as t:
        buf, seen = bytearray(len(data)), []
        t.read_into(ref, 0, buf, progress=seen.append)
        assert bytes(buf) == data and seen[-1] == len(data)
        assert len(seen) >= 5 and seen == sorted(seen)  # at least one call per MiB: reads of at most 1 MiB
        assert all(b - a <= MIB for a, b in zip([0, *seen], seen))


def test_progress_after_a_cut_goes_on_from_the_bytes_kept():
    register_backend(_Flaky, clobber=True)
    try:
        _Flaky.script = [300, 0, None]  # cut after 300 bytes, a bare failure, then the rest
        ref = ObjectRef("s3://b/k", len(_Flaky.blob))
        cfg = TransportConfig(s3_backend="flaky-sink", backoff_base=0.0, backoff_max=0.0)
        with Transport(Store("http://unused"), cfg) as t:
            buf, seen = bytearray(len(_Flaky.blob)), []
            t.read_into(ref, 0, buf, progress=seen.append)
            assert t.stats.retries == 2
        assert bytes(buf) == _Flaky.blob
        assert seen == [300, len(_Flaky.blob)]  # the 300 bytes kept are told once, never taken back
    finally:
        from channels.transport.backends import _REGISTRY

        _REGISTRY.pop("flaky-sink", None)
