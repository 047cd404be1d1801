"""The training-job definition: frozen dataclasses, validated at construction; each beside its JSON reader.

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

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

from channels.errors import ChannelsError, SpecError
from channels.spec import limits
from channels.spec.channel import Channel, mode_problems, parse_channel
from channels.spec.jsonfile import read_job_file
from channels.spec.problems import (
    Problem,
    Problems,
    a_type,
    as_object,
    deferred,
    join,
    quote_hint,
    show,
    summary,
    validated,
)


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
class ResourceConfig:
    """The hosts (JSON: ``ResourceConfig``): InstanceCount, InstanceType, VolumeSizeInGB."""

    instance_count: int = 1
    instance_type: str | None = None
    volume_size_gb: int = 30

    def __post_init__(self) -> None:
        validated(self, "ResourceConfig")

    def _problems(self) -> list[Problem]:
        p = Problems()
        p.integer("InstanceCount", self.instance_count, minimum=limits.MIN_INSTANCE_COUNT)
        p.string("InstanceType", self.instance_type, min_len=1, max_len=256)
        p.integer("VolumeSizeInGB", self.volume_size_gb, minimum=limits.MIN_VOLUME_SIZE_GB)
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
        validated(self, "StoppingCondition")

    def _problems(self) -> list[Problem]:
        p = Problems()
        p.integer("MaxRuntimeInSeconds", self.max_runtime_seconds, minimum=limits.MIN_MAX_RUNTIME_SECONDS)
        return p.items

    def to_dict(self) -> dict:
        return {"MaxRuntimeInSeconds": self.max_runtime_seconds}


@dataclass(frozen=True, slots=True)
class OutputDataConfig:
    """Where model artifacts go (JSON: ``OutputDataConfig.S3OutputPath``)."""

    s3_output_path: str

    def __post_init__(self) -> None:
        validated(self, "OutputDataConfig")

    def _problems(self) -> list[Problem]:
        p = Problems()
        p.url("S3OutputPath", self.s3_output_path, max_len=limits.URI_MAX_LEN)
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
        validated(self, "job definition")

    def _problems(self) -> list[Problem]:
        p = Problems()
        p.string("TrainingJobName", self.training_job_name, min_len=1, max_len=limits.TRAINING_JOB_NAME_MAX_LEN,
                 pattern=limits.TRAINING_JOB_NAME_PATTERN, pattern_help="letters, digits and inner hyphens")
        mode_ok = p.choice("TrainingInputMode", self.input_mode, limits.INPUT_MODES, required=True)
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
        with deferred():
            job, shape = parse_job(data, p)
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
        if shape not in limits.SHAPES:
            raise ValueError(f"unknown shape {shape!r}; valid shapes: {', '.join(limits.SHAPES)}")
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
        """Read a job file (either shape), as :func:`~channels.spec.jsonfile.read_job_file` reads JSON.

        Raises:
            SourceNotFoundError: no such file.
            SpecError: unreadable, not UTF-8, malformed JSON (the message names line
                and column), too deep, a huge number, a duplicate key, not an object
                (``problems`` empty, one line), or a definition with problems.
        """
        data = read_job_file(path)
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
    if len(hyperparameters) > limits.MAX_HYPERPARAMETERS:
        p.add("HyperParameters", f"{len(hyperparameters)} entries; at most {limits.MAX_HYPERPARAMETERS} allowed: "
                                 "drop some or pass them in a file")
    for key, value in hyperparameters.items():
        path = f"HyperParameters[{show(key)}]"
        if not isinstance(key, str):
            p.add(path, f"key {show(key)} is {a_type(key)}; keys must be strings")
        elif len(key) > limits.HYPERPARAMETER_KEY_MAX_LEN:
            p.add(path, f"key of {len(key)} chars is longer than the limit of "
                        f"{limits.HYPERPARAMETER_KEY_MAX_LEN}; shorten it")
        if not isinstance(value, str):
            p.add(path, f"{show(value)} is {a_type(value)}, not a string; hyperparameter values must be "
                        f"strings of at most {limits.HYPERPARAMETER_VALUE_MAX_LEN} chars: {quote_hint(value)}")
        elif len(value) > limits.HYPERPARAMETER_VALUE_MAX_LEN:
            p.add(path, f"{show(value)} is longer than the limit of {limits.HYPERPARAMETER_VALUE_MAX_LEN} chars; "
                        "shorten it or pass it in a file")


def _channels_problems(p: Problems, channels: object, job_mode: str | None) -> None:
    if not isinstance(channels, tuple):
        p.add("InputDataConfig", f"{show(channels)} is not a list of channels")
        return
    if not limits.MIN_CHANNELS <= len(channels) <= limits.MAX_CHANNELS:
        fix = "add one" if not channels else "remove or merge channels"
        p.add("InputDataConfig",
              f"{len(channels)} channels; a job has {limits.MIN_CHANNELS} to {limits.MAX_CHANNELS}: {fix}")
    seen: dict[str, int] = {}
    for i, channel in enumerate(channels):
        where = f"InputDataConfig[{i}]"
        if not isinstance(channel, Channel):
            p.add(where, f"{show(channel)} is not a Channel")
            continue
        p.extend(where, channel._problems())
        if job_mode is not None and channel.input_mode is None:
            p.extend(where, mode_problems(channel, job_mode, "the job's TrainingInputMode"))
        if not isinstance(channel.name, str):
            continue
        first = seen.setdefault(channel.name.lower(), i)
        if first != i:
            other = channels[first].name
            clash = "is already" if other == channel.name else f"differs only in case from {show(other)},"
            p.add(join(where, "ChannelName"), f"{show(channel.name)} {clash} the name of InputDataConfig[{first}]; "
                                              "channel names must be unique (ignoring case): rename one")


def parse_job(data: Mapping, p: Problems) -> tuple[Job, str]:
    """Build a Job (checks deferred by the caller) and tell which shape it came in."""
    p.keys("", data, limits.TOP_KEYS, ignored=limits.TOP_IGNORED, strict=False)
    shape = "request" if "AlgorithmSpecification" in data else "definition"
    mode = data.get("TrainingInputMode")
    if shape == "request":
        algorithm = as_object(p, "AlgorithmSpecification", data["AlgorithmSpecification"], required=True)
        p.keys("AlgorithmSpecification", algorithm, ("TrainingInputMode",), ignored=limits.ALGORITHM_IGNORED,
               strict=False)
        if "TrainingInputMode" in data:
            p.add("TrainingInputMode", "given at the top level and in AlgorithmSpecification; a CreateTrainingJob "
                                       "request sets it only in AlgorithmSpecification: remove this one")
        mode = algorithm.get("TrainingInputMode")
    raw_channels = data.get("InputDataConfig")
    if raw_channels is not None and not isinstance(raw_channels, list):
        p.add("InputDataConfig", f"{show(raw_channels)} is {a_type(raw_channels)}; give a list of 1 to 20 channels")
        p.broken.add("InputDataConfig")
        raw_channels = []
    channels = [parse_channel(raw, p, f"InputDataConfig[{i}]") for i, raw in enumerate(raw_channels or [])]
    hyperparameters = as_object(p, "HyperParameters", data.get("HyperParameters"))
    resource = as_object(p, "ResourceConfig", data.get("ResourceConfig"))
    p.keys("ResourceConfig", resource, limits.RESOURCE_KEYS, ignored=limits.RESOURCE_IGNORED,
           unsupported=limits.UNSUPPORTED_KEYS, strict=False)
    stopping = as_object(p, "StoppingCondition", data.get("StoppingCondition"))
    p.keys("StoppingCondition", stopping, ("MaxRuntimeInSeconds",), ignored=limits.STOPPING_IGNORED, strict=False)
    output = as_object(p, "OutputDataConfig", data.get("OutputDataConfig"), required=True)
    p.keys("OutputDataConfig", output, ("S3OutputPath",), ignored=limits.OUTPUT_IGNORED, strict=False)
    job = Job(
        channels=tuple(channels),
        input_mode=mode,
        resource_config=ResourceConfig(resource.get("InstanceCount", 1), resource.get("InstanceType"),
                                            resource.get("VolumeSizeInGB", 30)),
        stopping_condition=StoppingCondition(stopping.get("MaxRuntimeInSeconds", 86400)),
        output_data_config=OutputDataConfig(output.get("S3OutputPath")),
        hyperparameters=hyperparameters,
        training_job_name=data.get("TrainingJobName"),
    )
    return job, shape
