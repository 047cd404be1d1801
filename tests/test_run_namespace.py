"""--mount-namespace: a host's root on /opt/ml and algo-1..N resolving, as root and as a plain user.

channels/run/namespace.py runs for real: real mount and UTS namespaces, real
bind mounts, the real resolver (getent). The machine's own /opt and
/etc/hosts must come out untouched.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from channels.cli.run import _add_options, _split
from channels.run import namespace
from channels.run.entry import EntryPointError
from channels.run.runner import Run, RunError, RunOptions
from channels.spec import Job

SHOW = "cat /opt/ml/input/marker; hostname; getent hosts algo-3; id -u; ls /opt"


def can_namespace() -> str | None:
    with tempfile.TemporaryDirectory() as scratch:
        hosts = Path(scratch) / "hosts"
        hosts.write_text(namespace.hosts_text(1))
        why = namespace.probe(str(hosts), scratch)
    return None if why is None else f"no mount namespace on this machine: {why}"


needs_namespace = pytest.mark.skipif(can_namespace() is not None, reason=can_namespace() or "")


@pytest.fixture
def host_root():
    """A host's root and hosts file that any user can read (pytest's tmp_path is root's alone)."""
    top = Path(tempfile.mkdtemp(prefix="channels-ns-"))
    try:
        os.chmod(top, 0o755)
        (top / "root" / "input").mkdir(parents=True)
        (top / "root" / "input" / "marker").write_text("this host's tree\n")
        (top / "hosts").write_text(namespace.hosts_text(3))
        yield top
    finally:
        shutil.rmtree(top)


def run_wrapped(top: Path, *prefix: str) -> subprocess.CompletedProcess:
    argv = namespace.wrap(["sh", "-c", SHOW], str(top / "root"), str(top / "hosts"), "algo-2")
    return subprocess.run([*prefix, *argv], capture_output=True, text=True, timeout=60)


def machine_state() -> tuple[list[str], str, bool]:
    return sorted(os.listdir("/opt")), Path("/etc/hosts").read_text(), os.path.exists("/opt/ml")


@needs_namespace
def test_the_host_sees_its_root_on_opt_ml_its_name_and_the_others(host_root):
    before = machine_state()
    done = run_wrapped(host_root)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "this host's tree" and lines[1] == "algo-2"
    assert lines[2].split() == ["127.0.0.1", "algo-1", "algo-2", "algo-3"]
    assert set(before[0]) <= set(lines[4:])  # /opt still shows what it had, and ml
    assert machine_state() == before  # nothing reached the machine: no /opt/ml, the same /etc/hosts


@needs_namespace
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="becoming a plain user needs root and util-linux's setpriv")
def test_a_plain_user_gets_the_same_through_a_user_namespace(host_root):
    done = run_wrapped(host_root, "setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups")
    if done.returncode == namespace.EXIT_NO_NAMESPACE:
        pytest.skip(f"this kernel lets no plain user make a user namespace: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:2] == ["this host's tree", "algo-2"] and "algo-3" in lines[2]
    assert lines[3] == "65534"  # the script keeps its own identity


JOB = {"TrainingInputMode": "File", "InputDataConfig": [{"ChannelName": "train", "DataSource": {
    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/p/"}}}], "OutputDataConfig": {
    "S3OutputPath": "s3://b/out/"}}


def test_without_a_namespace_the_run_says_what_it_cannot_do(tmp_path, monkeypatch):
    monkeypatch.setattr(namespace, "probe", lambda hosts, scratch: "unshare: Operation not permitted")
    job = Job.from_dict(JOB)
    # shared_plan=False: preparing the hosts lists nothing (the job's bucket does not exist here).
    run = Run(RunOptions(job, ("true",), root=tmp_path, hosts=2, mount_namespace=True, shared_plan=False))
    assert not run.namespaced
    [note] = run.warnings
    assert "Operation not permitted" in note and "needs root" in note
    assert "hard-codes /opt/ml will not find its files" in note and "SAGEMAKER_BASE_DIR" in note
    assert "algo-1 algo-2" in note  # resolving already, or what to add to /etc/hosts
    [host] = run.prepare()[:1]
    assert host.command == ["true"]
    assert host.spec.env["SAGEMAKER_BASE_DIR"] == str(tmp_path / "algo-1")


def parse(*words: str) -> tuple[argparse.Namespace, str | None, list[str]]:
    args = argparse.Namespace(job_and_command=list(words))
    _add_options(argparse.ArgumentParser())
    job, command = _split(args)
    return args, job, command


def test_cli_takes_an_entry_point_or_a_command():
    args, job, command = parse("job.json", "--entry-point", "src/train.py", "--hosts", "2", "--mount-namespace")
    assert (job, command, args.entry_point, args.hosts, args.mount_namespace) == (
        "job.json", [], Path("src/train.py"), 2, True)
    _, job, command = parse("job.json", "python", "train.py", "--hosts", "3")  # the command's own flags
    assert (job, command) == ("job.json", ["python", "train.py", "--hosts", "3"])
    with pytest.raises(RunError, match="not both"):
        RunOptions(Job.from_dict(JOB), ("python",), entry_point=Path(sys.executable))
    with pytest.raises(EntryPointError, match="no-such.py does not exist") as caught:
        Run(RunOptions(Job.from_dict(JOB), (), entry_point=Path("no-such.py")))
    assert caught.value.details["path"] == os.path.abspath("no-such.py")
