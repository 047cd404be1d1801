"""File mode's parts that need no endpoint: keys, host identity, progress, journal."""

from __future__ import annotations

import io
import json
import os
import pickle

import pytest

from channels.errors import ShardingError, UnsafeKeyError
from channels.hosts import host_identity
from channels.listing import ObjectRef
from channels.modes.file.keys import check_keys, unsafe_reason
from channels.modes.file.journal import DownloadState
from channels.progress import Progress, Summary
from channels.units import human_seconds, mb_per_s


def refs(*keys: str) -> list[ObjectRef]:
    return [ObjectRef(f"s3://b/p/{k}", 1, "e", k) for k in keys]


@pytest.mark.parametrize("key", ["a", "a/b/c.bin", ".hidden", "a/.b", "x..y", "..a", "a./b", "é/ü"])
def test_safe_keys(key):
    assert unsafe_reason(key) is None


@pytest.mark.parametrize("key, why", [
    ("", "empty key"), ("/abs", "absolute"), ("a/../../x", "'..'"), ("..", "'..'"), ("a/..", "'..'"),
    ("./a", "'.' segment"), ("a/./b", "'.' segment"), ("a//b", "empty segment"), ("a/", "empty segment"),
    ("a\0b", "NUL"), ("x" * 256, "longer than 255"), (".channels-download.algo-1.jsonl", "reserved"),
    ("d/.f.channels-tmp-1-ab", "reserved"),
])
def test_unsafe_keys(key, why):
    assert why in unsafe_reason(key)


def test_check_keys_lists_every_offender_and_pickles():
    with pytest.raises(UnsafeKeyError) as err:
        check_keys(refs("ok", "a/../../x", "/abs", "d", "d/e", *[f"../{i}" for i in range(30)]), "s3://b/p/")
    e = err.value
    assert "33 object key(s) in s3://b/p/" in str(e) and "and 13 more" in str(e)
    assert "'d' (also the folder of other keys)" not in str(e)  # beyond the first 20 shown
    assert ("d", "also the folder of other keys") in e.details["keys"]
    again = pickle.loads(pickle.dumps(e))
    assert isinstance(again, UnsafeKeyError) and isinstance(again, ValueError)
    assert again.details["keys"] == e.details["keys"]
    check_keys(refs("a/b", "a/c", "ab"))  # no error


def test_host_identity_order_of_sources(tmp_path):
    assert host_identity(environ={}) == (0, 1, "algo-1")
    assert host_identity(4, 2, environ={"SM_HOSTS": '["x"]', "SM_CURRENT_HOST": "x"}) == (2, 4, "algo-3")
    assert host_identity(1, environ={}) == (0, 1, "algo-1")
    sm = {"SM_HOSTS": '["algo-1","algo-2"]', "SM_CURRENT_HOST": "algo-2"}
    assert host_identity(environ=sm) == (1, 2, "algo-2")
    config = tmp_path / "rc.json"
    config.write_text(json.dumps({"current_host": "algo-3", "hosts": ["algo-1", "algo-2", "algo-3"]}))
    assert host_identity(environ={**sm, "SM_RESOURCE_CONFIG": str(config)}) == (2, 3, "algo-3")
    text = json.dumps({"current_host": "b", "hosts": ["a", "b"], "network_interface_name": "eth0"})
    assert host_identity(environ={"SM_RESOURCE_CONFIG": text}) == (1, 2, "b")


@pytest.mark.parametrize("kwargs, env, match", [
    ({"hosts": 3}, {}, "needs --host-index"),
    ({"host_index": 1}, {}, "needs --hosts"),
    ({"hosts": 2, "host_index": 2}, {}, "out of range"),
    ({}, {"SM_HOSTS": '["a"]'}, "SM_CURRENT_HOST is not set"),
    ({}, {"SM_HOSTS": '["a"]', "SM_CURRENT_HOST": "b"}, "'b' is not among hosts"),
    ({}, {"SM_HOSTS": "a,b", "SM_CURRENT_HOST": "a"}, "not a JSON list"),
    ({}, {"SM_RESOURCE_CONFIG": "/nonexistent/rc.json"}, "does not exist"),
    ({}, {"SM_RESOURCE_CONFIG": "{oops"}, "is not JSON"),
])
def test_host_identity_errors(kwargs, env, match):
    with pytest.raises(ShardingError, match=match):
        host_identity(environ=env, **kwargs)


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_on_a_terminal_only():
    quiet = io.StringIO()
    p = Progress(100, 2, stream=quiet)
    p.advance(50, 1)
    p.close()
    assert quiet.getvalue() == ""

    tty = FakeTTY()
    p = Progress(2_000_000, 2, stream=tty, interval=0, label="train")
    p.advance(1_000_000, 1)
    p.advance(1_000_000, 1)
    p.close()
    p.close()  # idempotent
    text = tty.getvalue()
    final = text.rstrip("\n").rsplit("\r", 1)[-1]
    assert text.startswith("\rtrain:") and text.endswith("\n")
    assert "100%" in final and "2.00MB/2.00MB" in final and "2/2 objects" in final and "B/s" in final
    assert p.bytes == 2_000_000 and p.objects == 2


def test_summary_and_units():
    s = Summary(objects=64, bytes=1_073_741_824, seconds=1.25, retries=1, skipped=3)
    assert s.format() == ("downloaded 64 objects, 1.0 GiB in 1.25 s (859 MB/s, 51 objects/s), 1 retry; "
                          "3 already up to date")
    assert mb_per_s(10**6, 0) == 0 and human_seconds(125) == "2m05s" and human_seconds(3.25) == "3.2 s"


def test_journal_ignores_a_torn_line_and_checks_the_file(tmp_path):
    (tmp_path / "a").write_bytes(b"12345")
    st = os.stat(tmp_path / "a")
    ref = ObjectRef("s3://b/a", 5, "etag1", "a")
    state = DownloadState(tmp_path, "algo-1")
    state.add(ref, st)
    state.close()
    with open(state.path, "a") as fh:
        fh.write('{"k": "b", "s": 1')  # a crash mid-line
    loaded = DownloadState(tmp_path, "algo-1").load()
    assert loaded.up_to_date(ref)
    assert not loaded.up_to_date(ObjectRef("s3://b/a", 5, "etag2", "a"))  # changed in the store
    os.utime(tmp_path / "a", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert not loaded.up_to_date(ref)  # touched locally since
    other = DownloadState(tmp_path, "algo-2").load()
    assert "a" in other.records  # hosts sharing DEST see each other's records


def test_summary_when_everything_is_up_to_date():
    assert Summary(objects=0, bytes=0, seconds=0.5, skipped=7).format() == (
        "all 7 objects already up to date: nothing downloaded (0.50 s)")


def test_shard_summary_warns_when_skewed_with_the_size_balanced_figure():
    import numpy as np

    from channels.balance import report
    from channels.modes.file.download import shard_summary

    sizes = np.array([100] * 30 + [5000] * 10, dtype=np.int64)  # the big ones all land on the last host
    lines = shard_summary(report(sizes, 4, "sharded-by-s3-key", source="s3://b/p/"), 3, "algo-4")
    assert lines[0].startswith("s3://b/p/: 40 objects, ") and "this host (algo-4, index 3) gets 10 objects" in lines[0]
    assert lines[1].startswith("warning: skewed: algo-4 reads") and "the size-balanced plan gets 1.13x" in lines[1]
    even = shard_summary(report(np.full(8, 10), 2, "sharded-by-s3-key"), 0, "algo-1")
    assert len(even) == 1 and "busiest host 1.00x the mean" in even[0]
