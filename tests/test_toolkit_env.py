"""SM_* as the SageMaker training toolkit gives them: our environment against its own, both ways.

The oracle is sagemaker-training itself (the test extra): its
``Environment().to_env_vars()``, run in a subprocess whose environment is the
one ``channels run`` gives a host (so ``SAGEMAKER_BASE_DIR`` points it at the
host's tree and nothing lands in ``~/sagemaker_local``), and its
``mapping`` functions in process (they import nothing else of it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from channels.container import Layout, write_config
from channels.run.environment import Machine, env_value, to_cmd_args, training_environment, training_job_arn
from channels.spec import Job

mapping = pytest.importorskip("sagemaker_training.mapping",
                              reason="sagemaker-training (the test extra) is AWS's reader of the contract")

#: Hyperparameters that tell the toolkit's rules apart: typed values, a null, a
#: hyphen, one letter, a mapping, and the SDK's sagemaker_* names.
TRICKY = {
    "epochs": "10", "lr": "0.001", "drop-out": "0.5", "nothing": "null", "flag": "true", "name": "resnet",
    "layers": "[64, 128]", "opts": '{"b": 2, "a": "x"}', "x": "1", "quoted": '"text"', "mp_parameters": "{}",
    "sagemaker_program": '"train.py"', "sagemaker_submit_directory": '"/src/code"',
    "sagemaker_container_log_level": "10", "sagemaker_pytorch_ddp_enabled": "true",
    "_tuning_objective_metric": "loss",
}

# Run inside the host's environment: the toolkit reads the files we wrote.
PROBE = """
import json, os
from sagemaker_training import environment
env = environment.Environment()
print(json.dumps({"vars": env.to_env_vars(), "args": env.to_cmd_args()}))
"""


def job_with(hyperparameters: dict[str, str], instance_type: str | None = "ml.p3.8xlarge") -> Job:
    def ch(name: str, mode: str) -> dict:
        return {"ChannelName": name, "InputMode": mode, "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": f"s3://b/{name}/"}}}

    resource = {"InstanceCount": 2, "VolumeSizeInGB": 5}
    if instance_type:
        resource["InstanceType"] = instance_type
    return Job.from_dict({
        "TrainingJobName": "toolkit-env", "TrainingInputMode": "File", "HyperParameters": hyperparameters,
        "InputDataConfig": [ch("train", "Pipe"), ch("val-data", "File"), ch("images", "FastFile")],
        "OutputDataConfig": {"S3OutputPath": "s3://b/out/"}, "ResourceConfig": resource,
        "StoppingCondition": {"MaxRuntimeInSeconds": 60},
    })


@pytest.fixture
def gpus_on_path(tmp_path) -> str:
    """A PATH whose nvidia-smi lists two GPUs, so that the count has something to agree on."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "nvidia-smi"
    tool.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H100 (UUID: GPU-a)'\necho 'GPU 1: NVIDIA H100 (UUID: GPU-b)'\n")
    tool.chmod(0o755)
    return f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"


def toolkit_view(env: dict[str, str]) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("hps, instance_type", [(TRICKY, "ml.p3.8xlarge"), ({"epochs": "3"}, None), ({}, None)])
def test_every_sm_variable_equals_the_toolkits_both_ways(hps, instance_type, tmp_path, gpus_on_path):
    job = job_with(hps, instance_type)
    layout = Layout(tmp_path / "algo-2")
    write_config(job, layout, 1, 2)
    base = {k: v for k, v in os.environ.items() if not k.startswith("SM_")} | {"PATH": gpus_on_path}
    env = training_environment(job, layout, 1, 2, job_name="toolkit-env", base=base,
                               machine=Machine.probe({"PATH": gpus_on_path}))
    ours = {k: v for k, v in env.items() if k.startswith("SM_")}
    theirs = toolkit_view(env)["vars"]
    assert sorted(set(ours) - set(theirs)) == [] and sorted(set(theirs) - set(ours)) == []
    assert {k: v for k, v in ours.items() if theirs[k] != v} == {}
    assert ours["SM_NUM_GPUS"] == "2"
    if hps is TRICKY:  # the cases the issue names, as the toolkit gives them
        assert ours["SM_HP_DROP-OUT"] == "0.5" and ours["SM_CHANNEL_VAL-DATA"].endswith("input/data/val-data")
        assert ours["SM_HP_NOTHING"] == "" and ours["SM_HP_OPTS"] == '{"a":"x","b":2}'
        assert "sagemaker_program" not in json.loads(ours["SM_HPS"]) and "SM_HP_SAGEMAKER_PROGRAM" not in ours
        assert json.loads(ours["SM_FRAMEWORK_PARAMS"]) == {"sagemaker_pytorch_ddp_enabled": True}
        assert (ours["SM_USER_ENTRY_POINT"], ours["SM_MODULE_NAME"], ours["SM_LOG_LEVEL"]) == ("train.py", "train", "10")
        assert json.loads(ours["SM_DISTRIBUTION_INSTANCE_GROUPS"]) == ["homogeneousCluster"]


def test_user_args_equal_the_toolkits(tmp_path):
    job = job_with(TRICKY)
    layout = Layout(tmp_path)
    write_config(job, layout, 0, 2)
    env = training_environment(job, layout, 0, 2, job_name="toolkit-env", machine=Machine(cpus=1),
                               base={k: v for k, v in os.environ.items() if not k.startswith("SM_")})
    assert json.loads(env["SM_USER_ARGS"]) == toolkit_view(env)["args"]
    assert json.loads(env["SM_USER_ARGS"])[:4] == ["--drop-out", "0.5", "--epochs", "10"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8)


@settings(max_examples=200, deadline=None)
@given(values=st.dictionaries(st.text(min_size=1, max_size=6), json_values, max_size=6))
def test_values_and_arguments_match_the_toolkits_mapping(values):
    for value in values.values():
        assert env_value(value) == mapping.to_env_vars({"k": value})["SM_K"]
    assert to_cmd_args(values) == mapping.to_cmd_args(values)


def test_a_job_name_in_the_arn_is_lower_case():
    assert training_job_arn("Big-Job-7", "us-west-2") == \
        "arn:aws:sagemaker:us-west-2:000000000000:training-job/big-job-7"
