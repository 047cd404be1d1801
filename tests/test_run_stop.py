"""StoppingCondition: SIGTERM at MaxRuntimeInSeconds, SIGKILL after the grace period.

MaxRuntimeInSeconds 1 and a 1-second grace period keep each test short; the
channel is served the whole time (a Pipe FIFO, or a FUSE mount), so the
teardown is checked as well.
"""

from __future__ import annotations

import io
import os
import signal
import stat
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from mounting import fuse_missing, mode_param

from channels.run.runner import EXIT_KILLED, EXIT_MAX_RUNTIME, Outcome, RunOptions, run_job
from channels.spec import Job

OUT_BUCKET = "model-bucket"

IGNORES_SIGTERM = r"""
import os, pathlib, signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
pathlib.Path(os.environ["SM_OUTPUT_DATA_DIR"], "pid").write_text(str(os.getpid()))
time.sleep(60)
"""

TRAPS_SIGTERM = r"""
import os, pathlib, signal, sys, time
def save(signum, frame):
    pathlib.Path(os.environ["SM_MODEL_DIR"], "weights.bin").write_bytes(b"trained" * 100)
    sys.exit(0)
signal.signal(signal.SIGTERM, save)
time.sleep(60)
"""


def make_job(mode: str, bucket: str, runtime: int = 1) -> Job:
    return Job.from_dict({
        "TrainingJobName": f"stop-{mode.lower()}",
        "TrainingInputMode": mode,
        "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/train/"}}}],
        "OutputDataConfig": {"S3OutputPath": f"s3://{OUT_BUCKET}/jobs"},
        "StoppingCondition": {"MaxRuntimeInSeconds": runtime},
    })


@pytest.fixture
def data(s3_client, bucket):
    s3_client.create_bucket(Bucket=OUT_BUCKET)
    for i in range(3):
        s3_client.put_object(Bucket=bucket, Key=f"train/{i}.bin", Body=b"x" * 100_000)


def nothing_served(root: Path) -> None:
    data = root / "input" / "data"
    assert not os.path.ismount(data / "train")
    assert [p.name for p in data.iterdir() if stat.S_ISFIFO(p.lstat().st_mode)] == []


