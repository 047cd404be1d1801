"""Malformed job files through ``channels validate``: one line on stderr, the documented status, no traceback.

Each file is run through the real command in a subprocess. The status is
EXIT_ERROR (2) for a file that cannot be read as a JSON object and
EXIT_INVALID (1) for a readable job with one problem. The line stays under
1 KB whatever the input's size, and the command's CPU time under 5 s (wall
time is printed, not asserted: the machine is shared).
"""

from __future__ import annotations

import codecs
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from channels.cli.main import EXIT_ERROR, EXIT_INVALID
from channels.errors import SpecError
from channels.spec import Job

JOBS = Path(__file__).parent / "data" / "jobs"
VALID = json.loads((JOBS / "definition.json").read_text())
MB50 = 50 * 10**6


def job_with(**top) -> str:
    return json.dumps({**VALID, **top})


def hyperparameter(raw_value: str) -> str:
    """The valid job, with one hyperparameter whose JSON text is ``raw_value`` (spliced in, not encoded)."""
    return job_with(HyperParameters={"k": "@@"}).replace('"@@"', raw_value)


# (id, file content as bytes or str (or a function making it: the 50 MB ones), status, words the line must hold)
MALFORMED = [
    ("not-json", '{"TrainingInputMode": "Pipe",\n "InputDataConfig": [}', EXIT_ERROR, ["line 2, column 22"]),
    ("json-array", json.dumps([VALID]), EXIT_ERROR, ["an array", "at the top level", "JSON object"]),
    ("null", "null", EXIT_ERROR, ["holds null at the top level"]),
    ("a-string", '"s3://bucket/job.json"', EXIT_ERROR, ["a string", "top level"]),
    ("empty", "", EXIT_ERROR, ["is empty"]),
    ("utf-16", job_with().encode("utf-16"), EXIT_ERROR, ["UTF-16", "FF FE", "save it as UTF-8"]),
    ("utf-16-no-bom", job_with().encode("utf-16-le"), EXIT_ERROR, ["NUL character", "UTF-16"]),
    ("utf-8-bom", codecs.BOM_UTF8 + job_with().encode(), EXIT_ERROR, ["byte-order mark", "without one"]),
    ("latin-1", json.dumps({**VALID, "HyperParameters": {"name": "Müller"}}, ensure_ascii=False).encode("latin-1"),
     EXIT_ERROR,
     ["not UTF-8", "0xfc", "line 1"]),
    ("100000-levels", "[" * 100_000 + "]" * 100_000, EXIT_ERROR, ["deeper than 64 levels", "line 1, column 65"]),
    ("990-levels-in-a-hyperparameter", hyperparameter("[" * 990 + "]" * 990), EXIT_ERROR,
     ["deeper than 64 levels at HyperParameters.k[0][0]", "levels)"]),
    ("5000-digit-integer", job_with(ResourceConfig={"InstanceCount": "@@"}).replace('"@@"', "9" * 5000),
     EXIT_ERROR, ["integer of 5,000 digits at ResourceConfig.InstanceCount"]),
    ("50MB-integer", lambda: hyperparameter("1" * MB50), EXIT_ERROR,
     ["integer of 50,000,000 digits", "HyperParameters.k"]),
    ("50MB-string-value", lambda: job_with(HyperParameters={"k": "v" * MB50}), EXIT_INVALID,
     ['HyperParameters["k"]', "50,000,000 chars long", "at most 2500"]),
    ("50MB-array-value", lambda: hyperparameter(json.dumps(["x" * 1000] * (MB50 // 1004))), EXIT_INVALID,
     ['HyperParameters["k"]', "is an array, not a string"]),
    ("duplicate-keys", job_with().replace('"TrainingInputMode": "Pipe"',
                                          '"TrainingInputMode": "Pipe", "TrainingInputMode": "File"'),
     EXIT_ERROR, ['names the key "TrainingInputMode" twice at the top level']),
    ("duplicate-nested-keys", job_with().replace('"S3DataType": "S3Prefix"', '"S3DataType": "S3Prefix", '
                                                 '"S3DataType": "S3Prefix"', 1),
     EXIT_ERROR, ['"S3DataType" twice at InputDataConfig[0].DataSource.S3DataSource']),
    ("nan", hyperparameter("NaN"), EXIT_ERROR, ["NaN at HyperParameters.k", "no NaN"]),
    ("infinity", job_with(StoppingCondition={"MaxRuntimeInSeconds": "@@"}).replace('"@@"', "1e999"), EXIT_ERROR,
     ["too large for a double (1e999) at StoppingCondition.MaxRuntimeInSeconds"]),
    ("lone-surrogate", hyperparameter('"\\ud800"'), EXIT_ERROR, ["lone surrogate", "HyperParameters.k"]),
    ("truncated", job_with()[:200], EXIT_ERROR, ["malformed JSON at line 1"]),
    ("two-objects", job_with() + job_with(), EXIT_ERROR, ["Extra data"]),
    ("trailing-comma", job_with()[:-1] + ",}", EXIT_ERROR, ["Expecting property name"]),
    ("raw-newline-in-a-string", hyperparameter('"a\nb"'), EXIT_ERROR, ["Invalid control character", "line 1"]),
]


@pytest.mark.parametrize("content, status, words", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_a_malformed_file_ends_in_one_short_line(tmp_path, content, status, words):
    path = tmp_path / "job.json"
    content = content() if callable(content) else content
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8", errors="surrogatepass")
    else:
        path.write_bytes(content)
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    r = subprocess.run([sys.executable, "-m", "channels", "validate", str(path)], capture_output=True, timeout=120)
    wall, after = time.monotonic() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    err = r.stderr.decode("utf-8")
    print(f"\n{path.stat().st_size:>11,} bytes: exit {r.returncode}, {len(r.stderr)} bytes on stderr, "
          f"{cpu:.2f} s CPU, {wall:.2f} s wall: {err.strip()[:200]}")
    assert r.returncode == status, err
    assert r.stdout == b"" and "Traceback" not in err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert len(r.stderr) < 1024
    assert err.startswith(f"channels validate: error: {path}: ")
    for word in words:
        assert word in err, (word, err)
    assert cpu < 5, cpu


def test_a_missing_file_and_a_directory_are_one_line(tmp_path):
    for target in (tmp_path / "nope.json", tmp_path):
        r = subprocess.run([sys.executable, "-m", "channels", "validate", str(target)], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == EXIT_ERROR and r.stderr.count("\n") == 1 and str(target) in r.stderr, r.stderr


def test_the_other_commands_read_job_files_the_same_way(tmp_path):
    """`channels run` (and pipe, download, mount) load jobs through the same reader: one line, exit 2."""
    path = tmp_path / "job.json"
    path.write_text(job_with().replace('"TrainingInputMode": "Pipe"',
                                       '"TrainingInputMode": "Pipe", "TrainingInputMode": "File"'))
    r = subprocess.run([sys.executable, "-m", "channels", "run", str(path), "--root", str(tmp_path / "r"), "--",
                        "true"], capture_output=True, text=True, timeout=60)
    assert r.returncode == EXIT_ERROR and r.stderr.count("\n") == 1, r.stderr
    assert 'names the key "TrainingInputMode" twice' in r.stderr


def test_a_file_over_the_size_cap_is_refused_unparsed(tmp_path, monkeypatch):
    from channels.spec import jsonfile

    monkeypatch.setattr(jsonfile, "MAX_FILE_BYTES", 1000)
    path = tmp_path / "job.json"
    path.write_text(job_with(HyperParameters={"k": "v" * 2000}))
    with pytest.raises(SpecError) as info:
        jsonfile.read_job_file(path)
    assert str(info.value) == (f"{path}: is larger than 1,000 bytes; a job definition is far smaller "
                               "(look for a value pasted by mistake)")
    assert info.value.details["path"] == str(path) and info.value.problems == []


def test_errors_carry_the_json_path_and_position(tmp_path):
    path = tmp_path / "job.json"
    path.write_text(job_with().replace('"S3DataType": "S3Prefix"', '"S3DataType": "S3Prefix", "S3DataType": "x"', 1))
    with pytest.raises(SpecError) as info:
        Job.load(path)
    assert info.value.details["json_path"] == "InputDataConfig[0].DataSource.S3DataSource"
    path.write_text("[" * 100_000)
    with pytest.raises(SpecError) as info:
        Job.load(path)
    assert (info.value.details["line"], info.value.details["column"]) == (1, 65)
