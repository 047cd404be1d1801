"""Latency-aware readahead in the transport: the link's measurements, the rules that size bytes
in flight by them, and streams through a loopback proxy with a first-byte delay and a
per-connection cap against the same endpoint near (moto on loopback), counted by the
transport's own stats."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time

import pytest
from transporting import put

from channels.cache import CacheConfig
from channels.store import Store
from channels.testing.faults import Action, RequestInfo
from channels.testing.profiles import Profile
from channels.testing.proxy import Proxy
from channels.transport import Transport, TransportConfig
from channels.transport.inflight import HAND_OVER_ALIGN, Inflight, floor_pow2
from channels.transport.link import LinkEstimate, LinkMonitor, RateMeter, parts_needed
from channels.units import KIB, MIB

#: Far: 30 ms to the first byte, 16 MB/s per connection (a slow S3, so that tests stay small).
FAR = Profile("test-far", 0.030, 16e6)


def far_monitor(rate: float = 90e6, ttfb: float = 0.02, n: int = 16) -> LinkMonitor:
    """A monitor that has seen ``n`` attempts on a link capped per connection."""
    link = LinkMonitor()
    for _ in range(n):
        link.observe(ttfb, rate, receiving=8)
    return link


# ---------------------------------------------------------------- measurements


def test_estimate_takes_least_ttfb_median_rate_and_tells_capped_connections_from_shared_ones():
    capped = LinkMonitor()
    for i in range(20):
        capped.observe(0.02 + i * 0.01, 90e6 + i * 1e5, receiving=1 + i % 8)
    est = capped.estimate()
    assert est.ttfb == pytest.approx(0.02) and 90e6 < est.rate < 92e6 and est.samples == 20
    assert est.parallel > 0.9 and est.far(demand=1e9) and not est.far(demand=50e6)
    # A shared bottleneck: crowded attempts get a fraction of what a lone one gets.
    shared = LinkMonitor()
    for i in range(20):
        crowded = i % 2 == 0
        shared.observe(0.01, 100e6 if crowded else 1.5e9, receiving=16 if crowded else 1)
    assert shared.estimate().parallel < 0.1 and not shared.estimate().far(demand=4e9)


def test_attempts_report_ttfb_rate_and_bytes_awaited():
    link = LinkMonitor()
    a = link.attempt(0, 4 * MIB)
    assert link.pending == 4 * MIB and link.estimate() is None
    a.landed(64 * KIB)
    time.sleep(0.01)
    a.landed(4 * MIB)
    assert link.pending == 0 and link.receiving == 1
    a.done()
    est = link.estimate()  # a rate sample: 4 MiB less the first read, in 10 ms or more
    assert link.receiving == 0 and est.samples == 1 and 0 < est.rate <= (4 * MIB - 64 * KIB) / 0.01
    assert est.ttfb < 0.01
    broken = link.attempt(0, MIB)
    broken.landed(100)
    broken.done()  # the rest never comes: no longer awaited
    assert link.pending == 0
    short = link.attempt(0, 100 * KIB)
    short.landed(100 * KIB)
    short.done()
    assert link.estimate().samples == 1  # too few bytes after the first read to time a rate


def test_demand_is_what_the_consumer_takes_in_its_own_time_capped_at_the_default():
    meter = RateMeter(default=4e9, decay=0.5)
    assert meter.rate == 4e9  # nothing measured yet
    meter.add(100 * MIB, 0.05)
    assert meter.rate == pytest.approx(100 * MIB / 0.05)
    meter.add(100 * MIB, 0.15)  # slower now: the older sample weighs half
    assert meter.rate == pytest.approx(150 * MIB / 0.175)
    meter.add(10**12, 1.0)  # a consumer that does nothing with its bytes
    assert meter.rate == 4e9


def test_parts_needed_cuts_only_what_one_connection_would_bring_late():
    far = LinkEstimate(ttfb=0.02, rate=90e6, samples=8)
    near = LinkEstimate(ttfb=0.002, rate=1.5e9, samples=8)
    n = 16 * MIB
    assert parts_needed(n, 0.0, 1e9, None, min_part=MIB, max_parts=16) == 1  # no estimate yet
    assert parts_needed(n, 0.0, 1e9, near, min_part=MIB, max_parts=16) == 1
    assert parts_needed(n, 0.0, 1e9, far, min_part=MIB, max_parts=16) == 12
    assert parts_needed(n, 0.0, 1e9, far, min_part=8 * MIB, max_parts=16) == 2  # no part under min_part
    assert parts_needed(n, 1.0, 1e9, far, min_part=MIB, max_parts=16) == 1  # due late enough
    # Behind half a second of bytes already asked for, cutting wins nothing.
    assert parts_needed(n, 0.0, 1e9, far, min_part=MIB, max_parts=16, queued=0.5) == 1


# ---------------------------------------------------------------- the stream's rules


def test_inflight_keeps_max_workers_near_and_follows_littles_law_far():
    cfg = TransportConfig(max_workers=4, max_connections=64, min_part_size=MIB)
    near = Inflight(cfg, LinkMonitor(), RateMeter(4e9))
    assert near.far() is None and near.limit(16 * MIB) == 4 and near.piece(16 * MIB, 0, 0.0, None) == 16 * MIB
    rules = Inflight(cfg, far_monitor(), RateMeter(1e9))
    # 1 GB/s of 16 MiB parts that take 20 ms + 186 ms each: 13 in flight.
    assert rules.limit(16 * MIB) == 13
    assert Inflight(cfg, far_monitor(), RateMeter(50e6)).far() is None  # one connection outpaces the consumer
    # A part the consumer needs now is cut (a power of two); one due after a first wave is not.
    piece = rules.piece(16 * MIB, ahead=0, wait=0.0, room=None)
    assert piece < 16 * MIB and piece == floor_pow2(piece)
    assert rules.piece(16 * MIB, ahead=0, wait=0.3, room=None) == 16 * MIB
    # Late and short of budget room: the piece that fits now, not a whole one later.
    assert rules.piece(16 * MIB, ahead=0, wait=0.06, room=None) == 4 * MIB
    assert rules.piece(16 * MIB, ahead=0, wait=0.06, room=3 * MIB) == 2 * MIB



def test_a_hand_over_cuts_where_both_gets_land_together_and_only_far_and_worth_a_request():
    cfg = TransportConfig()
    assert Inflight(cfg, LinkMonitor(), RateMeter(4e9)).hand_over(0, 16 * MIB) is None  # near
    rules = Inflight(cfg, far_monitor(rate=90e6, ttfb=0.02), RateMeter(1e9))
    got, stop = MIB, 16 * MIB
    cut = rules.hand_over(got, stop)
    assert got < cut < stop and cut % HAND_OVER_ALIGN == 0
    # The first GET's bytes up to the cut, against the new one's first byte and then the rest.
    first, new = (cut - got) / 90e6, 0.02 + (stop - cut) / 90e6
    assert abs(first - new) <= 2 * HAND_OVER_ALIGN / 90e6
    # Too little left to be worth a request.
    assert rules.hand_over(stop - 5 * MIB, stop) is None and rules.hand_over(stop - 7 * MIB, stop) is not None

# ---------------------------------------------------------------- streams, near and far


def epochs(t: Transport, refs, n: int = 2) -> dict[str, str]:
    """Stream ``refs`` ``n`` times (the first teaches the link); the last epoch's digests."""
    for _ in range(n):
        digests: dict[str, hashlib._Hash] = {}
        with t.stream(refs) as chunks:
            for chunk in chunks:
                digests.setdefault(chunk.ref.url, hashlib.sha256()).update(chunk.data)
    return {url: d.hexdigest() for url, d in digests.items()}


