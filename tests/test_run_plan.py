"""`channels run --hosts 4` lists the store once and hands the plan to its hosts.

LIST requests are counted at a proxy in front of the endpoint: one listing's
worth with the shared plan, four with ``--no-plan`` (each host lists); every
host still gets the same share, byte for byte.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
import tarfile
from concurrent.futures import ThreadPoolExecutor

import pytest

from jobs import one_channel_job
from channels.listing import list_prefix
from channels.plan import PlanError, make_plan, write_plan
from channels.run.runner import RunOptions, run_job
from channels.spec import Job
from channels.store import Store
from channels.testing.proxy import Proxy

OUT = "model-bucket"
SCRIPT = r"""
import hashlib, json, os, pathlib, time
channel = pathlib.Path(os.environ["SM_CHANNEL_TRAIN"])
if json.loads(os.environ["SM_INPUT_DATA_CONFIG"])["train"]["TrainingInputMode"] == "Pipe":
    fifo = pathlib.Path(str(channel) + "_0")
    while not fifo.exists():
        time.sleep(0.01)
    seen = {"<pipe epoch 0>": hashlib.sha256(fifo.read_bytes()).hexdigest()}
else:
    seen = {p.relative_to(channel).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in channel.rglob("*") if p.is_file()}
host = os.environ["SM_CURRENT_HOST"]
pathlib.Path(os.environ["SM_MODEL_DIR"], host + ".json").write_text(json.dumps(seen))
"""


def make_job(bucket: str, distribution: str = "ShardedByS3Key", mode: str = "File") -> Job:
    return one_channel_job(bucket, OUT, mode=mode, distribution=distribution, instances=4, seed=3)


@pytest.fixture
def dataset(s3_client, bucket):
    s3_client.create_bucket(Bucket=OUT)
    keys = [f"train/d{d}/obj-{i:03d}" for d in range(3) for i in range(40)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: s3_client.put_object(Bucket=bucket, Key=k, Body=k.encode() * (1 + len(k) % 5)),
                      keys))
    return keys


def shares(s3_client, job_name: str) -> dict[str, dict[str, str]]:
    body = s3_client.get_object(Bucket=OUT, Key=f"jobs/{job_name}/output/model.tar.gz")["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        return {m.name: json.loads(tar.extractfile(m).read()) for m in tar.getmembers() if m.isfile()}


@pytest.mark.parametrize(("mode", "distribution", "hosts"), [
    ("File", "ShardedByS3Key", 4),
    ("Pipe", "ShardedByS3Key", 2),
    pytest.param("FastFile", "FullyReplicated", 2, marks=[
        pytest.mark.fuse, pytest.mark.skipif(not (os.path.exists("/dev/fuse") and shutil.which("fusermount3")),
                                             reason="FastFile mounts need /dev/fuse and fusermount3 (fuse3)")]),
])
def test_hosts_list_once_and_get_the_same_shares(s3, s3_client, bucket, dataset, tmp_path, mode, distribution,
                                                 hosts):
    listing = list_prefix(f"s3://{bucket}/train/", store=Store(s3.endpoint_url))
    one_listing = listing.stats.requests
    counts, views = {}, {}
    for how, shared in (("planned", True), ("per-host", False)):
        lists: list[str] = []
        def policy(req, lists=lists):
            if "list-type=2" in req.target:
                lists.append(req.target)

        with Proxy(s3.endpoint_url, fault_policy=policy) as proxy:
            result = run_job(RunOptions(make_job(bucket, distribution, mode), (sys.executable, "-c", SCRIPT),
                                        root=tmp_path / how, hosts=hosts, grace_seconds=5, pipe_epochs=1,
                                        job_name=f"plan-{mode.lower()}-{how}", endpoint_url=proxy.url,
                                        shared_plan=shared))
            proxy.quiesce()
        assert result.exit_code == 0, result.message
        counts[how] = len(lists)
        views[how] = shares(s3_client, result.job_name)
    print(f"{mode}: LIST requests at the endpoint, {hosts} hosts: shared plan {counts['planned']}, "
          f"each host listing {counts['per-host']} (one listing: {one_listing})")
    assert counts["planned"] == one_listing and counts["per-host"] == hosts * one_listing
    assert views["planned"] == views["per-host"]  # every host, the same objects and bytes
    assert len(views["planned"]) == hosts
    if mode == "File":
        union = [k for v in views["planned"].values() for k in v]
        assert sorted(union) == sorted(k.removeprefix("train/") for k in dataset)  # disjoint shares, all of it
    assert (tmp_path / "planned" / ".channels" / "plan.parquet").is_file()


def test_a_plan_for_another_job_stops_the_run_before_any_host(s3, bucket, dataset, tmp_path):
    path = str(tmp_path / "p.parquet")
    write_plan(make_plan(make_job(bucket), store=Store(s3.endpoint_url)), path)
    with pytest.raises(PlanError, match="S3DataDistributionType is 'FullyReplicated' in the job, 'ShardedByS3Key'"):
        run_job(RunOptions(make_job(bucket, "FullyReplicated"), (sys.executable, "-c", SCRIPT),
                           root=tmp_path / "r", hosts=2, plan=path, endpoint_url=s3.endpoint_url))
    model = tmp_path / "r" / "algo-1" / "model"
    assert not model.exists() or not any(model.iterdir())  # no script ran
