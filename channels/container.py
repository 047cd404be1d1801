"""The container layout a training script sees: config files, directories, SM_* env.

SageMaker runs a training script in a container whose root is ``/opt/ml``;
``channels run`` builds the same tree under any directory (one per host):

.. code-block:: text

    ROOT/input/config/inputdataconfig.json   per channel: ContentType, TrainingInputMode
                                             (FastFile written as "File"),
                                             S3DistributionType, RecordWrapperType
    ROOT/input/config/resourceconfig.json    current_host, hosts (algo-1..algo-N), network_interface_name
    ROOT/input/config/hyperparameters.json   every value a string
    ROOT/input/data/<channel>/               File: the downloaded objects; FastFile: the mount
    ROOT/input/data/<channel>_<epoch>        Pipe: one FIFO per epoch
    ROOT/model/                              the script saves its model here
    ROOT/output/data/                        other artifacts
    ROOT/output/failure                      why the job failed (first 1024 chars are the reason)

and the environment the SageMaker training toolkit sets from those files
(:func:`environment`): ``SM_CHANNELS``, ``SM_CHANNEL_<NAME>``, ``SM_HOSTS``,
``SM_CURRENT_HOST``, ``SM_INPUT_DATA_CONFIG``, ``SM_RESOURCE_CONFIG``,
``SM_HPS``, ``SM_HP_<NAME>``, ``SM_MODEL_DIR``, ``SM_OUTPUT_DATA_DIR`` and
the other directories, plus ``TRAINING_JOB_NAME``.

Nothing here starts a process or touches the network: it is the pure part of
the container emulation, so a test can check every file and variable.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from channels.sharding import check_host, host_name
from channels.spec import Job

#: SageMaker's container root.
SAGEMAKER_ROOT = "/opt/ml"
#: The interface name SageMaker writes; ``channels run`` hosts share loopback.
NETWORK_INTERFACE_NAME = "eth0"
#: SageMaker returns this many characters of ``output/failure`` as FailureReason.
FAILURE_REASON_MAX_CHARS = 1024


@dataclass(frozen=True)
class Layout:
    """The directories of one host's container, under ``root``.

    Attributes:
        root: what ``/opt/ml`` is for this host.
    """

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root).absolute())

    @property
    def input_dir(self) -> Path:
        return self.root / "input"

    @property
    def config_dir(self) -> Path:
        return self.input_dir / "config"

    @property
    def data_dir(self) -> Path:
        return self.input_dir / "data"

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    @property
    def output_data_dir(self) -> Path:
        return self.output_dir / "data"

    @property
    def output_intermediate_dir(self) -> Path:
        return self.output_dir / "intermediate"

    @property
    def failure_path(self) -> Path:
        return self.output_dir / "failure"

    @property
    def input_data_config_path(self) -> Path:
        return self.config_dir / "inputdataconfig.json"

    @property
    def resource_config_path(self) -> Path:
        return self.config_dir / "resourceconfig.json"

    @property
    def hyperparameters_path(self) -> Path:
        return self.config_dir / "hyperparameters.json"

    def channel_dir(self, channel: str) -> Path:
        """``input/data/<channel>``: File's download dir, FastFile's mount point."""
        return self.data_dir / channel

    def fifo_path(self, channel: str, epoch: int) -> Path:
        """``input/data/<channel>_<epoch>``: Pipe mode's FIFO for one epoch."""
        return self.data_dir / f"{channel}_{epoch}"

    def make_dirs(self) -> None:
        """Create the directories a script may write to or read from (not the channel dirs)."""
        for d in (self.config_dir, self.data_dir, self.model_dir, self.output_data_dir,
                  self.output_intermediate_dir):
            d.mkdir(parents=True, exist_ok=True)


def container_mode(mode: str) -> str:
    """The TrainingInputMode a script sees: FastFile looks like File to it."""
    return "File" if mode == "FastFile" else mode


def input_data_config(job: Job) -> dict[str, dict[str, str]]:
    """``inputdataconfig.json``: per channel, what SageMaker writes.

    ``ContentType`` only where the channel has one; ``S3DistributionType``
    (sic: not the API's ``S3DataDistributionType``).
    """
    out: dict[str, dict[str, str]] = {}
    for channel in job.channels:
        entry: dict[str, str] = {}
        if channel.content_type is not None:
            entry["ContentType"] = channel.content_type
        entry["TrainingInputMode"] = container_mode(job.mode_of(channel))
        entry["S3DistributionType"] = channel.data_source.distribution
        entry["RecordWrapperType"] = channel.record_wrapper
        out[channel.name] = entry
    return out