def test_a_far_store_gets_more_bytes_in_flight_than_a_near_one_within_the_budget(s3_client, bucket, s3):
    data = [os.urandom(2 * MIB) for _ in range(24)]
    refs = [put(s3_client, bucket, f"lat/{i}", d) for i, d in enumerate(data)]
    expected = {r.url: hashlib.sha256(d).hexdigest() for r, d in zip(refs, data)}
    cfg = TransportConfig(part_size=2 * MIB, budget_bytes=32 * MIB, max_workers=4, max_connections=32,
                          first_part_size=0, min_part_size=MIB)
    with Transport(Store(s3.endpoint_url), cfg) as near:
        assert epochs(near, refs) == expected
        near_stats = near.stats.snapshot()
    with Proxy(s3.endpoint_url, FAR) as proxy, Transport(Store(proxy.url), cfg) as far:
        assert epochs(far, refs) == expected
        far_stats = far.stats.snapshot()
        link = far.link.snapshot()
    print(f"near {near_stats}\nfar {far_stats}\nlink {link}")
    assert near_stats["inflight_peak"] <= cfg.max_workers  # near: as before
    assert link["rate_mb_s"] == pytest.approx(16, rel=0.35) and link["ttfb_ms"] >= 30
    assert far_stats["inflight_peak"] > cfg.max_workers
    assert far_stats["inflight_bytes_peak"] > near_stats["inflight_bytes_peak"]
    assert far_stats["buffer_peak"] <= cfg.budget_bytes and near_stats["buffer_peak"] <= cfg.budget_bytes


def test_a_sink_stream_far_uses_more_connections_and_writes_every_byte_once(s3_client, bucket, s3):
    data = [os.urandom(MIB + i) for i in range(16)]
    refs = [put(s3_client, bucket, f"sink/{i}", d) for i, d in enumerate(data)]
    cfg = TransportConfig(part_size=2 * MIB, budget_bytes=8 * MIB, max_workers=4, max_connections=16,
                          first_part_size=0)
    with Proxy(s3.endpoint_url, FAR) as proxy, Transport(Store(proxy.url), cfg) as t:
        for _ in range(2):
            got = {r.url: bytearray(r.size) for r in refs}

            def sink(ref, offset, view, got=got):
                got[ref.url][offset:offset + len(view)] = view

            assert sum(c.nbytes for c in t.stream(refs, sink=sink)) == sum(map(len, data))
        stats = t.stats.snapshot()
    assert [bytes(got[r.url]) for r in refs] == data
    assert cfg.max_workers < stats["inflight_peak"] <= cfg.connections
    assert stats["buffer_peak"] <= cfg.budget_bytes


