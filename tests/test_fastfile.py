"""FastFileView against the loopback S3 server."""

from __future__ import annotations

import hashlib
import io
import logging
import random

import pytest
from memfetch import random_4k_reads

import channels.modes.fastfile.view as fastfile
from channels.errors import SourceNotFoundError
from channels.modes.fastfile.readahead import KIB, MIB, ReadaheadConfig
from channels.modes.fastfile.view import FastFileView, build_tree
from channels.testing import object_bytes, wait_for

KEYS = {
    "train/a.bin": 3 * MIB + 17,
    "train/b.bin": 1000,
    "train/sub/c.bin": 0,
    "train/sub/deep/d.bin": 5,
    "val/x.bin": 70 * KIB,
    "top.bin": 12,
}


@pytest.fixture
def channel(s3_client, bucket):
    contents = {}
    for key, size in KEYS.items():
        body = object_bytes(key, size)
        s3_client.put_object(Bucket=bucket, Key=f"ds/{key}", Body=body)
        contents[key] = body
    s3_client.put_object(Bucket=bucket, Key="ds-other/z.bin", Body=b"not in the channel")
    return f"s3://{bucket}/ds/", contents


def test_tree_from_one_listing_and_nothing_downloaded(channel, monkeypatch):
    uri, _ = channel
    calls = []
    real = fastfile.list_prefix
    monkeypatch.setattr(fastfile, "list_prefix", lambda *a, **k: calls.append(a) or real(*a, **k))
    with FastFileView(uri) as view:
        assert calls == []  # lazy
        assert view.listdir("") == ["top.bin", "train", "val"]
        assert view.listdir("/train/") == ["a.bin", "b.bin", "sub"]
        assert view.isdir("train/sub") and view.isfile("train/sub/c.bin") and not view.exists("nope")
        assert view.size("train/a.bin") == KEYS["train/a.bin"]
        st = view.stat("train")
        assert st.is_dir and st.subdirs == 1 and st.size == 0
        assert list(view.walk()) == [
            ("", ["train", "val"], ["top.bin"]),
            ("train", ["sub"], ["a.bin", "b.bin"]),
            ("train/sub", ["deep"], ["c.bin"]),
            ("train/sub/deep", [], ["d.bin"]),
            ("val", [], ["x.bin"]),
        ]
        assert len(calls) == 1
        assert view.stats.requests == 0 and view.transport.stats.requests == 0


def test_every_file_reads_right(channel):
    uri, contents = channel
    with FastFileView(uri) as view:
        for key, body in contents.items():
            with view.open(key) as f:
                assert f.read() == body, key
        st = view.stats.snapshot()
        assert st["bytes_fetched"] == sum(len(b) for b in contents.values())
        assert view.transport.stats.bytes == st["bytes_fetched"]


def test_cat_reads_and_random_reads_against_the_server(channel):
    uri, contents = channel
    body = contents["train/a.bin"]
    with FastFileView(uri) as view:
        with view.open("train/a.bin") as f:
            h = hashlib.sha256()
            for chunk in iter(lambda: f.read(MIB), b""):
                h.update(chunk)
            assert h.digest() == hashlib.sha256(body).digest()
            assert f.stats.requests == 1  # a small object read from the start: whole, one request
        with view.open("train/a.bin") as f:
            assert f.stats.bytes_fetched <= 4 * random_4k_reads(f, body, 100, seed=3)


def test_errors_are_the_builtin_ones(channel):
    uri, _ = channel
    with FastFileView(uri) as view:
        with pytest.raises(FileNotFoundError):
            view.open("missing.bin")
        with pytest.raises(IsADirectoryError):
            view.open("train")
        with pytest.raises(NotADirectoryError):
            view.listdir("top.bin")
        with pytest.raises(NotADirectoryError):
            view.stat("top.bin/x")
        with pytest.raises(FileNotFoundError):
            view.stat("../ds-other/z.bin")
        with pytest.raises(ValueError, match="read-only"):
            view.open("top.bin", "wb")
    with pytest.raises(ValueError, match="closed"):
        view.open("top.bin")


def test_missing_bucket_is_reported_at_first_use(s3):
    view = FastFileView("s3://no-such-bucket/x/")
    with pytest.raises(SourceNotFoundError):
        view.listdir("")


def test_file_and_folder_with_one_name_folder_wins(caplog):
    from channels.listing import ObjectRef

    refs = [ObjectRef(f"s3://b/{k}", 1, None, k) for k in ("a", "a/b", "c//d", "e/./f", "g")]
    with caplog.at_level(logging.WARNING):
        root, shadowed, skipped = build_tree(refs, source="s3://b/")
    assert sorted(root) == ["a", "g"] and list(root["a"]) == ["b"]
    assert shadowed == ["a"] and skipped == ["c//d", "e/./f"]
    assert "hidden by a folder" in caplog.text


