"""The benchmark harness on a real endpoint: runners, datasets, the JSON, the report.

Runners are tested by parametrizing over the registry: each must read every
byte of the same small dataset through a real proxy. No figure here depends
on the machine's speed.
"""

from __future__ import annotations

import json

import pytest

from channels.bench import report
from channels.bench.base import DOWNLOAD, JOBS, MODE, PEER, READ, Runner, Target, missing
from channels.bench.catalog import get_runner, names
from channels.bench.datasets import KIB, BenchDataset, ensure
from channels.bench.harness import Services, measure
from channels.bench.suite import BenchOptions, format_report, run_bench, write_json
from channels.listing import list_prefix
from channels.records import framer
from channels.store import Store
from channels.testing.profiles import PROFILES

TINY = BenchDataset("tiny", 6, 64 * KIB, KIB)


def test_registry_names_and_errors():
    assert names(MODE) == ["pipe", "file", "fastfile"]
    assert {"boto3", "s3fs", "pyarrow", "s3torchconnector", "obstore", "s5cmd", "boto3-download"} <= set(names(PEER))
    with pytest.raises(ValueError, match="boto3"):
        get_runner("nope")


def test_each_mode_has_peers_doing_its_job():
    # File writes files: its peers are the download tools; Pipe and FastFile read into memory.
    by_job = {job: {n for n in names(PEER) if get_runner(n).job == job} for job in JOBS}
    assert get_runner("file").job == DOWNLOAD and by_job[DOWNLOAD] == {"s5cmd", "boto3-download"}
    assert get_runner("pipe").job == get_runner("fastfile").job == READ
    assert by_job[READ] == {"boto3", "s3fs", "pyarrow", "s3torchconnector", "obstore"}
    with pytest.raises(ValueError, match="job 'teleport'"):
        Runner("x", PEER, "d", get_runner("boto3").prepare, job="teleport")


def test_the_fast_clients_are_installed():
    # obstore comes with the test extra; s3torchconnector with torch (make install adds it once torch is
    # there). test_every_runner_reads_every_byte then reads through each from moto over plain HTTP.
    assert get_runner("obstore").unavailable is None
    if get_runner("s3torchconnector").unavailable and missing("torch"):
        pytest.skip(f"s3torchconnector needs torch, which is not installed here ({missing('torch')})")
    assert get_runner("s3torchconnector").unavailable is None


def test_dataset_content_is_recordio_with_exact_counts():
    ds = BenchDataset("d", 3, 16 * KIB, 256)
    for i in range(ds.count):
        data = ds.content(i)
        assert len(data) == ds.object_size
        f = framer("recordio", f"mem://{i}")
        records = [bytes(r) for r in f.feed(data)] + [bytes(r) for r in f.finish()]
        assert len(records) == ds.records_per_object == 64
        assert all(len(r) == 256 - 8 for r in records)
    assert ds.content(0) != ds.content(1)
    with pytest.raises(ValueError, match="record_size"):
        BenchDataset("bad", 1, 1000, 300)


def test_ensure_uploads_once_then_reuses(s3):
    client = s3.client()
    assert ensure(client, "bench-bucket", TINY) is True
    assert ensure(client, "bench-bucket", TINY) is False
    client.delete_object(Bucket="bench-bucket", Key=TINY.keys()[0])
    assert ensure(client, "bench-bucket", TINY) is True


@pytest.fixture
def proxied_target(s3, tmp_path):
    ensure(s3.client(), "bench-bucket", TINY)
    from channels.testing.proxy import Proxy

    with Proxy(s3.endpoint_url, PROFILES["s3-like"]) as proxy:
        listing = list_prefix(f"s3://bench-bucket/{TINY.prefix}", store=Store(proxy.url))
        yield Target(proxy.url, "bench-bucket", TINY.prefix, listing, TINY.records_per_object, str(tmp_path))


