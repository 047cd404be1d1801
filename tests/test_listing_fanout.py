"""Parallel listing: LIST streams fanned out over common prefixes give exactly a flat listing's keys, in its order.

The oracle is boto3's own flat listing (ListObjectsV2 without a delimiter,
paginated) of the same moto bucket; LIST requests are counted at a proxy in
front of the endpoint.
"""

from __future__ import annotations

import io
import itertools
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels.listing import ListConfig, ListProgress, ListStats, list_prefix, list_s3_keys
from channels.store import Store
from channels.testing.faults import Action
from channels.testing.proxy import Proxy

_buckets = itertools.count()


def flat_listing(client, bucket: str, prefix: str) -> list[tuple[str, int]]:
    out = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out.extend((o["Key"], o["Size"]) for o in page.get("Contents", []))
    return out


def fill(client, bucket: str, keys) -> None:
    client.create_bucket(Bucket=bucket)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: client.put_object(Bucket=bucket, Key=k, Body=b"x" * (len(k) % 7)), keys))


# Segments that stress the order: "/" neighbours ("." < "/" < "0"), a folder
# marker, characters XML escapes, percent signs, spaces and non-ASCII.
_segment = st.sampled_from(["a", "b", "a.b", "a0", "a-", "x&y", "<t>", "p%2F", "s p", "é", "日本", "z"])
_key = st.lists(_segment, min_size=1, max_size=4).map("/".join)
_layout = st.lists(st.one_of(_key, _key.map(lambda k: k + "/")), min_size=1, max_size=18, unique=True)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keys=_layout, page_size=st.integers(1, 4), streams=st.integers(1, 5),
       prefix=st.sampled_from(["", "a", "a/", "b/"]))
def test_any_key_layout_lists_as_a_flat_listing_in_the_same_order(s3, s3_client, keys, page_size, streams,
                                                                  prefix):
    bucket = f"layout-{next(_buckets)}"
    fill(s3_client, bucket, keys)
    expected = [(k, n) for k, n in flat_listing(s3_client, bucket, prefix) if not k.endswith("/")]
    stats = ListStats()
    got = list_s3_keys(bucket, prefix, store=Store(s3.endpoint_url),
                       config=ListConfig(streams=streams, page_size=page_size), stats=stats)
    assert [(k, n) for k, n, _ in got] == expected
    assert stats.objects == len(expected) and stats.peak_in_flight <= streams


@pytest.fixture
def tree(s3_client, bucket):
    """12 common prefixes of 5 keys each, plus 2 keys beside them: 62 objects."""
    keys = [f"data/d{d:02d}/k{i}" for d in range(12) for i in range(5)] + ["data/a.txt", "data/zz.txt"]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: s3_client.put_object(Bucket=bucket, Key=k, Body=k.encode()), keys))
    return sorted(keys)


def counted(s3, fault=None):
    lists: list[str] = []

    def policy(req):
        if "list-type=2" in req.target:
            lists.append(req.target)
        return fault(req, len(lists)) if fault is not None else None

    return Proxy(s3.endpoint_url, fault_policy=policy), lists


@pytest.mark.parametrize("streams", [1, 4, 64])
def test_fan_out_over_common_prefixes_counts_its_requests(s3, bucket, tree, streams):
    proxy, lists = counted(s3)
    with proxy:
        listing = list_prefix(f"s3://{bucket}/data/", store=Store(proxy.url),
                              config=ListConfig(streams=streams, page_size=4))
        proxy.quiesce()
    assert [r.key for r in listing.refs] == [k.removeprefix("data/") for k in tree]
    assert [r.size for r in listing.refs] == [len(k) for k in tree]
    s = listing.stats
    assert s.requests == len(lists) == s.pages  # every request counted, at the endpoint and by the listing
    if streams == 64:  # room for a delimiter stream per common prefix: 12 more, 2 pages each (5 keys, 4 a page)
        assert (s.delimiter_streams, s.range_streams) == (13, 0) and s.requests == 4 + 12 * 2
    elif streams == 4:  # fanned out (12 <= 4 * 4 prefixes: a stream each), never more than 4 requests at once
        assert s.delimiter_streams + s.range_streams > 1 and s.peak_in_flight <= 4
    else:
        assert s.peak_in_flight == 1


def test_a_level_wider_than_a_page_is_not_walked_page_by_page(s3, s3_client, bucket):
    # 40 folders of one key each, 8 keys a page, 2 streams (8 queued at most): the first delimiter
    # page holds 8 common prefixes, so the rest of the level is one flat range, not 4 more delimiter
    # pages and a request per folder.
    keys = [f"w/f{i:02d}/x" for i in range(40)]
    fill(s3_client, "wide-bucket", keys)
    proxy, lists = counted(s3)
    with proxy:
        listing = list_prefix("s3://wide-bucket/w/", store=Store(proxy.url), config=ListConfig(streams=2, page_size=8))
        proxy.quiesce()
    assert [r.key for r in listing.refs] == [k.removeprefix("w/") for k in keys]
    s = listing.stats
    assert s.delimiter_streams == 1 and s.range_streams >= 2
    assert len(lists) <= 5 + 1 + 8  # a flat listing's 5 pages, the delimiter page, a range per prefix of it


