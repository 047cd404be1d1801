"""process_identity: SageMaker's files and variables, torchrun's, or both, give one answer."""

from __future__ import annotations

import json

import pytest

from channels.container import Layout, resource_config, write_config
from channels.errors import ShardingError
from channels.hosts import Identity, process_identity
from channels.spec import Job


def sm(index: int, hosts: int) -> dict[str, str]:
    return {"SM_RESOURCE_CONFIG": json.dumps(resource_config(index, hosts))}


def torchrun(rank: int, world: int, local_rank: int, local_world: int, **more: str) -> dict[str, str]:
    return {"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(local_rank),
            "LOCAL_WORLD_SIZE": str(local_world), **more}


def test_default_is_one_host(tmp_path):
    ident = process_identity(environ={"SM_RESOURCE_CONFIG": ""} | {"HOME": str(tmp_path)})
    assert (ident.host_index, ident.hosts, ident.rank, ident.world_size) == (0, 1, 0, 1)


def test_sagemaker_only():
    assert process_identity(environ=sm(2, 4)) == Identity(2, 4, "algo-3", 0, 1, 2, 4, "resourceconfig")
    env = {"SM_HOSTS": '["algo-1", "algo-2"]', "SM_CURRENT_HOST": "algo-2"}
    assert process_identity(environ=env) == Identity(1, 2, "algo-2", 0, 1, 1, 2, "SM_HOSTS")


def test_resourceconfig_file(tmp_path):
    job = Job.from_dict({"TrainingInputMode": "File", "InputDataConfig": [{"ChannelName": "train", "DataSource": {
        "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/p/"}}}],
        "OutputDataConfig": {"S3OutputPath": "s3://b/out/"}})
    layout = Layout(tmp_path)
    write_config(job, layout, 3, 4)
    ident = process_identity(environ={"SM_RESOURCE_CONFIG": str(layout.resource_config_path)})
    assert (ident.host, ident.rank, ident.world_size) == ("algo-4", 3, 4)


def test_torchrun_only_single_node():
    ident = process_identity(environ=torchrun(1, 2, 1, 2))
    assert ident == Identity(0, 1, "algo-1", 1, 2, 1, 2, "torchrun")


def test_torchrun_only_multi_node():
    ident = process_identity(environ=torchrun(5, 8, 1, 2, GROUP_RANK="2"))
    assert (ident.host_index, ident.hosts, ident.local_rank, ident.rank, ident.world_size) == (2, 4, 1, 5, 8)


def test_torchrun_across_sagemaker_hosts():
    ident = process_identity(environ=sm(1, 2) | torchrun(3, 4, 1, 2))
    assert ident == Identity(1, 2, "algo-2", 1, 2, 3, 4, "resourceconfig")


def test_torchrun_per_host_under_sagemaker():
    # channels run --hosts 2 -- torchrun --nnodes 1 --nproc-per-node 2: ranks count within the host.
    ident = process_identity(environ=sm(1, 2) | torchrun(1, 2, 1, 2))
    assert (ident.rank, ident.world_size, ident.local_rank, ident.local_world_size) == (3, 4, 1, 2)


def test_torchrun_that_does_not_fit():
    with pytest.raises(ShardingError, match="does not fit 2 host"):
        process_identity(environ=sm(0, 2) | torchrun(0, 6, 0, 4))
    with pytest.raises(ShardingError, match="not an integer"):
        process_identity(environ={"WORLD_SIZE": "two"})
    with pytest.raises(ShardingError, match="out of range"):
        process_identity(environ=torchrun(4, 4, 0, 4))


def test_explicit_wins():
    ident = process_identity(3, 1, environ=sm(0, 2))
    assert (ident.host_index, ident.hosts, ident.source) == (1, 3, "explicit")
