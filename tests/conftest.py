"""The test rig: a real S3 endpoint on loopback, reset between tests, and the fixtures several modules share:
a moto that checks credentials, the same objects behind every transport backend."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from transporting import put, transport

from channels.listing import ObjectRef
from channels.store import _filesystem
from channels.testing import KIB, LocalS3, dummy_credentials, free_port

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


# ---------------------------------------------------------------- credentials

#: Runs moto's server with IAM authentication on (moto checks access keys and
#: SigV4 signatures only then); the first 3 requests (create a user, its key,
#: its policy) are let through unauthenticated.
AUTH_SERVER = r"""
import sys, time
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False)
server.start()
sys.stdout.write("ready\n"); sys.stdout.flush()
sys.stdin.read()
"""


@pytest.fixture(scope="module")
def auth_s3():
    """A moto server that checks credentials: (endpoint, key id, secret, bucket with p/x.bin)."""
    import boto3

    port = free_port()
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="3")
    proc = subprocess.Popen([sys.executable, "-c", AUTH_SERVER, str(port)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        endpoint = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

        def client(service, key="AKIAUNAUTHENTICATED0", secret="unauthenticated"):
            return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                                aws_access_key_id=key, aws_secret_access_key=secret)

        iam = client("iam")
        iam.create_user(UserName="trainer")
        key = iam.create_access_key(UserName="trainer")["AccessKey"]
        iam.put_user_policy(UserName="trainer", PolicyName="s3", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
        s3 = client("s3", key["AccessKeyId"], key["SecretAccessKey"])
        s3.create_bucket(Bucket="auth-bucket")
        s3.put_object(Bucket="auth-bucket", Key="p/x.bin", Body=b"x" * 1000)
        yield endpoint, key["AccessKeyId"], key["SecretAccessKey"], "auth-bucket"
    finally:
        proc.stdin.close()
        proc.terminate()
        proc.wait(10)


# ---------------------------------------------------------------- every transport backend

@pytest.fixture(params=["s3", "s3-via-fsspec", "local", "memory"])
def stored(request, tmp_path, s3_client, bucket, s3):
    """(transport, refs, contents, kind) for each backend of the registry: the same three objects in each."""
    rng = np.random.default_rng(7)
    blobs = {"a": rng.bytes(10), "b dir/ü+1": rng.bytes(200 * KIB + 3), "e": b""}
    kind = request.param
    cfg = dict(part_size=64 * KIB, budget_bytes=512 * KIB, max_workers=4)
    if kind.startswith("s3"):
        refs = [put(s3_client, bucket, k, v) for k, v in blobs.items()]
        if kind == "s3-via-fsspec":
            cfg["s3_backend"] = "fsspec"
    elif kind == "local":
        refs = []
        for k, v in blobs.items():
            path = tmp_path / k
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(v)
            refs.append(ObjectRef(f"file://{path}" if k != "a" else str(path), len(v), None, k))
    else:
        import fsspec

        fs = fsspec.filesystem("memory")
        refs = []
        for k, v in blobs.items():
            fs.pipe_file(f"memory://transport-test/{k}", v)
            refs.append(ObjectRef(f"memory://transport-test/{k}", len(v), None, k))
        request.addfinalizer(lambda: fs.rm("memory://transport-test", recursive=True))
    return transport(s3, **cfg), refs, list(blobs.values()), kind
