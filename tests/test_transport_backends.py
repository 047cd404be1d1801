"""Every backend behind the transport (S3 fast path, fsspec, local files, fsspec's
memory store) and the S3 fast path's own rules, against a real S3 endpoint
(moto on loopback): single reads, missing and changed objects, signing,
addressing and keep-alive. Streaming is in test_transport.py."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from transporting import collect, put, transport

from channels.errors import ObjectChangedError, SourceNotFoundError, TransportError
from channels.listing import ObjectRef
from channels.store import Store
from channels.transport import AccessDeniedError, Transport, TransportConfig
from channels.transport.backends.s3 import S3Backend, parse_s3_url, quote_key
from channels.units import KIB


def test_s3_url_parsing_and_key_quoting():
    assert parse_s3_url("s3://b/dir/a b?c#d%e") == ("b", "dir/a b?c#d%e")
    assert quote_key("dir/a b+ü%~x") == "dir/a%20b%2B%C3%BC%25~x"
    with pytest.raises(ValueError, match="names no object"):
        parse_s3_url("s3://bucket")


def test_aws_addressing_is_virtual_hosted_except_dotted_buckets(monkeypatch):
    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(var, raising=False)
    backend = S3Backend(Store(), TransportConfig(region="eu-west-1"), None)
    assert backend._locate("my-bucket", "k y") == ("https", "my-bucket.s3.eu-west-1.amazonaws.com",
                                                   "/k%20y")
    assert backend._locate("my.bucket", "k") == ("https", "s3.eu-west-1.amazonaws.com", "/my.bucket/k")
    custom = S3Backend(Store("http://127.0.0.1:9000/base/"), TransportConfig(), None)
    assert custom._locate("b", "k") == ("http", "127.0.0.1:9000", "/base/b/k")


def test_credentials_and_region_as_botocore_resolves_them(monkeypatch, tmp_path):
    # channels.store.aws_identity, which the transport and the S3 listing sign with: the
    # environment's credentials and AWS_DEFAULT_REGION need no botocore session; a profile, or a
    # region only in the config file, still go through one.
    (tmp_path / "config").write_text("[default]\nregion = eu-west-3\n[profile other]\nregion = ap-south-1\n")
    (tmp_path / "credentials").write_text("[other]\naws_access_key_id = FROMFILE\naws_secret_access_key = s\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "FROMENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    for var in ("AWS_REGION", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CREDENTIAL_EXPIRATION"):
        monkeypatch.delenv(var, raising=False)

    def resolved(*options):
        backend = S3Backend(Store("http://127.0.0.1:9", options), TransportConfig(), None)
        backend._resolve()
        return backend._credentials.access_key, backend._region

    assert resolved() == ("FROMENV", "us-west-2")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    assert resolved() == ("FROMENV", "eu-west-3")  # the config file's default profile
    assert resolved(("profile", "other")) == ("FROMFILE", "ap-south-1")  # a named profile: not the environment


def test_credentials_the_environment_settles_are_read_as_botocore_reads_them(monkeypatch):
    """Fixed environment credentials (no botocore needed) equal botocore's EnvProvider's; expiring ones are botocore's."""
    from botocore.credentials import EnvProvider, RefreshableCredentials

    from channels.sigv4 import StaticCredentials
    from channels.store import aws_identity

    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_CREDENTIAL_EXPIRATION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    for tokens in ({}, {"AWS_SESSION_TOKEN": "session"}, {"AWS_SECURITY_TOKEN": "old", "AWS_SESSION_TOKEN": "new"}):
        for name, value in tokens.items():
            monkeypatch.setenv(name, value)
        ours, _ = aws_identity({}, "us-east-1")
        theirs = EnvProvider().load().get_frozen_credentials()
        assert isinstance(ours, StaticCredentials)
        assert (ours.access_key, ours.secret_key, ours.token) == (theirs.access_key, theirs.secret_key, theirs.token)
    ours, _ = aws_identity({"key": "K", "secret": "S", "token": "T"}, "us-east-1")
    assert ours == StaticCredentials("K", "S", "T")
    monkeypatch.setenv("AWS_CREDENTIAL_EXPIRATION", "2099-01-01T00:00:00Z")
    assert isinstance(aws_identity({}, "us-east-1")[0], RefreshableCredentials)


def test_a_download_with_environment_credentials_never_imports_botocore(s3_client, bucket, s3, tmp_path):
    """botocore's import is start-up every ``channels download`` would pay: the environment settles it here."""
    put(s3_client, bucket, "nb/a.bin", b"a" * 3000)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_PROFILE")}
    code = ("import sys; from channels.cli import main; rc = main(['download', sys.argv[1], sys.argv[2], '-q', "
            "'--endpoint-url', sys.argv[3]]); print(sorted(m for m in sys.modules if m.startswith('botocore')))")
    out = subprocess.run([sys.executable, "-c", code, f"s3://{bucket}/nb/", str(tmp_path / "d"), s3.endpoint_url],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "d" / "a.bin").read_bytes() == b"a" * 3000
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------- single reads, other backends


