"""The transport's engine: configuration, retries, the plan of parts, and
streams against a real S3 endpoint (moto on loopback) and local files: order,
content, request counts, the memory budget, cancellation. Each backend's own
behaviour is in test_transport_backends.py, faults in test_transport_faults.py."""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transporting import collect, put, transport

from channels.errors import TransportError
from channels.listing import ObjectRef
from channels.store import Store
from channels.testing import wait_for
from channels.transport import (
    Backend,
    Cancelled,
    PartialRead,
    Transport,
    TransportConfig,
    backend_class,
    backend_names,
    plan_parts,
    register_backend,
)
from channels.transport.backends.s3 import S3Backend
from channels.units import KIB, MIB


def transport_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("channels-transport")]


# ---------------------------------------------------------------- configuration


@pytest.mark.parametrize("kwargs, fragment", [
    ({"part_size": 0}, "part_size must be a positive int"),
    ({"max_workers": -1}, "max_workers"),
    ({"part_size": 8 * MIB, "budget_bytes": 4 * MIB}, "exceeds budget_bytes"),
    ({"small_object_threshold": 1024 * MIB}, "a whole object must fit the budget"),
    ({"retries": -1}, "retries"),
    ({"first_part_size": -1}, "first_part_size must be an int >= 0"),
    ({"read_timeout": 0}, "read_timeout"),
    ({"backoff_base": 2.0, "backoff_max": 1.0}, "backoff_max"),
])
def test_config_rejects_bad_values(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        TransportConfig(**kwargs)


def test_config_defaults_are_consistent():
    cfg = TransportConfig()
    assert cfg.threshold == cfg.part_size == 16 * MIB
    assert cfg.budget_bytes // cfg.part_size == cfg.max_workers == 32  # a large part per worker


def test_unknown_backend_lists_valid_names():
    with pytest.raises(ValueError, match="unknown transport backend .nope.: use one of s3, fsspec, local"):
        backend_class("nope")
    with pytest.raises(ValueError, match="unknown transport backend .*: use one of"):
        Transport(config=TransportConfig(s3_backend="boto"))
    assert backend_names() == ["fsspec", "local", "s3"]


class _ScriptedBackend(Backend):
    """In-memory objects; each call pops the next scripted failure, if any."""

    name = "scripted"
    blobs: dict[str, bytes] = {}
    script: list = []  # per call: None (succeed) or (bytes to write first, exception)
    calls: list = []

    def _read_into(self, url, start, buf, size, etag, cancel):
        self.stats.add(requests=1)
        type(self).calls.append((start, len(buf)))
        step = self.script.pop(0) if self.script else None
        data = self.blobs[url][start:start + len(buf)]
        if step is None:
            buf[:] = data
            return
        nread, exc = step
        buf[:nread] = data[:nread]
        raise PartialRead(nread, exc)

    def _get(self, url):
        return self.blobs[url]


@pytest.fixture
def scripted():
    register_backend(_ScriptedBackend, clobber=True)
    _ScriptedBackend.blobs = {"s3://b/k": bytes(range(256)) * 40}
    _ScriptedBackend.script, _ScriptedBackend.calls = [], []
    yield Transport(Store("http://unused"), TransportConfig(s3_backend="scripted", retries=2,
                                                           backoff_base=0.0, backoff_max=0.0))
    from channels.transport.backends import _REGISTRY

    _REGISTRY.pop("scripted", None)


def test_retries_resume_where_the_failed_attempt_stopped(scripted):
    blob = _ScriptedBackend.blobs["s3://b/k"]
    _ScriptedBackend.script = [(100, ConnectionResetError()), (0, TimeoutError()), (50, OSError())]
    assert bytes(scripted.read_range(ObjectRef("s3://b/k", len(blob)), 10, 1010)) == blob[10:1010]
    assert _ScriptedBackend.calls == [(10, 1000), (110, 900), (110, 900), (160, 850)]
    counts = scripted.stats.snapshot()
    assert {k: counts[k] for k in ("requests", "bytes", "retries", "errors")} == {
        "requests": 4, "bytes": 1000, "retries": 3, "errors": 0}


def test_retry_budget_counts_attempts_without_progress(scripted):
    _ScriptedBackend.script = [(0, TimeoutError("stalled"))] * 3
    with pytest.raises(TransportError, match="after 3 attempts") as info:
        scripted.read_range("s3://b/k", 0, 10)
    assert isinstance(info.value.__cause__, TimeoutError)
    assert scripted.stats.retries == 2 and scripted.stats.errors == 1


def test_read_into_stops_when_cancelled(scripted):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        scripted.read_into("s3://b/k", 0, bytearray(10), cancel=cancel)
    assert _ScriptedBackend.calls == []  # never asked the store

    # Set during a retry's backoff: the wait ends there, with no second attempt.
    # (Full jitter may draw a near-0 wait; then the next attempt fails again,
    # and all four draws being under 0.2 s of 60 is too unlikely to matter.)
    slow = Transport(Store("http://unused"), TransportConfig(s3_backend="scripted", retries=4,
                                                             backoff_base=60.0, backoff_max=60.0))
    cancel = threading.Event()
    _ScriptedBackend.script = [(0, ConnectionResetError())] * 5
    threading.Timer(0.2, cancel.set).start()
    with pytest.raises(Cancelled):
        slow.read_into("s3://b/k", 0, bytearray(10), cancel=cancel)
    assert 1 <= slow.stats.retries == len(_ScriptedBackend.calls) < 5


def test_register_backend_refuses_silent_replacement():
    with pytest.raises(ValueError, match="already registered"):
        register_backend(S3Backend, "local")


def test_plan_parts_cuts_large_objects_only():
    refs = [ObjectRef("s3://b/a", 10), ObjectRef("s3://b/e", 0), ObjectRef("s3://b/x", 25)]
    parts = [(r.url, o, n, last) for r, o, n, last in plan_parts(refs, part_size=10, threshold=10)]
    assert parts == [("s3://b/a", 0, 10, True), ("s3://b/e", 0, 0, True),
                     ("s3://b/x", 0, 10, False), ("s3://b/x", 10, 10, False),
                     ("s3://b/x", 20, 5, True)]


def test_plan_parts_shortens_only_the_first_part_of_the_stream():
    big, whole, tiny = ObjectRef("s3://b/x", 25), ObjectRef("s3://b/w", 8), ObjectRef("s3://b/t", 3)
    plan = lambda refs: [(r.url[-1], o, n, last) for r, o, n, last in plan_parts(refs, 10, 10, first_part=4)]
    # A large first object: a short head, then part_size ranges from there; later objects as ever.
    assert plan([big, whole]) == [("x", 0, 4, False), ("x", 4, 10, False), ("x", 14, 10, False),
                                  ("x", 24, 1, True), ("w", 0, 8, True)]
    # A whole-object first part: the head, then the rest of it in one GET.
    assert plan([whole, big]) == [("w", 0, 4, False), ("w", 4, 4, True), ("x", 0, 10, False),
                                  ("x", 10, 10, False), ("x", 20, 5, True)]
    # A first object no longer than the head: nothing to shorten, and only the first object counts.
    assert plan([tiny, whole]) == [("t", 0, 3, True), ("w", 0, 8, True)]


def test_the_first_bytes_of_a_stream_come_in_a_short_part(s3_client, bucket, s3):
    data = os.urandom(3 * MIB + 5)
    refs = [put(s3_client, bucket, f"f{i}", data) for i in range(2)]
    t = transport(s3, part_size=2 * MIB, budget_bytes=8 * MIB, first_part_size=256 * KIB)
    chunks = [(c.ref.key, c.offset, bytes(c.data)) for c in t.stream(refs)]
    assert [(k, o, len(d)) for k, o, d in chunks] == [("f0", 0, 256 * KIB), ("f0", 256 * KIB, 2 * MIB),
                                                      ("f0", 256 * KIB + 2 * MIB, MIB - 256 * KIB + 5),
                                                      ("f1", 0, 2 * MIB), ("f1", 2 * MIB, MIB + 5)]
    assert b"".join(d for k, _, d in chunks if k == "f0") == data
    assert b"".join(d for k, _, d in chunks if k == "f1") == data


# ---------------------------------------------------------------- streaming


def test_stream_mixed_objects_in_order_byte_identical(s3_client, bucket, s3):
    part = 256 * KIB
    sizes = {"tiny": 1, "empty": 0, "small": 1000, "aligned": 3 * part, "odd": 2 * part + 12345,
             "at-threshold": part, "just-over": part + 1, "z-empty": 0}
    rng = np.random.default_rng(1)
    blobs = {k: rng.bytes(n) for k, n in sizes.items()}
    refs = [put(s3_client, bucket, f"mix/{k}", v) for k, v in blobs.items()]
    t = transport(s3, part_size=part, budget_bytes=4 * part, max_workers=4)
    seen, digests = [], {}
    with t.stream(refs) as stream:
        for chunk in stream:
            seen.append((chunk.ref.key, chunk.offset, len(chunk.data), chunk.last))
            digests.setdefault(chunk.ref.key, hashlib.sha256()).update(chunk.data)
    # Strict plan order: objects as given, offsets ascending, `last` on each final chunk.
    assert seen == [(r.key, o, n, last) for r, o, n, last in plan_parts(refs, part, part)]
    assert {k: d.hexdigest() for k, d in digests.items()} == {
        f"mix/{k}": hashlib.sha256(v).hexdigest() for k, v in blobs.items()}
    stats = t.stats.snapshot()
    # One GET per small object, ceil(size / part) per large one, none for empty ones.
    assert stats["requests"] == 1 + 1 + 3 + 3 + 1 + 2
    assert stats["bytes"] == sum(sizes.values())
    assert stats["retries"] == 0 and stats["errors"] == 0
    assert stats["buffer_peak"] <= 4 * part


def test_stream_request_counts_for_large_object(s3_client, bucket, s3):
    data = os.urandom(64 * MIB)
    ref = put(s3_client, bucket, "big.bin", data)
    t = transport(s3, part_size=8 * MIB, first_part_size=0)  # whole parts only: 64 / 8 GETs
    digest = hashlib.sha256()
    for chunk in t.stream([ref]):
        digest.update(chunk.data)
    assert digest.digest() == hashlib.sha256(data).digest()
    assert t.stats.requests == 8 and t.stats.bytes == 64 * MIB


def test_stream_respects_budget_and_prefetches_across_objects(s3_client, bucket, s3):
    part = 64 * KIB
    refs = [put(s3_client, bucket, f"b/{i}", os.urandom(3 * part + i)) for i in range(6)]
    budget = 5 * part
    t = transport(s3, part_size=part, budget_bytes=budget, max_workers=8)
    stream = t.stream(refs)
    first = next(stream)
    # The consumer sits on the first chunk: reads run ahead into the next
    # objects, but only as far as the budget allows (5 parts incl. the held one).
    assert wait_for(lambda: t.stats.requests >= 5)
    assert not wait_for(lambda: t.stats.requests > 5, timeout=0.3)
    assert first.offset == 0
    got = collect(stream)
    got[first.ref.url] = bytearray()  # its view was released; content is checked below
    assert stream.buffer_peak <= budget and t.stats.buffer_peak <= budget
    assert t.stats.requests == 3 + 5 * 4  # object 0 is exactly 3 parts
    assert collect(t.stream(refs)) == {
        r.url: bytearray(s3_client.get_object(Bucket=bucket, Key=r.key)["Body"].read()) for r in refs}


def test_chunk_view_is_released_when_the_consumer_moves_on(s3_client, bucket, s3):
    refs = [put(s3_client, bucket, f"v/{i}", b"x" * 100) for i in range(3)]
    stream = transport(s3).stream(refs)
    first = next(stream)
    assert bytes(first.data) == b"x" * 100
    next(stream)
    with pytest.raises(ValueError, match="released"):
        bytes(first.data)
    stream.close()


def test_early_close_cancels_and_leaves_no_threads(s3_client, bucket, s3):
    refs = [put(s3_client, bucket, f"c/{i}", os.urandom(256 * KIB)) for i in range(40)]
    t = transport(s3, part_size=64 * KIB, budget_bytes=1 * MIB, max_workers=8)
    stream = t.stream(refs)
    for i, _chunk in enumerate(stream):
        if i == 5:
            break
    assert transport_threads()
    stream.close()
    assert wait_for(lambda: not transport_threads(), timeout=2.0), transport_threads()
    assert t.stats.requests < 40 * 4  # the rest was never fetched
    with pytest.raises(StopIteration):
        next(stream)


def test_transport_close_closes_open_streams(s3_client, bucket, s3):
    refs = [put(s3_client, bucket, f"d/{i}", os.urandom(1000)) for i in range(20)]
    with transport(s3, max_workers=4) as t:
        stream = t.stream(refs)
        next(stream)
    assert wait_for(lambda: not transport_threads(), timeout=2.0)
    with pytest.raises(StopIteration):
        next(stream)
    with pytest.raises(ValueError, match="closed"):
        t.stream(refs)


def test_listing_failure_is_raised_in_order(s3_client, bucket, s3):
    good = put(s3_client, bucket, "ok", b"fine")

    def refs():
        yield good
        raise RuntimeError("listing broke")

    stream = transport(s3).stream(refs())
    assert bytes(next(stream).data) == b"fine"
    with pytest.raises(RuntimeError, match="listing broke"):
        next(stream)


# ---------------------------------------------------------------- properties (local backend: fast)


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(0, 5000), min_size=0, max_size=12),
       part=st.integers(1, 2048), extra_threshold=st.integers(0, 2048),
       spare=st.integers(0, 8192), workers=st.integers(1, 6), stop_after=st.integers(0, 40))
