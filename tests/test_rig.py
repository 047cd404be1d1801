"""The rig itself: the loopback endpoint is real S3 over HTTP and resets."""

import pickle

from channels import errors
from channels.testing import Dataset, fill_bucket, lognormal_sizes, object_bytes


def test_endpoint_serves_real_http(s3_client, bucket):
    s3_client.put_object(Bucket=bucket, Key="a/b.txt", Body=b"hello")
    assert s3_client.get_object(Bucket=bucket, Key="a/b.txt")["Body"].read() == b"hello"
    assert s3_client.get_object(Bucket=bucket, Key="a/b.txt", Range="bytes=1-3")["Body"].read() == b"ell"


def test_reset_between_tests(s3_client):
    assert s3_client.list_buckets()["Buckets"] == []


def test_fill_bucket_generates_deterministic_objects(s3_client):
    ds = Dataset("ln", lognormal_sizes(20, median=1000, sigma=1.0, seed=3))
    sizes = fill_bucket(s3_client, "gen", ds)
    assert len(sizes) == 20
    key = ds.keys()[7]
    body = s3_client.get_object(Bucket="gen", Key=key)["Body"].read()
    assert body == object_bytes(key, sizes[key]) and len(body) == ds.sizes[7]


def test_errors_survive_pickling():
    err = errors.RecordError("bad magic in s3://b/k at offset 12", url="s3://b/k", offset=12)
    err.__cause__ = ValueError("x")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is errors.RecordError and isinstance(back, ValueError)
    assert back.details == {"url": "s3://b/k", "offset": 12} and str(back) == str(err)
    spec = pickle.loads(pickle.dumps(errors.SpecError("bad", [("A.B", "too long")])))
    assert spec.problems == [("A.B", "too long")]
