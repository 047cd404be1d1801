"""What the SageMaker API model says of a job, judged without channels.spec: an oracle for the tests.

botocore's own ParamValidator (what boto3 runs before it sends a request)
checks JSON types, required and unknown members, and minimums (length, count,
value), but not maximums, enums or patterns, and it takes ``true`` for an
integer (a bool is an int in Python). :func:`model_errors` runs it and adds
what it leaves out, walking botocore's Shape objects: maximums, map counts,
enums, patterns matched whole, integers within their model type (32 bits for
``integer``, 64 for ``long``), and no booleans where numbers go.

Patterns are matched by the third-party ``regex`` module (version 1
syntax, with the WORD flag so that ``.`` stops at line separators), with
Java's ASCII meaning of ``\\d``, ``\\w``, ``\\s`` and ``\\p{Alnum}``
substituted. channels.spec translates Java patterns to Python's ``re`` by a
route of its own (explicit Unicode ranges), so the two do not share code.
Known difference from Java: with WORD, ``.`` also stops at ``\\x0b`` and
``\\x0c``; the corpus does not use those.

:func:`corpus` builds jobs from the model, also through botocore's Shapes.
"""

from __future__ import annotations

import copy
import functools
import random
from collections.abc import Iterator

import regex
from botocore.session import get_session
from botocore.validate import ParamValidator

SERVICE = get_session().get_service_model("sagemaker")
ROOTS = {"definition": "TrainingJobDefinition", "request": "CreateTrainingJobRequest"}
TYPE_RANGES = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_JAVA_ASCII = {r"\d": "[0-9]", r"\w": "[a-zA-Z0-9_]", r"\s": "[ \\t\\n\\x0B\\f\\r]", r"\S": "[^ \\t\\n\\x0B\\f\\r]",
               r"\p{Alnum}": "[a-zA-Z0-9]"}


def model_errors(data: object, shape: str) -> list[tuple[str, str]]:
    """Every (path, reason) the model gives against ``data`` as JSON shape "definition" or "request"."""
    root = SERVICE.shape_for(ROOTS[shape])
    report = ParamValidator().validate(data, root)
    out = []
    for reason, name, details in report._errors:  # (reason, name, kwargs): botocore's own record
        extra = details.get("required_name") or details.get("unknown_param")
        out.append((f"{name}.{extra}" if extra else name, reason))
    _more(data, root, "", out)
    return out


@functools.cache
def java_regex(pattern: str) -> regex.Pattern:
    for java, ascii_class in _JAVA_ASCII.items():
        pattern = pattern.replace(java, ascii_class)
    return regex.compile(pattern, regex.V1 | regex.WORD)


def _more(value, shape, name: str, out: list) -> None:
    """What ParamValidator leaves out; only where the JSON type is right (it reports the rest)."""
    kind = shape.type_name
    meta = shape.metadata
    if kind == "structure" and isinstance(value, dict):
        for key, item in value.items():
            if key in shape.members:
                _more(item, shape.members[key], f"{name}.{key}", out)
    elif kind == "list" and isinstance(value, list):
        if "max" in meta and len(value) > meta["max"]:
            out.append((name, "too many items"))
        for i, item in enumerate(value):
            _more(item, shape.member, f"{name}[{i}]", out)
    elif kind == "map" and isinstance(value, dict):
        if len(value) < meta.get("min", 0) or len(value) > meta.get("max", len(value)):
            out.append((name, "entries out of range"))
        for key, item in value.items():
            _more(key, shape.key, f"{name} (key: {key})", out)
            _more(item, shape.value, f"{name}.{key}", out)
    elif kind == "string" and isinstance(value, str):
        if "max" in meta and len(value) > meta["max"]:
            out.append((name, "too long"))
        elif shape.enum and value not in shape.enum:
            out.append((name, "not in the enum"))
        elif "pattern" in meta and not java_regex(meta["pattern"]).fullmatch(value):
            out.append((name, "does not match the pattern"))
    elif kind in ("integer", "long"):
        if isinstance(value, bool):
            out.append((name, "a boolean, not an integer"))
        elif isinstance(value, int):
            low, high = TYPE_RANGES[kind]
            if value > meta.get("max", high) or value < low:
                out.append((name, "out of range"))


