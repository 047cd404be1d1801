"""The limits come from botocore's SageMaker model; the seed page's numbers are pinned here, by name.

If botocore ships a model that contradicts the seed page
(shared/seed/TrainingJobDefinition.txt), one of the ``test_seed_*`` tests
fails and says which number moved.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import botocore
import pytest

from channels import spec
from channels.run.runner import DEFAULT_GRACE_SECONDS
from channels.spec.model import ROOTS, ApiModel, api_model, python_pattern

MODEL = api_model()


def definition(*path: str):
    return MODEL.at("TrainingJobDefinition", *path)


# -- the seed page, pinned ---------------------------------------------------------------------

def test_seed_1_to_20_channels():
    assert (definition("InputDataConfig").min, definition("InputDataConfig").max) == (1, 20)
    assert (spec.MIN_CHANNELS, spec.MAX_CHANNELS) == (1, 20)


def test_seed_0_to_100_hyperparameters():
    assert (definition("HyperParameters").min, definition("HyperParameters").max) == (0, 100)
    assert spec.MAX_HYPERPARAMETERS == 100


def test_seed_hyperparameter_keys_256_and_values_2500_chars_any_single_line():
    key, value = definition("HyperParameters", "{key}"), definition("HyperParameters", "{}")
    assert (key.max, value.max) == (256, 2500)
    assert key.pattern == value.pattern == ".*"
    assert (spec.HYPERPARAMETER_KEY_MAX_LEN, spec.HYPERPARAMETER_VALUE_MAX_LEN) == (256, 2500)


def test_seed_input_modes_pipe_file_fastfile():
    assert definition("TrainingInputMode").enum == ("Pipe", "File", "FastFile")
    assert definition("InputDataConfig", "[]", "InputMode").enum == spec.INPUT_MODES == ("Pipe", "File", "FastFile")


def test_seed_required_members_of_a_definition():
    assert set(MODEL["TrainingJobDefinition"].required) == {
        "TrainingInputMode", "InputDataConfig", "OutputDataConfig", "ResourceConfig", "StoppingCondition"}


def test_seed_sigterm_grace_120_seconds():
    # "SageMaker sends the algorithm the SIGTERM signal, which delays job termination for 120 seconds."
    assert DEFAULT_GRACE_SECONDS == 120


# -- the rest of the limits are the model's -----------------------------------------------------

@pytest.mark.parametrize("constant, path", [
    ("CHANNEL_NAME_MAX_LEN", ("InputDataConfig", "[]", "ChannelName")),
    ("CONTENT_TYPE_MAX_LEN", ("InputDataConfig", "[]", "ContentType")),
    ("URI_MAX_LEN", ("InputDataConfig", "[]", "DataSource", "S3DataSource", "S3Uri")),
    ("MAX_ATTRIBUTE_NAMES", ("InputDataConfig", "[]", "DataSource", "S3DataSource", "AttributeNames")),
])
def test_the_library_constants_are_the_models(constant, path):
    assert getattr(spec, constant) == definition(*path).max


def test_channels_reads_a_subset_of_the_models_s3_data_types():
    model_types = definition("InputDataConfig", "[]", "DataSource", "S3DataSource", "S3DataType").enum
    assert set(spec.S3_DATA_TYPES) < set(model_types) and "Converse" in model_types


def test_every_pattern_of_a_job_is_checked():
    assert len(MODEL) > 100 and set(ROOTS) <= set(MODEL)
    assert MODEL.untranslated == {}
    patterned = [s for s in MODEL.values() if s.pattern]
    assert len(patterned) >= 30 and all(s.regex() is not None for s in patterned)


# -- Java patterns, with Java's meaning -------------------------------------------------------

@pytest.mark.parametrize("java, text, matches", [
    (".*", "one line", True),
    (".*", "two\nlines", False),
    (".*", "carriage\rreturn", False),
    (".*", "line\u2028separator", False),
    ("[\\S\\s]*", "two\nlines", True),
    ("\\d+K", "8K", True),
    ("\\d+K", "\u0668K", False),  # Java's \d is ASCII
    ("[\\p{Alnum}\\-]+", "ab-1", True),
    ("[\\p{Alnum}\\-]+", "\u00e9", False),  # POSIX classes are ASCII in Java
    ("([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)", "\u00e9t\u00e9 \u0663\u00bd", True),  # letters, spaces, numbers
    ("([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)", "tab\there", False),  # \t is no separator (Z)
    ("(arn:aws)?([a-z]([a-z-]){0,62})(?<!-)", "name-", False),
])
def test_java_patterns_keep_their_meaning(java, text, matches):
    import re

    assert bool(re.fullmatch(python_pattern(java), text, re.ASCII)) is matches


@pytest.mark.parametrize("java", ["[a-z&&[^b]]", "\\Qx\\E", "(?<name>x)", "[\\P{L}]", "\\p{Nope}", "[a-z"])
def test_java_patterns_not_translated_are_refused_by_name(java):
    with pytest.raises(ValueError, match="pattern|not translated|no such"):
        python_pattern(java)


# -- the cache, and a model that changes -------------------------------------------------------

def shipped_model() -> dict:
    data = Path(botocore.__file__).parent / "data" / "sagemaker"
    (version,) = [p for p in data.iterdir() if p.is_dir()][-1:]
    return json.loads(gzip.decompress((version / "service-2.json.gz").read_bytes())), version.name


def probe(env: dict, code: str) -> str:
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**os.environ, **env})
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_validation_follows_the_model_botocore_loads(tmp_path):
    """A model that allows 40 channels (AWS_DATA_PATH, as botocore reads it) makes 40 the limit."""
    model, version = shipped_model()
    model["shapes"]["InputDataConfig"]["max"] = 40
    folder = tmp_path / "models" / "sagemaker" / version
    folder.mkdir(parents=True)
    (folder / "service-2.json").write_text(json.dumps(model))
    env = {"AWS_DATA_PATH": str(tmp_path / "models"), "CHANNELS_CACHE_DIR": str(tmp_path / "cache")}
    assert probe(env, "from channels import spec; print(spec.MAX_CHANNELS)") == "40"
    assert probe({"CHANNELS_CACHE_DIR": str(tmp_path / "cache")},
                 "from channels import spec; print(spec.MAX_CHANNELS)") == "20"
    assert len(list((tmp_path / "cache").iterdir())) == 2  # one cache file per model


def test_a_corrupt_cache_is_rebuilt_and_an_unwritable_one_skipped(tmp_path):
    cache = tmp_path / "cache"
    code = "from channels import spec; print(spec.MAX_CHANNELS)"
    assert probe({"CHANNELS_CACHE_DIR": str(cache)}, code) == "20"
    (entry,) = cache.iterdir()
    entry.write_text("{not json")
    assert probe({"CHANNELS_CACHE_DIR": str(cache)}, code) == "20"
    assert json.loads(entry.read_text())["shapes"]
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    assert probe({"CHANNELS_CACHE_DIR": str(blocked / "cache")}, code) == "20"


def test_the_model_is_a_mapping_of_shapes_that_names_a_missing_member():
    assert isinstance(MODEL, ApiModel) and MODEL.botocore_version == botocore.__version__
    with pytest.raises(KeyError, match="Channel has no member 'Bogus'"):
        MODEL.at("TrainingJobDefinition", "InputDataConfig", "[]", "Bogus")
