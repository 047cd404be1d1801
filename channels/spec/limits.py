"""The documented limits of a training job (the seed page, SageMaker's API reference).

Names that are ours rather than the API's say so beside them.
"""

from __future__ import annotations

import re

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

# Keys of the API's JSON objects that channels reads, accepts and drops, or refuses.
TOP_KEYS = ("TrainingJobName", "AlgorithmSpecification", "TrainingInputMode", "HyperParameters",
             "InputDataConfig", "OutputDataConfig", "ResourceConfig", "StoppingCondition")
TOP_IGNORED = (  # CreateTrainingJob keys off the data path
    "RoleArn", "VpcConfig", "Tags", "EnableNetworkIsolation", "EnableInterContainerTrafficEncryption",
    "EnableManagedSpotTraining", "CheckpointConfig", "DebugHookConfig", "DebugRuleConfigurations",
    "TensorBoardOutputConfig", "ExperimentConfig", "ProfilerConfig", "ProfilerRuleConfigurations",
    "Environment", "RetryStrategy", "RemoteDebugConfig", "InfraCheckConfig", "SessionChainingConfig")
ALGORITHM_IGNORED = ("TrainingImage", "AlgorithmName", "MetricDefinitions", "EnableSageMakerMetricsTimeSeries",
                      "ContainerEntrypoint", "ContainerArguments", "TrainingImageConfig")
CHANNEL_KEYS = ("ChannelName", "DataSource", "ContentType", "CompressionType", "RecordWrapperType",
                 "InputMode", "ShuffleConfig")
S3_KEYS = ("S3DataType", "S3Uri", "S3DataDistributionType", "AttributeNames")
RESOURCE_KEYS = ("InstanceCount", "InstanceType", "VolumeSizeInGB")
UNSUPPORTED_KEYS = {
    "FileSystemDataSource": "channels reads S3DataSource only (any fsspec URL works there)",
    "InstanceGroupNames": "heterogeneous clusters are not modelled; use ResourceConfig.InstanceCount",
    "InstanceGroups": "heterogeneous clusters are not modelled; use InstanceCount and InstanceType",
}
