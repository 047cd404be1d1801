"""The training-job definition: frozen dataclasses, validated at construction.

A :class:`Job` is read from and written to the API's own JSON (PascalCase) in
two shapes:

* ``"definition"``: SageMaker's TrainingJobDefinition, with a top-level
  ``TrainingInputMode``;
* ``"request"``: a CreateTrainingJob request, with
  ``AlgorithmSpecification.TrainingInputMode`` and ``TrainingJobName``.

Both carry ``HyperParameters``, ``InputDataConfig``, ``OutputDataConfig``,
``ResourceConfig`` and ``StoppingCondition``. Real API keys that do not touch
the data path (``RoleArn``, ``TrainingImage``, ``VpcConfig``, ...) are accepted
and dropped; keys that look like a typo of a known key are reported, and a
Channel, its DataSource and ShuffleConfig accept no unknown key at all.
Where the API requires ResourceConfig and StoppingCondition, channels fills in
the dataclass defaults (1 host, 30 GB, 86400 s) when they are missing.

Every object checks itself against the documented limits (the constants
below) in ``__post_init__`` and raises :class:`~channels.errors.SpecError`
listing every problem, each with its field path in the API's JSON.

Choices beyond the API: FastFile channels must be S3Prefix (SageMaker does not
support augmented manifests in FastFile, and our lazy tree does not support
manifest files either); RecordIO wrapping, like Gzip, needs Pipe mode (the API
says to leave it None in File mode); channel names may not be ``.`` or ``..``
nor differ only in case (they become directories and ``SM_CHANNEL_<NAME>``).
"""

from __future__ import annotations

import contextvars
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

from channels._validate import Problem, Problems, a_type, join, parse_job, show, summary
from channels.errors import ChannelsError, SourceNotFoundError, SpecError

__all__ = [
    "INPUT_MODES", "SHAPES", "Channel", "FrozenMap", "Job", "OutputDataConfig", "ResourceConfig",
    "S3DataSource", "StoppingCondition", "UnknownChannelError", "effective_input_mode",
]

# -- documented limits ------------------------------------------------------
INPUT_MODES = ("Pipe", "File", "FastFile")
SHAPES = ("definition", "request")
MIN_CHANNELS, MAX_CHANNELS = 1, 20
CHANNEL_NAME_MAX_LEN = 64
CHANNEL_NAME_PATTERN = re.compile(r"[A-Za-z0-9\.\-_]+")
RESERVED_CHANNEL_NAMES = (".", "..")  # ours: the name becomes a directory
CONTENT_TYPE_MAX_LEN = 256
COMPRESSION_TYPES = ("None", "Gzip")
RECORD_WRAPPER_TYPES = ("None", "RecordIO")
PIPE_ONLY_MODE = "Pipe"  # the one mode where Gzip and RecordIO apply
SEED_MIN, SEED_MAX = -(2**63), 2**63 - 1  # ShuffleConfig.Seed is a Long
S3_DATA_TYPES = ("S3Prefix", "ManifestFile", "AugmentedManifestFile")
FASTFILE_DATA_TYPES = ("S3Prefix",)
DISTRIBUTION_TYPES = ("FullyReplicated", "ShardedByS3Key")
MAX_ATTRIBUTE_NAMES = 16
ATTRIBUTE_NAME_MAX_LEN = 256
URI_MAX_LEN = 1024
MAX_HYPERPARAMETERS = 100
HYPERPARAMETER_KEY_MAX_LEN = 256
HYPERPARAMETER_VALUE_MAX_LEN = 2500
TRAINING_JOB_NAME_MAX_LEN = 63
TRAINING_JOB_NAME_PATTERN = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
MIN_INSTANCE_COUNT = MIN_VOLUME_SIZE_GB = MIN_MAX_RUNTIME_SECONDS = 1

# While set, __post_init__ skips its check: Job.from_dict builds the whole
# tree first, then checks it once so that it can report every problem.
_DEFERRED: contextvars.ContextVar[bool] = contextvars.ContextVar("channels_spec_deferred", default=False)


def _validated(obj: object, what: str) -> None:
    if _DEFERRED.get():
        return
    problems = obj._problems()  # type: ignore[attr-defined]
    if problems:
        raise SpecError(summary(problems, what), problems=problems)


class UnknownChannelError(ChannelsError, KeyError):
    """A channel name that is not in the job; the message lists the valid ones."""


