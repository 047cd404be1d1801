"""The container layout: config files and SM_* environment, checked field by field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from channels.container import (
    Layout, container_mode, env_name, environment, input_data_config, read_failure, resource_config,
    write_config, write_failure,
)
from channels.errors import ShardingError
from channels.hosts import host_identity
from channels.spec import Job

JOBS = Path(__file__).parent / "data" / "jobs"


@pytest.fixture
def job() -> Job:
    return Job.load(JOBS / "definition.json")


def test_input_data_config_fields(job):
    doc = input_data_config(job)
    assert list(doc) == ["train", "validation", "images", "labels"]
    assert doc["train"] == {"ContentType": "application/x-recordio", "TrainingInputMode": "Pipe",
                            "S3DistributionType": "ShardedByS3Key", "RecordWrapperType": "RecordIO"}
    assert doc["validation"]["TrainingInputMode"] == "File"
    assert doc["validation"]["S3DistributionType"] == "FullyReplicated"
    # FastFile looks like File to the script; no ContentType key when the channel has none.
    assert doc["images"] == {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated",
                             "RecordWrapperType": "None"}
    assert all("S3DataDistributionType" not in v for v in doc.values())


def test_container_mode():
    assert [container_mode(m) for m in ("Pipe", "File", "FastFile")] == ["Pipe", "File", "File"]


def test_resource_config_hosts_in_order():
    doc = resource_config(2, 12, "ml.m5.xlarge")
    assert doc["current_host"] == "algo-3"
    assert doc["hosts"] == [f"algo-{i}" for i in range(1, 13)]  # algo-2 before algo-10
    assert doc["network_interface_name"] == "eth0"
    assert doc["current_instance_type"] == "ml.m5.xlarge"
    with pytest.raises(ShardingError, match="out of range"):
        resource_config(4, 4)


def test_write_config_files(tmp_path, job):
    layout = Layout(tmp_path)
    write_config(job, layout, 1, 4)
    cfg = tmp_path / "input" / "config"
    assert json.loads((cfg / "inputdataconfig.json").read_text()) == input_data_config(job)
    res = json.loads((cfg / "resourceconfig.json").read_text())
    assert res["current_host"] == "algo-2" and res["hosts"] == ["algo-1", "algo-2", "algo-3", "algo-4"]
    hps = json.loads((cfg / "hyperparameters.json").read_text())
    assert hps == {"epochs": "10", "learning_rate": "0.001", "batch_size": "256"}
    assert all(isinstance(v, str) for v in hps.values())
    for d in ("model", "output/data", "input/data"):
        assert (tmp_path / d).is_dir()
    # The host identity library users read agrees with what was written.
    assert host_identity(environ={"SM_RESOURCE_CONFIG": str(cfg / "resourceconfig.json")}) == (1, 4, "algo-2")


def test_environment(tmp_path, job):
    layout = Layout(tmp_path)
    base = {"PATH": "/usr/bin", "SM_STALE": "x", "SM_CHANNEL_OLD": "/old"}
    env = environment(job, layout, 0, 2, job_name="my-job", base=base)
    assert env["PATH"] == "/usr/bin" and "SM_STALE" not in env and "SM_CHANNEL_OLD" not in env
    assert json.loads(env["SM_CHANNELS"]) == ["images", "labels", "train", "validation"]
    assert env["SM_CHANNEL_TRAIN"] == str(tmp_path / "input" / "data" / "train")
    assert env["SM_CHANNEL_VALIDATION"] == str(tmp_path / "input" / "data" / "validation")
    assert json.loads(env["SM_HOSTS"]) == ["algo-1", "algo-2"] and env["SM_CURRENT_HOST"] == "algo-1"
    assert json.loads(env["SM_INPUT_DATA_CONFIG"]) == input_data_config(job)
    assert json.loads(env["SM_RESOURCE_CONFIG"]) == resource_config(0, 2, "ml.p4d.24xlarge")
    assert json.loads(env["SM_HPS"]) == {"epochs": 10, "learning_rate": 0.001, "batch_size": 256}
    assert env["SM_HP_EPOCHS"] == "10" and env["SM_HP_LEARNING_RATE"] == "0.001"
    assert env["SM_MODEL_DIR"] == str(tmp_path / "model")
    assert env["SM_OUTPUT_DATA_DIR"] == str(tmp_path / "output" / "data")
    assert env["SM_INPUT_DIR"] == str(tmp_path / "input")
    assert env["SM_INPUT_CONFIG_DIR"] == str(tmp_path / "input" / "config")
    assert env["TRAINING_JOB_NAME"] == "my-job"
    # The SM_RESOURCE_CONFIG text is enough for the host identity.
    assert host_identity(environ=env) == (0, 2, "algo-1")


def test_env_name():
    assert env_name("train") == "TRAIN"
    assert env_name("my-data.v2") == "MY_DATA_V2"


def test_failure_file_keeps_the_scripts_own(tmp_path):
    layout = Layout(tmp_path)
    assert read_failure(layout) is None
    layout.failure_path.parent.mkdir(parents=True)
    layout.failure_path.write_text("CUDA out of memory\n")
    assert not write_failure(layout, "exited with status 1")
    assert read_failure(layout) == "CUDA out of memory"
    layout.failure_path.unlink()
    assert write_failure(layout, "x" * 3000)
    assert read_failure(layout) == "x" * 1024  # SageMaker's FailureReason: the first 1024 chars
