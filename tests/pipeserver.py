"""A `channels pipe` server as a child process, the Pipe job file it serves, and consumers of its FIFOs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

#: Seconds to wait for a FIFO to appear or the server to exit.
TIMEOUT = 20


def job_file(tmp_path: Path, channels: list[dict]) -> Path:
    """A Pipe-mode job of ``channels`` written to ``tmp_path/job.json``."""
    job = {
        "TrainingInputMode": "Pipe",
        "InputDataConfig": channels,
        "OutputDataConfig": {"S3OutputPath": "s3://out-bucket/model/"},
        "ResourceConfig": {"InstanceCount": 1, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    }
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job))
    return path


def channel(name: str, uri: str, **extra) -> dict:
    """An S3Prefix channel of a job file, ``extra`` its other fields (RecordWrapperType, ...)."""
    return {"ChannelName": name, "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri}},
            **extra}


def serve(job: Path, root: Path, *args: str) -> subprocess.Popen:
    """``python -m channels pipe JOB --root ROOT ARGS...``, its output piped."""
    return subprocess.Popen([sys.executable, "-m", "channels", "pipe", str(job), "--root", str(root), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))


def wait_for_path(path: Path, proc: subprocess.Popen | None = None) -> None:
    """Retry until the FIFO exists, as SageMaker tells a script to."""
    deadline = time.monotonic() + TIMEOUT
    while not path.exists():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the server exited ({proc.returncode}): {proc.stderr.read()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear")
        time.sleep(0.005)


def consume(data_dir: Path, name: str, epochs: int, proc: subprocess.Popen, out: dict,
            early: set[int] = frozenset()) -> None:
    """A SageMaker-style consumer: each epoch's FIFO read to EOF (or closed early)."""
    for e in range(epochs):
        path = data_dir / f"{name}_{e}"
        wait_for_path(path, proc)
        with open(path, "rb", buffering=0 if e in early else -1) as f:  # early: take 100 bytes only
            out[e] = f.read(100) if e in early else f.read()


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    """The server's exit status and stderr once it exits; it is killed after TIMEOUT."""
    try:
        _, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"the server did not exit: {err}") from None
    return proc.returncode, err