class FrozenMap(Mapping[str, str]):
    """A read-only, hashable, picklable mapping (the job's hyperparameters)."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        self._data = dict(data)

    def __getitem__(self, key: str) -> str:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"


@dataclass(frozen=True, slots=True)
class S3DataSource:
    """Where a channel's objects are (JSON: ``DataSource.S3DataSource``).

    Attributes:
        s3_data_type: S3Prefix, ManifestFile or AugmentedManifestFile.
        s3_uri: ``s3://bucket/prefix`` or any fsspec URL with a scheme.
        distribution: FullyReplicated or ShardedByS3Key.
        attribute_names: the attributes streamed, in order; AugmentedManifestFile only.
    """

    s3_data_type: str
    s3_uri: str
    distribution: str = "FullyReplicated"
    attribute_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.attribute_names, list):
            object.__setattr__(self, "attribute_names", tuple(self.attribute_names))
        _validated(self, "S3DataSource")

    def _problems(self) -> list[Problem]:
        p = Problems()
        p.choice("S3DataType", self.s3_data_type, S3_DATA_TYPES, required=True)
        p.url("S3Uri", self.s3_uri, max_len=URI_MAX_LEN)
        p.choice("S3DataDistributionType", self.distribution, DISTRIBUTION_TYPES, required=True)
        names = self.attribute_names
        if not isinstance(names, tuple):
            p.add("AttributeNames", f"{show(names)} is {a_type(names)}; give a list of strings")
        elif self.s3_data_type == "AugmentedManifestFile":
            if not 1 <= len(names) <= MAX_ATTRIBUTE_NAMES:
                p.add("AttributeNames", f"{len(names)} names; AugmentedManifestFile needs 1 to {MAX_ATTRIBUTE_NAMES}: "
                                        'list the attributes to stream, in order, e.g. ["source-ref", "class"]')
            for i, name in enumerate(names):
                p.string(f"AttributeNames[{i}]", name, min_len=1, max_len=ATTRIBUTE_NAME_MAX_LEN, required=True)
        elif names:
            p.add("AttributeNames", f"{show(list(names))} given, but AttributeNames applies only to "
                                    "S3DataType AugmentedManifestFile; remove it or change S3DataType")
        return p.items

    def to_dict(self) -> dict:
        """The API's ``S3DataSource`` JSON object."""
        out = {"S3DataType": self.s3_data_type, "S3Uri": self.s3_uri,
               "S3DataDistributionType": self.distribution}
        if self.attribute_names:
            out["AttributeNames"] = list(self.attribute_names)
        return out


@dataclass(frozen=True, slots=True)
class Channel:
    """One named input (JSON: an element of ``InputDataConfig``).

    Attributes:
        name: ChannelName, unique in the job.
        data_source: where the objects are.
        content_type: the MIME type, passed to the script as is.
        compression: None or Gzip (Gzip only in Pipe mode).
        record_wrapper: None or RecordIO (RecordIO only in Pipe mode).
        shuffle_seed: ShuffleConfig.Seed; None means no shuffling.
        input_mode: this channel's InputMode; None means the job's.
    """

    name: str
    data_source: S3DataSource
    content_type: str | None = None
    compression: str = "None"
    record_wrapper: str = "None"
    shuffle_seed: int | None = None
    input_mode: str | None = None

    def __post_init__(self) -> None:
        _validated(self, "channel")

    def _problems(self) -> list[Problem]:
        p = Problems()
        if p.string("ChannelName", self.name, min_len=1, max_len=CHANNEL_NAME_MAX_LEN, required=True,
                    pattern=CHANNEL_NAME_PATTERN, pattern_help="letters, digits, '.', '-', '_'") \
                and self.name in RESERVED_CHANNEL_NAMES:
            p.add("ChannelName", f"{show(self.name)} cannot name a channel directory; rename it")
        if isinstance(self.data_source, S3DataSource):
            p.extend("DataSource.S3DataSource", self.data_source._problems())
        else:
            p.add("DataSource.S3DataSource", f"{show(self.data_source)} is not an S3DataSource")
        p.string("ContentType", self.content_type, max_len=CONTENT_TYPE_MAX_LEN)
        p.choice("CompressionType", self.compression, COMPRESSION_TYPES, required=True)
        p.choice("RecordWrapperType", self.record_wrapper, RECORD_WRAPPER_TYPES, required=True)
        p.integer("ShuffleConfig.Seed", self.shuffle_seed, minimum=SEED_MIN, maximum=SEED_MAX, required=False)
        if self.input_mode is not None and p.choice("InputMode", self.input_mode, INPUT_MODES):
            p.extend("", _mode_problems(self, self.input_mode, "this channel's InputMode"))
        return p.items

    def to_dict(self) -> dict:
        """The API's ``Channel`` JSON object."""
        out: dict = {"ChannelName": self.name, "DataSource": {"S3DataSource": self.data_source.to_dict()}}
        if self.content_type is not None:
            out["ContentType"] = self.content_type
        out["CompressionType"] = self.compression
        out["RecordWrapperType"] = self.record_wrapper
        if self.input_mode is not None:
            out["InputMode"] = self.input_mode
        if self.shuffle_seed is not None:
            out["ShuffleConfig"] = {"Seed": self.shuffle_seed}
        return out


