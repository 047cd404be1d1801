"""Security: no credential in any output, nothing world-writable, nothing written outside named folders.

Commands run with recognisable dummy credentials (:data:`CANARIES`) in their
environment, against moto (which takes any credentials), through the fault
proxy (retries, spent budgets, 403s) and against a moto that checks
signatures (wrong secret). Every byte they print, log or write is then
searched for the canaries and for the marks of a signed request
(``Signature=``, ``Credential=``, ``X-Amz-Signature``, a session token).
"""

from __future__ import annotations

import io
import json
import logging
import os
import pickle
import re
import stat
import subprocess
import sys
import time
import traceback
from pathlib import Path

import pytest
from faultproxy import fault_proxy, sizes_of

from channels.errors import ChannelsError, TransportError
from channels.listing import list_prefix
from channels.modes.fastfile.view import FastFileView
from channels.modes.file.download import download
from channels.modes.pipe.reader import PipeReader
from channels.store import Store
from channels.testing import KIB, object_bytes
from channels.testing.faults import Action, MixedFaults, object_gets
from channels.transport import AccessDeniedError, Transport, TransportConfig

KEY_ID = "AKIACANARYCANARY0001"
SECRET = "secret-canary-9f8e7d6c5b4a39281706"
TOKEN = "token-canary-5a4b3c2d1e0f"
CANARIES = (KEY_ID, SECRET, TOKEN, "CANARY", "canary")
#: What a signed request or URL leaves behind, should one be printed.
SIGNED = ("Signature=", "X-Amz-Signature", "Credential=", "x-amz-security-token", "X-Amz-Security-Token",
          "AWS4-HMAC-SHA256")
FAST = dict(retries=2, backoff_base=0.001, backoff_max=0.01)


def leaks(text: str) -> list[str]:
    """The canaries and signing marks found in ``text``."""
    return [s for s in (*CANARIES, *SIGNED) if s in text]


def assert_clean(outputs: dict[str, str]) -> None:
    found = {where: leaks(text) for where, text in outputs.items() if leaks(text)}
    assert not found, f"credential material in: {found}"


def files_text(root: Path) -> dict[str, str]:
    """Every regular file below ``root``, as text (for the grep)."""
    out = {}
    for p in root.rglob("*"):
        if p.is_file() and not p.is_symlink():
            out[str(p)] = p.read_bytes().decode("latin-1")
    return out


@pytest.fixture
def sandbox(tmp_path, s3):
    """Empty HOME, TMPDIR and working folders, and an environment holding the canaries."""
    box = {name: tmp_path / name for name in ("home", "tmp", "cwd")}
    for p in box.values():
        p.mkdir()
    env = dict(os.environ, AWS_ACCESS_KEY_ID=KEY_ID, AWS_SECRET_ACCESS_KEY=SECRET, AWS_SESSION_TOKEN=TOKEN,
               AWS_ENDPOINT_URL=s3.endpoint_url, HOME=str(box["home"]), TMPDIR=str(box["tmp"]),
               PYTHONDONTWRITEBYTECODE="1")
    env.pop("AWS_PROFILE", None)
    box["env"] = env
    return box


def run(sandbox, *args: str, endpoint: str | None = None, umask: int | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess:
    """``channels ARGS`` in the sandbox (its cwd, HOME, TMPDIR and canary credentials)."""
    env = dict(sandbox["env"])
    if endpoint:
        env["AWS_ENDPOINT_URL"] = endpoint
    return subprocess.run([sys.executable, "-m", "channels", *args], capture_output=True, text=True, env=env,
                          cwd=sandbox["cwd"], timeout=timeout,
                          preexec_fn=None if umask is None else (lambda: os.umask(umask)))


def put_dataset(s3_client, bucket: str, n: int = 6) -> dict[str, bytes]:
    data = {f"p/d{i % 2}/obj-{i}.bin": object_bytes(f"o{i}", 40 * KIB + i) for i in range(n)}
    for key, body in data.items():
        s3_client.put_object(Bucket=bucket, Key=key, Body=body)
    return data


def pipe_job(path: Path, bucket: str) -> Path:
    job = {"TrainingInputMode": "Pipe",
           "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": {
               "S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/p/"}}}],
           "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/out/"},
           "ResourceConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1},
           "StoppingCondition": {"MaxRuntimeInSeconds": 600}}
    path.write_text(json.dumps(job))
    return path