def resource_config(host_index: int, hosts: int, instance_type: str | None = None) -> dict:
    """``resourceconfig.json`` of host ``host_index`` (0-based) among ``hosts``.

    Raises:
        ShardingError: ``host_index`` out of range.
    """
    check_host(host_index, hosts)
    # Sorted by host number (algo-2 before algo-10): a host's position in this
    # list is its index for sharding (channels.hosts), on every host alike.
    names = [host_name(i) for i in range(hosts)]
    out: dict = {"current_host": host_name(host_index), "hosts": names}
    if instance_type is not None:
        out["current_instance_type"] = instance_type
    out["network_interface_name"] = NETWORK_INTERFACE_NAME
    return out


def hyperparameters(job: Job) -> dict[str, str]:
    """``hyperparameters.json``: the job's hyperparameters, all strings (as the API has them)."""
    return {k: str(v) for k, v in job.hyperparameters.items()}


def write_config(job: Job, layout: Layout, host_index: int, hosts: int) -> None:
    """Create the layout's directories and write the three config files."""
    layout.make_dirs()
    files = {
        layout.input_data_config_path: input_data_config(job),
        layout.resource_config_path: resource_config(host_index, hosts, job.resource_config.instance_type),
        layout.hyperparameters_path: hyperparameters(job),
    }
    for path, doc in files.items():
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)


def _decoded(value: str) -> object:
    """A hyperparameter as the training toolkit hands it on: JSON where it parses."""
    try:
        return json.loads(value)
    except ValueError:
        return value


def env_name(name: str) -> str:
    """``SM_CHANNEL_<NAME>``'s suffix: upper-cased, other than [A-Z0-9_] as ``_``."""
    return re.sub(r"[^A-Z0-9_]", "_", name.upper())


def environment(job: Job, layout: Layout, host_index: int, hosts: int, *,
                job_name: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of the training script on one host.

    Args:
        job: the job definition.
        layout: this host's directories.
        host_index: this host (0-based).
        hosts: how many hosts.
        job_name: the TrainingJobName (``TRAINING_JOB_NAME``).
        base: the environment to extend (default ``os.environ``); its own
            ``SM_*`` variables are dropped first, so a run inside a run sees
            only its own.

    Returns:
        A new dict: ``base`` plus every variable the training toolkit sets.
    """
    base = os.environ if base is None else base
    env = {k: v for k, v in base.items() if not k.startswith("SM_")}
    resource = resource_config(host_index, hosts, job.resource_config.instance_type)
    hps = {k: _decoded(v) for k, v in hyperparameters(job).items()}
    names = sorted(c.name for c in job.channels)
    env.update({
        "SM_CHANNELS": json.dumps(names),
        "SM_HOSTS": json.dumps(resource["hosts"]),
        "SM_CURRENT_HOST": resource["current_host"],
        "SM_NETWORK_INTERFACE_NAME": NETWORK_INTERFACE_NAME,
        "SM_INPUT_DATA_CONFIG": json.dumps(input_data_config(job), sort_keys=True),
        "SM_RESOURCE_CONFIG": json.dumps(resource, sort_keys=True),
        "SM_HPS": json.dumps(hps, sort_keys=True),
        "SM_MODEL_DIR": str(layout.model_dir),
        "SM_INPUT_DIR": str(layout.input_dir),
        "SM_INPUT_CONFIG_DIR": str(layout.config_dir),
        "SM_OUTPUT_DIR": str(layout.output_dir),
        "SM_OUTPUT_DATA_DIR": str(layout.output_data_dir),
        "SM_OUTPUT_INTERMEDIATE_DIR": str(layout.output_intermediate_dir),
        "SM_NUM_CPUS": str(os.cpu_count() or 1),
        "SM_NUM_GPUS": "0",
        "TRAINING_JOB_NAME": job_name,
    })
    if job.resource_config.instance_type is not None:
        env["SM_CURRENT_INSTANCE_TYPE"] = job.resource_config.instance_type
    for name in names:
        env[f"SM_CHANNEL_{env_name(name)}"] = str(layout.channel_dir(name))
    for key, value in hps.items():
        env[f"SM_HP_{env_name(key)}"] = value if isinstance(value, str) else json.dumps(value)
    return env


def write_failure(layout: Layout, reason: str) -> bool:
    """Write ``output/failure`` unless the script wrote it; True when written here."""
    path = layout.failure_path
    if path.exists() and path.stat().st_size > 0:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(reason.rstrip("\n") + "\n", encoding="utf-8")
    return True


def read_failure(layout: Layout) -> str | None:
    """The failure reason as SageMaker reports it: the file's first 1024 chars, or None."""
    try:
        text = layout.failure_path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None
    return text[:FAILURE_REASON_MAX_CHARS].strip() or None
