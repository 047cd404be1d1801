"""``channels download`` as real processes: hosts at once, SIGTERM, space, a job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from channels.modes.file.keys import TMP_MARK
from channels.modes.file.download import download
from channels.store import Store
from channels.testing import KIB, MIB, Dataset, fill_bucket, lognormal_sizes, object_bytes, uniform_sizes


def channels_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "channels", "download", *args]


def env_for(s3, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SM_HOSTS", "SM_CURRENT_HOST", "SM_RESOURCE_CONFIG")}
    return {**env, "AWS_ENDPOINT_URL": s3.endpoint_url, **extra}


def data_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and not p.name.startswith(".channels-download")}


def journal_keys(path: Path) -> list[str]:
    return [json.loads(line)["k"] for line in path.read_text().splitlines()]


@pytest.mark.parametrize("strategy", ["sharded-by-s3-key", "size-balanced"])
def test_host_processes_at_once_make_the_dataset_each_object_once(s3, s3_client, strategy, tmp_path):
    ds = Dataset("ln", lognormal_sizes(60, median=16 * KIB, sigma=1.5, seed=3, max_size=MIB), prefix="data/")
    fill_bucket(s3_client, "hosts", ds)
    expected = {k[len("data/"):]: object_bytes(k, int(n)) for k, n in zip(ds.keys(), ds.sizes)}
    dest = tmp_path / "dest"
    n = 4
    procs = [subprocess.Popen(channels_cmd("s3://hosts/data/", str(dest), "--hosts", str(n), "--host-index", str(i),
                                           "--strategy", strategy, "--part-size-mib", "1"),
                              env=env_for(s3), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(n)]
    outputs = [p.communicate(timeout=60) for p in procs]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, err
        assert "objects to fetch" in out and "downloaded" in out
    assert data_files(dest) == expected  # exactly the dataset, byte-identical
    per_host = [journal_keys(dest / f".channels-download.algo-{i + 1}.jsonl") for i in range(n)]
    every = [k for keys in per_host for k in keys]
    assert sorted(every) == sorted(expected)  # each object fetched by exactly one host
    assert all(per_host)
    assert "this host (algo-2, index 1)" in outputs[1][0]


def test_sigterm_midway_keeps_complete_files_and_the_rerun_fetches_the_rest(s3, s3_client, tmp_path):
    ds = Dataset("big", uniform_sizes(40, 4 * MIB), prefix="data/")
    fill_bucket(s3_client, "sigterm", ds)
    expected = {k[len("data/"):]: object_bytes(k, 4 * MIB) for k in ds.keys()}
    dest = tmp_path / "dest"
    # One GET of 1 MiB at a time: slow enough to be caught midway.
    proc = subprocess.Popen(channels_cmd("s3://sigterm/data/", str(dest), "--max-workers", "1",
                                         "--part-size-mib", "1"),
                            env=env_for(s3), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(dest.glob("*.bin"))) < 2:
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    out, err = proc.communicate(timeout=30)
    assert time.monotonic() - sent < 5, "did not stop within seconds"
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "stopped by SIGTERM" in err and "completed and kept" in out

    kept = data_files(dest)
    assert 2 <= len(kept) < len(expected), "the download was not stopped midway"
    assert all(expected[k] == v for k, v in kept.items())  # no final name holds other bytes
    assert not list(dest.rglob(f"*{TMP_MARK}*"))

    result = download("s3://sigterm/data/", dest, store=Store(s3.endpoint_url))
    assert result.skipped == len(kept) and result.objects == len(expected) - len(kept)
    assert result.bytes == (len(expected) - len(kept)) * 4 * MIB
    assert data_files(dest) == expected


def test_volume_too_small_is_a_clear_error_before_any_download(s3, s3_client, tmp_path):
    fill_bucket(s3_client, "space", Dataset("s", uniform_sizes(8, 256 * KIB), prefix="data/"))
    dest = tmp_path / "dest"
    out = subprocess.run(channels_cmd("s3://space/data/", str(dest), "--volume-size-gb", "0.0001"),
                         env=env_for(s3), capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "channels download: error: this host's share is 2.0 MiB (2097152 bytes)" in out.stderr
    assert "more than VolumeSizeInGB 0.0001" in out.stderr and "Traceback" not in out.stderr
    assert not dest.exists()


def test_unsafe_keys_are_refused_by_the_command(s3, s3_client, bucket, tmp_path):
    s3_client.put_object(Bucket=bucket, Key="p/a/../../x", Body=b"up")
    s3_client.put_object(Bucket=bucket, Key="p/fine", Body=b"ok")
    dest = tmp_path / "dest"
    out = subprocess.run(channels_cmd(f"s3://{bucket}/p/", str(dest)), env=env_for(s3), capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2 and "'a/../../x' ('..' segment)" in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_host_identity_from_sm_hosts_and_resourceconfig(s3, s3_client, tmp_path):
    fill_bucket(s3_client, "ident", Dataset("i", uniform_sizes(6, 1000), prefix="data/"))
    dest = tmp_path / "a"
    env = env_for(s3, SM_HOSTS='["algo-1", "algo-2", "algo-3"]', SM_CURRENT_HOST="algo-3")
    out = subprocess.run(channels_cmd("s3://ident/data/", str(dest)), env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert sorted(data_files(dest)) == ["part-00004.bin", "part-00005.bin"]
    config = tmp_path / "resourceconfig.json"
    config.write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1", "algo-2"]}))
    dest = tmp_path / "b"
    out = subprocess.run(channels_cmd("s3://ident/data/", str(dest)),
                         env=env_for(s3, SM_RESOURCE_CONFIG=str(config)), capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert sorted(data_files(dest)) == ["part-00000.bin", "part-00001.bin", "part-00002.bin"]


def test_job_downloads_every_file_channel_under_root(s3, s3_client, tmp_path):
    fill_bucket(s3_client, "job", Dataset("t", uniform_sizes(5, 3000), prefix="train/"))
    fill_bucket(s3_client, "job", Dataset("v", uniform_sizes(3, 2000), prefix="val/"), create=False)
    fill_bucket(s3_client, "job", Dataset("f", uniform_sizes(2, 1000), prefix="fast/"), create=False)

    def channel(name: str, prefix: str, **extra) -> dict:
        return {"ChannelName": name, "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": f"s3://job/{prefix}/",
            "S3DataDistributionType": extra.pop("distribution", "FullyReplicated")}}, **extra}

    job = {"TrainingInputMode": "File",
           "InputDataConfig": [channel("train", "train", distribution="ShardedByS3Key"),
                               channel("validation", "val"),
                               channel("images", "fast", InputMode="FastFile")],
           "OutputDataConfig": {"S3OutputPath": "s3://job/out/"},
           "ResourceConfig": {"InstanceCount": 2, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1},
           "StoppingCondition": {"MaxRuntimeInSeconds": 3600}}
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job))
    root = tmp_path / "opt_ml"
    out = subprocess.run(channels_cmd(str(path), "--root", str(root), "--hosts", "2", "--host-index", "1"),
                         env=env_for(s3), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    data = root / "input" / "data"
    assert sorted(p.name for p in data.iterdir()) == ["train", "validation"]  # FastFile is not File
    assert sorted(data_files(data / "train")) == ["part-00003.bin", "part-00004.bin"]  # ShardedByS3Key
    assert len(data_files(data / "validation")) == 3  # FullyReplicated
    assert "[train] 2 of 2 objects to fetch" in out.stdout

    out = subprocess.run(channels_cmd(str(path)), env=env_for(s3), capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "give --root DIR" in out.stderr
    root = tmp_path / "single"
    out = subprocess.run(channels_cmd(str(path), "--root", str(root)), env=env_for(s3), capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and "warning: the job has InstanceCount 2" in out.stdout
    assert len(data_files(root / "input" / "data" / "train")) == 5


def test_nothing_made_is_group_or_world_writable_even_with_umask_000(s3, s3_client, tmp_path):
    fill_bucket(s3_client, "umask", Dataset("u", uniform_sizes(4, 2 * MIB), prefix="data/a/b/"))
    root = tmp_path / "new" / "root"
    out = subprocess.run(channels_cmd("s3://umask/data/", str(root / "dest"), "-q"), env=env_for(s3),
                         capture_output=True, text=True, timeout=60, preexec_fn=lambda: os.umask(0))
    assert out.returncode == 0, out.stderr
    made = [tmp_path / "new", *sorted((tmp_path / "new").rglob("*"))]
    modes = {str(p.relative_to(tmp_path)): oct(p.stat().st_mode & 0o777) for p in made}
    assert len(modes) == 1 + 1 + 1 + 2 + 4 + 1  # new, root, dest, a, a/b, 4 files, the journal
    assert {m for m in modes.values()} == {"0o755", "0o644"}, modes