def test_stream_matches_reference_for_any_plan(sizes, part, extra_threshold, spare, workers, stop_after):
    threshold = part + extra_threshold
    budget = max(part, threshold) + spare
    with tempfile.TemporaryDirectory() as root:
        rng = np.random.default_rng(len(sizes))
        blobs = [rng.bytes(n) for n in sizes]
        refs = []
        for i, blob in enumerate(blobs):
            path = os.path.join(root, f"o{i}")
            with open(path, "wb") as f:
                f.write(blob)
            refs.append(ObjectRef(path, len(blob), None, f"o{i}"))
        t = Transport(Store(), TransportConfig(part_size=part, small_object_threshold=threshold,
                                               budget_bytes=budget, max_workers=workers))
        seen = []
        with t.stream(refs) as stream:
            for chunk in stream:
                seen.append((chunk.ref.key, chunk.offset, bytes(chunk.data), chunk.last))
                if len(seen) == stop_after:
                    break
        planned = list(plan_parts(refs, part, threshold))[: len(seen)]
        assert [(k, o, len(d), last) for k, o, d, last in seen] == [
            (r.key, o, n, last) for r, o, n, last in planned]
        for key, offset, data, _ in seen:
            assert data == blobs[int(key[1:])][offset:offset + len(data)]
        assert t.stats.buffer_peak <= budget
    assert wait_for(lambda: not transport_threads(), timeout=2.0)