def _mode_problems(channel: Channel, mode: str, source: str) -> list[Problem]:
    """Problems of a channel that only its effective input mode reveals."""
    out = []
    if channel.compression == "Gzip" and mode != PIPE_ONLY_MODE:
        out.append(("CompressionType", f'"Gzip" needs Pipe input mode, but {source} is {mode}: '
                                       'set CompressionType "None" (or omit it), or use InputMode "Pipe"'))
    if channel.record_wrapper == "RecordIO" and mode != PIPE_ONLY_MODE:
        out.append(("RecordWrapperType", f'"RecordIO" needs Pipe input mode, but {source} is {mode}: '
                                         'set RecordWrapperType "None" (or omit it), or use InputMode "Pipe"'))
    kind = getattr(channel.data_source, "s3_data_type", None)
    if mode == "FastFile" and kind in S3_DATA_TYPES and kind not in FASTFILE_DATA_TYPES:
        out.append(("DataSource.S3DataSource.S3DataType",
                    f"{show(kind)} cannot be read in FastFile mode ({source} is FastFile); FastFile shows "
                    "an S3Prefix as a lazy file tree: use File or Pipe mode, or an S3Prefix"))
    return out


@dataclass(frozen=True, slots=True)
class ResourceConfig:
    """The hosts (JSON: ``ResourceConfig``): InstanceCount, InstanceType, VolumeSizeInGB."""

    instance_count: int = 1
    instance_type: str | None = None
    volume_size_gb: int = 30

    def __post_init__(self) -> None:
        _validated(self, "ResourceConfig")

    def _problems(self) -> list[Problem]:
        p = Problems()
        p.integer("InstanceCount", self.instance_count, minimum=MIN_INSTANCE_COUNT)
        p.string("InstanceType", self.instance_type, min_len=1, max_len=256)
        p.integer("VolumeSizeInGB", self.volume_size_gb, minimum=MIN_VOLUME_SIZE_GB)
        return p.items

    def to_dict(self) -> dict:
        out: dict = {"InstanceCount": self.instance_count}
        if self.instance_type is not None:
            out["InstanceType"] = self.instance_type
        out["VolumeSizeInGB"] = self.volume_size_gb
        return out


@dataclass(frozen=True, slots=True)
class StoppingCondition:
    """The time limit (JSON: ``StoppingCondition.MaxRuntimeInSeconds``)."""

    max_runtime_seconds: int = 86400

    def __post_init__(self) -> None:
        _validated(self, "StoppingCondition")

    def _problems(self) -> list[Problem]:
        p = Problems()
        p.integer("MaxRuntimeInSeconds", self.max_runtime_seconds, minimum=MIN_MAX_RUNTIME_SECONDS)
        return p.items

    def to_dict(self) -> dict:
        return {"MaxRuntimeInSeconds": self.max_runtime_seconds}


@dataclass(frozen=True, slots=True)
class OutputDataConfig:
    """Where model artifacts go (JSON: ``OutputDataConfig.S3OutputPath``)."""

    s3_output_path: str

    def __post_init__(self) -> None:
        _validated(self, "OutputDataConfig")

    def _problems(self) -> list[Problem]:
        p = Problems()
        p.url("S3OutputPath", self.s3_output_path, max_len=URI_MAX_LEN)
        return p.items

    def to_dict(self) -> dict:
        return {"S3OutputPath": self.s3_output_path}


