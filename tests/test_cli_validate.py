"""``channels validate``: both verdicts, what they print, and the CLI's one exit-status scheme."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from channels.cli import main
from channels.cli.main import EXIT_ERROR, EXIT_INVALID, EXIT_OK, MAX_PROBLEM_LINES
from channels.spec import Job

JOBS = Path(__file__).parent / "data" / "jobs"
S3URI_PATH = "InputDataConfig[2].DataSource.S3DataSource.S3Uri"


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "channels", *args], capture_output=True, text=True,
                          timeout=60, env=env)


def write(tmp_path: Path, data: dict, name: str = "job.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def definition() -> dict:
    return json.loads((JOBS / "definition.json").read_text())


# -- the default verdict: SageMaker's API ------------------------------------------------

def test_valid_definition(capsys):
    assert main(["validate", str(JOBS / "definition.json")]) == EXIT_OK
    out, err = capsys.readouterr()
    assert out == ("OK: SageMaker's API model accepts this TrainingJobDefinition: 4 channel(s) "
                   "(train: Pipe, validation: File, images: FastFile, labels: Pipe)\n")
    assert err == ""


def test_valid_request(capsys):
    assert main(["validate", str(JOBS / "request.json")]) == EXIT_OK
    assert capsys.readouterr().out.startswith("OK: SageMaker's API model accepts this CreateTrainingJobRequest: "
                                              "2 channel(s) (train: File, validation: FastFile)")


def test_json_prints_the_normalised_definition(capsys):
    assert main(["validate", "--json", str(JOBS / "request.json")]) == EXIT_OK
    data = json.loads(capsys.readouterr().out)
    assert data["TrainingInputMode"] == "File" and "AlgorithmSpecification" not in data
    assert Job.from_dict(data) == Job.load(JOBS / "request.json")


def test_invalid_prints_every_problem_one_line_each(capsys):
    path = JOBS / "invalid.json"
    assert main(["validate", str(path)]) == EXIT_INVALID
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    prefix = f"channels validate: error: {path}: "
    assert all(line.startswith(prefix) for line in lines)
    # InstanceCount 0 is valid for the API (the model's minimum is 0); channels run refuses it (below).
    assert [line[len(prefix):].split(": ", 1)[0] for line in lines] == [
        'HyperParameters["epochs"]', "InputDataConfig[0].CompressionType", "InputDataConfig[2].ChannelName",
        S3URI_PATH]
    uri = lines[3]
    assert '"example-ml-data/test/"' in uri and "s3://" in uri
    assert "our rule pipe-only-gzip" in lines[1] and "CompressionType is used only in Pipe input mode" in lines[1]
    assert "our rule unique-channel-names" in lines[2]


@pytest.mark.parametrize("mutate, path, words", [
    (lambda d: d["InputDataConfig"][0]["DataSource"]["S3DataSource"].update(S3Uri="gs://bucket/train/"),
     "InputDataConfig[0].DataSource.S3DataSource.S3Uri", ['"gs://bucket/train/"', "s3:// or https://", "--local"]),
    (lambda d: d.pop("ResourceConfig"), "ResourceConfig", ["missing", "requires it in TrainingJobDefinition"]),
    (lambda d: d["ResourceConfig"].update(Foo=1), "ResourceConfig.Foo", ["unknown key", "ResourceConfig has no member",
                                                                       "InstanceType"]),
    (lambda d: d.update(TrainingJobName="x"), "TrainingJobName", ["TrainingJobDefinition has no member"]),
    (lambda d: d["OutputDataConfig"].update(CompressionType="ZIP"), "OutputDataConfig.CompressionType",
     ['"ZIP" is not one of GZIP | NONE']),
    (lambda d: d["ResourceConfig"].update(InstanceType="ml.m5.huge"), "ResourceConfig.InstanceType",
     ['"ml.m5.huge" is not one of', "values)"]),
    (lambda d: d["ResourceConfig"].update(KeepAlivePeriodInSeconds=21601), "ResourceConfig.KeepAlivePeriodInSeconds",
     ["21601 is out of range", "from 0 to 21600"]),
    (lambda d: d["StoppingCondition"].update(MaxRuntimeInSeconds=2**31), "StoppingCondition.MaxRuntimeInSeconds",
     ["2147483648 is out of range", "from 1 to 2147483647"]),
    (lambda d: d["OutputDataConfig"].update(KmsKeyId="key id"), "OutputDataConfig.KmsKeyId",
     ["KmsKeyId's pattern [a-zA-Z0-9:/_-]*"]),
    (lambda d: d["HyperParameters"].update(epochs="1\n2"), 'HyperParameters["epochs"]',
     ["line breaks are not allowed here"]),
    (lambda d: d["InputDataConfig"][0].update(ContentType=None), "InputDataConfig[0].ContentType",
     ["null is null, not a string"]),
    (lambda d: d["InputDataConfig"][0].update(CompressionType=None), "InputDataConfig[0].CompressionType",
     ["null is null, not a string"]),
], ids=["gs-url", "no-resource-config", "unknown-member", "job-name-in-definition", "output-compression",
        "instance-type", "keep-alive", "int32", "kms-key-pattern", "newline", "null-content-type",
        "null-compression"])
def test_the_default_verdict_names_field_value_and_limit(tmp_path, capsys, mutate, path, words):
    data = definition()
    mutate(data)
    assert main(["validate", str(write(tmp_path, data))]) == EXIT_INVALID
    (line,) = capsys.readouterr().err.splitlines()
    assert f"job.json: {path}: " in line
    for word in words:
        assert word in line


def test_converse_is_an_s3_data_type_of_the_api_but_not_of_channels_run(tmp_path, capsys):
    data = definition()
    data["InputDataConfig"][1]["DataSource"]["S3DataSource"]["S3DataType"] = "Converse"
    path = write(tmp_path, data)
    assert main(["validate", str(path)]) == EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith("OK: SageMaker's API model accepts") and "note: channels run would refuse it" in out
    assert main(["validate", "--local", str(path)]) == EXIT_INVALID
    assert "S3DataType: \"Converse\" is not one of S3Prefix" in capsys.readouterr().err


# -- --local: what channels run accepts, and the extensions it uses ------------------------

def test_local_lists_the_extensions_it_uses_as_notes(tmp_path, capsys):
    data = definition()
    data["InputDataConfig"][1]["DataSource"]["S3DataSource"]["S3Uri"] = "file:///data/validation/"
    del data["StoppingCondition"]
    data["RoleArn"] = "arn:aws:iam::123456789012:role/x"  # a request's member, ignored in a definition
    path = write(tmp_path, data)
    assert main(["validate", str(path)]) == EXIT_INVALID
    assert len(capsys.readouterr().err.splitlines()) == 3
    assert main(["validate", "--local", str(path)]) == EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("OK: channels run accepts this job: 4 channel(s)")
    assert lines[1:] == [
        "note: InputDataConfig[1].DataSource.S3DataSource.S3Uri: an fsspec URL: channels run reads it; "
        "SageMaker reads only s3:// and https:// URIs",
        "note: RoleArn: not in the API model (TrainingJobDefinition has no such member): channels run ignores it; "
        "SageMaker would refuse it",
        "note: StoppingCondition: missing: channels run uses MaxRuntimeInSeconds 86400; SageMaker requires it",
    ]


def test_local_refuses_what_channels_run_cannot_do(capsys):
    assert main(["validate", "--local", str(JOBS / "invalid.json")]) == EXIT_INVALID
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 5 and "ResourceConfig.InstanceCount: 0 is out of range; must be an integer >= 1" in lines[4]


# -- the exit-status scheme, and bounded output --------------------------------------------

def test_missing_file_is_one_line(capsys, tmp_path):
    assert main(["validate", str(tmp_path / "nope.json")]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope.json" in err and "Traceback" not in err


def test_malformed_json_is_one_line_with_position(capsys, tmp_path):
    path = tmp_path / "job.json"
    path.write_text('{"TrainingInputMode": "Pipe",\n "InputDataConfig": [}\n')
    assert main(["validate", str(path)]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and "line 2, column" in err


def test_a_directory_is_one_line(capsys, tmp_path):
    assert main(["validate", str(tmp_path)]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(tmp_path) in err


def test_usage_errors_exit_2():
    for args in (["validate"], ["nosuch"], ["validate", "--bogus", "x.json"], []):
        r = cli(*args)
        assert r.returncode == EXIT_ERROR and "usage:" in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)


def test_an_invalid_job_exits_1_from_every_command_that_reads_one(tmp_path):
    data = definition()
    data["InputDataConfig"][0]["ChannelName"] = "my data"
    path = write(tmp_path, data)
    for args in (["validate", str(path)], ["validate", "--local", str(path)],
                 ["pipe", str(path), "--root", str(tmp_path / "r")],
                 ["run", str(path), "--root", str(tmp_path / "r"), "--", "true"]):
        r = cli(*args)
        assert r.returncode == EXIT_INVALID, (args, r.stderr)
        assert "InputDataConfig[0].ChannelName" in r.stderr and "Traceback" not in r.stderr


def test_output_is_bounded_however_many_problems(tmp_path):
    data = definition()
    data["ResourceConfig"].update({f"Bogus{i}": i for i in range(20_000)})
    data["HyperParameters"] = {f"k{i}": i for i in range(100_000)}
    r = cli("validate", str(write(tmp_path, data)))
    assert r.returncode == EXIT_INVALID
    lines = r.stderr.splitlines()
    # 120,001 problems in all: 20,000 unknown keys, 100,000 values not strings, 1 count
    assert len(lines) == MAX_PROBLEM_LINES + 1 and lines[-1].endswith("and 119,951 more problem(s)"), lines[-1]
    assert max(map(len, lines)) < 1024


def test_as_a_subprocess():
    valid = cli("validate", str(JOBS / "definition.json"))
    assert valid.returncode == EXIT_OK and valid.stdout.startswith("OK: SageMaker's API model accepts")
    invalid = cli("validate", str(JOBS / "invalid.json"))
    assert invalid.returncode == EXIT_INVALID
    assert S3URI_PATH in invalid.stderr and "Traceback" not in invalid.stderr


# -- cost: the model is cached, and validate imports only what it needs -----------------------

def big_job(tmp_path: Path) -> Path:
    """20 channels and 100 hyperparameters: the largest job the seed allows."""
    data = definition()
    data["InputDataConfig"] = [{"ChannelName": f"c{i}", "DataSource": {"S3DataSource": {
        "S3DataType": "S3Prefix", "S3Uri": f"s3://b/{i}/"}}} for i in range(20)]
    data["HyperParameters"] = {f"k{i}": "v" * 2500 for i in range(100)}
    return write(tmp_path, data, "big.json")


def test_the_model_is_read_from_the_cache_and_heavy_modules_stay_unloaded(tmp_path):
    probe = ("import sys; from channels.cli.main import main; rc = main(['validate', sys.argv[1]]); "
             "print(rc, sorted(m for m in ('botocore.loaders', 'numpy', 'fsspec') if m in sys.modules))")
    env = {**os.environ, "CHANNELS_CACHE_DIR": str(tmp_path / "cache")}
    runs = [subprocess.run([sys.executable, "-c", probe, str(big_job(tmp_path))], capture_output=True, text=True,
                           timeout=60, env=env) for _ in range(2)]
    assert runs[0].stdout.splitlines()[-1] == "0 ['botocore.loaders']", runs[0].stderr  # built the cache
    assert runs[1].stdout.splitlines()[-1] == "0 []", runs[1].stderr  # read it
    assert len(list((tmp_path / "cache").iterdir())) == 1


def test_validating_the_largest_job_costs_under_half_a_second_of_cpu(tmp_path):
    """Process time (user + system) of the whole command, warm cache; the best of three runs."""
    path = big_job(tmp_path)
    cli("validate", str(path))  # make sure the cache is built
    costs = []
    for _ in range(3):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        assert cli("validate", str(path)).returncode == EXIT_OK
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        costs.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    print(f"channels validate, 20 channels and 100 hyperparameters: CPU seconds {sorted(costs)}")
    assert min(costs) < 0.5, costs
