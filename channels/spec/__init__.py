"""What a training job is: its definition as frozen dataclasses, validated at construction.

* :mod:`~channels.spec.model`: the SageMaker API model botocore ships (the shapes a job uses), cached;
* :mod:`~channels.spec.limits`: the limits read from it, the few of ours, and the API's known keys;
* :mod:`~channels.spec.problems`: the checker (field paths, values shown, one message per problem);
* :mod:`~channels.spec.jsonfile`: reading a job file strictly (depth, numbers, duplicate keys), errors with paths;
* :mod:`~channels.spec.channel`: :class:`S3DataSource` and :class:`Channel`, each beside its JSON reader;
* :mod:`~channels.spec.job`: :class:`Job` and its parts, beside the job's JSON reader (the local verdict);
* :mod:`~channels.spec.apicheck`, :mod:`~channels.spec.seed_rules`, :mod:`~channels.spec.verdict`: would
  SageMaker accept a job? The model walked generically, our documented stricter rules, both verdicts.
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
from channels.spec.jsonfile import read_job_file
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
from channels.spec.model import api_model
from channels.spec.seed_rules import SEED_RULES
from channels.spec.verdict import Verdict, local_notes, sagemaker_verdict

__all__ = [
    "ATTRIBUTE_NAME_MAX_LEN", "CHANNEL_NAME_MAX_LEN", "CHANNEL_NAME_PATTERN", "COMPRESSION_TYPES",
    "CONTENT_TYPE_MAX_LEN", "DISTRIBUTION_TYPES", "FASTFILE_DATA_TYPES", "HYPERPARAMETER_KEY_MAX_LEN",
    "HYPERPARAMETER_VALUE_MAX_LEN", "INPUT_MODES", "MAX_ATTRIBUTE_NAMES", "MAX_CHANNELS", "MAX_HYPERPARAMETERS",
    "MIN_CHANNELS", "MIN_INSTANCE_COUNT", "MIN_MAX_RUNTIME_SECONDS", "MIN_VOLUME_SIZE_GB", "RECORD_WRAPPER_TYPES",
    "RESERVED_CHANNEL_NAMES", "S3_DATA_TYPES", "SEED_MAX", "SEED_MIN", "SHAPES", "TRAINING_JOB_NAME_MAX_LEN",
    "TRAINING_JOB_NAME_PATTERN", "URI_MAX_LEN",
    "Channel", "FrozenMap", "Job", "OutputDataConfig", "ResourceConfig", "S3DataSource", "StoppingCondition",
    "UnknownChannelError", "effective_input_mode",
    "SEED_RULES", "Verdict", "api_model", "local_notes", "read_job_file", "sagemaker_verdict",
]
