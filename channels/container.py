"""The container layout a training script sees: config files, directories, SM_* env.

SageMaker runs a training script in a container whose root is ``/opt/ml``;
``channels run`` builds the same tree under any directory (one per host):

.. code-block:: text

    ROOT/input/config/inputdataconfig.json   per channel: ContentType, TrainingInputMode
                                             (FastFile written as "File"),
                                             S3DistributionType, RecordWrapperType
    ROOT/input/config/resourceconfig.json    current_host, current_instance_type, current_group_name,
                                             hosts (algo-1..algo-N), instance_groups (one group,
                                             "homogeneousCluster"), network_interface_name
    ROOT/input/config/hyperparameters.json   every value a string
    ROOT/input/data/<channel>/               File: the downloaded objects; FastFile: the mount
    ROOT/input/data/<channel>_<epoch>        Pipe: one FIFO per epoch
    ROOT/model/                              the script saves its model here
    ROOT/output/data/                        other artifacts
    ROOT/output/failure                      why the job failed (first 1024 chars are the reason)

The environment a script gets from those files (``SM_*`` as the SageMaker
training toolkit's ``to_env_vars()`` gives them) is
:mod:`channels.run.environment`'s.

Nothing here starts a process or touches the network: it is the pure part of
the container emulation, so a test can check every file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from channels.folders import make_dirs
from channels.sharding import check_host, host_name
from channels.spec import Job

#: SageMaker's container root.
SAGEMAKER_ROOT = "/opt/ml"
#: The interface name SageMaker writes; ``channels run`` hosts share loopback.
NETWORK_INTERFACE_NAME = "eth0"
#: The one instance group of a homogeneous cluster, as SageMaker names it.
INSTANCE_GROUP = "homogeneousCluster"
#: The instance type written when the job names none (the training toolkit's own default).
LOCAL_INSTANCE_TYPE = "local"
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
    def code_dir(self) -> Path:
        """``code/``: where a framework container keeps the script's source."""
        return self.root / "code"

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
        """Create the directories a script may write to or read from (not the channel dirs).

        None of them group- or world-writable, whatever the umask.
        """
        for d in (self.config_dir, self.data_dir, self.model_dir, self.output_data_dir,
                  self.output_intermediate_dir):
            make_dirs(d)


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

    As SageMaker writes it for a homogeneous cluster: every host in one
    instance group, ``homogeneousCluster``, which the training toolkit reads
    for ``current_instance_group``, ``instance_groups`` and the hosts of a
    distributed launch. ``instance_type`` None writes "local", the toolkit's
    own word for an unnamed type.

    Raises:
        ShardingError: ``host_index`` out of range.
    """
    check_host(host_index, hosts)
    # Sorted by host number (algo-2 before algo-10): a host's position in this
    # list is its index for sharding (channels.hosts), on every host alike.
    names = [host_name(i) for i in range(hosts)]
    kind = instance_type or LOCAL_INSTANCE_TYPE
    return {
        "current_host": host_name(host_index),
        "current_instance_type": kind,
        "current_group_name": INSTANCE_GROUP,
        "hosts": names,
        "instance_groups": [{"instance_group_name": INSTANCE_GROUP, "instance_type": kind, "hosts": names}],
        "network_interface_name": NETWORK_INTERFACE_NAME,
    }


def hyperparameters(job: Job) -> dict[str, str]:
    """``hyperparameters.json``: the job's hyperparameters, all strings (as the API has them)."""
    return {k: str(v) for k, v in job.hyperparameters.items()}


def write_config(job: Job, layout: Layout, host_index: int, hosts: int,
                 extra_hyperparameters: Mapping[str, str] | None = None) -> None:
    """Create the layout's directories and write the three config files.

    ``extra_hyperparameters`` are written beside the job's (and win), as the
    SageMaker SDK adds ``sagemaker_program`` and its kin for a framework script.
    """
    layout.make_dirs()
    files = {
        layout.input_data_config_path: input_data_config(job),
        layout.resource_config_path: resource_config(host_index, hosts, job.resource_config.instance_type),
        layout.hyperparameters_path: hyperparameters(job) | dict(extra_hyperparameters or {}),
    }
    for path, doc in files.items():
        _write_json(path, doc)


def merge_input_data_config(job: Job, layout: Layout) -> bool:
    """Write the job's channels into ``inputdataconfig.json``, keeping other channels already there.

    What ``channels pipe`` does on its own: AWS's PipeModeDataset refuses a
    channel that this file does not declare in Pipe mode. Returns True when
    the file was written (False: it already said the same).
    """
    path = layout.input_data_config_path
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):  # the folders are made below, or refused there
        doc = {}
    except ValueError as exc:
        raise ValueError(f"{path} is not JSON ({exc}): fix or remove it; channels writes it anew "
                         "from the job") from exc
    if not isinstance(doc, dict):
        raise ValueError(f"{path} is not a JSON object: fix or remove it; channels writes it anew from the job")
    merged = doc | input_data_config(job)
    if merged == doc:
        return False
    make_dirs(path.parent)
    _write_json(path, merged)
    return True


def _write_json(path: Path, doc: object) -> None:
    """Write ``doc`` whole (a temporary file renamed), readable by all and writable by its owner only."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    os.fchmod(fd, 0o644)  # a leftover temporary file keeps its mode otherwise
    with open(fd, "w", encoding="utf-8") as f:
        f.write(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, path)


def env_name(name: str) -> str:
    """``SM_CHANNEL_<NAME>``'s (and ``SM_HP_<NAME>``'s) suffix, as the training toolkit makes it.

    The name upper-cased and nothing else: ``val-data`` gives
    ``SM_CHANNEL_VAL-DATA``, a name a shell cannot expand but ``os.environ``
    reads.
    """
    return name.upper()


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