@pytest.mark.parametrize("mode", ["Pipe", mode_param("FastFile")])
def test_ignoring_sigterm_gets_killed_after_the_grace_period(mode, data, bucket, tmp_path):
    root = tmp_path / "run"
    started = time.monotonic()
    result = run_job(RunOptions(make_job(mode, bucket), (sys.executable, "-c", IGNORES_SIGTERM), root=root,
                                grace_seconds=1))
    elapsed = time.monotonic() - started
    assert result.outcome is Outcome.KILLED and result.exit_code == EXIT_KILLED == 137
    assert result.hosts[0].returncode == -signal.SIGKILL
    assert "ignored SIGTERM for the 1 s grace period" in result.message
    assert 2.0 <= elapsed < 10, elapsed  # 1 s runtime + 1 s grace, then teardown
    pid = int((root / "output" / "data" / "pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert "SIGKILL" in (root / "output" / "failure").read_text()
    nothing_served(root)


@pytest.mark.parametrize("mode", ["Pipe", mode_param("FastFile")])
def test_trapping_sigterm_saves_the_model_which_is_uploaded(mode, data, bucket, s3_client, tmp_path):
    root = tmp_path / "run"
    result = run_job(RunOptions(make_job(mode, bucket), (sys.executable, "-c", TRAPS_SIGTERM), root=root,
                                grace_seconds=30))
    assert result.outcome is Outcome.STOPPED and result.exit_code == EXIT_MAX_RUNTIME == 124
    assert "MaxRuntimeInSeconds (1 s) reached" in result.message and "exited with status 0" in result.message
    assert result.model_url == f"s3://{OUT_BUCKET}/jobs/stop-{mode.lower()}/output/model.tar.gz"
    body = s3_client.get_object(Bucket=OUT_BUCKET, Key=f"jobs/stop-{mode.lower()}/output/model.tar.gz")["Body"]
    with tarfile.open(fileobj=io.BytesIO(body.read()), mode="r:gz") as tar:
        assert tar.getnames() == ["weights.bin"]
        assert tar.extractfile("weights.bin").read() == b"trained" * 100
    assert not (root / "output" / "failure").exists()  # a stop is not a failure
    nothing_served(root)


def test_failing_script_passes_its_status_and_reason(data, bucket, tmp_path):
    root = tmp_path / "run"
    script = "import sys; print('boom', file=sys.stderr); sys.exit(3)"
    result = run_job(RunOptions(make_job("Pipe", bucket, runtime=60), (sys.executable, "-c", script), root=root))
    assert result.outcome is Outcome.FAILED and result.exit_code == 3
    assert "AlgorithmError" in (root / "output" / "failure").read_text()
    assert "exited with status 3" in (root / "output" / "failure").read_text()
    # A script that writes its own reason keeps it.
    script = ("import os, pathlib, sys; pathlib.Path(os.environ['SM_OUTPUT_DIR'], 'failure')"
              ".write_text('loss is NaN'); sys.exit(1)")
    result = run_job(RunOptions(make_job("Pipe", bucket, runtime=60), (sys.executable, "-c", script), root=root))
    assert result.exit_code == 1 and (root / "output" / "failure").read_text() == "loss is NaN"


def test_cli_exit_status_and_message(data, bucket, tmp_path):
    job_path = tmp_path / "job.json"
    make_job("Pipe", bucket).dump(job_path)
    proc = subprocess.run(
        [sys.executable, "-m", "channels", "run", str(job_path), "--root", str(tmp_path / "run"),
         "--grace-seconds", "1", "--", sys.executable, "-c", IGNORES_SIGTERM],
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == 137, proc.stderr
    assert "Stopped (MaxRuntimeInSeconds (1 s) reached): algo-1 ignored SIGTERM" in proc.stderr
    assert "model: s3://model-bucket/jobs/stop-pipe/output/model.tar.gz" in proc.stderr


def test_fuse_reason_is_clear():
    # Documented behaviour of the FUSE marks above: skipped only for a missing device or tool.
    reason = fuse_missing()
    assert reason is None or "FUSE" in reason or "fusermount3" in reason


def test_sigterm_to_channels_run_stops_the_job_cleanly(data, bucket, tmp_path):
    job_path = tmp_path / "job.json"
    make_job("Pipe", bucket, runtime=600).dump(job_path)
    root = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "channels", "run", str(job_path), "--root", str(root), "--grace-seconds", "30",
         "--", sys.executable, "-c", TRAPS_SIGTERM], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not (root / "input" / "data" / "train_0").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # the script is up and has its handler
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Stopped (interrupted)" in err and "exited with status 0" in err
    assert (root / "model" / "weights.bin").is_file()  # it had its grace period to save
    nothing_served(root)


def test_one_host_failing_stops_the_others(data, bucket, s3_client, tmp_path):
    # algo-2 fails only once algo-1's script runs: failing sooner, it would stop algo-1 before its
    # script started (no return code to check), which is right but not what this test is about.
    started_marker = tmp_path / "algo-1-started"
    script = ("import os, pathlib, sys, time\n"
              f"marker = pathlib.Path({str(started_marker)!r})\n"
              "if os.environ['SM_CURRENT_HOST'] == 'algo-2':\n"
              "    deadline = time.monotonic() + 15\n"
              "    while not marker.exists() and time.monotonic() < deadline:\n"
              "        time.sleep(0.02)\n"
              "    sys.exit(5)\n"
              "marker.touch()\n"
              "time.sleep(60)\n")
    started = time.monotonic()
    result = run_job(RunOptions(make_job("Pipe", bucket, runtime=600), (sys.executable, "-c", script),
                                root=tmp_path / "run", hosts=2, grace_seconds=5))
    assert time.monotonic() - started < 20
    assert result.exit_code == 5 and result.outcome is Outcome.FAILED
    assert result.message.startswith("Failed: algo-2: AlgorithmError")
    first = result.hosts[0]
    assert first.outcome is Outcome.STOPPED and first.stop_reason == "peer-failed"
    assert started_marker.exists() and first.returncode == -signal.SIGTERM
    assert "exited with status 5" in (tmp_path / "run" / "algo-2" / "output" / "failure").read_text()


def test_a_channel_that_cannot_be_served_fails_before_the_script(s3_client, tmp_path):
    s3_client.create_bucket(Bucket=OUT_BUCKET)
    job = make_job("File", "no-such-bucket", runtime=60)
    marker = tmp_path / "ran"
    result = run_job(RunOptions(job, (sys.executable, "-c", f"open({str(marker)!r}, 'w')"), root=tmp_path / "run"))
    assert result.exit_code == 2 and result.outcome is Outcome.FAILED
    assert "channels download" in result.message and "no-such-bucket" in result.message
    assert not marker.exists() and result.model is None
    assert "ClientError" in (tmp_path / "run" / "output" / "failure").read_text()
