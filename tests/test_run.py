"""`channels run`: the README's SageMaker script, unchanged, in every input mode.

Real moto server on loopback, real FIFOs, downloads, FUSE mounts and
subprocesses; the script is examples/train.py, run exactly as a user would.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import sys
import tarfile
from pathlib import Path

import pytest
from mounting import mode_param

from channels.run.runner import EXIT_OK, Outcome, RunOptions, run_job
from channels.spec import Job

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "train.py"
OUT_BUCKET = "model-bucket"
#: Keys with folders, and one sorting between "a/" and "a-" cases, as S3 lists them.
KEYS = ["a-1.bin", "a/x.bin", "a/y/z.bin", "b.bin", "c/deep/er/file.bin"]


def make_job(mode: str, bucket: str, *, name: str | None = None, epochs: int = 2, hosts: int = 1,
             runtime: int = 60, distribution: str = "FullyReplicated") -> Job:
    doc = {
        "TrainingInputMode": mode,
        "HyperParameters": {"epochs": str(epochs)},
        "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/train/",
            "S3DataDistributionType": distribution}}}],
        "OutputDataConfig": {"S3OutputPath": f"s3://{OUT_BUCKET}/jobs"},
        "ResourceConfig": {"InstanceCount": hosts, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": runtime},
    }
    if name:
        doc["TrainingJobName"] = name
    return Job.from_dict(doc)


@pytest.fixture
def dataset(s3_client, bucket) -> bytes:
    """Objects under train/; returns their bytes concatenated in key order."""
    s3_client.create_bucket(Bucket=OUT_BUCKET)
    blobs = {k: hashlib.sha256(k.encode()).digest() * (100 + 37 * i) for i, k in enumerate(KEYS)}
    for k, body in blobs.items():
        s3_client.put_object(Bucket=bucket, Key=f"train/{k}", Body=body)
    return b"".join(blobs[k] for k in sorted(KEYS))


def model_archive(s3_client, job_name: str) -> dict[str, bytes]:
    """The uploaded model.tar.gz's members and their bytes."""
    key = f"jobs/{job_name}/output/model.tar.gz"
    body = s3_client.get_object(Bucket=OUT_BUCKET, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


@pytest.mark.parametrize("mode", ["File", "Pipe", mode_param("FastFile")])
def test_example_script_sees_the_same_bytes_in_every_mode(mode, dataset, bucket, s3_client, tmp_path, capfd):
    job = make_job(mode, bucket, name=f"example-{mode.lower()}")
    result = run_job(RunOptions(job, (sys.executable, str(EXAMPLE)), root=tmp_path / "run", grace_seconds=5))
    out = capfd.readouterr().out
    assert result.exit_code == EXIT_OK, (result.message, out)
    assert result.outcome is Outcome.COMPLETED
    want = {"bytes": len(dataset), "sha256": hashlib.sha256(dataset).hexdigest()}
    model = json.loads(model_archive(s3_client, result.job_name)["model.json"])
    assert [{k: e[k] for k in want} for e in model["epochs"]] == [want, want]
    assert model["host"] == "algo-1" and not model["stopped"]
    shown = "File" if mode == "FastFile" else mode
    assert f"epoch 1: {shown} mode, {len(dataset)} bytes, sha256 {want['sha256']}" in out
    # The channel directory holds the objects and nothing else; nothing is left served.
    data = tmp_path / "run" / "input" / "data"
    assert not os.path.ismount(data / "train")
    assert sorted(p.name for p in data.iterdir() if p.name.startswith("train_")) == []
    if mode == "File":
        got = sorted(p.relative_to(data / "train").as_posix() for p in (data / "train").rglob("*") if p.is_file())
        assert got == sorted(KEYS)


def test_generated_job_name_and_archives(dataset, bucket, s3_client, tmp_path):
    job = make_job("File", bucket, epochs=1)
    script = "import os, pathlib; pathlib.Path(os.environ['SM_OUTPUT_DATA_DIR'], 'log.txt').write_text('hi')"
    result = run_job(RunOptions(job, (sys.executable, "-c", script), root=tmp_path / "r"))
    assert result.exit_code == 0, result.message
    assert re.fullmatch(r"channels-\d{8}-\d{6}-[0-9a-f]{4}", result.job_name)
    assert Job.from_dict({**job.to_dict(), "TrainingJobName": result.job_name})  # the API accepts it
    keys = {o["Key"] for o in s3_client.list_objects_v2(Bucket=OUT_BUCKET)["Contents"]}
    assert keys == {f"jobs/{result.job_name}/output/model.tar.gz", f"jobs/{result.job_name}/output/output.tar.gz"}
    assert model_archive(s3_client, result.job_name) == {}
    body = s3_client.get_object(Bucket=OUT_BUCKET, Key=f"jobs/{result.job_name}/output/output.tar.gz")["Body"]
    with tarfile.open(fileobj=io.BytesIO(body.read()), mode="r:gz") as tar:
        assert tar.extractfile("log.txt").read() == b"hi"


def test_default_root_and_environment(dataset, bucket, tmp_path):
    job = make_job("File", bucket, name="env-check", epochs=1)
    script = ("import json, os, pathlib; keys = [k for k in os.environ if k.startswith('SM_')] + "
              "['TRAINING_JOB_NAME']; pathlib.Path(os.environ['SM_MODEL_DIR'], 'env.json').write_text("
              "json.dumps({k: os.environ[k] for k in keys} | {'cwd': os.getcwd()}))")
    result = run_job(RunOptions(job, (sys.executable, "-c", script), cwd=tmp_path, upload=False))
    assert result.exit_code == 0, result.message
    root = tmp_path / ".channels-run" / "env-check"
    assert result.root == root and (root / ".channels" / "model.tar.gz").is_file()
    env = json.loads((root / "model" / "env.json").read_text())
    assert env["cwd"] == str(tmp_path)
    assert env["SM_CHANNEL_TRAIN"] == str(root / "input" / "data" / "train")
    assert env["SM_MODEL_DIR"] == str(root / "model") and env["TRAINING_JOB_NAME"] == "env-check"
    assert json.loads(env["SM_INPUT_DATA_CONFIG"])["train"]["TrainingInputMode"] == "File"
    assert json.loads(env["SM_HPS"]) == {"epochs": 1}
    # A second run with the same root starts from an empty model/ (the root is ours).
    result = run_job(RunOptions(job, (sys.executable, "-c", "pass"), cwd=tmp_path, upload=False))
    assert result.exit_code == 0 and not (root / "model" / "env.json").exists()


def test_upload_failure_is_reported_and_the_archive_kept(dataset, bucket, tmp_path):
    doc = make_job("File", bucket, name="no-upload", epochs=1).to_dict()
    doc["OutputDataConfig"] = {"S3OutputPath": "s3://no-such-output-bucket/jobs"}
    script = "import os, pathlib; pathlib.Path(os.environ['SM_MODEL_DIR'], 'w.bin').write_bytes(b'w')"
    result = run_job(RunOptions(Job.from_dict(doc), (sys.executable, "-c", script), root=tmp_path / "r"))
    assert result.exit_code == 2 and result.outcome is Outcome.FAILED
    assert "uploading to s3://no-such-output-bucket/jobs failed" in result.message
    assert result.model is not None and result.model.members == ("w.bin",) and result.model.path.is_file()
    assert "ClientError" in (tmp_path / "r" / "output" / "failure").read_text()


@pytest.mark.parametrize("mode", ["Pipe", mode_param("FastFile")])
def test_a_cache_keeps_each_hosts_objects_for_later_epochs(mode, dataset, bucket, s3_client, tmp_path):
    from channels.cache import CacheConfig

    job = make_job(mode, bucket, name=f"cached-{mode.lower()}")
    cache = CacheConfig(tmp_path / "cache", "16MiB")
    result = run_job(RunOptions(job, (sys.executable, str(EXAMPLE)), root=tmp_path / "run", grace_seconds=5,
                                cache=cache))
    assert result.exit_code == EXIT_OK, result.message
    want = {"bytes": len(dataset), "sha256": hashlib.sha256(dataset).hexdigest()}
    model = json.loads(model_archive(s3_client, result.job_name)["model.json"])
    assert [{k: e[k] for k in want} for e in model["epochs"]] == [want, want]
    # The host's own cache directory (each instance has its own disk) holds every object, whole.
    kept = [p for p in (tmp_path / "cache" / "algo-1" / "objects").rglob("*") if p.is_file()]
    assert sorted(p.stat().st_size for p in kept) == sorted(s3_client.head_object(
        Bucket=bucket, Key=f"train/{k}")["ContentLength"] for k in KEYS)
    assert list((tmp_path / "cache" / "algo-1" / "tmp").iterdir()) == []