@dataclass(frozen=True, slots=True)
class Job:
    """A training job's definition, as far as the data path needs it.

    Attributes:
        channels: 1 to 20 channels with unique names (JSON: ``InputDataConfig``).
        input_mode: the job's TrainingInputMode; a channel's InputMode overrides it.
        resource_config: hosts and volume.
        stopping_condition: time limit.
        output_data_config: where model artifacts go.
        hyperparameters: string to string, read-only (a :class:`FrozenMap`).
        training_job_name: TrainingJobName, if known.
    """

    channels: tuple[Channel, ...]
    input_mode: str
    resource_config: ResourceConfig
    stopping_condition: StoppingCondition
    output_data_config: OutputDataConfig
    hyperparameters: Mapping[str, str] = field(default_factory=FrozenMap)
    training_job_name: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.channels, list):
            object.__setattr__(self, "channels", tuple(self.channels))
        if isinstance(self.hyperparameters, Mapping) and not isinstance(self.hyperparameters, FrozenMap):
            object.__setattr__(self, "hyperparameters", FrozenMap(self.hyperparameters))
        _validated(self, "job definition")

    def _problems(self) -> list[Problem]:
        p = Problems()
        p.string("TrainingJobName", self.training_job_name, min_len=1, max_len=TRAINING_JOB_NAME_MAX_LEN,
                 pattern=TRAINING_JOB_NAME_PATTERN, pattern_help="letters, digits and inner hyphens")
        mode_ok = p.choice("TrainingInputMode", self.input_mode, INPUT_MODES, required=True)
        _hyperparameter_problems(p, self.hyperparameters)
        _channels_problems(p, self.channels, self.input_mode if mode_ok else None)
        for path, part, kind in (("ResourceConfig", self.resource_config, ResourceConfig),
                                 ("StoppingCondition", self.stopping_condition, StoppingCondition),
                                 ("OutputDataConfig", self.output_data_config, OutputDataConfig)):
            if isinstance(part, kind):
                p.extend(path, part._problems())
            else:
                p.add(path, f"{show(part)} is not a {kind.__name__}")
        return p.items

    def channel(self, name: str) -> Channel:
        """The channel called ``name``; UnknownChannelError (a KeyError) lists the valid names."""
        for channel in self.channels:
            if channel.name == name:
                return channel
        names = [c.name for c in self.channels]
        raise UnknownChannelError(f"no channel {name!r} in this job; its channels: {', '.join(names)}",
                                  name=name, valid=names)

    def mode_of(self, channel: Channel | str) -> str:
        """The input mode a channel (or channel name) is delivered in."""
        return effective_input_mode(self, self.channel(channel) if isinstance(channel, str) else channel)

    @classmethod
    def from_dict(cls, data: Mapping) -> Job:
        """Build a Job from the API's JSON, in either shape.

        Args:
            data: a TrainingJobDefinition or a CreateTrainingJob request, as parsed JSON.

        Raises:
            SpecError: listing every problem (not just the first), each with its
                field path, e.g. ``InputDataConfig[2].DataSource.S3DataSource.S3Uri``.
        """
        if not isinstance(data, Mapping):
            problems = [("", f"{show(data)} is {a_type(data)}; a job definition is a JSON object")]
            raise SpecError(summary(problems, "job definition"), problems=problems)
        p = Problems()
        token = _DEFERRED.set(True)
        try:
            job, shape = parse_job(data, p)
        finally:
            _DEFERRED.reset(token)
        for path, message in job._problems():
            if shape == "request" and path == "TrainingInputMode":
                path = "AlgorithmSpecification.TrainingInputMode"
            p.add(path, message)
        problems = p.result()
        if problems:
            raise SpecError(summary(problems, "job definition"), problems=problems)
        return job

    def to_dict(self, shape: str = "definition") -> dict:
        """The API's JSON: shape "definition" (TrainingJobDefinition) or "request" (CreateTrainingJob).

        The request lacks what channels does not know (RoleArn, TrainingImage);
        the definition carries TrainingJobName when there is one.
        """
        if shape not in SHAPES:
            raise ValueError(f"unknown shape {shape!r}; valid shapes: {', '.join(SHAPES)}")
        out: dict = {}
        if self.training_job_name is not None:
            out["TrainingJobName"] = self.training_job_name
        if shape == "request":
            out["AlgorithmSpecification"] = {"TrainingInputMode": self.input_mode}
        else:
            out["TrainingInputMode"] = self.input_mode
        out["HyperParameters"] = dict(self.hyperparameters)
        out["InputDataConfig"] = [c.to_dict() for c in self.channels]
        out["OutputDataConfig"] = self.output_data_config.to_dict()
        out["ResourceConfig"] = self.resource_config.to_dict()
        out["StoppingCondition"] = self.stopping_condition.to_dict()
        return out

    @classmethod
    def load(cls, path: str | PathLike) -> Job:
        """Read a job file (either shape).

        Raises:
            SourceNotFoundError: no such file.
            SpecError: not UTF-8, malformed JSON (the message names line and
                column; ``problems`` is empty), or a definition with problems.
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise SourceNotFoundError(f"{path}: no such job file", path=str(path)) from exc
        except UnicodeDecodeError as exc:
            raise SpecError(f"{path}: not UTF-8 text (byte {exc.start}); save the job file as UTF-8 JSON",
                            path=str(path)) from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(f"{path}: malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
                            path=str(path), line=exc.lineno, column=exc.colno) from exc
        try:
            return cls.from_dict(data)
        except SpecError as exc:
            raise SpecError(summary(exc.problems, f"job definition {path}"), problems=exc.problems,
                            path=str(path)) from exc

    def dump(self, path: str | PathLike, shape: str = "definition") -> None:
        """Write the job as indented JSON in the given shape."""
        Path(path).write_text(json.dumps(self.to_dict(shape), indent=2) + "\n", encoding="utf-8")


def effective_input_mode(job: Job, channel: Channel) -> str:
    """The channel's own InputMode, else the job's TrainingInputMode."""
    return channel.input_mode or job.input_mode


def _hyperparameter_problems(p: Problems, hyperparameters: object) -> None:
    if not isinstance(hyperparameters, Mapping):
        p.add("HyperParameters", f"{show(hyperparameters)} is not an object; give a map of string to string")
        return
    if len(hyperparameters) > MAX_HYPERPARAMETERS:
        p.add("HyperParameters", f"{len(hyperparameters)} entries; at most {MAX_HYPERPARAMETERS} allowed: "
                                 "drop some or pass them in a file")
    for key, value in hyperparameters.items():
        path = f"HyperParameters[{show(key)}]"
        if not isinstance(key, str):
            p.add(path, f"key {show(key)} is {a_type(key)}; keys must be strings")
        elif len(key) > HYPERPARAMETER_KEY_MAX_LEN:
            p.add(path, f"key of {len(key)} chars is longer than the limit of {HYPERPARAMETER_KEY_MAX_LEN}; shorten it")
        if not isinstance(value, str):
            try:
                quoted = json.dumps(json.dumps(value))
            except (TypeError, ValueError):
                quoted = '"..."'
            p.add(path, f"{show(value)} is {a_type(value)}, not a string; hyperparameter values must be "
                        f"strings of at most {HYPERPARAMETER_VALUE_MAX_LEN} chars: quote it, as {quoted}")
        elif len(value) > HYPERPARAMETER_VALUE_MAX_LEN:
            p.add(path, f"{show(value)} is longer than the limit of {HYPERPARAMETER_VALUE_MAX_LEN} chars; "
                        "shorten it or pass it in a file")


def _channels_problems(p: Problems, channels: object, job_mode: str | None) -> None:
    if not isinstance(channels, tuple):
        p.add("InputDataConfig", f"{show(channels)} is not a list of channels")
        return
    if not MIN_CHANNELS <= len(channels) <= MAX_CHANNELS:
        fix = "add one" if not channels else "remove or merge channels"
        p.add("InputDataConfig", f"{len(channels)} channels; a job has {MIN_CHANNELS} to {MAX_CHANNELS}: {fix}")
    seen: dict[str, int] = {}
    for i, channel in enumerate(channels):
        where = f"InputDataConfig[{i}]"
        if not isinstance(channel, Channel):
            p.add(where, f"{show(channel)} is not a Channel")
            continue
        p.extend(where, channel._problems())
        if job_mode is not None and channel.input_mode is None:
            p.extend(where, _mode_problems(channel, job_mode, "the job's TrainingInputMode"))
        if not isinstance(channel.name, str):
            continue
        first = seen.setdefault(channel.name.lower(), i)
        if first != i:
            other = channels[first].name
            clash = "is already" if other == channel.name else f"differs only in case from {show(other)},"
            p.add(join(where, "ChannelName"), f"{show(channel.name)} {clash} the name of InputDataConfig[{first}]; "
                                              "channel names must be unique (ignoring case): rename one")
