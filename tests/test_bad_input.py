"""Bad input, refused with an error that names it: each test is a row of docs/errors.md.

Real inputs throughout: job files on disk, objects in moto, FIFOs, mount
points and a second moto server that checks credentials. Each test asserts
the error class, the words of its message that tell the user what to fix, and
the object, field or path it names.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mounting import needs_fuse
from tmpfs import tmpfs

from channels.errors import AccessDeniedError as ListingAccessDenied
from channels.errors import (
    ManifestError,
    MountError,
    ObjectChangedError,
    RecordError,
    SourceNotFoundError,
    SpecError,
    UnsafeKeyError,
)
from channels.listing import list_augmented_manifest, list_manifest, list_prefix
from channels.modes.fastfile.view import FastFileView
from channels.modes.file.download import download
from channels.modes.pipe.fifo import FifoServer
from channels.modes.pipe.reader import PipeReader
from channels.records import encode_recordio, encode_tfrecord
from channels.spec import Job
from channels.store import Store
from channels.transport import AccessDeniedError, Transport, TransportConfig

JOBS = Path(__file__).parent / "data" / "jobs"
FAST = TransportConfig(retries=1, backoff_base=0.001, backoff_max=0.01)


def cli(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "channels", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def one_line_error(r: subprocess.CompletedProcess, command: str) -> str:
    """The CLI's error: exit 2, one line on stderr, no traceback."""
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith(f"channels {command}: error: "), r.stderr
    return r.stderr


# ---------------------------------------------------------------- job definitions

def test_malformed_job_json(tmp_path):
    path = tmp_path / "job.json"
    path.write_text('{"TrainingInputMode": "File",\n "InputDataConfig": [}\n')
    with pytest.raises(SpecError) as info:
        Job.load(path)
    assert f"{path}: malformed JSON at line 2, column 22" in str(info.value)
    assert info.value.details["line"] == 2 and info.value.details["column"] == 22
    assert "malformed JSON at line 2" in one_line_error(cli("validate", str(path)), "validate")


def test_channel_name_reused(tmp_path):
    job = json.loads((JOBS / "definition.json").read_text())
    job["InputDataConfig"][1]["ChannelName"] = "Train"  # differs from "train" only in case
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job))
    with pytest.raises(SpecError) as info:
        Job.load(path)
    fields = dict(info.value.problems)
    assert '"Train" differs only in case from "train"' in fields["InputDataConfig[1].ChannelName"]
    assert "channel names must be unique" in str(info.value)
    job["InputDataConfig"][1]["ChannelName"] = "train"
    path.write_text(json.dumps(job))
    with pytest.raises(SpecError, match=r'"train" is already the name of InputDataConfig\[0\]'):
        Job.load(path)


# ---------------------------------------------------------------- manifests

def test_manifest_that_is_not_json(s3, s3_client, bucket):
    s3_client.put_object(Bucket=bucket, Key="m.json", Body=b'[{"prefix": "s3://b/p/"}, "a", ')
    with pytest.raises(ManifestError) as info:
        list_manifest(f"s3://{bucket}/m.json")
    assert str(info.value) == f"manifest s3://{bucket}/m.json is not JSON: Expecting value at line 1 column 32"
    assert info.value.details["url"] == f"s3://{bucket}/m.json"


def test_manifest_entry_from_another_bucket(s3, s3_client, bucket):
    s3_client.create_bucket(Bucket="other")
    s3_client.put_object(Bucket="other", Key="p/x", Body=b"x")
    s3_client.put_object(Bucket=bucket, Key="p/a", Body=b"a")
    manifest = [{"prefix": f"s3://{bucket}/p/"}, "a", "s3://other/p/x"]
    s3_client.put_object(Bucket=bucket, Key="m.json", Body=json.dumps(manifest).encode())
    with pytest.raises(ManifestError) as info:
        list_manifest(f"s3://{bucket}/m.json")
    assert (f"entry [2] s3://other/p/x is outside the manifest's bucket '{bucket}'; every entry must "
            "live in the prefix's bucket") in str(info.value)
    assert info.value.details["entry"] == 2