def test_budget_bounds_many_open_files(channel):
    uri, contents = channel
    cfg = ReadaheadConfig(budget_bytes=2 * MIB, max_window=MIB, part_size=512 * KIB,
                          prefetch_files=0)  # only open files hold budget here
    with FastFileView(uri, config=cfg) as view:
        files = [view.open("train/a.bin") for _ in range(6)]
        bufs = [io.BytesIO() for _ in files]
        while any(b.write(f.read(300 * KIB)) for f, b in zip(files, bufs)):
            pass
        assert all(b.getvalue() == contents["train/a.bin"] for b in bufs)
        assert view.budget.peak <= 2 * MIB
        for f in files:
            f.close()
        assert wait_for(lambda: view.budget.in_use == 0)  # once the last fetches have returned


def test_from_channel_needs_an_s3_prefix():
    from channels.spec import Channel, S3DataSource

    manifest = Channel("m", S3DataSource("ManifestFile", "s3://b/m.json"))
    with pytest.raises(ValueError, match="S3Prefix"):
        FastFileView.from_channel(manifest)
    view = FastFileView.from_channel(Channel("p", S3DataSource("S3Prefix", "s3://b/p/")))
    assert view.uri == "s3://b/p/"


@pytest.fixture
def shards(s3_client, bucket):
    """Twelve 1 MiB objects (each fetched whole by a cat-like reader), in walk order."""
    bodies = {f"part-{i:02d}.bin": object_bytes(f"shard{i}", MIB + i) for i in range(12)}
    for key, body in bodies.items():
        s3_client.put_object(Bucket=bucket, Key=f"shards/{key}", Body=body)
    return f"s3://{bucket}/shards/", bodies