def serve_pipe(sandbox, job: Path, root: Path, umask: int | None = None) -> tuple[subprocess.CompletedProcess,
                                                                                   bytes, int]:
    """``channels pipe`` for one epoch; read its FIFO; returns (result, bytes read, FIFO mode)."""
    env = sandbox["env"]
    proc = subprocess.Popen([sys.executable, "-m", "channels", "pipe", str(job), "--root", str(root),
                             "--epochs", "1", "-v"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=sandbox["cwd"],
                            preexec_fn=None if umask is None else (lambda: os.umask(umask)))
    fifo = root / "input" / "data" / "train_0"
    deadline = time.monotonic() + 30
    while not fifo.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    mode = stat.S_IMODE(os.lstat(fifo).st_mode)
    data = fifo.read_bytes()
    out, err = proc.communicate(timeout=30)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), data, mode


# ---------------------------------------------------------------- credentials never printed

def test_commands_never_print_credentials(s3, s3_client, bucket, sandbox, tmp_path):
    data = put_dataset(s3_client, bucket)
    uri = f"s3://{bucket}/p/"
    outputs: dict[str, str] = {}

    def record(name: str, r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
        outputs[f"{name} stdout"], outputs[f"{name} stderr"] = r.stdout, r.stderr
        return r

    assert record("download", run(sandbox, "download", uri, str(tmp_path / "dl"))).returncode == 0
    assert record("shard-report", run(sandbox, "shard-report", uri, "--hosts", "2")).returncode == 0
    r, got, _ = serve_pipe(sandbox, pipe_job(tmp_path / "job.json", bucket), tmp_path / "ml")
    assert record("pipe", r).returncode == 0 and got == b"".join(data[k] for k in sorted(data))
    # Failures: the store refuses (403), keeps failing (503 until the budget is spent).
    with fault_proxy(s3, lambda req: Action("status", status=403) if object_gets(req) else None) as proxy:
        r = record("download 403", run(sandbox, "download", uri, str(tmp_path / "dl403"), endpoint=proxy.url))
    assert r.returncode == 2 and "access denied reading" in r.stderr
    with fault_proxy(s3, lambda req: Action("status", status=503) if object_gets(req) else None) as proxy:
        r = record("download 503", run(sandbox, "download", uri, str(tmp_path / "dl503"), endpoint=proxy.url,
                                       timeout=120))
    assert r.returncode == 2 and "gave up reading" in r.stderr
    outputs.update(files_text(tmp_path))
    assert_clean(outputs)


def test_wrong_credentials_are_never_echoed(auth_s3, sandbox, tmp_path):
    """A server that checks signatures says SignatureDoesNotMatch; nothing we print repeats the secret."""
    endpoint, _, _, bucket = auth_s3
    env_key = dict(sandbox["env"])
    r = run(sandbox, "download", f"s3://{bucket}/p/", str(tmp_path / "dl"), endpoint=endpoint)
    assert r.returncode == 2 and "access denied listing" in r.stderr, r.stderr
    with Transport(Store(endpoint, (("key", KEY_ID), ("secret", SECRET), ("token", TOKEN))),
                   TransportConfig(**FAST)) as t, pytest.raises(AccessDeniedError) as info:
        t.read_range(f"s3://{bucket}/p/x.bin", 0, 10)
    assert "HTTP 403 InvalidAccessKeyId" in str(info.value)
    assert_clean({"stdout": r.stdout, "stderr": r.stderr, **exception_texts(info.value)})
    assert env_key["AWS_SECRET_ACCESS_KEY"] == SECRET  # the canary really was in the environment


def exception_texts(exc: BaseException) -> dict[str, str]:
    """Every way an exception is shown: str, repr, details, the traceback with its causes, a pickle."""
    texts = {"str": str(exc), "repr": repr(exc),
             "traceback": "".join(traceback.format_exception(exc)),
             "pickle": pickle.dumps(exc).decode("latin-1")}
    if isinstance(exc, ChannelsError):
        texts["details"] = repr(exc.details)
        texts["unpickled"] = str(pickle.loads(pickle.dumps(exc)))
    return texts


@pytest.fixture
def channels_debug_log():
    """Everything the ``channels`` loggers say, at DEBUG."""
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    logger = logging.getLogger("channels")
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield buf
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)


