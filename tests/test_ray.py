"""Ray Data over a channel, on a local Ray (one ``ray.init(num_cpus=2)`` for the module, small data).

Every record of a TFRecord channel (some objects Gzip, sizes skewed) comes
out exactly once; ``streaming_split(2)`` gives two disjoint halves whose
union is the channel; read tasks follow the size-balanced plan.
"""

from __future__ import annotations

import gzip
import os
import threading
from collections import Counter

import pytest

ray = pytest.importorskip("ray", reason="Ray Data is the optional extra [ray]: pip install 'channels[ray]'")

from channels.adapters.ray import ChannelDatasource, read_channel  # noqa: E402
from channels.plan import make_plan, write_plan  # noqa: E402
from channels.records import encode_tfrecord  # noqa: E402
from channels.spec import Job  # noqa: E402
from channels.store import Store  # noqa: E402

COUNTS = [1, 2, 40, 3, 5, 30, 1, 8]  # records per object: skewed sizes


@pytest.fixture(scope="module")
def local_ray(s3_server):
    env = {k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env})
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


def job_for(bucket: str, compression: str | None = None) -> Job:
    channel = {"ChannelName": "train", "ShuffleConfig": {"Seed": 5}, "DataSource": {"S3DataSource": {
        "S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/tf/", "S3DataDistributionType": "ShardedByS3Key"}}}
    if compression:
        channel["CompressionType"] = compression
    return Job.from_dict({"TrainingInputMode": "Pipe", "InputDataConfig": [channel],
                          "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/out/"},
                          "ResourceConfig": {"InstanceCount": 1, "VolumeSizeInGB": 1},
                          "StoppingCondition": {"MaxRuntimeInSeconds": 60}})


@pytest.fixture(params=["None", "Gzip"])
def channel(request, s3_client, bucket):
    records = []
    for i, n in enumerate(COUNTS):
        payloads = [f"object {i} record {j} ".encode() * (1 + j % 3) for j in range(n)]
        records += payloads
        body = b"".join(encode_tfrecord(p) for p in payloads)
        s3_client.put_object(Bucket=bucket, Key=f"tf/part-{i}.tfrecord",
                             Body=gzip.compress(body) if request.param == "Gzip" else body)
    return job_for(bucket, request.param if request.param == "Gzip" else None), records


def test_every_record_exactly_once(local_ray, s3, channel):
    job, records = channel
    ds = read_channel(job, "train", framing="tfrecord", store=Store(s3.endpoint_url), shares=3)
    got = [bytes(r["bytes"]) for r in ds.iter_rows()]
    assert Counter(got) == Counter(records)


def test_streaming_split_gives_two_disjoint_halves_whose_union_is_the_channel(local_ray, s3, bucket, channel,
                                                                              tmp_path):
    job, records = channel
    plan = str(tmp_path / "plan.parquet")
    write_plan(make_plan(job, store=Store(s3.endpoint_url)), plan)
    ds = read_channel(job, "train", framing="tfrecord", store=Store(s3.endpoint_url), plan=plan, shares=4)
    halves: list[list[bytes]] = [[], []]

    def consume(i: int, it) -> None:
        for batch in it.iter_batches(batch_size=16, batch_format="pyarrow"):
            halves[i].extend(batch.column("bytes").to_pylist())

    threads = [threading.Thread(target=consume, args=(i, it)) for i, it in enumerate(ds.streaming_split(2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    a, b = (Counter(h) for h in halves)
    assert len(set(records)) == len(records) and a and b and not (a & b)  # disjoint halves, both fed
    assert a + b == Counter(records)


def test_read_tasks_follow_the_size_balanced_plan(s3, bucket, channel):
    job, _ = channel
    source = ChannelDatasource(job.channel("train"), framing="tfrecord", store=Store(s3.endpoint_url))
    tasks = source.get_read_tasks(3)
    sizes = [t.metadata.size_bytes for t in tasks]
    listing = source.listing()
    assert len(tasks) == 3 and sum(sizes) == listing.total_bytes
    assert sorted(u for t in tasks for u in t.metadata.input_files) == sorted(r.url for r in listing.refs)
    largest = max(r.size for r in listing.refs)
    assert max(sizes) <= max(largest, listing.total_bytes / 3) * 1.5  # no share far past the lower bound


def test_a_job_needs_the_channel_name(bucket):
    with pytest.raises(ValueError, match="give the channel's name"):
        read_channel(job_for(bucket))