@settings(max_examples=30, deadline=None)
@given(size=st.integers(0, 3000), data=st.data())
def test_read_range_matches_reference(size, data):
    start = data.draw(st.integers(0, size))
    end = data.draw(st.integers(start, size))
    with tempfile.TemporaryDirectory() as root:
        blob = os.urandom(size)
        path = os.path.join(root, "x")
        with open(path, "wb") as f:
            f.write(blob)
        t = Transport(Store())
        assert bytes(t.read_range(ObjectRef("file://" + path, size), start, end)) == blob[start:end]


def test_buffers_are_reused_across_streams(s3_client, bucket, s3):
    part = 64 * KIB
    refs = [put(s3_client, bucket, f"w/{i}", os.urandom(3 * part)) for i in range(4)]
    t = transport(s3, part_size=part, budget_bytes=6 * part, max_workers=4)
    first = collect(t.stream(refs))
    spare = t._spare.buffers()
    assert spare and sum(map(len, spare)) <= 6 * part
    ids = {id(b) for b in spare}
    stream = t.stream(refs)
    assert t._spare.buffers() == []  # taken by the new stream
    assert collect(stream) == first
    assert ids & {id(b) for b in t._spare.buffers()}  # the same buffers came back
    assert t.stats.buffer_peak <= 6 * part
    t.close()
    assert t._spare.buffers() == []


def test_close_from_another_thread_wakes_a_waiting_consumer():
    """A consumer blocked on the head part ends (StopIteration) when another thread closes the stream."""
    from channels.transport.backends import _REGISTRY

    started = threading.Event()
    release = threading.Event()

    class SlowBackend(Backend):
        name = "slow"

        def _read_into(self, url, start, buf, size, etag, cancel):  # a read that waits until told
            started.set()
            release.wait(5)
            buf[:] = b"x" * len(buf)

        def _get(self, url):
            raise NotImplementedError

    register_backend(SlowBackend, clobber=True)
    outcome = []
    try:
        with Transport(Store("http://unused"), TransportConfig(s3_backend="slow")) as t:
            stream = t.stream([ObjectRef("s3://b/obj", 10)])

            def consume():
                try:
                    next(stream)
                    outcome.append("chunk")
                except StopIteration:
                    outcome.append("stopped")

            consumer = threading.Thread(target=consume)
            consumer.start()
            assert started.wait(5)
            stream.close()
            consumer.join(5)
            release.set()
    finally:
        _REGISTRY.pop("slow", None)
    assert not consumer.is_alive() and outcome == ["stopped"]
