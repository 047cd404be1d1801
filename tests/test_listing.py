"""Listing against the real loopback endpoint and the local filesystem."""

from __future__ import annotations

import json

import pytest

from channels.errors import EmptyChannelError, ManifestError, SourceNotFoundError
from channels.listing import list_augmented_manifest, list_manifest, list_prefix, list_source
from channels.store import Store


@pytest.fixture
def store(s3):
    return Store.from_env(s3.endpoint_url)


def put(client, bucket, objects):
    for key, body in objects.items():
        client.put_object(Bucket=bucket, Key=key, Body=body)


def test_prefix_lists_in_key_order_with_sizes_etags_and_relative_keys(s3_client, bucket, store):
    put(s3_client, bucket, {"train/b/2.bin": b"22", "train/a.bin": b"1", "train/c/d/3.bin": b"333",
                            "train-extra/x": b"x", "other/y": b"y", "train/dir/": b""})
    listing = list_prefix(f"s3://{bucket}/train/", store=store)
    assert [r.url for r in listing.refs] == [f"s3://{bucket}/train/a.bin", f"s3://{bucket}/train/b/2.bin",
                                              f"s3://{bucket}/train/c/d/3.bin"]
    assert [r.key for r in listing.refs] == ["a.bin", "b/2.bin", "c/d/3.bin"]
    assert [r.size for r in listing.refs] == [1, 2, 3]
    head = s3_client.head_object(Bucket=bucket, Key="train/a.bin")
    assert listing.refs[0].etag == head["ETag"].strip('"')


def test_prefix_is_a_key_prefix_as_in_s3(s3_client, bucket, store):
    put(s3_client, bucket, {"train/a": b"1", "train-2/b": b"2", "trainx": b"3", "val/c": b"4"})
    listing = list_prefix(f"s3://{bucket}/train", store=store)
    assert [r.key for r in listing.refs] == ["train-2/b", "train/a", "trainx"]


def test_listing_makes_one_paginated_call_and_no_head(s3_client, bucket, store, s3):
    # 1500 keys need two pages of ListObjectsV2 (1000 each); no HEAD per object.
    from concurrent.futures import ThreadPoolExecutor

    from channels.testing.proxy import Proxy

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: s3_client.put_object(Bucket=bucket, Key=f"p/{i:05d}", Body=b"z"), range(1500)))
    seen = []
    with Proxy(s3.endpoint_url, fault_policy=lambda req: seen.append((req.method, req.target))) as proxy:
        listing = list_prefix(f"s3://{bucket}/p/", store=Store(proxy.url))
        proxy.quiesce()
    assert len(listing) == 1500
    # 1500 keys with no common prefix = two pages of one listing; nothing else (no HEAD, no second listing).
    assert [m for m, _ in seen] == ["GET", "GET"] and all("list-type=2" in t for _, t in seen)
    assert listing.stats.requests == 2 and listing.stats.pages == 2 and listing.stats.objects == 1500


def test_local_files_list_like_a_prefix(tmp_path):
    (tmp_path / "d" / "e").mkdir(parents=True)
    (tmp_path / "d" / "x.txt").write_bytes(b"hello")
    (tmp_path / "d" / "e" / "y.txt").write_bytes(b"hi")
    listing = list_prefix(f"file://{tmp_path}/d/")
    assert [(r.key, r.size) for r in listing.refs] == [("e/y.txt", 2), ("x.txt", 5)]
    assert listing.refs[1].url == f"file://{tmp_path}/d/x.txt"
    assert [r.key for r in list_prefix(str(tmp_path / "d")).refs] == ["e/y.txt", "x.txt"]


def test_missing_bucket_empty_prefix_and_missing_path(s3, store, tmp_path):
    with pytest.raises(SourceNotFoundError, match="bucket 'no-such-bucket' does not exist: s3://no-such-bucket/p/"):
        list_prefix("s3://no-such-bucket/p/", store=store)
    s3.client().create_bucket(Bucket="empty")
    with pytest.raises(EmptyChannelError, match="no objects under s3://empty/p/"):
        list_prefix("s3://empty/p/", store=store)
    with pytest.raises((SourceNotFoundError, EmptyChannelError), match=str(tmp_path / "nope")):
        list_prefix(f"file://{tmp_path}/nope/")