# -- a corpus built from the model --------------------------------------------------------------

EXAMPLES = {  # a valid value for each patterned string shape whose pattern "a" does not match
    "RoleArn": "arn:aws:iam::123456789012:role/Training",
    "S3Uri": "s3://bucket/prefix/",
    "TrainingRepositoryCredentialsProviderArn": "arn:aws:lambda:us-east-1:123456789012:function:creds",
    "FileSystemId": "fs-0123abcd",
    "HubDataSetArn": "arn:aws:sagemaker:us-east-1:aws:hub-content/my-hub/DataSet/my-data/1.0.0",
    "KmsKeyId": "arn:aws:kms:us-east-1:123456789012:key/1234abcd",
    "TrainingPlanArn": "arn:aws:sagemaker:us-east-1:123456789012:training-plan/my-plan-0001",
    "SecurityGroupId": "sg-0123abcd",
    "SubnetId": "subnet-0123abcd",
    "ServerlessJobBaseModelArn": "arn:aws:sagemaker:us-east-1:aws:hub-content/my-hub/Model/my-model/1.0.0",
    "SequenceLength": "8K",
    "MlFlowResourceArn": "arn:aws:sagemaker:us-east-1:123456789012:mlflow-tracking-server/ts",
    "ModelPackageGroupArn": "arn:aws:sagemaker:us-east-1:123456789012:model-package-group/group",
    "ModelPackageArn": "arn:aws:sagemaker:us-east-1:123456789012:model-package/group/1",
    "TrainingEnvironmentKey": "MY_VAR",
    "ChannelName": "train",
    "TrainingJobName": "job-1",
}
_FREE = {".*", ".+", "[\\S\\s]*", None}  # patterns that take any one line (or anything)


def example(shape, full: bool):
    """A valid value: every member (``full``) or only the required ones."""
    kind = shape.type_name
    if kind == "structure":
        names = shape.members if full else shape.required_members
        return {n: example(shape.members[n], full) for n in names}
    if kind == "list":
        return [example(shape.member, full) for _ in range(max(1, shape.metadata.get("min", 0)))]
    if kind == "map":
        return {"key": example(shape.value, full)}
    if kind == "string":
        if shape.enum:
            return shape.enum[0]
        return EXAMPLES.get(shape.name, "a" * max(1, shape.metadata.get("min", 0)))
    if kind in ("integer", "long"):
        return max(1, shape.metadata.get("min", 1))
    if kind == "boolean":
        return True
    raise AssertionError(f"no example for {shape.name} ({kind})")


def _walk(value, shape, path: tuple) -> Iterator[tuple[tuple, object, object]]:
    """(path, value, shape) of every node of a valid instance."""
    yield path, value, shape
    if shape.type_name == "structure":
        for key, item in value.items():
            yield from _walk(item, shape.members[key], (*path, key))
    elif shape.type_name == "list":
        for i, item in enumerate(value):
            yield from _walk(item, shape.member, (*path, i))
    elif shape.type_name == "map":
        for key, item in value.items():
            yield from _walk(item, shape.value, (*path, key))


def _replace(root, path: tuple, value):
    """A copy of ``root`` with the node at ``path`` replaced (a member left out is a structure variant)."""
    if not path:
        return value
    out = copy.deepcopy(root)
    parent = functools.reduce(lambda node, step: node[step], path[:-1], out)
    parent[path[-1]] = value
    return out


_WRONG = [None, "7", 7, True, [], {}, 1.5]


def _string_of(shape, length: int) -> str:
    """A string of ``length`` chars that matches the pattern where one is easy to make, else plain."""
    base = EXAMPLES.get(shape.name, "a")
    for candidate in (base + "a" * (length - len(base)) if length >= len(base) else base[:length], "a" * length):
        pattern = shape.metadata.get("pattern")
        if pattern is None or java_regex(pattern).fullmatch(candidate):
            return candidate
    return "a" * length


