"""Job definitions the tests build: one S3Prefix channel "train" (a plain module, imported by tests)."""

from __future__ import annotations

from channels.spec import Job


def one_channel_job(bucket: str, out_bucket: str, *, mode: str = "File", distribution: str = "ShardedByS3Key",
                    instances: int = 1, seed: int | None = None) -> Job:
    """A job reading ``s3://bucket/train/`` in ``mode``, its model going to ``s3://out_bucket/jobs/``."""
    channel: dict = {"ChannelName": "train", "DataSource": {"S3DataSource": {
        "S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/train/", "S3DataDistributionType": distribution}}}
    if seed is not None:
        channel["ShuffleConfig"] = {"Seed": seed}
    return Job.from_dict({
        "TrainingInputMode": mode,
        "InputDataConfig": [channel],
        "OutputDataConfig": {"S3OutputPath": f"s3://{out_bucket}/jobs/"},
        "ResourceConfig": {"InstanceCount": instances, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 120},
    })