def test_the_end_of_a_far_stream_hands_the_rest_of_its_parts_to_more_gets(s3_client, bucket, s3, tmp_path):
    # Three 6 MiB objects at 16 MB/s per connection: once all three are arriving, nothing else
    # is left to fetch, and each would take some 400 ms more on its one connection.
    data = [os.urandom(6 * MIB + i) for i in range(3)]
    refs = [put(s3_client, bucket, f"tail/{i}", d) for i, d in enumerate(data)]
    expected = {r.url: hashlib.sha256(d).hexdigest() for r, d in zip(refs, data)}
    cfg = TransportConfig(part_size=8 * MIB, budget_bytes=32 * MIB, max_workers=4, first_part_size=0,
                          cache=CacheConfig(tmp_path / "cache", 64 * MIB))
    with Proxy(s3.endpoint_url, FAR) as proxy, Transport(Store(proxy.url), cfg) as t:
        for _ in range(8):  # what earlier reads of this link measured
            t.link.observe(0.03, 16e6, receiving=8)
        assert epochs(t, refs, 1) == expected
        far = t.stats.snapshot()
        # Each object is whole in the cache, from the bytes of both of its reads.
        t.cache.flush()
        assert epochs(t, refs, 1) == expected
        assert t.stats.snapshot()["requests"] == far["requests"]
        assert t.cache_stats.hit_bytes == sum(map(len, data))
    assert far["tail_splits"] >= 1
    # One GET per object, one per hand-over; no retry, no error, every byte counted once.
    assert far["requests"] == len(refs) + far["tail_splits"]
    assert far["retries"] == far["errors"] == 0
    assert sum(map(len, data)) <= far["bytes"] <= sum(map(len, data)) + far["tail_splits"] * MIB
    with Transport(Store(s3.endpoint_url), dataclasses.replace(cfg, cache=None)) as near:
        assert epochs(near, refs, 2) == expected
        assert near.stats.snapshot()["tail_splits"] == 0  # a near store: nothing to gain


def test_a_hand_over_reset_midway_is_resumed_and_its_part_reads_right(s3_client, bucket, s3):
    data = [os.urandom(6 * MIB) for _ in range(3)]
    refs = [put(s3_client, bucket, f"tail-reset/{i}", d) for i, d in enumerate(data)]
    resets: list[RequestInfo] = []

    def reset_the_first_ranged_get(req: RequestInfo) -> Action | None:
        # Each object's first GET is whole (no Range): the first ranged one is a hand-over.
        if req.method == "GET" and req.range and not resets:
            resets.append(req)
            return Action("reset", after_bytes=64 * KIB)
        return None

    cfg = TransportConfig(part_size=8 * MIB, budget_bytes=32 * MIB, max_workers=4, first_part_size=0)
    with Proxy(s3.endpoint_url, FAR, fault_policy=reset_the_first_ranged_get) as proxy, \
            Transport(Store(proxy.url), cfg) as t:
        for _ in range(8):
            t.link.observe(0.03, 16e6, receiving=8)
        assert epochs(t, refs, 1) == {r.url: hashlib.sha256(d).hexdigest() for r, d in zip(refs, data)}
        stats = t.stats.snapshot()
    assert len(resets) == 1 and len(proxy.stats.faults) == 1
    assert stats["tail_splits"] >= 1 and stats["retries"] == 1 and stats["errors"] == 0


def test_a_late_part_far_is_cut_into_ranges_and_reads_right(s3_client, bucket, s3):
    # 4 MiB, 64 KiB, 4 MiB and room for 8 MiB: the third waits for room until the first is
    # used; by then the second has long landed, and the consumer wants the third at once:
    # it comes in parallel ranges.
    data = [os.urandom(4 * MIB), os.urandom(64 * KIB), os.urandom(4 * MIB)]
    refs = [put(s3_client, bucket, f"late/{i}", d) for i, d in enumerate(data)]
    cfg = TransportConfig(part_size=4 * MIB, budget_bytes=8 * MIB, max_workers=4, first_part_size=0,
                          min_part_size=MIB)
    with Proxy(s3.endpoint_url, FAR) as proxy, Transport(Store(proxy.url), cfg) as t:
        for _ in range(8):  # what earlier reads of this link measured
            t.link.observe(0.03, 16e6, receiving=8)
        assert epochs(t, refs, 1) == {r.url: hashlib.sha256(d).hexdigest() for r, d in zip(refs, data)}
        stats = t.stats.snapshot()
    assert stats["splits"] >= 1 and stats["requests"] > len(refs)
    assert stats["buffer_peak"] <= cfg.budget_bytes