def _distinct_channels(items: list) -> list:
    """Copies of a channel with names of their own (the seed: channel names are unique)."""
    for i, item in enumerate(items):
        if isinstance(item, dict) and "ChannelName" in item:
            item["ChannelName"] = f"c{i}"
    return items


def _variants(value, shape, enum_seen: set, turn: int) -> Iterator[tuple[str, object]]:
    """(label, replacement) values for one node: boundaries, one step past, enums, wrong types.

    Wrong types: null, and one other, taken in turn (``turn`` counts the nodes) so all kinds come up.
    """
    kind, meta = shape.type_name, shape.metadata
    low, high = meta.get("min"), meta.get("max")
    enum = meta.get("enum")
    if kind == "string" and not enum:
        for n in {low or 0, (low or 0) - 1, high, (high or 0) + 1} - {None, -1, 1}:
            if n is not None and n >= 0 and n <= 5000:
                yield f"length {n}", _string_of(shape, n)
        if meta.get("pattern") not in _FREE:
            yield "pattern: a line break", value + "\n"
        elif meta.get("pattern") in (".*", ".+"):
            yield "a line break", "a\nb"
    if enum:
        values = enum if shape.name not in enum_seen else enum[:3]
        enum_seen.add(shape.name)
        for v in values:
            yield f"enum {v}", v
        yield "enum: unknown", "Unknown"
        yield "enum: wrong case", enum[0].lower()
    if kind in ("integer", "long"):
        type_low, type_high = TYPE_RANGES[kind]
        for n in {low, high if high is not None else type_high, type_low}:
            if n is not None:
                yield f"value {n}", n
                yield f"value {n} - 1", n - 1
                yield f"value {n} + 1", n + 1
    if kind in ("list", "map"):
        element = value[0] if kind == "list" else next(iter(value.values()))
        for n in sorted({low or 0, (low or 0) - 1, high, (high or 0) + 1} - {None, -1}):
            if n <= 200:
                if kind == "list":
                    yield f"{n} items", _distinct_channels([copy.deepcopy(element) for _ in range(n)])
                else:
                    yield f"{n} entries", {f"k{i}": copy.deepcopy(element) for i in range(n)}
    if kind == "map":
        for n in {shape.key.metadata.get("max"), (shape.key.metadata.get("max") or 0) + 1} - {None}:
            yield f"key length {n}", {"k" * n: copy.deepcopy(next(iter(value.values())))}
    if kind == "structure":
        for name in shape.required_members:
            yield f"without {name}", {k: v for k, v in value.items() if k != name}
        yield "an unknown member", {**value, "UnknownMember": 1}
    wrong = [w for w in _WRONG[1:] if not _same_type(w, kind)]
    yield "type null", None
    yield f"type {type(wrong[turn % len(wrong)]).__name__}", wrong[turn % len(wrong)]


def _same_type(value, kind: str) -> bool:
    python = {"structure": dict, "map": dict, "list": list, "string": str, "boolean": bool}.get(kind)
    if kind in ("integer", "long"):
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, python)


def _seed_valid(job: dict, shape: str) -> dict:
    """Make a random job follow the documented rules the model cannot state (Pipe-only Gzip/RecordIO, ...)."""
    holder = job.get("AlgorithmSpecification", {}) if shape == "request" else job
    for i, channel in enumerate(job.get("InputDataConfig", [])):
        mode = channel.get("InputMode") or holder.get("TrainingInputMode")
        if mode != "Pipe":
            channel.pop("CompressionType", None)
            channel.pop("RecordWrapperType", None)
        s3 = channel.get("DataSource", {}).get("S3DataSource", {})
        if mode == "FastFile" and s3.get("S3DataType") == "AugmentedManifestFile":
            s3["S3DataType"] = "S3Prefix"
        channel["ChannelName"] = f"c{i}"
    return job