def test_logs_and_errors_hold_no_credentials(s3, s3_client, bucket, tmp_path, channels_debug_log):
    """Retries (logged at DEBUG), spent budgets and refusals, read with the canaries as credentials."""
    data = put_dataset(s3_client, bucket, 12)
    store_opts = (("key", KEY_ID), ("secret", SECRET), ("token", TOKEN))
    config = TransportConfig(part_size=16 * KIB, budget_bytes=256 * KIB, max_workers=4, retries=6,
                             backoff_base=0.001, backoff_max=0.01, read_timeout=0.5)
    texts: dict[str, str] = {}
    policy = MixedFaults(sizes_of(bucket, data), rate=0.2)
    with fault_proxy(s3, policy) as proxy:
        store = Store(proxy.url, store_opts)
        with PipeReader(f"s3://{bucket}/p/", framing="object", store=store, config=config) as reader:
            assert [bytes(r) for r in reader.epoch(0)] == [data[k] for k in sorted(data)]
            assert reader.transport.stats.retries == len(policy.injected) > 0
        download(f"s3://{bucket}/p/", tmp_path / "dl", store=store, config=config, progress=False)
        with Transport(store, config) as t, FastFileView(f"s3://{bucket}/p/", store, transport=t) as view, \
                view.open("d0/obj-0.bin") as f:
            assert f.read() == data["p/d0/obj-0.bin"]
    with fault_proxy(s3, lambda req: Action("status", status=503) if object_gets(req) else None) as proxy, \
            Transport(Store(proxy.url, store_opts), TransportConfig(**FAST)) as t, \
            pytest.raises(TransportError) as info:
        t.read_range(f"s3://{bucket}/p/d0/obj-0.bin", 0, 100)
    texts.update({f"spent budget {k}": v for k, v in exception_texts(info.value).items()})
    with fault_proxy(s3, lambda req: Action("status", status=403) if object_gets(req) else None) as proxy, \
            Transport(Store(proxy.url, store_opts), TransportConfig(**FAST)) as t, \
            pytest.raises(AccessDeniedError) as info:
        t.read_range(f"s3://{bucket}/p/d0/obj-0.bin", 0, 100)
    texts.update({f"403 {k}": v for k, v in exception_texts(info.value).items()})
    log = channels_debug_log.getvalue()
    assert "retrying" in log  # the retries were logged, so the log was looked at
    assert_clean({"channels log": log, **texts})


def test_debug_logs_of_every_library_hold_no_credentials(s3, s3_client, bucket):
    put_dataset(s3_client, bucket, 2)
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    root = logging.getLogger()
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        store = Store(s3.endpoint_url, (("key", KEY_ID), ("secret", SECRET), ("token", TOKEN)))
        listing = list_prefix(f"s3://{bucket}/p/", store=store)
        with Transport(store, TransportConfig(**FAST)) as t:
            t.read_range(listing.refs[0], 0, 100)  # signed by channels.sigv4, sent by channels.http (which logs it)
        store.filesystem(listing.refs[1].url).cat_file(listing.refs[1].url)  # s3fs: botocore signs, and logs
    finally:
        root.removeHandler(handler)
        root.setLevel(old)
    log = buf.getvalue()
    assert '"GET /' in log  # channels.http logged our requests
    # Other libraries may name the headers they sign; the values must be gone.
    assert "Signature" in log and "<redacted>" in log  # botocore did log signing, and it was caught
    assert not [c for c in CANARIES if c in log]
    assert not re.search(r"(?i)signature[=:]\s*[0-9a-f]{16}", log)
    assert not re.search(r"(?i)credential=[A-Z0-9]{16}", log)


def refuse_after(n: int):
    """A fault policy: the first ``n`` object GETs pass, every later one is answered 403."""
    seen = []

    def policy(req):
        if object_gets(req):
            seen.append(req)
            if len(seen) > n:
                return Action("status", status=403)
        return None

    return policy


def test_benchmark_json_holds_no_credentials(s3, tmp_path, monkeypatch):
    from channels.bench.datasets import BenchDataset
    from channels.bench.suite import BenchOptions, format_report, run_bench, write_json

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    tiny = BenchDataset("tiny", 4, object_size=32 * KIB, record_size=1024)
    lines: list[str] = []
    outputs = {}
    for name, endpoint in (("ok", s3.endpoint_url), ("refused", None)):
        if endpoint is None:  # the same data behind a proxy that refuses object GETs after the warm-up read
            ctx = fault_proxy(s3, refuse_after(tiny.count))
        else:
            ctx = __import__("contextlib").nullcontext()
        with ctx as proxy:
            opts = BenchOptions(quick=True, modes=("pipe", "file", "fastfile"), peers=("boto3",),
                                profiles=("direct",), repeat=1, suites=("throughput",),
                                endpoint_url=endpoint or proxy.url, max_seconds=1, workdir=str(tmp_path),
                                datasets=(tiny,))
            doc = run_bench(opts, log=lines.append, argv=["channels", "bench", "--endpoint-url", opts.endpoint_url])
        write_json(doc, str(tmp_path / f"{name}.json"))
        outputs[f"{name} report"] = format_report(doc)
        if name == "refused":
            assert any(run["error"] for run in doc["throughput"]["runs"]), doc["throughput"]["runs"]
    outputs["log"] = "\n".join(lines)
    outputs.update(files_text(tmp_path))
    assert_clean(outputs)


