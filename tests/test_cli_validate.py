"""``channels validate``: exit codes and what it prints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from channels.cli import main
from channels.spec import Job

JOBS = Path(__file__).parent / "data" / "jobs"
S3URI_PATH = "InputDataConfig[2].DataSource.S3DataSource.S3Uri"


def test_valid_definition(capsys):
    assert main(["validate", str(JOBS / "definition.json")]) == 0
    out, err = capsys.readouterr()
    assert out == "OK: 4 channel(s) (train: Pipe, validation: File, images: FastFile, labels: Pipe)\n"
    assert err == ""


def test_valid_request(capsys):
    assert main(["validate", str(JOBS / "request.json")]) == 0
    assert capsys.readouterr().out.startswith("OK: 2 channel(s) (train: File, validation: FastFile)")


def test_json_prints_the_normalised_definition(capsys):
    assert main(["validate", "--json", str(JOBS / "request.json")]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["TrainingInputMode"] == "File" and "AlgorithmSpecification" not in data
    assert Job.from_dict(data) == Job.load(JOBS / "request.json")


def test_invalid_prints_every_problem(capsys):
    assert main(["validate", str(JOBS / "invalid.json")]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert lines[0].startswith("5 problem(s) in job definition") and len(lines) == 6
    uri = next(line for line in lines if S3URI_PATH in line)
    assert '"example-ml-data/test/"' in uri and "1024" in uri and "s3://" in uri
    assert any("InstanceCount: 0" in line and ">= 1" in line for line in lines)


def test_missing_file_is_one_line(capsys, tmp_path):
    assert main(["validate", str(tmp_path / "nope.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope.json" in err and "Traceback" not in err


def test_malformed_json_is_one_line_with_position(capsys, tmp_path):
    path = tmp_path / "job.json"
    path.write_text('{"TrainingInputMode": "Pipe",\n "InputDataConfig": [}\n')
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and "line 2, column" in err


def test_a_directory_is_one_line(capsys, tmp_path):
    assert main(["validate", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(tmp_path) in err


def test_as_a_subprocess():
    valid = subprocess.run([sys.executable, "-m", "channels", "validate", str(JOBS / "definition.json")],
                           capture_output=True, text=True, timeout=60)
    assert valid.returncode == 0 and valid.stdout.startswith("OK: 4 channel(s)")
    invalid = subprocess.run([sys.executable, "-m", "channels", "validate", str(JOBS / "invalid.json")],
                             capture_output=True, text=True, timeout=60)
    assert invalid.returncode == 1
    assert S3URI_PATH in invalid.stderr and "Traceback" not in invalid.stderr
