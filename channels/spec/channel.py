"""A channel: where its objects are (:class:`S3DataSource`) and how they are delivered (:class:`Channel`).

Each type sits beside the reader of its JSON (:func:`parse_channel`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from channels.spec import limits
from channels.spec.problems import (
    Problem,
    Problems,
    a_type,
    as_object,
    join,
    show,
    validated,
)


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
        validated(self, "S3DataSource")

    def _problems(self) -> list[Problem]:
        p = Problems()
        p.choice("S3DataType", self.s3_data_type, limits.S3_DATA_TYPES, required=True)
        p.url("S3Uri", self.s3_uri, max_len=limits.URI_MAX_LEN)
        p.choice("S3DataDistributionType", self.distribution, limits.DISTRIBUTION_TYPES, required=True)
        names = self.attribute_names
        if not isinstance(names, tuple):
            p.add("AttributeNames", f"{show(names)} is {a_type(names)}; give a list of strings")
        elif self.s3_data_type == "AugmentedManifestFile":
            if not 1 <= len(names) <= limits.MAX_ATTRIBUTE_NAMES:
                p.add("AttributeNames", f"{len(names)} names; AugmentedManifestFile needs 1 to "
                                        f"{limits.MAX_ATTRIBUTE_NAMES}: "
                                        'list the attributes to stream, in order, e.g. ["source-ref", "class"]')
            for i, name in enumerate(names):
                p.string(f"AttributeNames[{i}]", name, min_len=1, max_len=limits.ATTRIBUTE_NAME_MAX_LEN, required=True)
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
        validated(self, "channel")

    def _problems(self) -> list[Problem]:
        p = Problems()
        if p.string("ChannelName", self.name, min_len=1, max_len=limits.CHANNEL_NAME_MAX_LEN, required=True,
                    pattern=limits.CHANNEL_NAME_PATTERN, pattern_help="letters, digits, '.', '-', '_'") \
                and self.name in limits.RESERVED_CHANNEL_NAMES:
            p.add("ChannelName", f"{show(self.name)} cannot name a channel directory; rename it")
        if isinstance(self.data_source, S3DataSource):
            p.extend("DataSource.S3DataSource", self.data_source._problems())
        else:
            p.add("DataSource.S3DataSource", f"{show(self.data_source)} is not an S3DataSource")
        p.string("ContentType", self.content_type, max_len=limits.CONTENT_TYPE_MAX_LEN)
        p.choice("CompressionType", self.compression, limits.COMPRESSION_TYPES, required=True)
        p.choice("RecordWrapperType", self.record_wrapper, limits.RECORD_WRAPPER_TYPES, required=True)
        p.integer("ShuffleConfig.Seed", self.shuffle_seed, minimum=limits.SEED_MIN, maximum=limits.SEED_MAX,
                  required=False)
        if self.input_mode is not None and p.choice("InputMode", self.input_mode, limits.INPUT_MODES):
            p.extend("", mode_problems(self, self.input_mode, "this channel's InputMode"))
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


def mode_problems(channel: Channel, mode: str, source: str) -> list[Problem]:
    """Problems of a channel that only its effective input mode reveals."""
    out = []
    if channel.compression == "Gzip" and mode != limits.PIPE_ONLY_MODE:
        out.append(("CompressionType", f'"Gzip" needs Pipe input mode, but {source} is {mode}: '
                                       'set CompressionType "None" (or omit it), or use InputMode "Pipe"'))
    if channel.record_wrapper == "RecordIO" and mode != limits.PIPE_ONLY_MODE:
        out.append(("RecordWrapperType", f'"RecordIO" needs Pipe input mode, but {source} is {mode}: '
                                         'set RecordWrapperType "None" (or omit it), or use InputMode "Pipe"'))
    kind = getattr(channel.data_source, "s3_data_type", None)
    if mode == "FastFile" and kind in limits.S3_DATA_TYPES and kind not in limits.FASTFILE_DATA_TYPES:
        out.append(("DataSource.S3DataSource.S3DataType",
                    f"{show(kind)} cannot be read in FastFile mode ({source} is FastFile); FastFile shows "
                    "an S3Prefix as a lazy file tree: use File or Pipe mode, or an S3Prefix"))
    return out


def parse_channel(raw: object, p: Problems, path: str) -> Channel:
    """A Channel from its JSON (checks deferred by the caller); structure problems go to ``p``."""
    channel = as_object(p, path, raw, required=True)
    p.keys(path, channel, limits.CHANNEL_KEYS, strict=True)
    source_path = join(path, "DataSource")
    source = as_object(p, source_path, channel.get("DataSource"), required=True)
    p.keys(source_path, source, ("S3DataSource",), unsupported=limits.UNSUPPORTED_KEYS, strict=True)
    s3_path = join(source_path, "S3DataSource")
    only_fs = "FileSystemDataSource" in source and "S3DataSource" not in source
    if only_fs:
        p.broken.add(s3_path)  # already reported as unsupported
    s3 = as_object(p, s3_path, source.get("S3DataSource"), required=not only_fs)
    p.keys(s3_path, s3, limits.S3_KEYS, ignored=limits.S3_IGNORED,
           unsupported=limits.UNSUPPORTED_KEYS, strict=True)
    seed = None
    if "ShuffleConfig" in channel:
        shuffle_path = join(path, "ShuffleConfig")
        shuffle = as_object(p, shuffle_path, channel["ShuffleConfig"], required=True)
        p.keys(shuffle_path, shuffle, ("Seed",), strict=True)
        seed = shuffle.get("Seed")
        if isinstance(channel["ShuffleConfig"], Mapping) and "Seed" not in shuffle:
            p.add(join(shuffle_path, "Seed"), "missing (required); give an integer seed, or remove ShuffleConfig")
    return Channel(
        name=channel.get("ChannelName"),
        data_source=S3DataSource(s3.get("S3DataType"), s3.get("S3Uri"),
                                      s3.get("S3DataDistributionType", "FullyReplicated"),
                                      s3.get("AttributeNames", ())),
        content_type=channel.get("ContentType"),
        compression=channel.get("CompressionType", "None"),
        record_wrapper=channel.get("RecordWrapperType", "None"),
        shuffle_seed=seed,
        input_mode=channel.get("InputMode"),
    )