def cat_file(view, name: str) -> tuple[bytes, int]:
    """A file's bytes as ``cat`` reads them, and the requests the file itself made."""
    with view.open(name) as f:
        data = b"".join(iter(lambda: f.read(MIB // 2), b""))
        return data, f.stats.requests


def test_a_reader_going_from_file_to_file_finds_the_next_ones_fetched(shards):
    uri, bodies = shards
    with FastFileView(uri) as view:
        own = {}
        for name in view.listdir(""):
            data, own[name] = cat_file(view, name)
            assert data == bodies[name]
        s = view.stats.snapshot()
        # Every file after the first was fetched ahead.
        assert [own[n] for n in sorted(own)] == [1] + [0] * 11
        assert s["files_ahead"] == s["files_ahead_used"] == 11 and s["files_ahead_dropped"] == 0
        assert view.transport.stats.requests == 12  # nothing fetched twice
        # A reader may finish a file just before the fetch that filled it returns.
        assert wait_for(lambda: view.budget.in_use == 0)


def test_the_stride_is_followed_and_unused_windows_give_their_budget_back(shards):
    uri, bodies = shards
    size = len(bodies["part-11.bin"])
    # Half the budget holds two windows fetched ahead: a third drops only a stale one.
    config = ReadaheadConfig(budget_bytes=4 * size + 4 * size // 10, prefetch_files=2)
    with FastFileView(uri, config=config) as view:
        cat_file(view, "part-00.bin")  # the first: taken as stride 1
        assert list(view.ahead._ready) == ["part-01.bin", "part-02.bin"]
        cat_file(view, "part-02.bin")  # every other file: 1, skipped, makes room for 6
        assert sorted(view.ahead._ready) == ["part-04.bin", "part-06.bin"]
        assert view.stats.files_ahead_dropped == 1
        assert cat_file(view, "part-04.bin") == (bodies["part-04.bin"], 0)
        assert sorted(view.ahead._ready) == ["part-06.bin", "part-08.bin"]
        cat_file(view, "part-05.bin")  # one on from 4: stride 1, so 6 (there already) and 7...
        # ...but 7 has no room, and neither 6 (next) nor 8 (ahead, fetched just now) is stale.
        assert list(view.ahead._ready) == ["part-06.bin", "part-08.bin"]
        assert view.stats.files_ahead_dropped == 1
        held = len(bodies["part-06.bin"]) + len(bodies["part-08.bin"])
        assert wait_for(lambda: view.budget.in_use == held)  # part-01's came back (once its fetch stopped)
        assert cat_file(view, "part-06.bin") == (bodies["part-06.bin"], 0)  # taken, not fetched anew
    assert wait_for(lambda: view.budget.in_use == 0)  # close drops the rest
    assert view.stats.files_ahead == view.stats.files_ahead_used + view.stats.files_ahead_dropped


def test_windows_nobody_took_for_a_while_make_room(shards):
    from channels.modes.fastfile.ahead import RECENT_FILES

    uri, bodies = shards
    size = len(bodies["part-11.bin"])
    config = ReadaheadConfig(budget_bytes=4 * size + 4 * size // 10, prefetch_files=2)
    with FastFileView(uri, config=config) as view:
        cat_file(view, "part-04.bin")  # the first read on: 5 and 6 fetched ahead
        assert list(view.ahead._ready) == ["part-05.bin", "part-06.bin"]
        for _ in range(RECENT_FILES):  # a reader elsewhere, at a stride that leads past the end
            cat_file(view, "part-11.bin")
        cat_file(view, "part-02.bin")
        cat_file(view, "part-03.bin")  # a walk from 2: 4 and 5 wanted, where 5 and 6 wait unused
        assert sorted(view.ahead._ready) == ["part-04.bin", "part-05.bin"]
        assert view.stats.files_ahead_dropped == 1  # 6: stale by age, though ahead of the reader
        assert cat_file(view, "part-04.bin") == (bodies["part-04.bin"], 0)
        assert cat_file(view, "part-05.bin") == (bodies["part-05.bin"], 0)  # kept: wanted again


def test_random_reads_and_header_probes_fetch_nothing_ahead(shards):
    uri, bodies = shards
    rng = random.Random(5)
    with FastFileView(uri) as view:
        files = {n: view.open(n) for n in view.listdir("")}
        for _ in range(200):
            name = rng.choice(sorted(files))
            pos = rng.randrange(1, len(bodies[name]))
            files[name].seek(pos)
            assert files[name].read(4 * KIB) == bodies[name][pos:pos + 4 * KIB]
        for name in sorted(files):
            with view.open(name) as f:
                assert f.read(16) == bodies[name][:16]
        for f in files.values():
            f.close()
        assert view.stats.files_ahead == 0 and wait_for(lambda: view.budget.in_use == 0)
        cat_file(view, "part-00.bin")  # the first file read on: a walk at stride 1 is guessed
        ahead = view.config.prefetch_files
        assert view.stats.files_ahead == ahead
        cat_file(view, "part-11.bin")  # too far from the last one for a walk: nothing more
        assert view.stats.files_ahead == ahead


def test_a_reader_that_catches_up_with_the_files_ahead_gets_more_of_them(s3, shards):
    """Connections sharing one capped interface look near to the link's estimate (at first: a few
    in flight, none alone, fool it later); the reader outrunning its files ahead widens them."""
    from channels.store import Store
    from channels.testing.profiles import MB, Profile
    from channels.testing.proxy import Proxy

    uri, bodies = shards
    nic = Profile("nic", first_byte_delay=0.02, listener_bandwidth=20 * MB)
    with Proxy(s3.endpoint_url, nic) as proxy, \
            FastFileView(uri, Store(proxy.url), ReadaheadConfig(prefetch_files=2)) as view:
        lead = []  # per file: how many files after it were fetched ahead when the reader opened it
        for k, name in enumerate(view.listdir("")):
            lead.append(view.stats.files_ahead - k)
            assert cat_file(view, name)[0] == bodies[name]
        s = view.stats.snapshot()
        assert s["files_ahead_late"] >= 1
        # 2 ahead of the file read on (1 past the next one opened); caught up: 4, 8 ahead.
        assert max(lead[1:3]) == 1 and max(lead) >= 3, lead
        assert s["files_ahead"] == s["files_ahead_used"] == 11 and s["files_ahead_dropped"] == 0


def test_a_window_dropped_stale_halves_what_catching_up_asked_for(shards):
    uri, bodies = shards
    size = len(bodies["part-11.bin"])
    config = ReadaheadConfig(budget_bytes=4 * size + 4 * size // 10, prefetch_files=2)
    with FastFileView(uri, config=config) as view:
        cat_file(view, "part-00.bin")
        view.ahead._learned = 8  # as if the reader had caught up twice
        cat_file(view, "part-02.bin")  # stride 2: part-01 is stale, dropped to make room
        assert view.stats.files_ahead_dropped == 1
        assert view.ahead._learned == 4


def test_fetching_ahead_can_be_turned_off(shards):
    uri, _ = shards
    with FastFileView(uri, config=ReadaheadConfig(prefetch_files=0)) as view:
        assert view.ahead is None
        assert [cat_file(view, n)[1] for n in view.listdir("")] == [1] * 12
        assert view.stats.files_ahead == 0