def test_augmented_manifest_with_a_missing_ref_object(s3, s3_client, bucket):
    s3_client.put_object(Bucket=bucket, Key="img/1.jpg", Body=b"one")
    lines = [{"source-ref": f"s3://{bucket}/img/1.jpg", "class": 1},
             {"source-ref": f"s3://{bucket}/img/2.jpg", "class": 2}]
    s3_client.put_object(Bucket=bucket, Key="aug.jsonl", Body="\n".join(map(json.dumps, lines)).encode())
    with pytest.raises(SourceNotFoundError) as info:
        list_augmented_manifest(f"s3://{bucket}/aug.jsonl", ["source-ref", "class"])
    assert str(info.value) == f"s3://{bucket}/aug.jsonl: -ref object s3://{bucket}/img/2.jpg does not exist"
    assert info.value.details["url"] == f"s3://{bucket}/img/2.jpg"


# ---------------------------------------------------------------- corrupt records

def read_all(uri: str, **kwargs) -> list[bytes]:
    with PipeReader(uri, config=FAST, **kwargs) as reader:
        return list(reader.records())


def test_corrupt_recordio(s3, s3_client, bucket):
    good = encode_recordio(b"a" * 10) + encode_recordio(b"b" * 20)
    bad = bytearray(good)
    bad[20:24] = b"\0\0\0\0"  # the second record's magic word (8 + 10 + 2 bytes of padding in)
    s3_client.put_object(Bucket=bucket, Key="rio/x.rec", Body=bytes(bad))
    with pytest.raises(RecordError) as info:
        read_all(f"s3://{bucket}/rio/", framing="recordio")
    assert f"s3://{bucket}/rio/x.rec" in str(info.value) and "offset 20" in str(info.value)
    assert info.value.details["offset"] == 20


def test_corrupt_tfrecord(s3, s3_client, bucket):
    data = bytearray(encode_tfrecord(b"hello world 0") + encode_tfrecord(b"hello world 1"))
    data[-8] ^= 0xFF  # a byte of the second record's payload
    s3_client.put_object(Bucket=bucket, Key="tf/x.tfrecord", Body=bytes(data))
    with pytest.raises(RecordError) as info:
        read_all(f"s3://{bucket}/tf/", framing="tfrecord")
    message = str(info.value)
    assert f"TFRecord data CRC mismatch in s3://{bucket}/tf/x.tfrecord for the record at offset 29" in message
    assert info.value.details["offset"] == 29


