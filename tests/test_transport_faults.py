"""Retries that resume: a loopback proxy in front of moto resets, stalls and
answers 503, and the transport still delivers identical bytes, counting one
retry per injected fault."""

from __future__ import annotations

import hashlib
import os
import re

import pytest
from faultproxy import FaultProxy
from transporting import put

from channels.errors import TransportError
from channels.store import Store
from channels.transport import Transport, TransportConfig
from channels.units import KIB

FAST_RETRY = dict(backoff_base=0.001, backoff_max=0.01)


def through(proxy: FaultProxy, **config) -> Transport:
    return Transport(Store(proxy.url), TransportConfig(**{**FAST_RETRY, **config}))


def streamed(t: Transport, refs) -> dict[str, str]:
    digests: dict[str, hashlib._Hash] = {}
    for chunk in t.stream(refs):
        digests.setdefault(chunk.ref.url, hashlib.sha256()).update(chunk.data)
    return {url: d.hexdigest() for url, d in digests.items()}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def range_starts(proxy: FaultProxy) -> list[int]:
    return [int(re.match(r"bytes=(\d+)-", r).group(1)) for m, _, r in proxy.log if m == "GET" and r]


def test_reset_mid_body_resumes_at_the_failed_offset(s3_client, bucket, s3):
    data = os.urandom(1024 * KIB)
    ref = put(s3_client, bucket, "big", data)
    # Serial (one worker) so that "the 2nd GET" is the second part.
    with FaultProxy(s3.endpoint_url, reset_after={2: 100_000}) as proxy:
        t = through(proxy, part_size=256 * KIB, budget_bytes=1024 * KIB, max_workers=1)
        assert streamed(t, [ref]) == {ref.url: sha(data)}
    assert proxy.faults == [(2, "reset")]
    assert t.stats.retries == 1 and t.stats.requests == 5 and t.stats.bytes == len(data)
    starts = range_starts(proxy)
    # The retry asked for the rest of part 2 only: it started past the part's
    # offset (by what arrived before the reset), not at 256 KiB again.
    assert starts[:2] == [0, 256 * KIB] and 256 * KIB < starts[2] <= 256 * KIB + 100_000
    assert starts[3:] == [512 * KIB, 768 * KIB]


def test_503s_are_retried_and_counted(s3_client, bucket, s3):
    refs = [put(s3_client, bucket, f"s/{i}", os.urandom(5000 + i)) for i in range(10)]
    expected = {r.url: sha(s3_client.get_object(Bucket=bucket, Key=r.key)["Body"].read()) for r in refs}
    with FaultProxy(s3.endpoint_url, status={1: 503, 3: 500, 4: 503}) as proxy:
        t = through(proxy, max_workers=4)
        assert streamed(t, refs) == expected
    assert len(proxy.faults) == 3
    assert t.stats.retries == 3 and t.stats.requests == 13 and t.stats.errors == 0


@pytest.mark.parametrize("seed", [1, 2])
def test_random_faults_under_concurrency(s3_client, bucket, s3, seed):
    rng = __import__("random").Random(seed)
    refs = [put(s3_client, bucket, f"r/{i}", os.urandom(rng.randint(0, 300 * KIB))) for i in range(24)]
    expected = {r.url: sha(s3_client.get_object(Bucket=bucket, Key=r.key)["Body"].read())
                for r in refs if r.size}
    resets = {k: rng.randint(0, 50_000) for k in rng.sample(range(1, 40), 4)}
    with FaultProxy(s3.endpoint_url, error_rate=0.15, seed=seed, reset_after=resets) as proxy:
        t = through(proxy, part_size=64 * KIB, budget_bytes=512 * KIB, max_workers=8, retries=8)
        got = streamed(t, refs)
    assert {u: d for u, d in got.items() if u in expected} == expected
    assert proxy.faults and t.stats.retries == len(proxy.faults)
    assert t.stats.bytes == sum(r.size for r in refs)


def test_stalled_response_times_out_and_resumes(s3_client, bucket, s3):
    data = os.urandom(200 * KIB)
    ref = put(s3_client, bucket, "slow", data)
    with FaultProxy(s3.endpoint_url, stall_after={1: (50_000, 5.0)}) as proxy:
        t = through(proxy, read_timeout=0.3)
        assert bytes(t.read_range(ref, 0, len(data))) == data
        assert t.stats.retries == 1
        assert range_starts(proxy)[-1] > 0  # resumed, not restarted


def test_retry_budget_spent_raises_transport_error(s3_client, bucket, s3):
    ref = put(s3_client, bucket, "down", b"x" * 1000)
    with FaultProxy(s3.endpoint_url, error_rate=1.0) as proxy:
        t = through(proxy, retries=3)
        with pytest.raises(TransportError) as info:
            list(t.stream([ref]))
    err = info.value
    assert ref.url in str(err) and "after 4 attempts" in str(err) and "SlowDown" in str(err)
    assert err.details["url"] == ref.url and err.details["offset"] == 0 and err.details["attempts"] == 4
    assert err.__cause__ is not None
    assert t.stats.retries == 3 and t.stats.errors == 1 and len(proxy.faults) == 4


def test_progress_resets_the_retry_budget(s3_client, bucket, s3):
    data = os.urandom(600 * KIB)
    ref = put(s3_client, bucket, "flaky", data)
    # Five resets in a row, each after 100 KB of progress, with retries=1: every
    # failure made progress, so the read goes on and completes.
    resets = {k: 100_000 for k in range(1, 6)}
    with FaultProxy(s3.endpoint_url, reset_after=resets) as proxy:
        t = through(proxy, retries=1, part_size=1024 * KIB)
        assert bytes(t.read_range(ref, 0, len(data))) == data
    assert t.stats.retries == 5 and len(proxy.faults) == 5


def test_get_retries_whole_objects(s3_client, bucket, s3):
    put(s3_client, bucket, "manifest.json", b'["a", "b"]')
    with FaultProxy(s3.endpoint_url, status={1: 503}) as proxy:
        t = through(proxy)
        assert t.get(f"s3://{bucket}/manifest.json") == b'["a", "b"]'
    assert t.stats.retries == 1