def test_read_into_and_read_range(s3_client, bucket, s3):
    data = os.urandom(300 * KIB)
    ref = put(s3_client, bucket, "r.bin", data)
    t = transport(s3)
    assert bytes(t.read_range(ref, 1000, 70 * KIB)) == data[1000:70 * KIB]
    arr = np.zeros(1000, dtype=np.float64)  # any writable buffer, cast to bytes
    t.read_into(ref, 8, arr)
    assert arr.tobytes() == data[8:8008]
    assert t.read_range(f"s3://{bucket}/r.bin", 0, 5) == data[:5]  # a bare URL: no size, no etag
    assert t.get(f"s3://{bucket}/r.bin") == data
    with pytest.raises(ValueError, match="past the end"):
        t.read_range(ref, 0, len(data) + 1)
    assert t.stats.requests == 4


def test_every_backend_streams_and_reads_ranges(stored):
    t, refs, blobs, kind = stored
    got = collect(t.stream(refs))
    assert [bytes(got[r.url]) for r in refs] == blobs
    assert bytes(t.read_range(refs[1], 5, 70 * KIB)) == blobs[1][5:70 * KIB]
    assert t.get(refs[1].url) == blobs[1]
    expected_backend = {"s3": "s3", "s3-via-fsspec": "fsspec", "local": "local", "memory": "fsspec"}
    assert t.backend_for(refs[0].url).name == expected_backend[kind]
    # small object 1 + large one 4 parts (+1 range read, +1 get); the empty one costs nothing
    assert t.stats.requests == 7


def test_every_backend_reports_missing_objects(stored):
    t, refs, _, _ = stored
    missing = ObjectRef(refs[0].url + "-missing", 5, None)
    with pytest.raises(SourceNotFoundError, match="-missing"):
        list(t.stream([missing]))
    assert t.stats.retries == 0 and t.stats.errors == 1


def test_size_change_is_detected(s3_client, bucket, s3, tmp_path):
    ref = put(s3_client, bucket, "grow", b"12345")
    s3_client.put_object(Bucket=bucket, Key="grow", Body=b"123456789")
    stale = ObjectRef(ref.url, ref.size, None)  # no etag: the size gives it away
    with pytest.raises(ObjectChangedError, match="9 bytes now, 5 listed"):
        list(transport(s3).stream([stale]))
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    with pytest.raises(ObjectChangedError, match="3 bytes, listed 4"):
        transport(s3).read_range(ObjectRef(str(path), 4), 0, 2)


# ---------------------------------------------------------------- S3 errors


def test_missing_object_is_not_retried(s3_client, bucket, s3):
    ok = put(s3_client, bucket, "there", b"yes")
    missing = ObjectRef(f"s3://{bucket}/not/there", 10, "abc")
    t = transport(s3)
    stream = t.stream([ok, missing])
    assert bytes(next(stream).data) == b"yes"
    with pytest.raises(SourceNotFoundError) as info:
        next(stream)
    assert f"s3://{bucket}/not/there" in str(info.value) and "NoSuchKey" in str(info.value)
    assert info.value.details["url"] == missing.url
    assert t.stats.retries == 0 and t.stats.requests == 2
    with pytest.raises(SourceNotFoundError, match="NoSuchBucket"):
        t.read_range("s3://no-such-bucket/k", 0, 1)


def test_overwrite_between_parts_raises_object_changed(s3_client, bucket, s3):
    part = 64 * KIB
    ref = put(s3_client, bucket, "moving", os.urandom(2 * part))
    # Budget of one part: the second part is not fetched before the consumer
    # asks for it, so the overwrite lands between the two GETs.
    t = transport(s3, part_size=part, budget_bytes=part, max_workers=2)
    stream = t.stream([ref])
    first = next(stream)
    assert first.offset == 0 and not first.last
    new_etag = s3_client.put_object(Bucket=bucket, Key="moving", Body=os.urandom(2 * part))["ETag"]
    with pytest.raises(ObjectChangedError) as info:
        next(stream)
    message = str(info.value)
    assert ref.url in message and ref.etag in message and new_etag.strip('"') in message
    assert info.value.details["offset"] == part
    assert t.stats.retries == 0


def test_wrong_etag_on_a_single_read(s3_client, bucket, s3):
    ref = put(s3_client, bucket, "e", b"content")
    stale = ObjectRef(ref.url, ref.size, "0" * 32)
    with pytest.raises(ObjectChangedError, match="0" * 32):
        transport(s3).read_range(stale, 0, 3)
    assert bytes(transport(s3, verify_etag=False).read_range(stale, 0, 3)) == b"con"


def test_errors_survive_pickling():
    err = AccessDeniedError("access denied reading s3://b/k", url="s3://b/k", code="AccessDenied")
    back = pickle.loads(pickle.dumps(err))
    assert isinstance(back, PermissionError) and back.details["url"] == "s3://b/k"
    gave_up = TransportError("gave up", url="s3://b/k", offset=5, attempts=3, cause="x")
    assert pickle.loads(pickle.dumps(gave_up)).details["attempts"] == 3


