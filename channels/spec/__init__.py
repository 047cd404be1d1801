"""What a training job is: its definition as frozen dataclasses, validated at construction.

* :mod:`~channels.spec.limits`: the documented limits and the API's known keys;
* :mod:`~channels.spec.problems`: the checker (field paths, values shown, one message per problem);
* :mod:`~channels.spec.channel`: :class:`S3DataSource` and :class:`Channel`, each beside its JSON reader;
* :mod:`~channels.spec.job`: :class:`Job` and its parts, beside the job's JSON reader.
"""

from channels.spec.channel import Channel, S3DataSource
from channels.spec.job import (
    FrozenMap,
    Job,
    OutputDataConfig,
    ResourceConfig,
    StoppingCondition,
    UnknownChannelError,
    effective_input_mode,
)
from channels.spec.limits import (
    ATTRIBUTE_NAME_MAX_LEN,
    CHANNEL_NAME_MAX_LEN,
    CHANNEL_NAME_PATTERN,
    COMPRESSION_TYPES,
    CONTENT_TYPE_MAX_LEN,
    DISTRIBUTION_TYPES,
    FASTFILE_DATA_TYPES,
    HYPERPARAMETER_KEY_MAX_LEN,
    HYPERPARAMETER_VALUE_MAX_LEN,
    INPUT_MODES,
    MAX_ATTRIBUTE_NAMES,
    MAX_CHANNELS,
    MAX_HYPERPARAMETERS,
    MIN_CHANNELS,
    MIN_INSTANCE_COUNT,
    MIN_MAX_RUNTIME_SECONDS,
    MIN_VOLUME_SIZE_GB,
    RECORD_WRAPPER_TYPES,
    RESERVED_CHANNEL_NAMES,
    S3_DATA_TYPES,
    SEED_MAX,
    SEED_MIN,
    SHAPES,
    TRAINING_JOB_NAME_MAX_LEN,
    TRAINING_JOB_NAME_PATTERN,
    URI_MAX_LEN,
)

__all__ = [
    "ATTRIBUTE_NAME_MAX_LEN", "CHANNEL_NAME_MAX_LEN", "CHANNEL_NAME_PATTERN", "COMPRESSION_TYPES",
    "CONTENT_TYPE_MAX_LEN", "DISTRIBUTION_TYPES", "FASTFILE_DATA_TYPES", "HYPERPARAMETER_KEY_MAX_LEN",
    "HYPERPARAMETER_VALUE_MAX_LEN", "INPUT_MODES", "MAX_ATTRIBUTE_NAMES", "MAX_CHANNELS", "MAX_HYPERPARAMETERS",
    "MIN_CHANNELS", "MIN_INSTANCE_COUNT", "MIN_MAX_RUNTIME_SECONDS", "MIN_VOLUME_SIZE_GB", "RECORD_WRAPPER_TYPES",
    "RESERVED_CHANNEL_NAMES", "S3_DATA_TYPES", "SEED_MAX", "SEED_MIN", "SHAPES", "TRAINING_JOB_NAME_MAX_LEN",
    "TRAINING_JOB_NAME_PATTERN", "URI_MAX_LEN",
    "Channel", "FrozenMap", "Job", "OutputDataConfig", "ResourceConfig", "S3DataSource", "StoppingCondition",
    "UnknownChannelError", "effective_input_mode",
]