def random_valid(shape, rng: random.Random, depth: int = 0):
    """A random value the model accepts (strings of free patterns random, others from EXAMPLES)."""
    kind, meta = shape.type_name, shape.metadata
    if kind == "structure":
        return {n: random_valid(s, rng, depth + 1) for n, s in shape.members.items()
                if n in shape.required_members or rng.random() < 0.4}
    if kind == "list":
        return [random_valid(shape.member, rng, depth + 1)
                for _ in range(rng.randint(max(1, meta.get("min", 0)), min(meta.get("max", 3), 3)))]
    if kind == "map":
        return {f"k{i}": random_valid(shape.value, rng, depth + 1) for i in range(rng.randint(0, 3))}
    if kind == "string":
        if shape.enum:
            return rng.choice(shape.enum)
        if meta.get("pattern") in _FREE and shape.name not in EXAMPLES:
            n = rng.randint(max(1, meta.get("min", 0)), min(meta.get("max", 40), 40))
            return "".join(rng.choice("abcXYZ019 -_./:=+@é") for _ in range(n))
        return example(shape, False)
    if kind in ("integer", "long"):
        low, high = TYPE_RANGES[kind]
        return rng.randint(max(low, meta.get("min", low)), min(high, meta.get("max", 10**6)))
    if kind == "boolean":
        return rng.random() < 0.5
    raise AssertionError(kind)


def corpus(randoms: int = 300, seed: int = 18) -> Iterator[tuple[str, str, object]]:
    """(shape, label, job) cases: mutations of a full and a minimal valid job of each shape, then random valid ones."""
    enum_seen: set = set()
    for shape, root_name in ROOTS.items():
        root = SERVICE.shape_for(root_name)
        for full in (True, False):
            base = _seed_valid(example(root, full), shape)
            yield shape, f"{root_name} {'full' if full else 'minimal'}", base
            for turn, (path, value, node) in enumerate(list(_walk(base, root, ()))):
                for label, replacement in _variants(value, node, enum_seen if full else set(), turn):
                    yield shape, f"{root_name}{_label(path)}: {label}", _replace(base, path, replacement)
            if full:
                yield from _seed_cases(shape, base)
    rng = random.Random(seed)
    for i in range(randoms):
        shape = "definition" if i % 2 else "request"
        job = random_valid(SERVICE.shape_for(ROOTS[shape]), rng)
        yield shape, f"random valid {shape} #{i}", _seed_valid(job, shape)


SEED_CASES = [  # (label, channel changes, refused by a seed rule): each documented rule, broken and kept
    ("Gzip in File mode", {"InputMode": "File", "CompressionType": "Gzip"}, True),
    ("Gzip in Pipe mode", {"InputMode": "Pipe", "CompressionType": "Gzip"}, False),
    ("RecordIO in FastFile mode", {"InputMode": "FastFile", "RecordWrapperType": "RecordIO"}, True),
    ("RecordIO in Pipe mode", {"InputMode": "Pipe", "RecordWrapperType": "RecordIO"}, False),
    ("AugmentedManifestFile in FastFile mode", {"InputMode": "FastFile", "S3DataType": "AugmentedManifestFile"}, True),
    ("AugmentedManifestFile in File mode", {"InputMode": "File", "S3DataType": "AugmentedManifestFile"}, False),
    ("a channel name used twice", {"ChannelName": "c1"}, True),
    ("channel names that differ in case", {"ChannelName": "C1"}, False),
]


def _seed_cases(shape: str, base: dict) -> Iterator[tuple[str, str, dict]]:
    """The seed rules' cases, on a copy of the base job with two channels."""
    for label, changes, _ in SEED_CASES:
        job = copy.deepcopy(base)
        channels = job["InputDataConfig"] = _distinct_channels([copy.deepcopy(job["InputDataConfig"][0])
                                                                for _ in range(2)])
        for key, value in changes.items():
            target = channels[0]["DataSource"]["S3DataSource"] if key == "S3DataType" else channels[0]
            target[key] = value
        yield shape, f"{ROOTS[shape]} seed rule: {label}", job


def _label(path: tuple) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
