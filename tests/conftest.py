"""The test rig: a real S3 endpoint on loopback, reset between tests."""

from __future__ import annotations

import os

import pytest

from channels.store import _filesystem
from channels.testing import LocalS3, dummy_credentials

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def s3_server():
    """moto's ThreadedMotoServer on a free loopback port, for the session."""
    with dummy_credentials(), LocalS3() as server:
        # Libraries that read the endpoint from the environment (our CLI, boto3)
        # find this one; set for the test process only.
        saved = os.environ.get("AWS_ENDPOINT_URL")
        os.environ["AWS_ENDPOINT_URL"] = server.endpoint_url
        try:
            yield server
        finally:
            if saved is None:
                os.environ.pop("AWS_ENDPOINT_URL", None)
            else:
                os.environ["AWS_ENDPOINT_URL"] = saved


@pytest.fixture
def s3(s3_server):
    """The endpoint, emptied before each test."""
    s3_server.reset()
    _filesystem.cache_clear()
    import fsspec

    fsspec.config.conf.pop("s3", None)
    from s3fs import S3FileSystem

    S3FileSystem.clear_instance_cache()
    yield s3_server


@pytest.fixture
def s3_client(s3):
    return s3.client()


@pytest.fixture
def bucket(s3_client):
    name = "test-bucket"
    s3_client.create_bucket(Bucket=name)
    return name
