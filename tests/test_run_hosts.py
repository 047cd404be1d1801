"""`channels run --hosts 4`: each host its own root, identity and share.

Every object's body is its own key on repeated lines, so a host can say
which objects it saw from the Pipe stream as well as from the files.
"""

from __future__ import annotations

import io
import json
import sys
import tarfile
from collections import Counter

import pytest

from jobs import one_channel_job
from channels.run.runner import RunOptions, run_job
from channels.spec import Job

OUT_BUCKET = "model-bucket"
KEYS = [f"part-{i:02d}.txt" for i in range(10)]

# A SageMaker-style script: which objects did this host see, in its own mode?
SCRIPT = r"""
import json, os, pathlib, time
mode = json.loads(os.environ["SM_INPUT_DATA_CONFIG"])["train"]["TrainingInputMode"]
channel = os.environ["SM_CHANNEL_TRAIN"]
if mode == "Pipe":
    while not os.path.exists(channel + "_0"):
        time.sleep(0.01)
    with open(channel + "_0", "rb") as f:
        seen = sorted(set(f.read().decode().split()))
else:
    seen = sorted(p.name for p in pathlib.Path(channel).rglob("*") if p.is_file())
host = os.environ["SM_CURRENT_HOST"]
resource = json.loads(pathlib.Path(os.environ["SM_INPUT_CONFIG_DIR"], "resourceconfig.json").read_text())
doc = {"host": host, "resource": resource, "seen": seen, "hosts": json.loads(os.environ["SM_HOSTS"])}
pathlib.Path(os.environ["SM_MODEL_DIR"], host + ".json").write_text(json.dumps(doc))
"""


def make_job(mode: str, bucket: str, distribution: str) -> Job:
    return one_channel_job(bucket, OUT_BUCKET, mode=mode, distribution=distribution)


@pytest.fixture
def keyed_objects(s3_client, bucket):
    s3_client.create_bucket(Bucket=OUT_BUCKET)
    for k in KEYS:
        s3_client.put_object(Bucket=bucket, Key=f"train/{k}", Body=(k + "\n").encode() * 50)


def host_views(s3_client, job_name: str) -> dict[str, dict]:
    """Each host's report, from the one model.tar.gz every host's model/ was packed into."""
    body = s3_client.get_object(Bucket=OUT_BUCKET, Key=f"jobs/{job_name}/output/model.tar.gz")["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        return {m.name: json.loads(tar.extractfile(m).read()) for m in tar.getmembers() if m.isfile()}


@pytest.mark.parametrize(("mode", "distribution"), [
    ("File", "ShardedByS3Key"), ("Pipe", "ShardedByS3Key"), ("Pipe", "FullyReplicated")])
def test_four_hosts(mode, distribution, keyed_objects, bucket, s3_client, tmp_path):
    job = make_job(mode, bucket, distribution)
    root = tmp_path / "run"
    result = run_job(RunOptions(job, (sys.executable, "-c", SCRIPT), root=root, hosts=4, grace_seconds=5,
                                job_name=f"hosts-{mode.lower()}-{distribution.lower()}"))
    assert result.exit_code == 0, result.message
    views = host_views(s3_client, result.job_name)
    names = ["algo-1", "algo-2", "algo-3", "algo-4"]
    assert sorted(views) == [f"{h}.json" for h in names]
    for h in names:
        view = views[f"{h}.json"]
        assert view["host"] == h and view["hosts"] == names
        assert view["resource"]["current_host"] == h and view["resource"]["hosts"] == names
        assert (root / h / "input" / "config" / "resourceconfig.json").is_file()  # its own root
    seen = [views[f"{h}.json"]["seen"] for h in names]
    if distribution == "FullyReplicated":
        assert all(s == KEYS for s in seen)
    else:
        counts = Counter(k for s in seen for k in s)
        assert sorted(counts) == KEYS and set(counts.values()) == {1}  # disjoint, and the union is all
        assert [len(s) for s in seen] == [3, 3, 2, 2]  # by count, the first hosts one more
