"""Our SigV4 signer (the listing's and the transport's) gives, header for header, what botocore's ``S3SigV4Auth`` gives.

The oracle is botocore itself, at the same pinned time, over many requests:
keys, prefixes, tokens and start-after values that need percent-encoding,
path-style endpoints (ports, a base path, IPv6) and virtual-hosted AWS
hosts, static and temporary credentials, several regions. That moto accepts
the signature end to end is tested in test_bad_input.py (moto with IAM
authentication on).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import botocore.auth
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, RefreshableCredentials
from hypothesis import given, settings
from hypothesis import strategies as st

from channels.listing.s3api import parse_page
from channels.sigv4 import EMPTY_SHA256, Signer, StaticCredentials, canonical_query, host_header
from channels.store import bucket_location
from channels.transport.backends.s3 import quote_key

_text = st.text(st.sampled_from(list("ab/_-.~ %+=&?#:;,é日\u00a0\U0001f600*'()!$@[]")), max_size=12)
_params = st.fixed_dictionaries(
    {"list-type": st.just("2"), "prefix": _text, "encoding-type": st.just("url"),
     "max-keys": st.integers(1, 1000).map(str)},
    optional={"delimiter": st.sampled_from(["/", "|", "%", " "]), "continuation-token": _text, "start-after": _text})
_base = st.sampled_from([
    "http://127.0.0.1:9000/bucket", "http://localhost/b.with.dots", "https://minio.example:443/base/bkt",
    "http://[::1]:8080/bucket", "https://my-bucket.s3.eu-west-1.amazonaws.com/",
    "https://s3.us-east-1.amazonaws.com/Bucket_Legacy", "HTTP://UPPER.example:81/bucket"])
_when = st.datetimes(datetime(2020, 1, 1), datetime(2030, 12, 31)).map(lambda d: d.replace(microsecond=0))


def botocore_headers(monkeypatch, creds, region: str, url: str, when: datetime) -> dict[str, str]:
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: when)
    request = AWSRequest(method="GET", url=url, headers={})
    S3SigV4Auth(creds.get_frozen_credentials(), "s3", region).add_auth(request)
    return dict(request.headers.items())


@settings(max_examples=300, deadline=None)
@given(params=_params, base=_base, when=_when, region=st.sampled_from(["us-east-1", "eu-west-1", "cn-north-1"]),
       token=st.one_of(st.none(), st.sampled_from(["FQoGZXIvYXdzE//token+with/slash=", " tok  en "])))
def test_headers_are_botocores(params, base, when, region, token):
    with pytest.MonkeyPatch.context() as monkeypatch:
        creds = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
        query = canonical_query(params)
        url = f"{base}?{query}"
        expected = botocore_headers(monkeypatch, creds, region, url, when)
    ours = Signer(creds, region).headers(host_header(url), urlsplit(url).path or "/", query,
                                            now=when.replace(tzinfo=UTC))
    assert ours.pop("Host") == botocore.auth._host_from_url(url)
    assert ours == expected


_key = st.text(st.sampled_from(list("ab/_-.~ %+=&?#:;,é日*'()!$@[]")), min_size=1, max_size=16)
_sent = st.fixed_dictionaries({}, optional={
    "Range": st.tuples(st.integers(0, 1 << 40), st.integers(0, 1 << 30)).map(lambda r: f"bytes={r[0]}-{r[0] + r[1]}"),
    "If-Match": st.sampled_from(['"0f343b0931126a20f133d67c2b018a3b"', '"9b2cf535f27731c974343645a3985328-12"']),
})


@settings(max_examples=300, deadline=None)
@given(key=_key, base=_base, sent=_sent, method=st.sampled_from(["GET", "HEAD"]), when=_when,
       region=st.sampled_from(["us-east-1", "eu-west-1", "cn-north-1"]),
       token=st.one_of(st.none(), st.sampled_from(["FQoGZXIvYXdzE//token+with/slash=", " tok  en "])))
def test_the_transports_requests_are_signed_as_botocore_signs_them(key, base, sent, method, when, region, token):
    """A part's GET (Range, If-Match) and the HEAD after a failed If-Match, for keys that need quoting."""
    url = f"{base.rstrip('/')}/{quote_key(key)}"
    creds = StaticCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: when)
        request = AWSRequest(method=method, url=url, headers=dict(sent))
        S3SigV4Auth(Credentials(creds.access_key, creds.secret_key, token), "s3", region).add_auth(request)
        expected = dict(request.headers.items())
    ours = Signer(creds, region).headers(host_header(url), urlsplit(url).path, method=method, sent=sent,
                                         now=when.replace(tzinfo=UTC))
    assert ours.pop("Host") == botocore.auth._host_from_url(url)
    assert ours == expected