@pytest.mark.parametrize("name", names(MODE) + names(PEER))
def test_every_runner_reads_every_byte(name, proxied_target):
    runner = get_runner(name)
    if runner.unavailable:
        pytest.skip(f"{name}: {runner.unavailable}")
    services = Services(proxied_target.endpoint_url)  # not entered: no server CPU to read
    with runner.prepare(proxied_target) as body:
        for _ in range(2):  # bodies are reused by repeats
            r = measure(body, proxied_target, services, None)
            assert r["error"] is None
            assert r["bytes"] == TINY.total_bytes
            assert r["objects"] == TINY.count
            assert r["records"] == TINY.records
            assert r["complete"]
            assert 0 < r["ttfb_s"] <= r["seconds"]
            assert r["server_cpu_s"] is None and r["client_cpu_s"] >= 0


def test_soft_cap_marks_runs_incomplete(proxied_target):
    services = Services(proxied_target.endpoint_url)
    with get_runner("s3fs").prepare(proxied_target) as body:
        r = measure(body, proxied_target, services, max_seconds=0.0)
    assert r["objects"] < TINY.count and not r["complete"] and r["error"] is None


def test_summary_ratios_and_checks():
    def run(profile, runner, kind, mbs):
        return {"profile": profile, "dataset": "large", "runner": runner, "kind": kind, "mb_per_s": mbs,
                "bytes": 10**9, "seconds": 1000 / mbs, "objects_per_s": 1.0, "records_per_s": None,
                "ttfb_s": 0.01, "client_cpu_s": 0.5, "server_cpu_s": 1.0, "proxy_cpu_s": None,
                "complete": True, "error": None}

    runs = [run("local", "pipe", "mode", v) for v in (900, 1000, 1100)]
    runs += [run("local", "s3fs", "peer", v) for v in (400, 500)] + [run("local", "boto3", "peer", 800)]
    runs += [run("s3-like", "pipe", "mode", 800), run("s3-like", "s3fs", "peer", 80)]
    rows = report.summarize(runs)
    pipe = report.find(rows, "local", "large", "pipe")
    assert pipe["mb_per_s"] == {"median": 1000, "min": 900, "max": 1100}
    assert pipe["best_peer"] == "boto3" and pipe["ratio_to_best_peer"] == pytest.approx(1.25)
    assert pipe["client_cpu_s_per_gb"] == pytest.approx(0.5)
    c = report.checks(rows)
    assert c["keep"] == pytest.approx(0.8) and c["keep_ok"]
    assert c["ratio_near"] == pytest.approx(1000 / 450) and c["ratio_far"] == pytest.approx(10.0)
    assert c["ratio_grows"]
    text = report.format_table(rows)
    assert "vs best like peer" in text and "1.25x boto3" in text


def test_a_disk_writer_is_never_measured_against_a_reader():
    def run(runner, kind, job, mbs):
        return {"profile": "local", "dataset": "large", "runner": runner, "kind": kind, "job": job,
                "mb_per_s": mbs, "bytes": 10**9, "seconds": 1000 / mbs, "objects_per_s": 1.0,
                "records_per_s": None, "ttfb_s": 0.01, "client_cpu_s": 0.5, "server_cpu_s": 1.0,
                "proxy_cpu_s": None, "complete": True, "error": None}

    runs = [run("file", "mode", "download", 600), run("pipe", "mode", "read", 900),
            run("obstore", "peer", "read", 1500), run("boto3", "peer", "read", 1000),
            run("s5cmd", "peer", "download", 500), run("boto3-download", "peer", "download", 300)]
    rows = report.summarize(runs)
    file = report.find(rows, "local", "large", "file")
    assert file["best_peer"] == "s5cmd" and file["ratio_to_best_peer"] == pytest.approx(1.2)
    assert file["ratios"] == pytest.approx({"s5cmd": 1.2, "boto3-download": 2.0})
    pipe = report.find(rows, "local", "large", "pipe")
    assert pipe["best_peer"] == "obstore" and set(pipe["ratios"]) == {"obstore", "boto3"}
    text = report.format_table(rows)
    assert "file vs its like peers: 1.20x s5cmd, 2.00x boto3-download" in text
    assert "pipe vs its like peers: 0.60x obstore, 0.90x boto3" in text
    legend = report.format_peers({"pipe": {"kind": "mode", "job": "read", "description": "reads"},
                                  "file": {"kind": "mode", "job": "download", "description": "downloads"},
                                  "boto3": {"kind": "peer", "job": "read", "description": "get_object"},
                                  "s5cmd": {"kind": "peer", "job": "download", "description": "s5cmd cp"}})
    lines = legend.splitlines()
    assert f"  pipe: {JOBS[READ]}" in lines and f"  file: {JOBS[DOWNLOAD]}" in lines
    assert lines.index("    peer s5cmd            s5cmd cp") > lines.index(f"  file: {JOBS[DOWNLOAD]}")
    assert lines.index("    peer boto3            get_object") < lines.index(f"  file: {JOBS[DOWNLOAD]}")