def test_manifest_file(s3_client, bucket, store):
    put(s3_client, bucket, {"data/a.bin": b"aaaa", "data/sub/b.bin": b"bb", "data/c.bin": b"c"})
    manifest = [{"prefix": f"s3://{bucket}/data/"}, "sub/b.bin", "a.bin", f"s3://{bucket}/data/c.bin"]
    s3_client.put_object(Bucket=bucket, Key="m.json", Body=json.dumps(manifest).encode())
    listing = list_source(f"s3://{bucket}/m.json", "ManifestFile", store=store)
    assert [(r.key, r.size) for r in listing.refs] == [("sub/b.bin", 2), ("a.bin", 4), ("c.bin", 1)]
    assert listing.refs[0].etag


def test_manifest_entry_from_another_bucket_is_refused(s3_client, bucket, store):
    manifest = [{"prefix": f"s3://{bucket}/data/"}, "a.bin", "s3://elsewhere/data/b.bin"]
    s3_client.put_object(Bucket=bucket, Key="m.json", Body=json.dumps(manifest).encode())
    with pytest.raises(ManifestError, match=r"entry \[2\] s3://elsewhere/data/b.bin is outside the manifest's bucket"):
        list_manifest(f"s3://{bucket}/m.json", store=store)


@pytest.mark.parametrize("body, message", [
    (b"{not json", "is not JSON"),
    (b'["a.bin"]', 'must be a JSON array starting with {"prefix"'),
    (b'[{"prefix": "s3://b/p/"}, 7]', r"entry \[1\] is 7"),
])
def test_malformed_manifest(s3_client, bucket, store, body, message):
    s3_client.put_object(Bucket=bucket, Key="m.json", Body=body)
    with pytest.raises(ManifestError, match=message) as info:
        list_manifest(f"s3://{bucket}/m.json", store=store)
    assert f"s3://{bucket}/m.json" in str(info.value)


def test_manifest_missing_entry_and_missing_manifest(s3_client, bucket, store):
    s3_client.put_object(Bucket=bucket, Key="data/a.bin", Body=b"a")
    manifest = [{"prefix": f"s3://{bucket}/data/"}, "a.bin", "gone.bin"]
    s3_client.put_object(Bucket=bucket, Key="m.json", Body=json.dumps(manifest).encode())
    with pytest.raises(SourceNotFoundError, match=f"s3://{bucket}/data/gone.bin does not exist"):
        list_manifest(f"s3://{bucket}/m.json", store=store)
    with pytest.raises(SourceNotFoundError, match="manifest not found"):
        list_manifest(f"s3://{bucket}/nope.json", store=store)


def test_augmented_manifest_units_keep_attributes_together(s3_client, bucket, store):
    put(s3_client, bucket, {"img/1.jpg": b"JPEG1", "img/2.jpg": b"JPEG22"})
    lines = [{"source-ref": f"s3://{bucket}/img/1.jpg", "label": 3, "extra": "x"},
             {"source-ref": f"s3://{bucket}/img/2.jpg", "label": {"cls": 1}}]
    s3_client.put_object(Bucket=bucket, Key="aug.jsonl", Body="\n".join(map(json.dumps, lines)).encode())
    listing = list_augmented_manifest(f"s3://{bucket}/aug.jsonl", ["source-ref", "label"], store=store)
    assert listing.unit_count == 2 and len(listing) == 4
    assert listing.unit_sizes().tolist() == [5 + 1, 6 + len(b'{"cls":1}')]
    refs = listing.expand([1, 0])
    assert refs[0].url == f"s3://{bucket}/img/2.jpg" and refs[1].inline == b'{"cls":1}'
    assert refs[2].size == 5 and refs[3].inline == b"3"


def test_augmented_manifest_errors(s3_client, bucket, store):
    s3_client.put_object(Bucket=bucket, Key="aug.jsonl", Body=b'{"source-ref": "s3://%s/img/missing.jpg"}\n' % bucket.encode())
    with pytest.raises(SourceNotFoundError, match="-ref object s3://test-bucket/img/missing.jpg does not exist"):
        list_augmented_manifest(f"s3://{bucket}/aug.jsonl", ["source-ref"], store=store)
    with pytest.raises(ManifestError, match="line 1 has no attribute 'label'"):
        list_augmented_manifest(f"s3://{bucket}/aug.jsonl", ["label"], store=store)
    s3_client.put_object(Bucket=bucket, Key="bad.jsonl", Body=b'{"a": 1}\nnot json\n')
    with pytest.raises(ManifestError, match="line 2 is not JSON"):
        list_augmented_manifest(f"s3://{bucket}/bad.jsonl", ["a"], store=store)