# ---------------------------------------------------------------- permissions (umask 000)

def modes_below(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)) or ".": stat.S_IMODE(os.lstat(p).st_mode)
            for p in [root, *root.rglob("*")]}


def test_downloaded_files_are_not_world_writable_with_umask_000(s3, s3_client, bucket, sandbox, tmp_path):
    data = put_dataset(s3_client, bucket)
    dest = tmp_path / "dest"
    assert run(sandbox, "download", f"s3://{bucket}/p/", str(dest), "-q", umask=0).returncode == 0
    modes = modes_below(dest)
    files = {k: m for k, m in modes.items() if k in {key.removeprefix("p/") for key in data}}
    assert len(files) == len(data)
    assert all(not m & 0o022 for m in files.values()), {k: oct(m) for k, m in files.items()}


def test_download_folders_and_journal_are_not_world_writable_with_umask_000(s3, s3_client, bucket, sandbox,
                                                                           tmp_path):
    put_dataset(s3_client, bucket)
    dest = tmp_path / "dest"
    assert run(sandbox, "download", f"s3://{bucket}/p/", str(dest), "-q", umask=0).returncode == 0
    writable = {k: oct(m) for k, m in modes_below(dest).items() if m & 0o022}
    assert not writable


def test_fifos_and_their_folders_are_not_world_writable_with_umask_000(s3, s3_client, bucket, sandbox, tmp_path):
    put_dataset(s3_client, bucket)
    root = tmp_path / "ml"
    r, _, fifo_mode = serve_pipe(sandbox, pipe_job(tmp_path / "job.json", bucket), root, umask=0)
    assert r.returncode == 0, r.stderr
    assert fifo_mode == 0o600
    assert {k: oct(m) for k, m in modes_below(root).items()} == {
        ".": "0o755", "input": "0o755", "input/data": "0o755", "input/config": "0o755",
        "input/config/inputdataconfig.json": "0o644"}


# ---------------------------------------------------------------- nothing outside named folders

def test_nothing_is_written_outside_the_named_folders(s3, s3_client, bucket, sandbox, tmp_path):
    data = put_dataset(s3_client, bucket)
    s3_client.put_object(Bucket=bucket, Key="bad/a/../../../../escape", Body=b"x")
    named = tmp_path / "named"
    named.mkdir()
    before = set(tmp_path.iterdir())
    uri = f"s3://{bucket}/p/"
    assert run(sandbox, "download", uri, str(named / "dl"), "-q").returncode == 0
    assert run(sandbox, "download", f"s3://{bucket}/bad/", str(named / "bad"), "-q").returncode == 2
    assert run(sandbox, "shard-report", uri, "--hosts", "2").returncode == 0
    assert run(sandbox, "validate", str(pipe_job(named / "job.json", bucket))).returncode == 0
    r, got, _ = serve_pipe(sandbox, named / "job.json", named / "ml")
    assert r.returncode == 0 and len(got) == sum(map(len, data.values()))
    assert set(tmp_path.iterdir()) == before
    for name in ("tmp", "cwd"):
        assert list((tmp_path / name).rglob("*")) == [], f"{name} was written to"
    # HOME holds only the documented cache of botocore's SageMaker model (channels.spec.model), no secret.
    home = sorted(str(p.relative_to(tmp_path / "home")) for p in (tmp_path / "home").rglob("*") if p.is_file())
    assert len(home) == 1 and home[0].startswith(".cache/channels/sagemaker-model-"), home
    assert SECRET not in (tmp_path / "home" / home[0]).read_text()
    written = sorted(str(p.relative_to(named)) for p in named.rglob("*"))
    keys = sorted(k.removeprefix("p/") for k in data)
    assert written == sorted(["job.json", "ml", "ml/input", "ml/input/data", "ml/input/config",
                              "ml/input/config/inputdataconfig.json", "dl", "dl/d0", "dl/d1",
                              "dl/.channels-download.algo-1.jsonl", *(f"dl/{k}" for k in keys)])