def test_run_bench_end_to_end_writes_the_json(tmp_path):
    opts = BenchOptions(modes=("pipe", "file"), peers=("boto3", "s5cmd"), profiles=("direct", "local"), repeat=2,
                        suites=("throughput",), datasets=(TINY,), workdir=str(tmp_path))
    doc = run_bench(opts, log=lambda line: None, argv=["channels", "bench"])
    out = tmp_path / "out.json"
    write_json(doc, str(out))
    loaded = json.loads(out.read_text())
    assert loaded["schema"] == report.SCHEMA
    assert loaded["versions"]["channels"] and loaded["versions"]["boto3"] and loaded["versions"]["moto"]
    assert loaded["machine"]["cpu_count"] >= 1
    assert loaded["endpoint"]["embedded"] is True
    tp = loaded["throughput"]
    runners = ["pipe", "file", "boto3"] if "s5cmd" in loaded["skipped"] else ["pipe", "file", "boto3", "s5cmd"]
    assert len(tp["runs"]) == 2 * 2 * len(runners)  # repeats x profiles x runners, every raw run kept
    assert all(r["bytes"] == TINY.total_bytes and r["error"] is None for r in tp["runs"])
    assert all(r["server_cpu_s"] is not None for r in tp["runs"])
    assert all(r["proxy_cpu_s"] is not None for r in tp["runs"] if r["profile"] == "local")
    assert {(r["profile"], r["runner"]) for r in tp["summary"]} == {(p, n) for p in ("direct", "local")
                                                                     for n in runners}
    text = format_report(loaded)
    assert "== profile local, dataset tiny" in text and "versions:" in text


def test_options_are_validated():
    with pytest.raises(ValueError, match="unknown runner"):
        BenchOptions(modes=("teleport",))
    with pytest.raises(ValueError, match="unknown latency profile"):
        BenchOptions(profiles=("moon",))
    with pytest.raises(ValueError, match="suite"):
        BenchOptions(suites=("everything",))
    with pytest.raises(ValueError, match="plain-HTTP proxy"):
        run_bench(BenchOptions(endpoint_url="https://s3.example.com", suites=("throughput",)), log=lambda s: None)


def test_cli_rejects_a_peer_listed_as_a_mode(capsys):
    from channels.cli import main

    assert main(["bench", "--modes", "boto3", "--suites", "throughput"]) == 2
    assert "list it under --peers" in capsys.readouterr().err


def test_run_bench_on_a_given_endpoint(s3, tmp_path):
    opts = BenchOptions(modes=("fastfile",), peers=("s3fs",), profiles=("direct", "s3-like"), repeat=1,
                        suites=("throughput",), datasets=(TINY,), endpoint_url=s3.endpoint_url,
                        bucket="given-bucket", workdir=str(tmp_path))
    doc = run_bench(opts, log=lambda line: None)
    assert doc["endpoint"] == {"url": s3.endpoint_url, "embedded": False, "server": None}
    runs = doc["throughput"]["runs"]
    assert len(runs) == 4 and all(r["complete"] for r in runs)
    assert all(r["server_cpu_s"] is None for r in runs)  # not ours to measure
    assert all(r["ttfb_s"] >= 0.02 for r in runs if r["profile"] == "s3-like")  # the profile's first-byte delay
    assert s3.client().list_objects_v2(Bucket="given-bucket", Prefix=TINY.prefix)["KeyCount"] == TINY.count
