"""A training script written for SageMaker, with nothing but the standard library.

It reads the ``train`` channel in whichever input mode the job gives it:

* File or FastFile (``TrainingInputMode`` "File" in inputdataconfig.json):
  the files under ``$SM_CHANNEL_TRAIN``, in key order;
* Pipe: the FIFOs ``$SM_CHANNEL_TRAIN_0``, ``_1``, ... (``<channel dir>_<epoch>``),
  each read to EOF; epoch e+1's FIFO appears once epoch e's is read, so the
  script waits for it (as AWS's Pipe-mode examples do).

Each epoch it hashes what it read (bytes and SHA-256) and prints a line. At
the end every host writes what it saw to ``$SM_OUTPUT_DATA_DIR/<host>.json``
and the first host saves a "model" to ``$SM_MODEL_DIR`` (model.json: the
epochs' sizes and digests). On SIGTERM (the job hit MaxRuntimeInSeconds) it saves what it
has and exits 0, within SageMaker's 120-second window.

Run it as SageMaker would, on any machine::

    channels run job.json -- python examples/train.py
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import time
from pathlib import Path

CHANNEL = "train"


def hyperparameter(name: str, default: str) -> str:
    """A hyperparameter as SageMaker writes them: strings in hyperparameters.json."""
    path = Path(os.environ.get("SM_INPUT_CONFIG_DIR", "/opt/ml/input/config")) / "hyperparameters.json"
    try:
        return str(json.loads(path.read_text()).get(name, default))
    except FileNotFoundError:
        return default


def input_mode(channel: str) -> str:
    """The channel's TrainingInputMode ("File" for File and FastFile, or "Pipe")."""
    config = json.loads(os.environ["SM_INPUT_DATA_CONFIG"])
    return config[channel]["TrainingInputMode"]


def read_file_epoch(channel_dir: Path, digest: "hashlib._Hash") -> int:
    """Every file under the channel dir, in key order (as S3 lists them), into ``digest``."""
    paths = sorted((p for p in channel_dir.rglob("*") if p.is_file()),
                   key=lambda p: p.relative_to(channel_dir).as_posix().encode())
    total = 0
    for path in paths:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
                total += len(chunk)
    return total


def wait_for(fifo: str, timeout: float = 600.0) -> None:
    """Wait for an epoch's FIFO: the platform makes epoch e+1's once epoch e is read."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(fifo):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{fifo} did not appear within {timeout:g} s")
        time.sleep(0.01)


def read_pipe_epoch(fifo: str, digest: "hashlib._Hash") -> int:
    """One epoch's FIFO, read to EOF, into ``digest``."""
    wait_for(fifo)
    total = 0
    with open(fifo, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            total += len(chunk)
    return total


def save(model_dir: Path, epochs: list[dict], stopped: bool) -> None:
    """Every host reports what it saw in output/data/<host>.json; the first host saves the model.

    (Hosts' model/ directories are packed into one model.tar.gz, so only one
    of them writes model.json.)
    """
    host = os.environ.get("SM_CURRENT_HOST", "algo-1")
    doc = {"host": host, "epochs": epochs, "stopped": stopped}
    text = json.dumps(doc, indent=2) + "\n"
    output_dir = Path(os.environ.get("SM_OUTPUT_DATA_DIR", "/opt/ml/output/data"))
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / f"{host}.json").write_text(text)
    if host == json.loads(os.environ.get("SM_HOSTS", '["algo-1"]'))[0]:
        model_dir.mkdir(parents=True, exist_ok=True)
        (model_dir / "model.json").write_text(text)


def main() -> int:
    channel_dir = Path(os.environ[f"SM_CHANNEL_{CHANNEL.upper()}"])
    model_dir = Path(os.environ.get("SM_MODEL_DIR", "/opt/ml/model"))
    epochs = int(hyperparameter("epochs", "2"))
    mode = input_mode(CHANNEL)
    done: list[dict] = []

    def on_sigterm(signum, frame):  # MaxRuntimeInSeconds: save and leave within the grace period
        save(model_dir, done, stopped=True)
        print("SIGTERM: saved the model after", len(done), "epoch(s)", flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_sigterm)
    for epoch in range(epochs):
        digest = hashlib.sha256()
        if mode == "Pipe":
            size = read_pipe_epoch(f"{channel_dir}_{epoch}", digest)
        else:
            size = read_file_epoch(channel_dir, digest)
        done.append({"epoch": epoch, "bytes": size, "sha256": digest.hexdigest()})
        print(f"epoch {epoch}: {mode} mode, {size} bytes, sha256 {digest.hexdigest()}", flush=True)
    save(model_dir, done, stopped=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