def test_static_credentials_never_show_the_secret():
    creds = StaticCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token")
    assert "AKIDEXAMPLE" in repr(creds) and "wJalr" not in repr(creds) and "session-token" not in repr(creds)
    assert creds.get_frozen_credentials() is creds


def test_the_signing_key_follows_the_day_and_refreshed_credentials(monkeypatch):
    """A listing that runs past midnight, or whose credentials refresh, signs with the new key."""
    # Credentials that expire within botocore's refresh window: each use asks for them again.
    soon = (datetime.now(UTC) + timedelta(minutes=2)).isoformat()
    current = {"access_key": "AKID1", "secret_key": "secret-one", "token": "t1", "expiry_time": soon}
    creds = RefreshableCredentials.create_from_metadata(current, lambda: dict(current), "test")
    signer = Signer(creds, "us-west-2")
    host, path, query = "127.0.0.1:9000", "/bucket", canonical_query({"list-type": "2", "prefix": "a b/"})
    for when in (datetime(2024, 2, 28, 23, 59, 59), datetime(2024, 2, 29, 0, 0, 1)):
        expected = botocore_headers(monkeypatch, creds, "us-west-2", f"http://{host}{path}?{query}", when)
        got = signer.headers(host, path, query, now=when.replace(tzinfo=UTC))
        assert got.pop("Host") == host and got == expected
    current.update(access_key="AKID2", secret_key="secret-two", token=None)  # what the next refresh gets
    when = datetime(2024, 2, 29, 0, 0, 2)
    expected = botocore_headers(monkeypatch, creds, "us-west-2", f"http://{host}{path}?{query}", when)
    got = signer.headers(host, path, query, now=when.replace(tzinfo=UTC))
    assert got.pop("Host") == host and got == expected and "X-Amz-Security-Token" not in got
    assert got["X-Amz-Content-SHA256"] == EMPTY_SHA256 and got["Authorization"].startswith(
        "AWS4-HMAC-SHA256 Credential=AKID2/20240229/us-west-2/s3/aws4_request, ")


def test_canonical_query_sorts_by_encoded_name_then_value():
    # "a" sorts before "a-b" as botocore sorts (name, value) pairs, though "a-b=" < "a=" as strings.
    assert canonical_query({"a-b": "1", "a": "x y/é"}) == "a=x%20y%2F%C3%A9&a-b=1"


def _page(contents: str) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><EncodingType>url</EncodingType>'
            f"<IsTruncated>false</IsTruncated>{contents}</ListBucketResult>").encode()


@pytest.mark.parametrize("etag, expected", [
    ("&quot;0f&quot;", "0f"), ("&#34;0f-2&#34;", "0f-2"), ('"0f"', "0f"), ("0f", "0f"), ("", None),
    ("&quot;a&amp;b&quot;", "a&b"),  # an entity inside the ETag: the block-by-block path
])
def test_a_page_gives_each_objects_key_size_and_etag_with_either_parse(etag, expected):
    page = parse_page(_page(
        "<Contents><Key>a%20%26b/%C3%A9</Key><LastModified>2026-01-01T00:00:00Z</LastModified>"
        f"<ETag>{etag}</ETag><Size>12</Size><StorageClass>STANDARD</StorageClass></Contents>"
        "<Contents><Key>z</Key><ETag>&quot;1&quot;</ETag><Size>0</Size></Contents>"))
    assert page.keys == [("a &b/é", 12, expected), ("z", 0, "1")]
    assert page.next_token is None


def test_fields_in_another_order_are_still_found():
    page = parse_page(_page("<Contents><Size>7</Size><ETag>&quot;e&quot;</ETag><Key>k</Key></Contents>"))
    assert page.keys == [("k", 7, "e")]


@pytest.mark.parametrize("bucket, region, endpoint, expected", [
    ("data", "us-east-1", None, ("https", "data.s3.us-east-1.amazonaws.com", "")),
    ("my.data", "eu-west-1", None, ("https", "s3.eu-west-1.amazonaws.com", "/my.data")),  # a dot: path-style
    ("Data_1", "us-east-1", None, ("https", "s3.us-east-1.amazonaws.com", "/Data_1")),
    ("data", "cn-north-1", None, ("https", "data.s3.cn-north-1.amazonaws.com.cn", "")),
    ("data", "us-east-1", "http://127.0.0.1:9000", ("http", "127.0.0.1:9000", "/data")),
    ("data", "us-east-1", "https://minio.example/s3/", ("https", "minio.example", "/s3/data")),
])
def test_the_listing_and_the_transport_address_a_bucket_alike(bucket, region, endpoint, expected):
    assert bucket_location(bucket, region, urlsplit(endpoint) if endpoint else None) == expected
