"""The spec layer: both JSON shapes, every documented limit, round trips."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from channels import spec
from channels.errors import SourceNotFoundError, SpecError
from channels.spec import (
    INPUT_MODES, SHAPES, Channel, FrozenMap, Job, OutputDataConfig, ResourceConfig, S3DataSource,
    StoppingCondition, UnknownChannelError, effective_input_mode,
)

JOBS = Path(__file__).parent / "data" / "jobs"


def s3(uri: str, kind: str = "S3Prefix", **extra) -> dict:
    return {"S3DataSource": {"S3DataType": kind, "S3Uri": uri, **extra}}


def definition() -> dict:
    """A valid TrainingJobDefinition with three channels (so index 2 exists)."""
    return {
        "TrainingInputMode": "Pipe",
        "HyperParameters": {"epochs": "3"},
        "InputDataConfig": [
            {"ChannelName": "train", "DataSource": s3("s3://b/train/")},
            {"ChannelName": "validation", "DataSource": s3("s3://b/val/"), "InputMode": "File"},
            {"ChannelName": "test", "DataSource": s3("s3://b/test/")},
        ],
        "OutputDataConfig": {"S3OutputPath": "s3://b/out/"},
        "ResourceConfig": {"InstanceCount": 2, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    }


def problems_of(data: dict) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as info:
        Job.from_dict(data)
    return info.value.problems


def chan(data: dict, i: int = 2) -> dict:
    return data["InputDataConfig"][i]


def source(data: dict, i: int = 2) -> dict:
    return chan(data, i)["DataSource"]["S3DataSource"]


# -- both shapes ---------------------------------------------------------------

def test_definition_shape_is_read():
    job = Job.load(JOBS / "definition.json")
    assert job.input_mode == "Pipe"
    assert [c.name for c in job.channels] == ["train", "validation", "images", "labels"]
    train = job.channel("train")
    assert train.compression == "Gzip" and train.record_wrapper == "RecordIO"
    assert train.shuffle_seed == 1234 and train.data_source.distribution == "ShardedByS3Key"
    assert job.channel("labels").data_source.attribute_names == ("source-ref", "class")
    assert job.resource_config == ResourceConfig(4, "ml.p4d.24xlarge", 200)
    assert job.stopping_condition == StoppingCondition(172800)
    assert dict(job.hyperparameters) == {"epochs": "10", "learning_rate": "0.001", "batch_size": "256"}
    assert job.training_job_name is None


def test_request_shape_is_read_and_off_path_keys_dropped():
    job = Job.load(JOBS / "request.json")
    assert job.training_job_name == "xgboost-churn-2024-06-01"
    assert job.input_mode == "File"
    assert job.channel("train").data_source.s3_data_type == "ManifestFile"
    request = job.to_dict("request")
    assert request["AlgorithmSpecification"] == {"TrainingInputMode": "File"}
    assert "RoleArn" not in request and "TrainingInputMode" not in request


def test_channel_input_mode_overrides_the_job():
    job = Job.load(JOBS / "definition.json")
    assert [job.mode_of(c) for c in job.channels] == ["Pipe", "File", "FastFile", "Pipe"]
    assert job.mode_of("images") == "FastFile"
    assert effective_input_mode(job, job.channel("validation")) == "File"


def test_unknown_channel_lists_valid_names():
    job = Job.load(JOBS / "request.json")
    with pytest.raises(KeyError) as info:
        job.channel("tset")
    assert isinstance(info.value, UnknownChannelError)
    assert "train, validation" in str(info.value)


# -- every limit -----------------------------------------------------------------

def _set(path: list, value):
    """A mutator that sets data[path...] = value (DELETE removes the key)."""
    def mutate(data):
        target = data
        for key in path[:-1]:
            target = target[key]
        if value is DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value
    return mutate


DELETE = object()
SRC = ["InputDataConfig", 2, "DataSource", "S3DataSource"]
CH2 = ["InputDataConfig", 2]
LONG_KEY = "k" * 257


def _many_channels(n):
    def mutate(data):
        data["InputDataConfig"] = [{"ChannelName": f"c{i}", "DataSource": s3(f"s3://b/{i}/")} for i in range(n)]
    return mutate


def _hyperparameters(mapping):
    return _set(["HyperParameters"], mapping)


LIMITS = [
    # (id, mutate, field path, text the message must contain)
    ("no-channels", _many_channels(0), "InputDataConfig", "1 to 20"),
    ("21-channels", _many_channels(21), "InputDataConfig", "1 to 20"),
    ("channels-not-list", _set(["InputDataConfig"], {"a": 1}), "InputDataConfig", "list"),
    ("channel-not-object", _set(CH2, "test"), "InputDataConfig[2]", "not an object"),
    ("name-missing", _set(CH2 + ["ChannelName"], DELETE), "InputDataConfig[2].ChannelName", "required"),
    ("name-65-chars", _set(CH2 + ["ChannelName"], "n" * 65), "InputDataConfig[2].ChannelName", "64"),
    ("name-pattern", _set(CH2 + ["ChannelName"], "my data"), "InputDataConfig[2].ChannelName", r"[A-Za-z0-9\.\-_]+"),
    ("name-dotdot", _set(CH2 + ["ChannelName"], ".."), "InputDataConfig[2].ChannelName", "directory"),
    ("name-duplicate", _set(CH2 + ["ChannelName"], "train"), "InputDataConfig[2].ChannelName", "unique"),
    ("name-case-clash", _set(CH2 + ["ChannelName"], "TRAIN"), "InputDataConfig[2].ChannelName", "differs only in case"),
    ("job-mode", _set(["TrainingInputMode"], "Stream"), "TrainingInputMode", "Pipe | File | FastFile"),
    ("job-mode-missing", _set(["TrainingInputMode"], DELETE), "TrainingInputMode", "required"),
    ("channel-mode", _set(CH2 + ["InputMode"], "pipe"), "InputDataConfig[2].InputMode", 'did you mean "Pipe"'),
    ("gzip-file", _set(["InputDataConfig", 1, "CompressionType"], "Gzip"),
     "InputDataConfig[1].CompressionType", "needs Pipe input mode"),
    ("recordio-fastfile", lambda d: chan(d).update(InputMode="FastFile", RecordWrapperType="RecordIO"),
     "InputDataConfig[2].RecordWrapperType", "needs Pipe input mode"),
    ("compression", _set(CH2 + ["CompressionType"], "Zip"), "InputDataConfig[2].CompressionType", "None | Gzip"),
    ("record-wrapper", _set(CH2 + ["RecordWrapperType"], "TFRecord"),
     "InputDataConfig[2].RecordWrapperType", "None | RecordIO"),
    ("content-type-257", _set(CH2 + ["ContentType"], "t" * 257), "InputDataConfig[2].ContentType", "256"),
    ("seed-string", _set(CH2 + ["ShuffleConfig"], {"Seed": "7"}), "InputDataConfig[2].ShuffleConfig.Seed",
     "without quotes"),
    ("seed-huge", _set(CH2 + ["ShuffleConfig"], {"Seed": 2**64}), "InputDataConfig[2].ShuffleConfig.Seed",
     str(2**63 - 1)),
    ("seed-missing", _set(CH2 + ["ShuffleConfig"], {}), "InputDataConfig[2].ShuffleConfig.Seed", "required"),
    ("data-type", _set(SRC + ["S3DataType"], "Prefix"), "InputDataConfig[2].DataSource.S3DataSource.S3DataType",
     "S3Prefix | ManifestFile | AugmentedManifestFile"),
    ("attributes-on-prefix", _set(SRC + ["AttributeNames"], ["a"]),
     "InputDataConfig[2].DataSource.S3DataSource.AttributeNames", "AugmentedManifestFile"),
    ("augmented-no-attributes", _set(SRC + ["S3DataType"], "AugmentedManifestFile"),
     "InputDataConfig[2].DataSource.S3DataSource.AttributeNames", "1 to 16"),
    ("17-attributes", lambda d: source(d).update(S3DataType="AugmentedManifestFile",
                                                 AttributeNames=[f"a{i}" for i in range(17)]),
     "InputDataConfig[2].DataSource.S3DataSource.AttributeNames", "1 to 16"),
    ("attribute-257", lambda d: source(d).update(S3DataType="AugmentedManifestFile", AttributeNames=["a" * 257]),
     "InputDataConfig[2].DataSource.S3DataSource.AttributeNames[0]", "256"),
    ("fastfile-manifest", lambda d: (chan(d).update(InputMode="FastFile"), source(d).update(S3DataType="ManifestFile")),
     "InputDataConfig[2].DataSource.S3DataSource.S3DataType", "FastFile"),
    ("distribution", _set(SRC + ["S3DataDistributionType"], "Sharded"),
     "InputDataConfig[2].DataSource.S3DataSource.S3DataDistributionType", "FullyReplicated | ShardedByS3Key"),
    ("uri-no-scheme", _set(SRC + ["S3Uri"], "b/test/"), "InputDataConfig[2].DataSource.S3DataSource.S3Uri",
     "no scheme"),
    ("uri-1025", _set(SRC + ["S3Uri"], "s3://b/" + "k" * 1018), "InputDataConfig[2].DataSource.S3DataSource.S3Uri",
     "1024"),
    ("uri-no-bucket", _set(SRC + ["S3Uri"], "s3:///key"), "InputDataConfig[2].DataSource.S3DataSource.S3Uri",
     "bucket"),
    ("uri-missing", _set(SRC + ["S3Uri"], DELETE), "InputDataConfig[2].DataSource.S3DataSource.S3Uri", "required"),
    ("file-system-source", _set(CH2 + ["DataSource"], {"FileSystemDataSource": {}}),
     "InputDataConfig[2].DataSource.FileSystemDataSource", "not supported"),
    ("channel-key-typo", _set(CH2 + ["CompresionType"], "None"), "InputDataConfig[2].CompresionType",
     'did you mean "CompressionType"'),
    ("channel-key-unknown", _set(CH2 + ["Foo"], 1), "InputDataConfig[2].Foo", "unknown key"),
    ("top-key-typo", _set(["HyperParameter"], {}), "HyperParameter", 'did you mean "HyperParameters"'),
    ("101-hyperparameters", _hyperparameters({f"k{i}": "v" for i in range(101)}), "HyperParameters", "100"),
    ("hyperparameter-key-257", _hyperparameters({LONG_KEY: "v"}),
     'HyperParameters["' + "k" * 60 + '…" (257 chars)]', "256"),
    ("hyperparameter-value-2501", _hyperparameters({"k": "v" * 2501}), 'HyperParameters["k"]', "2500"),
    ("hyperparameter-number", _hyperparameters({"epochs": 10}), 'HyperParameters["epochs"]', 'quote it, as "10"'),
    ("hyperparameter-bool", _hyperparameters({"verbose": True}), 'HyperParameters["verbose"]', '"true"'),
    ("instance-count-0", _set(["ResourceConfig", "InstanceCount"], 0), "ResourceConfig.InstanceCount", ">= 1"),
    ("instance-count-str", _set(["ResourceConfig", "InstanceCount"], "2"), "ResourceConfig.InstanceCount",
     "without quotes"),
    ("instance-count-bool", _set(["ResourceConfig", "InstanceCount"], True), "ResourceConfig.InstanceCount",
     "boolean"),
    ("volume-0", _set(["ResourceConfig", "VolumeSizeInGB"], 0), "ResourceConfig.VolumeSizeInGB", ">= 1"),
    ("runtime-0", _set(["StoppingCondition", "MaxRuntimeInSeconds"], 0), "StoppingCondition.MaxRuntimeInSeconds",
     ">= 1"),
    ("output-path-missing", _set(["OutputDataConfig"], {}), "OutputDataConfig.S3OutputPath", "required"),
    ("output-missing", _set(["OutputDataConfig"], DELETE), "OutputDataConfig", "required"),
    ("job-name", _set(["TrainingJobName"], "my_job"), "TrainingJobName", "pattern"),
]


@pytest.mark.parametrize("mutate, path, text", [c[1:] for c in LIMITS], ids=[c[0] for c in LIMITS])
def test_each_limit_names_its_field_and_limit(mutate, path, text):
    data = definition()
    mutate(data)
    problems = problems_of(data)
    assert len(problems) == 1, problems
    assert problems[0][0] == path
    assert text in problems[0][1]


@pytest.mark.parametrize("mutate, path", [
    (lambda d: d["AlgorithmSpecification"].pop("TrainingInputMode"), "AlgorithmSpecification.TrainingInputMode"),
    (lambda d: d.update(TrainingInputMode="File"), "TrainingInputMode"),
    (lambda d: d.update(AlgorithmSpecification=[]), "AlgorithmSpecification"),
], ids=["mode-missing", "mode-twice", "not-object"])
def test_request_shape_paths(mutate, path):
    data = Job.from_dict(definition()).to_dict("request")
    mutate(data)
    assert [p for p, _ in problems_of(data)] == [path]


def test_messages_show_the_value_truncated():
    data = definition()
    source(data)["S3Uri"] = "x" * 2000
    (path, message), = problems_of(data)
    assert '"xxxx' in message and "(2000 chars)" in message and len(message) < 250


def test_every_problem_is_collected():
    with pytest.raises(SpecError) as info:
        Job.load(JOBS / "invalid.json")
    assert [path for path, _ in info.value.problems] == [
        'HyperParameters["epochs"]',
        "InputDataConfig[0].CompressionType",
        "InputDataConfig[2].ChannelName",
        "InputDataConfig[2].DataSource.S3DataSource.S3Uri",
        "ResourceConfig.InstanceCount",
    ]


def test_problems_below_a_broken_object_are_not_reported():
    data = definition()
    chan(data)["DataSource"] = "s3://b/test/"
    assert [p for p, _ in problems_of(data)] == ["InputDataConfig[2].DataSource"]


def test_spec_error_text_is_a_summary():
    data = definition()
    data["ResourceConfig"]["InstanceCount"] = 0
    source(data)["S3Uri"] = "b/test/"
    with pytest.raises(SpecError) as info:
        Job.from_dict(data)
    lines = str(info.value).splitlines()
    assert lines[0] == "2 problem(s) in job definition"
    assert lines[1].startswith("  InputDataConfig[2].DataSource.S3DataSource.S3Uri: ")
    assert lines[2].startswith("  ResourceConfig.InstanceCount: 0 ")


def test_spec_error_pickles():
    data = definition()
    data["TrainingInputMode"] = "Stream"
    with pytest.raises(SpecError) as info:
        Job.from_dict(data)
    again = pickle.loads(pickle.dumps(info.value))
    assert type(again) is SpecError and isinstance(again, ValueError)
    assert again.problems == info.value.problems and str(again) == str(info.value)


def test_not_an_object():
    with pytest.raises(SpecError, match="JSON object"):
        Job.from_dict([1, 2])  # type: ignore[arg-type]


# -- construction in Python --------------------------------------------------------

def test_direct_construction_validates_with_relative_paths():
    with pytest.raises(SpecError) as info:
        Channel("my data", S3DataSource("S3Prefix", "s3://b/p/"), compression="Gzip", input_mode="File")
    assert [p for p, _ in info.value.problems] == ["ChannelName", "CompressionType"]
    assert str(info.value).startswith("2 problem(s) in channel")
    with pytest.raises(SpecError, match="S3Uri"):
        S3DataSource("S3Prefix", "no-scheme")
    with pytest.raises(SpecError, match="InstanceCount"):
        ResourceConfig(instance_count=0)
    with pytest.raises(SpecError, match="MaxRuntimeInSeconds"):
        StoppingCondition(0)
    with pytest.raises(SpecError, match="S3OutputPath"):
        OutputDataConfig("")


def test_a_failed_from_dict_leaves_checks_on():
    data = definition()
    data["TrainingInputMode"] = "Stream"
    with pytest.raises(SpecError):
        Job.from_dict(data)
    with pytest.raises(SpecError):
        Channel("ok", S3DataSource("Bad", "s3://b/"))


def test_job_is_frozen_hashable_and_picklable():
    job = Job.load(JOBS / "definition.json")
    assert isinstance(job.hyperparameters, FrozenMap)
    with pytest.raises(TypeError):
        job.hyperparameters["epochs"] = "1"  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.input_mode = "File"  # type: ignore[misc]
    assert hash(job) == hash(Job.load(JOBS / "definition.json"))
    assert pickle.loads(pickle.dumps(job)) == job


def test_replace_revalidates():
    job = Job.load(JOBS / "definition.json")
    assert dataclasses.replace(job, input_mode="Pipe") == job
    with pytest.raises(SpecError, match="CompressionType"):
        dataclasses.replace(job, input_mode="File")  # train is Gzip, inherits the job's mode


def test_python_lists_and_dicts_are_normalised():
    job = Job([Channel("a", S3DataSource("S3Prefix", "memory://x/"))], "File", ResourceConfig(),
              StoppingCondition(), OutputDataConfig("file:///tmp/out"), {"k": "v"})
    assert isinstance(job.channels, tuple) and job.hyperparameters == {"k": "v"}


# -- files and round trips ------------------------------------------------------------

@pytest.mark.parametrize("name", ["definition.json", "request.json"])
@pytest.mark.parametrize("shape", SHAPES)
def test_example_files_round_trip(name, shape, tmp_path):
    job = Job.load(JOBS / name)
    assert Job.from_dict(job.to_dict(shape)) == job
    job.dump(tmp_path / "job.json", shape=shape)
    assert Job.load(tmp_path / "job.json") == job


def test_unknown_shape():
    with pytest.raises(ValueError, match="definition, request"):
        Job.load(JOBS / "request.json").to_dict("yaml")


def test_malformed_json_names_file_line_and_column(tmp_path):
    path = tmp_path / "job.json"
    path.write_text('{\n  "TrainingInputMode": "Pipe",\n  "InputDataConfig": [,]\n}\n')
    with pytest.raises(SpecError) as info:
        Job.load(path)
    assert str(path) in str(info.value) and "line 3, column 23" in str(info.value)
    assert info.value.problems == [] and isinstance(info.value.__cause__, json.JSONDecodeError)


def test_missing_file(tmp_path):
    with pytest.raises(SourceNotFoundError) as info:
        Job.load(tmp_path / "nope.json")
    assert isinstance(info.value, FileNotFoundError) and "nope.json" in str(info.value)


def test_load_names_the_file_in_the_summary():
    with pytest.raises(SpecError) as info:
        Job.load(JOBS / "invalid.json")
    assert str(info.value).splitlines()[0] == f"5 problem(s) in job definition {JOBS / 'invalid.json'}"


# -- hypothesis: any valid job survives both shapes ---------------------------------------

_names = st.from_regex(r"[A-Za-z0-9_\-][A-Za-z0-9.\-_]{0,15}", fullmatch=True)
_uris = st.builds(lambda b, k: f"s3://{b}/{k}", st.from_regex(r"[a-z0-9][a-z0-9.\-]{2,20}", fullmatch=True),
                  st.text(max_size=30))


@st.composite
def jobs(draw) -> Job:
    job_mode = draw(st.sampled_from(INPUT_MODES))
    channels = []
    for name in draw(st.lists(_names, min_size=1, max_size=spec.MAX_CHANNELS, unique_by=str.lower)):
        mode = draw(st.sampled_from((None, *INPUT_MODES)))
        pipe = (mode or job_mode) == "Pipe"
        kind = "S3Prefix" if (mode or job_mode) == "FastFile" else draw(st.sampled_from(spec.S3_DATA_TYPES))
        attributes = ()
        if kind == "AugmentedManifestFile":
            attributes = tuple(draw(st.lists(st.text(min_size=1, max_size=10), min_size=1, max_size=16)))
        channels.append(Channel(
            name=name,
            data_source=S3DataSource(kind, draw(_uris), draw(st.sampled_from(spec.DISTRIBUTION_TYPES)), attributes),
            content_type=draw(st.none() | st.text(max_size=20)),
            compression=draw(st.sampled_from(spec.COMPRESSION_TYPES)) if pipe else "None",
            record_wrapper=draw(st.sampled_from(spec.RECORD_WRAPPER_TYPES)) if pipe else "None",
            shuffle_seed=draw(st.none() | st.integers(spec.SEED_MIN, spec.SEED_MAX)),
            input_mode=mode,
        ))
    return Job(
        channels=tuple(channels),
        input_mode=job_mode,
        resource_config=ResourceConfig(draw(st.integers(1, 64)), draw(st.none() | st.just("ml.m5.xlarge")),
                                       draw(st.integers(1, 16384))),
        stopping_condition=StoppingCondition(draw(st.integers(1, 10**7))),
        output_data_config=OutputDataConfig(draw(_uris)),
        hyperparameters=draw(st.dictionaries(st.text(max_size=20), st.text(max_size=40), max_size=8)),
        training_job_name=draw(st.none() | st.from_regex(r"[a-zA-Z0-9](-?[a-zA-Z0-9]){0,20}", fullmatch=True)),
    )


@settings(max_examples=60, deadline=None)
@given(job=jobs(), shape=st.sampled_from(SHAPES))
def test_round_trip_property(job, shape):
    data = json.loads(json.dumps(job.to_dict(shape)))
    assert Job.from_dict(copy.deepcopy(data)) == job
    assert Job.from_dict(data).to_dict(shape) == data
