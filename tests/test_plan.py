"""The job plan: made once, read with one GET, checked against the job, and stale objects refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from channels.errors import ObjectChangedError
from channels.listing import Listing, ObjectRef, list_source
from channels.modes.pipe import PipeReader
from channels.plan import JobPlan, PlanError, load_plan, make_plan, plan_from_bytes, read_plan, write_plan
from channels.plan.parquet import plan_bytes
from channels.spec import Job
from channels.store import Store
from channels.testing.proxy import Proxy


def job_dict(bucket: str, *, mode: str = "File", distribution: str = "ShardedByS3Key", seed: int | None = 7,
             extra: list | None = None) -> dict:
    train = {"ChannelName": "train", "DataSource": {"S3DataSource": {
        "S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/train/", "S3DataDistributionType": distribution}}}
    if seed is not None:
        train["ShuffleConfig"] = {"Seed": seed}
    return {"TrainingInputMode": mode, "InputDataConfig": [train, *(extra or [])],
            "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/out/"},
            "ResourceConfig": {"InstanceCount": 1, "VolumeSizeInGB": 1},
            "StoppingCondition": {"MaxRuntimeInSeconds": 60}}


@pytest.fixture
def objects(s3_client, bucket):
    bodies = {f"train/{d}/part-{i}.bin": f"{d}-{i}\n".encode() * (i + 1) for d in ("a", "b") for i in range(6)}
    bodies["train/x/multi"] = b"m" * 10
    for key, body in bodies.items():
        s3_client.put_object(Bucket=bucket, Key=key, Body=body)
    manifest = [{"prefix": f"s3://{bucket}/train/"}, "a/part-1.bin", "b/part-0.bin"]
    s3_client.put_object(Bucket=bucket, Key="m/list.manifest", Body=json.dumps(manifest).encode())
    lines = [{"source-ref": f"s3://{bucket}/train/a/part-2.bin", "label": i} for i in range(3)]
    s3_client.put_object(Bucket=bucket, Key="m/aug.jsonl", Body="\n".join(json.dumps(x) for x in lines).encode())
    return bodies


def counting_proxy(s3):
    seen: list[tuple[str, str]] = []
    return Proxy(s3.endpoint_url, fault_policy=lambda req: seen.append((req.method, req.target))), seen


def lists(seen) -> int:
    return sum("list-type=2" in t for _, t in seen)


def test_plan_round_trips_every_kind_of_source(s3, bucket, objects, tmp_path):
    extra = [{"ChannelName": "picked", "DataSource": {"S3DataSource": {
                 "S3DataType": "ManifestFile", "S3Uri": f"s3://{bucket}/m/list.manifest"}}},
             {"ChannelName": "aug", "DataSource": {"S3DataSource": {
                 "S3DataType": "AugmentedManifestFile", "S3Uri": f"s3://{bucket}/m/aug.jsonl",
                 "AttributeNames": ["source-ref", "label"]}}}]
    job = Job.from_dict(job_dict(bucket, mode="Pipe", extra=extra))
    store = Store(s3.endpoint_url)
    plan = make_plan(job, store=store)
    path = tmp_path / "plan.parquet"
    size = write_plan(plan, str(path))
    assert size == path.stat().st_size and not list(tmp_path.glob(".channels-plan-*"))
    back = read_plan(str(path))
    assert [c.describe() for c in back.channels] == [c.describe() for c in plan.channels]
    assert back.channel("train").shuffle_seed == 7 and back.channel("train").distribution == "ShardedByS3Key"
    for ch in job.channels:
        ds = ch.data_source
        fresh = list_source(ds.s3_uri, ds.s3_data_type, attribute_names=ds.attribute_names, store=store)
        got = back.channel(ch.name).listing
        assert got.refs == fresh.refs  # url, size, ETag, key and inline values, in order
        assert (got.unit_starts is None) == (fresh.unit_starts is None)
        if fresh.unit_starts is not None:
            assert got.unit_starts.tolist() == fresh.unit_starts.tolist()
    back.check(job)  # made for this job


def test_plan_on_the_store_is_read_with_one_get_and_no_listing(s3, bucket, objects):
    job = Job.from_dict(job_dict(bucket))
    write_plan(make_plan(job, store=Store(s3.endpoint_url)), f"s3://{bucket}/plans/p.parquet",
               store=Store(s3.endpoint_url))
    proxy, seen = counting_proxy(s3)
    with proxy:
        plan = read_plan(f"s3://{bucket}/plans/p.parquet", store=Store(proxy.url))
        proxy.quiesce()
    assert seen == [("GET", f"/{bucket}/plans/p.parquet")]
    assert len(plan.channel("train").listing) == len(objects)


def test_a_plan_for_another_job_names_every_difference(s3, bucket, objects, tmp_path):
    path = str(tmp_path / "p.parquet")
    write_plan(make_plan(Job.from_dict(job_dict(bucket)), store=Store(s3.endpoint_url)), path)
    val = {"ChannelName": "val", "DataSource": {"S3DataSource": {
        "S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/train/a/"}}}
    other = Job.from_dict(job_dict(bucket, distribution="FullyReplicated", seed=8, extra=[val]))
    with pytest.raises(PlanError) as info:
        read_plan(path).check(other)
    text = str(info.value)
    assert f"plan {path} was made for another job" in text
    assert "channel 'val' is in the job but not in the plan" in text
    assert "S3DataDistributionType is 'FullyReplicated' in the job, 'ShardedByS3Key' in the plan" in text
    assert "ShuffleConfig.Seed is 8 in the job, 7 in the plan" in text and "channels plan JOB.json" in text
    with pytest.raises(PlanError, match=r"lists no channel of source s3://.*/elsewhere/"):
        read_plan(path).for_source(f"s3://{bucket}/elsewhere/")


def test_not_a_plan_or_a_newer_one_is_refused(tmp_path, bucket):
    import pyarrow as pa
    import pyarrow.parquet as pq

    with pytest.raises(PlanError, match="is not a channels plan"):
        plan_from_bytes(b"nope", "x.parquet")
    pq.write_table(pa.table({"a": [1]}), tmp_path / "other.parquet")
    with pytest.raises(PlanError, match="not a channels plan"):
        read_plan(str(tmp_path / "other.parquet"))
    listing = Listing("s3://b/p/", (ObjectRef("s3://b/p/k", 1, "0" * 32, "k"),))
    from channels.plan import PlannedChannel

    data = plan_bytes(JobPlan((PlannedChannel("train", "s3://b/p/", listing=listing),)))
    table = pq.read_table(pa.BufferReader(data))
    meta = json.loads(table.schema.metadata[b"channels.plan"])
    meta["version"] = 99
    sink = pa.BufferOutputStream()
    pq.write_table(table.replace_schema_metadata({b"channels.plan": json.dumps(meta).encode()}), sink)
    with pytest.raises(PlanError, match="format version 99, newer than this channels reads"):
        plan_from_bytes(sink.getvalue().to_pybytes())


def test_readers_and_views_take_the_plan_instead_of_listing(s3, bucket, objects, tmp_path):
    from channels.modes.fastfile import FastFileView

    job = Job.from_dict(job_dict(bucket, mode="Pipe"))
    path = str(tmp_path / "p.parquet")
    write_plan(make_plan(job, store=Store(s3.endpoint_url)), path)
    proxy, seen = counting_proxy(s3)
    with proxy:
        store = Store(proxy.url)
        with PipeReader.from_channel(job.channel("train"), store=store, plan=path, hosts=2, host_index=1) as r:
            planned = [bytes(x) for e in range(2) for x in r.records(e)]
        with PipeReader.from_channel(job.channel("train"), store=store, hosts=2, host_index=1) as r:
            listed = [bytes(x) for e in range(2) for x in r.records(e)]
            listing_requests = r.listing.stats.requests
        with FastFileView(f"s3://{bucket}/train/", store, plan=load_plan(path)) as view:
            with view.open("a/part-3.bin") as f:
                assert f.read() == objects["train/a/part-3.bin"]
        proxy.quiesce()
    assert planned == listed and planned  # the same epochs as from a listing
    assert lists(seen) == listing_requests >= 1  # only the reader without a plan listed


def test_a_changed_object_fails_the_next_download_naming_it(s3, s3_client, bucket, objects, tmp_path):
    job_path = tmp_path / "job.json"
    job_path.write_text(json.dumps(job_dict(bucket)))
    plan = tmp_path / "plan.parquet"
    env = {"AWS_ENDPOINT_URL": s3.endpoint_url}
    made = channels("plan", str(job_path), "--out", str(plan), env=env)
    assert made.returncode == 0, made.stderr
    assert f"wrote {plan}" in made.stderr and "train: 13 objects" in made.stderr
    changed = "train/b/part-4.bin"
    s3_client.put_object(Bucket=bucket, Key=changed, Body=b"X" * len(objects[changed]))  # same size, new ETag
    root = tmp_path / "root"
    run = channels("download", str(job_path), "--root", str(root), "--plan", str(plan), env=env)
    assert run.returncode == 2
    assert f"s3://{bucket}/{changed} changed since it was listed" in run.stderr
    assert f"after plan {plan} was made" in run.stderr
    data = root / "input" / "data" / "train"
    assert not (data / changed.removeprefix("train/")).exists()
    assert not [p for p in data.rglob("*") if ".channels-tmp-" in p.name]  # nothing half-downloaded
    for p in data.rglob("*.bin"):  # whatever completed is whole
        assert p.read_bytes() == objects["train/" + p.relative_to(data).as_posix()]


def test_download_cli_with_a_plan_makes_no_listing_and_the_same_files(s3, bucket, objects, tmp_path):
    job_path = tmp_path / "job.json"
    job_path.write_text(json.dumps(job_dict(bucket)))
    plan = str(tmp_path / "plan.parquet")
    assert channels("plan", str(job_path), "--out", plan, env={"AWS_ENDPOINT_URL": s3.endpoint_url}).returncode == 0
    trees = {}
    proxy, seen = counting_proxy(s3)
    with proxy:
        for how, extra in (("listed", []), ("planned", ["--plan", plan])):
            root = tmp_path / how
            done = channels("download", str(job_path), "--root", str(root), "--hosts", "2", "--host-index", "0",
                            *extra, env={"AWS_ENDPOINT_URL": proxy.url})
            assert done.returncode == 0, done.stderr
            data = root / "input" / "data" / "train"
            trees[how] = {p.relative_to(data).as_posix(): p.read_bytes() for p in data.rglob("*.bin")}
            trees[how + "-lists"] = lists(seen)
        proxy.quiesce()
    assert trees["listed"] == trees["planned"] and trees["listed"]
    assert trees["listed-lists"] >= 1 and trees["planned-lists"] == trees["listed-lists"]  # none more


def channels(*args: str, env: dict) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "channels", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120, cwd=Path(__file__).parent.parent)


def test_stale_hint_keeps_the_object_and_details():
    from channels.plan import stale_plan_hint

    with pytest.raises(ObjectChangedError) as info, stale_plan_hint("s3://b/plan.parquet"):
        raise ObjectChangedError("s3://b/k changed since it was listed", url="s3://b/k")
    assert info.value.details["url"] == "s3://b/k" and info.value.details["plan"] == "s3://b/plan.parquet"
