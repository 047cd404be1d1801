"""Our rules stricter than the API model, each backed by the API's own documentation.

The model states limits one field at a time; a few documented rules tie two
fields together, so the model cannot say them. The default verdict keeps
these, and says in each message that the rule is ours and where the
documentation states it (docs/errors.md lists them). Rules of ``channels run``
alone (a ManifestFile under FastFile, names that differ only in case, ``.`` as
a name) are not here: they are in the local verdict only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from channels.spec.apicheck import Finding
from channels.spec.limits import INPUT_MODES, PIPE_ONLY_MODE
from channels.spec.problems import join, show


@dataclass(frozen=True, slots=True)
class SeedRule:
    """A documented rule the model does not state.

    Attributes:
        name: how findings and docs/errors.md name it.
        field: the Channel field it is reported on.
        value: the value it refuses outside the allowed context.
        source: where the API's documentation says it, quoted.
    """

    name: str
    field: str
    value: str
    source: str


PIPE_ONLY_GZIP = SeedRule(
    "pipe-only-gzip", "CompressionType", "Gzip",
    'Channel.CompressionType: "CompressionType is used only in Pipe input mode. In File mode, leave this '
    'field unset or set it to None."')
PIPE_ONLY_RECORDIO = SeedRule(
    "pipe-only-recordio", "RecordWrapperType", "RecordIO",
    'Channel.RecordWrapperType: "In File mode, leave this field unset or set it to None." (FastFile channels '
    "reach the container as File)")
FASTFILE_NO_AUGMENTED_MANIFEST = SeedRule(
    "fastfile-no-augmented-manifest", "DataSource.S3DataSource.S3DataType", "AugmentedManifestFile",
    'TrainingInputMode, FastFile mode: "Augmented manifest files aren\'t supported."')
UNIQUE_CHANNEL_NAMES = SeedRule(
    "unique-channel-names", "ChannelName", "",
    "InputDataConfig: \"Each channel is a named input source\"; the container's inputdataconfig.json and "
    "/opt/ml/input/data/<channel> hold one entry per name")
SEED_RULES = (PIPE_ONLY_GZIP, PIPE_ONLY_RECORDIO, FASTFILE_NO_AUGMENTED_MANIFEST, UNIQUE_CHANNEL_NAMES)


def seed_findings(data: Mapping, shape: str) -> list[Finding]:
    """Findings of the seed rules in a parsed job of shape "definition" or "request".

    Only well-formed parts are judged (a channel that is not an object, or a mode
    outside the enum, is the model's finding already).
    """
    channels = data.get("InputDataConfig")
    if not isinstance(channels, list):
        return []
    holder = data.get("AlgorithmSpecification") if shape == "request" else data
    job_mode = holder.get("TrainingInputMode") if isinstance(holder, Mapping) else None
    out: list[Finding] = []
    first: dict[str, int] = {}
    for i, channel in enumerate(channels):
        if not isinstance(channel, Mapping):
            continue
        where = f"InputDataConfig[{i}]"
        own = channel.get("InputMode")
        mode, source = (own, "this channel's InputMode") if own in INPUT_MODES else \
            (job_mode, "the job's TrainingInputMode")
        if mode in INPUT_MODES:
            s3 = (channel.get("DataSource") or {}).get("S3DataSource") \
                if isinstance(channel.get("DataSource"), Mapping) else None
            fields = {PIPE_ONLY_GZIP: channel.get("CompressionType"),
                      PIPE_ONLY_RECORDIO: channel.get("RecordWrapperType"),
                      FASTFILE_NO_AUGMENTED_MANIFEST: s3.get("S3DataType") if isinstance(s3, Mapping) else None}
            for rule, value in fields.items():
                refused = mode != PIPE_ONLY_MODE if rule is not FASTFILE_NO_AUGMENTED_MANIFEST else mode == "FastFile"
                if value == rule.value and refused:
                    out.append(_finding(rule, join(where, rule.field), f"{show(value)} cannot be used when {source} "
                                        f"is {mode}: {_fix(rule)}"))
        name = channel.get("ChannelName")
        if isinstance(name, str):
            earlier = first.setdefault(name, i)
            if earlier != i:
                out.append(_finding(UNIQUE_CHANNEL_NAMES, join(where, "ChannelName"),
                                    f"{show(name)} is already the name of InputDataConfig[{earlier}]: rename one"))
    return out


def _fix(rule: SeedRule) -> str:
    if rule is FASTFILE_NO_AUGMENTED_MANIFEST:
        return 'use InputMode "File" or "Pipe" for this channel'
    return f'set {rule.field} "None" (or leave it out), or use InputMode "Pipe"'


def _finding(rule: SeedRule, path: str, message: str) -> Finding:
    return Finding(path, rule.name, f"{message} (our rule {rule.name}, from the API documentation, not the API "
                                    f"model: {rule.source})", rule="seed")