def test_more_common_prefixes_than_streams_are_grouped_into_ranges_that_split_at_their_last_page(s3, s3_client):
    # 8 folders of 3 keys, 2 streams, 10 keys a page: the delimiter page, then 2 ranges of 4 folders.
    # Each range's first page holds 3 folders and 1 key of the 4th; the rest of the 4th is listed
    # bounded by its own prefix, so no page reads past a range: 1 + 2 * 2 requests, no key dropped.
    keys = [f"g/f{i}/k{j}" for i in range(8) for j in range(3)]
    fill(s3_client, "group-bucket", keys)
    proxy, lists = counted(s3)
    with proxy:
        listing = list_prefix("s3://group-bucket/g/", store=Store(proxy.url),
                              config=ListConfig(streams=2, page_size=10))
        proxy.quiesce()
    assert [r.key for r in listing.refs] == [k.removeprefix("g/") for k in keys]
    s = listing.stats
    assert s.requests == len(lists) == 5 and s.keys_past_end == 0
    assert (s.delimiter_streams, s.range_streams) == (1, 4) and s.peak_in_flight == 2
    rests = sorted(t for t in lists if "delimiter" not in t and "prefix=g%2Ff" in t)
    assert [t.split("prefix=")[1].split("&")[0] for t in rests] == ["g%2Ff3%2F", "g%2Ff7%2F"]


def test_a_range_that_runs_past_its_end_drops_those_keys(s3, s3_client):
    # 6 folders of 2 keys, 2 streams, 10 keys a page: the first range (3 folders, 6 keys) reads
    # 4 keys of the second range's folders on its one page, and drops them.
    keys = [f"o/f{i}/k{j}" for i in range(6) for j in range(2)]
    fill(s3_client, "past-bucket", keys)
    listing = list_prefix("s3://past-bucket/o/", store=Store(s3.endpoint_url),
                          config=ListConfig(streams=2, page_size=10))
    assert [r.key for r in listing.refs] == [k.removeprefix("o/") for k in keys]
    assert listing.stats.keys_past_end == 4 and listing.stats.requests == 3


def test_threads_stay_within_the_streams_and_end_with_the_listing(s3, s3_client, bucket, tree):
    seen = []

    def progress(stats, keys, running, final=False):
        seen.append(sum(t.name == "channels-list" for t in threading.enumerate()))

    for streams in (3, 8):
        seen.clear()
        got = list_s3_keys(bucket, "data/", store=Store(s3.endpoint_url),
                           config=ListConfig(streams=streams, page_size=2), progress=progress)
        assert [k for k, _, _ in got] == tree and seen and max(seen) <= streams
    assert not any(t.name == "channels-list" for t in threading.enumerate())


def test_an_error_on_one_stream_ends_the_listing_and_its_threads(s3, bucket, tree):
    proxy, lists = counted(s3, lambda req, n: Action("status", status=403) if n == 3 else None)
    with proxy, pytest.raises(PermissionError, match=f"s3://{bucket}: HTTP 403"):
        list_s3_keys(bucket, "data/", store=Store(proxy.url), config=ListConfig(streams=4, page_size=2))
    assert not any(t.name == "channels-list" for t in threading.enumerate())


def test_one_stream_is_a_flat_listing(s3, s3_client, bucket, tree):
    listing = list_prefix(f"s3://{bucket}/data/", store=Store(s3.endpoint_url), config=ListConfig(streams=1))
    assert len(listing) == len(tree) and listing.stats.pages == 1
    assert (listing.stats.delimiter_streams, listing.stats.range_streams) == (0, 1)


def test_keys_sharing_no_prefix_fall_back_to_one_flat_stream(s3, s3_client, bucket):
    fill(s3_client, "flat-bucket", [f"f/{i:03d}" for i in range(9)])
    listing = list_prefix("s3://flat-bucket/f/", store=Store(s3.endpoint_url), config=ListConfig(page_size=4))
    assert len(listing) == 9 and listing.stats.pages == 3
    assert (listing.stats.delimiter_streams, listing.stats.range_streams) == (1, 0)


def test_a_page_cut_short_or_refused_is_retried(s3, bucket, tree):
    def fault(req, n):
        return {1: Action("reset", after_bytes=100), 3: Action("status", status=503)}.get(n)

    proxy, lists = counted(s3, fault)
    with proxy:
        listing = list_prefix(f"s3://{bucket}/data/", store=Store(proxy.url), config=ListConfig(page_size=4))
        proxy.quiesce()
    assert [r.key for r in listing.refs] == [k.removeprefix("data/") for k in tree]
    assert listing.stats.retries == 2 and listing.stats.requests == len(lists)


def test_progress_line_on_long_listings():
    out = io.StringIO()
    p = ListProgress("s3://b/p/", stream=out, enabled=True, after=0, interval=0)
    s = ListStats(pages=3)
    p(s, 2500, 4)
    p(s, 3000, 0, final=True)
    assert "listing s3://b/p/: 2,500 keys, 3 pages, 4 stream(s)" in out.getvalue()
    assert out.getvalue().endswith("s\n") and p.drawn == 2
    quiet = ListProgress("s3://b/p/", stream=io.StringIO(), enabled=True, after=60)
    quiet(s, 1, 1)
    assert quiet.drawn == 0  # short listings print nothing


def test_list_config_rejects_nonsense():
    with pytest.raises(ValueError, match="streams 0 must be an integer >= 1.*page_size 5000 must be 1..1000"):
        ListConfig(streams=0, page_size=5000)
