"""The transport's own S3 listing (no s3fs) against the fsspec listing it stands in for.

Both listers run on the same real endpoint and must give the same Listing:
keys, sizes, ETags, order and errors. The transport's counts its requests.
"""

from __future__ import annotations

import pytest
from test_transport_backends import iam_user  # noqa: F401 - moto with signature checks on

from channels import listing as fsspec_listing
from channels.errors import AccessDeniedError, EmptyChannelError, SourceNotFoundError
from channels.store import Store
from channels.transport import TransportConfig, TransportStats
from channels.transport import listing as transport_listing

LISTERS = {"fsspec": fsspec_listing.list_prefix, "transport": transport_listing.list_prefix}

# Keys a URL or XML could mangle: spaces, plus signs, percent signs, query and fragment marks, non-ASCII,
# ampersands, nested folders, a folder marker.
ODD_KEYS = {"train/a b.bin": b"1", "train/plus+sign": b"22", "train/pct%41": b"333", "train/q?x=1#frag": b"4",
            "train/uni-\u00e9\u4e2d": b"55", "train/amp&k=v": b"6", "train/c/d/e.bin": b"777", "train/dir/": b"",
            "train-2/x": b"8", "trainx": b"9", "val/y": b"0"}


@pytest.fixture
def store(s3):
    return Store.from_env(s3.endpoint_url)


@pytest.fixture
def odd(s3_client, bucket):
    for key, body in ODD_KEYS.items():
        s3_client.put_object(Bucket=bucket, Key=key, Body=body)
    return bucket


@pytest.mark.parametrize("prefix", ["train/", "train", "", "train/c/", "train/a"])
def test_same_listing_as_fsspec(odd, store, prefix):
    uri = f"s3://{odd}/{prefix}"
    got = transport_listing.list_prefix(uri, store=store)
    assert got == fsspec_listing.list_prefix(uri, store=store)
    assert all(not r.key.endswith("/") for r in got.refs)


def test_keys_sizes_and_etags_are_the_stores(odd, store, s3_client):
    got = transport_listing.list_prefix(f"s3://{odd}/train/", store=store)
    assert {r.key: r.size for r in got.refs} == {k[len("train/"):]: len(v) for k, v in ODD_KEYS.items()
                                                  if k.startswith("train/") and not k.endswith("/")}
    for ref in got.refs:
        head = s3_client.head_object(Bucket=odd, Key="train/" + ref.key)
        assert ref.etag == head["ETag"].strip('"')
        assert ref.url == f"s3://{odd}/train/{ref.key}"


def test_pages_are_followed_one_request_each(s3_client, bucket, store, monkeypatch):
    for i in range(7):
        s3_client.put_object(Bucket=bucket, Key=f"p/{i:02d}", Body=b"z" * i)
    monkeypatch.setattr(transport_listing, "PAGE_KEYS", 3)
    stats = TransportStats()
    got = transport_listing.list_prefix(f"s3://{bucket}/p/", store=store, stats=stats)
    assert [r.key for r in got.refs] == [f"{i:02d}" for i in range(7)]
    assert stats.snapshot()["requests"] == 3  # 3 + 3 + 1 keys, nothing else (no HEAD)
    assert stats.snapshot()["retries"] == 0


@pytest.mark.parametrize("name", list(LISTERS))
def test_missing_bucket_and_empty_prefix_raise_the_same_errors(s3, store, bucket, name):
    with pytest.raises(SourceNotFoundError, match="bucket 'no-such-bucket' does not exist") as missing:
        LISTERS[name]("s3://no-such-bucket/p/", store=store)
    assert missing.value.details["url"] == "s3://no-such-bucket/p/"
    with pytest.raises(EmptyChannelError, match="no objects under"):
        LISTERS[name](f"s3://{bucket}/nothing/", store=store)


def test_options_the_backend_does_not_read_go_through_fsspec(s3):
    uri = "s3://b/p/"
    config = TransportConfig()
    assert transport_listing.fast_path(uri, Store.from_env(s3.endpoint_url), config)
    assert transport_listing.fast_path(uri, Store.from_env(s3.endpoint_url, key="k", secret="s"), config)
    assert not transport_listing.fast_path(uri, Store.from_env(s3.endpoint_url, requester_pays=True), config)
    assert not transport_listing.fast_path(
        uri, Store.from_env(s3.endpoint_url, client_kwargs={"endpoint_url": "http://elsewhere"}), config)
    assert not transport_listing.fast_path("file:///tmp/x", Store(), config)
    assert not transport_listing.fast_path(uri, Store(), TransportConfig(s3_backend="fsspec"))


def test_fallback_lists_through_fsspec(odd, s3):
    store = Store.from_env(s3.endpoint_url, requester_pays=False)
    stats = TransportStats()
    got = transport_listing.list_prefix(f"s3://{odd}/train/", store=store, stats=stats)
    assert stats.snapshot()["requests"] == 0  # not ours: s3fs listed it
    assert got == fsspec_listing.list_prefix(f"s3://{odd}/train/", store=store)


def test_a_listing_page_cut_short_is_retried(s3, s3_client, bucket):
    """A page reset partway, then one cut short with a clean close: each retried once, as s3fs does."""
    from faultproxy import fault_proxy

    from channels.testing.faults import Action

    for i in range(12):
        s3_client.put_object(Bucket=bucket, Key=f"p/{i:02d}", Body=b"x" * i)
    cuts = iter([Action("reset", after_bytes=300), Action("stall", after_bytes=500, seconds=0.0)])
    lists = []

    def policy(req):
        if req.method == "GET" and "list-type" in req.target:
            lists.append(req)
            return next(cuts, None)
        return None

    stats = TransportStats()
    with fault_proxy(s3, policy) as proxy:
        got = transport_listing.list_prefix(f"s3://{bucket}/p/", store=Store(proxy.url), stats=stats)
    assert [r.key for r in got.refs] == [f"{i:02d}" for i in range(12)]
    assert len(proxy.stats.faults) == 2 and len(lists) == 3
    assert stats.snapshot()["retries"] == 2 and stats.snapshot()["requests"] == 3


def test_signed_listing_with_credentials_from_the_environment(s3, s3_client, bucket, iam_user, monkeypatch):
    # moto checks every signature here: the listing's query string is signed as SigV4 wants it.
    import boto3

    key_id, secret = iam_user
    writer = boto3.client("s3", endpoint_url=s3.endpoint_url, aws_access_key_id=key_id,
                          aws_secret_access_key=secret, region_name="us-east-1")
    for key, body in ODD_KEYS.items():
        writer.put_object(Bucket=bucket, Key=key, Body=body)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    store = Store.from_env(s3.endpoint_url)
    got = transport_listing.list_prefix(f"s3://{bucket}/train/", store=store)
    assert len(got) == sum(1 for k in ODD_KEYS if k.startswith("train/") and not k.endswith("/"))
    for prefix in ("train/a b", "train/plus+", "train/uni-\u00e9", "train/amp&"):  # signed query values
        assert len(transport_listing.list_prefix(f"s3://{bucket}/{prefix}", store=store)) == 1
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "Wr0ngS3cretValue")
    with pytest.raises(AccessDeniedError, match="access denied listing"):
        transport_listing.list_prefix(f"s3://{bucket}/train/", store=store)
