"""``channels shard-report`` end to end on the loopback endpoint."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from channels.cli import main
from channels.listing import list_prefix
from channels.store import Store
from channels.testing import Dataset, fill_bucket, lognormal_sizes


@pytest.fixture
def skewed(s3, s3_client):
    ds = Dataset("ln", lognormal_sizes(2000, median=2048, sigma=2.0, seed=5, max_size=4 * 1024 * 1024),
                 prefix="train/")
    fill_bucket(s3_client, "skewed", ds, content=lambda k, n: b"\0" * n)
    return "s3://skewed/train/"


def run_json(capsys, *argv):
    assert main(["shard-report", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_lognormal_2000_objects_8_hosts(skewed, s3, capsys):
    by_key = run_json(capsys, skewed, "--hosts", "8", "--strategy", "sharded-by-s3-key")
    balanced = run_json(capsys, skewed, "--hosts", "8", "--strategy", "size-balanced")

    # Recount from the listing alone: contiguous runs of the key-ordered list.
    sizes = list_prefix(skewed, store=Store.from_env(s3.endpoint_url)).sizes()
    runs = np.array_split(sizes, 8)
    assert [h["bytes"] for h in by_key["hosts"]] == [int(r.sum()) for r in runs]
    assert [h["objects"] for h in by_key["hosts"]] == [len(r) for r in runs] == [250] * 8
    mean = sizes.sum() / 8
    assert by_key["imbalance"] == pytest.approx(max(int(r.sum()) for r in runs) / mean, abs=1e-4)
    assert by_key["skewed"] is True and by_key["imbalance"] > 1.1
    assert by_key["lower_bound"] == pytest.approx(max(sizes.max(), mean) / mean, abs=1e-4)

    assert sum(h["bytes"] for h in balanced["hosts"]) == sizes.sum()
    assert sum(h["objects"] for h in balanced["hosts"]) == 2000
    assert balanced["imbalance"] <= balanced["lower_bound"] * 1.02
    assert balanced["imbalance"] == pytest.approx(max(h["bytes"] for h in balanced["hosts"]) / mean, abs=1e-4)
    assert balanced["skewed"] is False
    for report in (by_key, balanced):
        assert report["hosts"][0]["host"] == "algo-1" and report["recommendation"]


def test_compare_prints_every_strategy(skewed, capsys):
    reports = run_json(capsys, skewed, "--hosts", "4", "--compare")
    assert [r["strategy"] for r in reports] == ["sharded-by-s3-key", "size-balanced", "fully-replicated"]
    assert main(["shard-report", skewed, "--hosts", "4", "--compare"]) == 0
    table = capsys.readouterr().out
    assert "algo-4" in table and "imbal." in table and "size-balanced" in table


def test_more_hosts_than_objects_warns_with_names(s3_client, bucket, capsys):
    for i in range(3):
        s3_client.put_object(Bucket=bucket, Key=f"few/{i}", Body=b"x" * (i + 1))
    report = run_json(capsys, f"s3://{bucket}/few/", "--hosts", "5")
    assert [h["objects"] for h in report["hosts"]] == [1, 1, 1, 0, 0]
    assert report["warnings"] and "algo-4, algo-5" in report["warnings"][0]
    assert main(["shard-report", f"s3://{bucket}/few/", "--hosts", "5"]) == 0
    assert "warning: 5 hosts but only 3 object(s)" in capsys.readouterr().err


def test_errors_are_one_line_without_traceback(s3):
    env_cmd = [sys.executable, "-m", "channels", "shard-report", "s3://no-such-bucket/x/", "--hosts", "2",
               "--endpoint-url", s3.endpoint_url]
    out = subprocess.run(env_cmd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0, out.stderr
    assert "bucket 'no-such-bucket' does not exist" in out.stderr and "Traceback" not in out.stderr


def test_manifest_source(s3_client, bucket, capsys):
    for k in ("d/a", "d/b", "d/c"):
        s3_client.put_object(Bucket=bucket, Key=k, Body=b"abc")
    s3_client.put_object(Bucket=bucket, Key="m.json", Body=json.dumps([{"prefix": f"s3://{bucket}/d/"}, "c", "a"]).encode())
    report = run_json(capsys, "--manifest", f"s3://{bucket}/m.json", "--hosts", "2")
    assert [h["objects"] for h in report["hosts"]] == [1, 1] and report["objects"] == 2