def test_corrupt_gzip(s3, s3_client, bucket):
    data = bytearray(gzip.compress(b"line\n" * 10_000))
    data[len(data) // 2] ^= 0xFF
    s3_client.put_object(Bucket=bucket, Key="gz/x.gz", Body=bytes(data))
    s3_client.put_object(Bucket=bucket, Key="gz/y.gz", Body=b"not gzip at all")
    with pytest.raises(RecordError) as info:
        read_all(f"s3://{bucket}/gz/x.gz", compression="Gzip", framing="lines")
    assert f"s3://{bucket}/gz/x.gz" in str(info.value) and "gzip" in str(info.value).lower()
    with pytest.raises(RecordError) as info:
        read_all(f"s3://{bucket}/gz/y.gz", compression="Gzip")
    assert f"s3://{bucket}/gz/y.gz" in str(info.value) and "gzip" in str(info.value).lower()


# ---------------------------------------------------------------- objects that change under us

@pytest.mark.parametrize("mode", ["pipe", "file", "fastfile"])
def test_object_that_vanishes_between_listing_and_reading(s3, s3_client, bucket, tmp_path, mode):
    for name in ("a", "b"):
        s3_client.put_object(Bucket=bucket, Key=f"v/{name}.bin", Body=name.encode() * 1000)
    uri, gone = f"s3://{bucket}/v/", f"s3://{bucket}/v/b.bin"
    with contextlib.ExitStack() as stack, pytest.raises(SourceNotFoundError) as info:
        if mode == "pipe":
            reader = stack.enter_context(PipeReader(uri, config=FAST))
            reader.listing  # noqa: B018 - listed now, read after the delete
        elif mode == "fastfile":
            view = stack.enter_context(FastFileView(uri, transport=stack.enter_context(Transport(config=FAST))))
            view.load()
        else:
            listing = list_prefix(uri)
        s3_client.delete_object(Bucket=bucket, Key="v/b.bin")
        if mode == "pipe":
            list(reader.records())
        elif mode == "fastfile":
            with view.open("b.bin") as f:
                f.read()
        else:
            download(listing, tmp_path / "dest", config=FAST, progress=False)
    assert str(info.value).startswith(f"{gone} does not exist (HTTP 404 NoSuchKey")
    assert info.value.details["url"] == gone
    if mode == "file":
        assert (tmp_path / "dest" / "a.bin").exists() and not (tmp_path / "dest" / "b.bin").exists()


def test_object_that_shrinks_between_listing_and_reading(s3, s3_client, bucket):
    s3_client.put_object(Bucket=bucket, Key="s/x.bin", Body=b"x" * 5000)
    listing = list_prefix(f"s3://{bucket}/s/")
    s3_client.put_object(Bucket=bucket, Key="s/x.bin", Body=b"y" * 100)
    with pytest.raises(ObjectChangedError) as info, Transport(config=FAST) as t:
        list(t.stream(listing.refs))
    assert f"s3://{bucket}/s/x.bin changed since it was listed" in str(info.value)


# ---------------------------------------------------------------- where bytes land

def test_keys_that_would_escape_the_download_directory(s3, s3_client, bucket, tmp_path):
    for key in ("p/ok.bin", "p/a/../../../escaped", "p//etc/passwd"):
        s3_client.put_object(Bucket=bucket, Key=key, Body=b"x")
    dest = tmp_path / "box" / "dest"
    with pytest.raises(UnsafeKeyError) as info:
        download(f"s3://{bucket}/p/", dest, progress=False)
    message = str(info.value)
    assert "2 object key(s) in s3://test-bucket/p/ cannot be written below the destination directory" in message
    assert "'a/../../../escaped' ('..' segment)" in message and "'/etc/passwd' (absolute" in message
    assert "Nothing was downloaded" in message
    assert sorted(k for k, _ in info.value.details["keys"]) == ["/etc/passwd", "a/../../../escaped"]
    assert not (tmp_path / "escaped").exists() and not dest.exists()
    assert "('..' segment)" in one_line_error(cli("download", f"s3://{bucket}/p/", str(dest), "-q"), "download")
    assert list(tmp_path.rglob("*")) == []  # not even DEST was made


@pytest.mark.fuse
@needs_fuse
@pytest.mark.parametrize("case", ["missing", "not-empty"])
def test_mount_point_that_does_not_exist_or_is_not_empty(s3, s3_client, bucket, tmp_path, case):
    from channels.modes.fastfile.mount import mount

    s3_client.put_object(Bucket=bucket, Key="m/x", Body=b"x")
    target = tmp_path / "mnt"
    if case == "not-empty":
        target.mkdir()
        (target / "keep.txt").write_text("mine")
    with pytest.raises(MountError) as info, FastFileView(f"s3://{bucket}/m/") as view:
        mount(view, str(target))
    want = "does not exist: create it" if case == "missing" else "is not empty: mount on an empty directory"
    assert f"mount point {target} {want}" in str(info.value)
    assert info.value.details["mountpoint"] == str(target)
    r = cli("mount", f"s3://{bucket}/m/", str(target), "--foreground")
    assert want in one_line_error(r, "mount")
    assert (target / "keep.txt").read_text() == "mine" if case == "not-empty" else not target.exists()


# ---------------------------------------------------------------- FIFOs that cannot be made

def pipe_server(uri: str, root: Path) -> FifoServer:
    return FifoServer({"train": PipeReader(uri, framing="raw", config=FAST)}, root, epochs=1)


def test_fifo_directory_under_a_regular_file(s3, s3_client, bucket, tmp_path):
    """ENOTDIR: the FIFO directory would be below a file (root ignores permission bits,
    so a path that cannot be a directory is what any user, root included, gets refused)."""
    s3_client.put_object(Bucket=bucket, Key="p/x", Body=b"x")
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(NotADirectoryError) as info:
        pipe_server(f"s3://{bucket}/p/", tmp_path / "file" / "ml").serve()
    assert info.value.filename == str(tmp_path / "file" / "ml")  # the first folder that cannot be made
    assert (tmp_path / "file").read_text() == "not a directory"
    job = json.loads((JOBS / "definition.json").read_text())
    job["InputDataConfig"] = [{"ChannelName": "train", "DataSource": {"S3DataSource": {
        "S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/p/"}}}]
    (tmp_path / "job.json").write_text(json.dumps(job))
    r = cli("pipe", str(tmp_path / "job.json"), "--root", str(tmp_path / "file" / "ml"), "--epochs", "1")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    # The CLI first declares its channels in input/config/inputdataconfig.json (PipeModeDataset reads it).
    assert r.stderr.splitlines()[-1] == (f"channels pipe: error: cannot write {tmp_path}/file/ml/input/config/"
                                         f"inputdataconfig.json: [Errno 20] Not a directory: '{tmp_path}/file/ml'")
    assert (tmp_path / "file").read_text() == "not a directory"


def test_fifo_directory_on_a_read_only_filesystem(s3, s3_client, bucket, tmp_path):
    """EROFS: the FIFO directory is on a read-only mount (refused for root too)."""
    s3_client.put_object(Bucket=bucket, Key="p/x", Body=b"x")
    data = tmp_path / "ml" / "input" / "data"
    with tmpfs(data, "ro,size=64k"):
        with pytest.raises(OSError) as info:
            pipe_server(f"s3://{bucket}/p/", tmp_path / "ml").serve()
        assert str(info.value) == f"[Errno 30] cannot create the FIFO: Read-only file system: '{data / 'train_0'}'"
        assert info.value.filename == str(data / "train_0")
        assert os.listdir(data) == []


def test_fifo_directory_that_is_immutable(s3, s3_client, bucket, tmp_path):
    """EPERM: ``chattr +i`` on the FIFO directory (root cannot add entries either)."""
    s3_client.put_object(Bucket=bucket, Key="p/x", Body=b"x")
    data = tmp_path / "ml" / "input" / "data"
    data.mkdir(parents=True)
    r = subprocess.run(["chattr", "+i", str(data)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"chattr +i is not supported here: {r.stderr.strip()}")
    try:
        with pytest.raises(PermissionError) as info:
            pipe_server(f"s3://{bucket}/p/", tmp_path / "ml").serve()
        assert str(info.value) == f"[Errno 1] cannot create the FIFO: Operation not permitted: '{data / 'train_0'}'"
        assert info.value.filename == str(data / "train_0")
    finally:
        subprocess.run(["chattr", "-i", str(data)], check=False)


# ---------------------------------------------------------------- credentials

def test_right_credentials_pass_the_signature_check(auth_s3):
    """The control: moto checks signatures, and ours (channels.http + channels.sigv4) pass."""
    endpoint, key, secret, bucket = auth_s3
    store = Store(endpoint, (("key", key), ("secret", secret)))
    listing = list_prefix(f"s3://{bucket}/p/", store=store)
    with Transport(store, FAST) as t:
        assert bytes(t.read_range(listing.refs[0], 0, 1000)) == b"x" * 1000


@pytest.mark.parametrize("case", ["unknown-key", "wrong-secret"])
def test_wrong_credentials(auth_s3, case):
    endpoint, key, secret, bucket = auth_s3
    if case == "unknown-key":
        key, code = "AKIAWRONGWRONGWRONG0", "InvalidAccessKeyId"
    else:
        secret, code = "wrong-" + secret, "SignatureDoesNotMatch"
    store = Store(endpoint, (("key", key), ("secret", secret)))
    url = f"s3://{bucket}/p/x.bin"
    # Reading bytes (every mode reads through the transport):
    with Transport(store, FAST) as t, pytest.raises(AccessDeniedError) as info:
        t.read_range(url, 0, 10)
    message = str(info.value)
    assert message.startswith(f"access denied reading {url} (HTTP 403 {code}")
    assert "check the credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY" in message
    assert info.value.details["code"] == code and t.stats.retries == 0  # not retried
    assert secret not in message and key not in message
    # Listing a channel, reading a manifest (s3fs):
    with pytest.raises(ListingAccessDenied) as info:
        list_prefix(f"s3://{bucket}/p/", store=store)
    assert str(info.value) == (f"access denied listing s3://{bucket}/p/: check the credentials and the "
                               "bucket policy")
    with pytest.raises(ListingAccessDenied) as info:
        list_manifest(f"s3://{bucket}/m.json", store=store)
    assert str(info.value) == (f"access denied reading manifest s3://{bucket}/m.json: check the credentials "
                               "and the bucket policy")
    assert isinstance(info.value, PermissionError) and info.value.details["url"] == f"s3://{bucket}/m.json"


# ---------------------------------------------------------------- the table itself

def test_every_row_of_the_errors_table_names_a_test_that_exists():
    """docs/errors.md: each row's last column names tests that are defined where it says."""
    import re

    table = (Path(__file__).parent.parent / "docs" / "errors.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| Input")]
    assert len(rows) >= 19
    for row in rows:
        cell = row.rstrip(" |").rsplit("|", 1)[1]
        named = re.findall(r"`(?:(tests/\w+\.py)::)?(test_\w+)(?:\[[^\]]*\])?`", cell)
        assert named, f"no test named in: {row}"
        for path, name in named:
            source = (Path(__file__).parent.parent / (path or "tests/test_bad_input.py")).read_text()
            assert f"def {name}(" in source, f"{path or 'tests/test_bad_input.py'} has no {name}"
