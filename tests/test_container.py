"""The container layout: config files and SM_* environment, checked field by field.

The SM_* values are compared with the SageMaker training toolkit's own
reading of the same files in tests/test_toolkit_env.py and tests/test_run_toolkit.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from channels.container import (
    Layout, container_mode, env_name, input_data_config, merge_input_data_config, read_failure, resource_config,
    write_config, write_failure,
)
from channels.errors import ShardingError
from channels.hosts import host_identity
from channels.run.environment import Machine, training_environment
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


def test_resource_config_hosts_in_order_in_one_instance_group():
    doc = resource_config(2, 12, "ml.m5.xlarge")
    names = [f"algo-{i}" for i in range(1, 13)]  # algo-2 before algo-10
    assert doc == {"current_host": "algo-3", "current_instance_type": "ml.m5.xlarge",
                   "current_group_name": "homogeneousCluster", "hosts": names,
                   "instance_groups": [{"instance_group_name": "homogeneousCluster",
                                        "instance_type": "ml.m5.xlarge", "hosts": names}],
                   "network_interface_name": "eth0"}
    assert resource_config(0, 1)["instance_groups"][0]["instance_type"] == "local"  # the toolkit's word
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
    base = {"PATH": "/usr/bin", "SM_OWN": "x", "SM_CHANNEL_OLD": "/old", "SM_HP_OLD": "1", "SM_HOSTS": "[]",
            "AWS_REGION": "eu-west-1"}
    env = training_environment(job, layout, 0, 2, job_name="My-Job", base=base, machine=Machine(cpus=3))
    # The caller's own SM_* pass through; another job's channels and hyperparameters do not.
    assert env["PATH"] == "/usr/bin" and env["SM_OWN"] == "x"
    assert "SM_CHANNEL_OLD" not in env and "SM_HP_OLD" not in env and env["SM_HOSTS"] == '["algo-1","algo-2"]'
    assert env["SAGEMAKER_BASE_DIR"] == str(tmp_path)
    assert env["TRAINING_JOB_ARN"] == "arn:aws:sagemaker:eu-west-1:000000000000:training-job/my-job"
    assert (env["SM_NUM_CPUS"], env["SM_NUM_GPUS"]) == ("3", "0")
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
    assert env["TRAINING_JOB_NAME"] == "My-Job"
    assert env["SM_USER_ARGS"] == '["--batch_size","256","--epochs","10","--learning_rate","0.001"]'
    assert json.loads(env["SM_TRAINING_ENV"])["hosts"] == ["algo-1", "algo-2"]
    # The SM_RESOURCE_CONFIG text is enough for the host identity.
    assert host_identity(environ=env) == (0, 2, "algo-1")


def test_env_name_is_the_toolkits_upper_case_only():
    assert env_name("train") == "TRAIN"
    assert env_name("my-data.v2") == "MY-DATA.V2"  # SM_CHANNEL_MY-DATA.V2, as the toolkit names it


def test_merge_input_data_config_keeps_other_channels(tmp_path, job):
    layout = Layout(tmp_path)
    assert merge_input_data_config(job, layout)
    assert json.loads(layout.input_data_config_path.read_text()) == input_data_config(job)
    assert not merge_input_data_config(job, layout)  # the same: not rewritten
    layout.input_data_config_path.write_text('{"other": {"TrainingInputMode": "File"}}')
    assert merge_input_data_config(job, layout)
    assert json.loads(layout.input_data_config_path.read_text()) == {
        "other": {"TrainingInputMode": "File"}, **input_data_config(job)}
    layout.input_data_config_path.write_text("[1]")
    with pytest.raises(ValueError, match="not a JSON object"):
        merge_input_data_config(job, layout)


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