# ---------------------------------------------------------------- signing (moto checks signatures)


def _moto_auth(s3, count) -> None:
    req = urllib.request.Request(f"{s3.endpoint_url}/moto-api/reset-auth", data=str(count).encode(),
                                 method="POST", headers={"Content-Type": "text/plain"})
    urllib.request.urlopen(req, timeout=10).close()


@pytest.fixture
def iam_user(s3):
    """moto with signature checks on; yields (key id, secret) of a user allowed s3:*."""
    import boto3

    _moto_auth(s3, 3)  # the three IAM calls below pass unauthenticated
    try:
        iam = boto3.client("iam", endpoint_url=s3.endpoint_url, region_name="us-east-1")
        iam.create_user(UserName="reader")
        policy = {"Version": "2012-10-17",
                  "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        iam.put_user_policy(UserName="reader", PolicyName="read", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="reader")["AccessKey"]
        yield key["AccessKeyId"], key["SecretAccessKey"]
    finally:
        _moto_auth(s3, "inf")


KEYS = ["plain", "with space", "ünïcödé/日本", "a+b", "100%", "q?x=1#frag", "dir//double", "~tilde*"]


def test_signed_requests_with_awkward_keys(s3_client, bucket, s3, iam_user):
    import boto3

    key_id, secret = iam_user
    writer = boto3.client("s3", endpoint_url=s3.endpoint_url, aws_access_key_id=key_id,
                          aws_secret_access_key=secret, region_name="us-east-1")
    refs = [put(writer, bucket, k, k.encode() * 50) for k in KEYS]
    store = Store(s3.endpoint_url, (("key", key_id), ("secret", secret)))
    t = Transport(store, TransportConfig(part_size=128, budget_bytes=4096, max_workers=4))
    got = collect(t.stream(refs))
    assert [bytes(got[r.url]) for r in refs] == [k.encode() * 50 for k in KEYS]


def test_wrong_secret_is_a_clear_error_without_the_secret(s3_client, bucket, s3, iam_user):
    import boto3

    key_id, secret = iam_user
    writer = boto3.client("s3", endpoint_url=s3.endpoint_url, aws_access_key_id=key_id,
                          aws_secret_access_key=secret, region_name="us-east-1")
    ref = put(writer, bucket, "secret-data", b"payload")
    bad_secret = "Wr0ngS3cretValue/ShouldNeverBePrinted"
    store = Store(s3.endpoint_url, (("key", key_id), ("secret", bad_secret)))
    t = Transport(store, TransportConfig())
    with pytest.raises(AccessDeniedError) as info:
        list(t.stream([ref]))
    err = info.value
    text = " ".join([str(err), repr(err), repr(err.details), repr(pickle.loads(pickle.dumps(err)))])
    assert "SignatureDoesNotMatch" in text and "check the credentials" in text and ref.url in text
    assert bad_secret not in text and secret not in text and "Signature=" not in text
    assert isinstance(err, PermissionError) and t.stats.retries == 0
    anonymous = Transport(Store(s3.endpoint_url, (("anon", True),)), TransportConfig())
    with pytest.raises(AccessDeniedError, match="access denied"):
        anonymous.read_range(ref, 0, 3)


# ---------------------------------------------------------------- keep-alive (moto closes every connection; S3 does not)


class _KeepAliveS3(BaseHTTPRequestHandler):
    """Serves one blob at any path, honouring Range, keeping connections open."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go in separate writes
    blob = os.urandom(300 * KIB)
    peers: set = set()

    def do_GET(self):
        type(self).peers.add(self.client_address)
        start, end = 0, len(self.blob) - 1
        rng = self.headers.get("Range")
        if rng:
            a, b = rng.removeprefix("bytes=").split("-")
            start, end = int(a), int(b)
        body = self.blob[start:end + 1]
        self.send_response(206 if rng else 200)
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(self.blob)}")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", '"v1"')
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_connections_are_reused_with_keep_alive_servers():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _KeepAliveS3)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        store = Store(f"http://127.0.0.1:{server.server_port}", (("anon", True),))
        t = Transport(store, TransportConfig(part_size=16 * KIB, small_object_threshold=16 * KIB,
                                             max_workers=1))
        blob = _KeepAliveS3.blob
        refs = [ObjectRef(f"s3://b/k{i}", len(blob), "v1") for i in range(3)]
        got = collect(t.stream(refs))
        assert all(bytes(v) == blob for v in got.values())
        assert t.stats.requests == 3 * 19
        # One worker, one connection, reused for every request after the first.
        assert len(_KeepAliveS3.peers) == 1
        with pytest.raises(ObjectChangedError, match="'v1' now, 'v2' listed"):
            t.read_range(ObjectRef("s3://b/k", len(blob), "v2"), 0, 10)  # server ignores If-Match
        assert bytes(t.read_range(refs[0], 5, 10)) == blob[5:10]
    finally:
        server.shutdown()
        server.server_close()
