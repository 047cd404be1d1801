"""The limits of a training job: read from the API model botocore ships, plus the few that are ours.

Every constant here that the model states is taken from it (see
:mod:`channels.spec.model`); tests pin the seed page's numbers (1 to 20
channels, 100 hyperparameters, 256/2500 chars, the input modes). The
constants marked "ours" are what ``channels run`` itself can honour, stricter
than the API; each says why.
"""

from __future__ import annotations

from channels.spec.model import ROOTS, api_model

_M = api_model()
_DEFINITION, _REQUEST = ROOTS


def _at(*path: str):
    return _M.at(_DEFINITION, *path)


INPUT_MODES = _at("TrainingInputMode").enum
SHAPES = ("definition", "request")
_CHANNELS = _at("InputDataConfig")
MIN_CHANNELS, MAX_CHANNELS = _CHANNELS.min, _CHANNELS.max
_NAME = _at("InputDataConfig", "[]", "ChannelName")
CHANNEL_NAME_MAX_LEN = _NAME.max
CHANNEL_NAME_PATTERN = _NAME.regex()
RESERVED_CHANNEL_NAMES = (".", "..")  # ours: the name becomes a directory
CONTENT_TYPE_MAX_LEN = _at("InputDataConfig", "[]", "ContentType").max
COMPRESSION_TYPES = _at("InputDataConfig", "[]", "CompressionType").enum
RECORD_WRAPPER_TYPES = _at("InputDataConfig", "[]", "RecordWrapperType").enum
PIPE_ONLY_MODE = "Pipe"  # the one mode where Gzip and RecordIO apply (the API's documentation)
SEED_MIN, SEED_MAX = _at("InputDataConfig", "[]", "ShuffleConfig", "Seed").bounds()
_S3 = ("InputDataConfig", "[]", "DataSource", "S3DataSource")
S3_DATA_TYPES = ("S3Prefix", "ManifestFile", "AugmentedManifestFile")  # ours: the types channels can list
FASTFILE_DATA_TYPES = ("S3Prefix",)  # ours: the lazy tree shows a prefix (SageMaker: no augmented manifests)
DISTRIBUTION_TYPES = _at(*_S3, "S3DataDistributionType").enum
MAX_ATTRIBUTE_NAMES = _at(*_S3, "AttributeNames").max
ATTRIBUTE_NAME_MAX_LEN = _at(*_S3, "AttributeNames", "[]").max
URI_MAX_LEN = _at(*_S3, "S3Uri").max
_HYPERPARAMETERS = _at("HyperParameters")
MAX_HYPERPARAMETERS = _HYPERPARAMETERS.max
HYPERPARAMETER_KEY_MAX_LEN = _at("HyperParameters", "{key}").max
HYPERPARAMETER_VALUE_MAX_LEN = _at("HyperParameters", "{}").max
_JOB_NAME = _M.at(_REQUEST, "TrainingJobName")
TRAINING_JOB_NAME_MAX_LEN = _JOB_NAME.max
TRAINING_JOB_NAME_PATTERN = _JOB_NAME.regex()
MIN_INSTANCE_COUNT = 1  # ours: a run needs a host (the API allows 0, for InstanceGroups)
MIN_VOLUME_SIZE_GB = 1  # ours: File mode needs a volume (the API allows 0)
MIN_MAX_RUNTIME_SECONDS = _at("StoppingCondition", "MaxRuntimeInSeconds").min

# Keys of the API's JSON objects that channels reads; the model's other members
# are accepted and dropped (off the data path) or refused (UNSUPPORTED_KEYS).
TOP_KEYS = ("TrainingJobName", "AlgorithmSpecification", "TrainingInputMode", "HyperParameters",
            "InputDataConfig", "OutputDataConfig", "ResourceConfig", "StoppingCondition")
CHANNEL_KEYS = ("ChannelName", "DataSource", "ContentType", "CompressionType", "RecordWrapperType",
                "InputMode", "ShuffleConfig")
S3_KEYS = ("S3DataType", "S3Uri", "S3DataDistributionType", "AttributeNames")
RESOURCE_KEYS = ("InstanceCount", "InstanceType", "VolumeSizeInGB")
_SOURCE_ONLY = "channels reads S3DataSource only (any fsspec URL works there)"
UNSUPPORTED_KEYS = {
    **{key: _SOURCE_ONLY for key in _at("InputDataConfig", "[]", "DataSource").members if key != "S3DataSource"},
    "InstanceGroupNames": "heterogeneous clusters are not modelled; use ResourceConfig.InstanceCount",
    "InstanceGroups": "heterogeneous clusters are not modelled; use InstanceCount and InstanceType",
}


def _others(shape, known: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(k for k in shape.members if k not in known and k not in UNSUPPORTED_KEYS)


TOP_IGNORED = tuple(dict.fromkeys(_others(_M[_REQUEST], TOP_KEYS) + _others(_M[_DEFINITION], TOP_KEYS)))
ALGORITHM_IGNORED = _others(_M.at(_REQUEST, "AlgorithmSpecification"), ("TrainingInputMode",))
S3_IGNORED = _others(_at(*_S3), S3_KEYS)
RESOURCE_IGNORED = _others(_at("ResourceConfig"), RESOURCE_KEYS)
STOPPING_IGNORED = _others(_at("StoppingCondition"), ("MaxRuntimeInSeconds",))
OUTPUT_IGNORED = _others(_at("OutputDataConfig"), ("S3OutputPath",))
