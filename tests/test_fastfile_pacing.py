"""FastFile's readahead on a far store: the view's pacing (files ahead, their room, ranged
parts), a walk's first file asked for first, an epoch's first file not fetched alone, and a
view through a loopback proxy with a first-byte delay and a per-connection cap."""

from __future__ import annotations

import os

import pytest

from channels.modes.fastfile.config import ReadaheadConfig
from channels.modes.fastfile.pacing import Pacing
from channels.modes.fastfile.view import FastFileView
from channels.store import Store
from channels.testing import wait_for
from channels.testing.profiles import Profile
from channels.testing.proxy import Proxy
from channels.transport.link import LinkMonitor
from channels.units import KIB, MIB

#: Far: 30 ms to the first byte, 16 MB/s per connection (a slow S3, so that tests stay small).
FAR = Profile("test-far", 0.030, 16e6)


def capped_link(rate: float = 90e6, ttfb: float = 0.02) -> LinkMonitor:
    link = LinkMonitor()
    for _ in range(16):
        link.observe(ttfb, rate, receiving=8)
    return link


def fill(s3_client, bucket: str, prefix: str, sizes: list[int]) -> dict[str, bytes]:
    contents = {}
    for i, size in enumerate(sizes):
        body = os.urandom(size)
        s3_client.put_object(Bucket=bucket, Key=f"{prefix}{i:03d}.bin", Body=body)
        contents[f"{i:03d}.bin"] = body
    return contents


def read_all(view: FastFileView, name: str) -> bytes:
    with view.open(name) as f:
        return f.read()


def test_pacing_is_as_before_near_and_widens_far():
    cfg = ReadaheadConfig()
    near = Pacing(LinkMonitor(), cfg, target_rate=2e9, min_part=8 * MIB)
    assert near.far() is None
    assert near.files_ahead(16 * MIB) == cfg.prefetch_files
    assert near.ahead_room(cfg.budget_bytes) == cfg.budget_bytes // 2
    assert near.parts(16 * MIB, 0) == 1
    far = Pacing(capped_link(), cfg, target_rate=2e9, min_part=8 * MIB)
    assert far.far() is not None
    # 2 GB/s of 16 MiB windows that take 20 ms + 186 ms each: 25 files in flight.
    assert far.files_ahead(16 * MIB) == 25
    assert far.ahead_room(cfg.budget_bytes) == cfg.budget_bytes - 2 * cfg.whole_object_bytes
    assert far.parts(16 * MIB, 0) == 2  # wanted now: two 8 MiB ranges
    far.note_read(100 * MIB, 1.0)  # a reader that takes 100 MiB/s needs no more than one connection
    assert far.parts(16 * MIB, 0) == 1 and far.files_ahead(16 * MIB) == cfg.prefetch_files


def test_a_file_read_on_asks_for_its_own_window_before_the_files_ahead(s3_client, bucket, s3, monkeypatch):
    fill(s3_client, bucket, "ord/", [256 * KIB] * 6)
    cfg = ReadaheadConfig(max_workers=1, prefetch_files=4)  # one fetch thread: fetches run in the order asked
    with FastFileView(f"s3://{bucket}/ord/", config=cfg) as view:
        calls = []
        real = view.fetcher

        def fetcher(ref):
            fetch = real(ref)

            def recording(start, buf, cancel, progress):
                calls.append(ref.url.rsplit("/", 1)[1])
                fetch(start, buf, cancel, progress)

            return recording

        monkeypatch.setattr(view, "fetcher", fetcher)
        read_all(view, "000.bin")
        assert wait_for(lambda: len(calls) == 5)
    assert calls[0] == "000.bin" and calls[1:] == ["001.bin", "002.bin", "003.bin", "004.bin"]


def test_an_epochs_first_file_is_not_fetched_alone(s3_client, bucket, s3):
    contents = fill(s3_client, bucket, "ep/", [64 * KIB] * 12)
    cfg = ReadaheadConfig(prefetch_files=4)
    with FastFileView(f"s3://{bucket}/ep/", config=cfg) as view:
        for epoch in range(2):
            before = view.stats.files_ahead
            assert read_all(view, "000.bin") == contents["000.bin"]
            # The walk starts (over): the next files are fetched before file 1 is opened: 4, or
            # more in the second epoch if the reader caught up with them in the first.
            ahead = view.stats.files_ahead - before
            assert ahead == 4 if epoch == 0 else 4 <= ahead <= 11, (epoch, ahead)
            for name in sorted(contents)[1:]:
                assert read_all(view, name) == contents[name]
        assert view.stats.files_ahead_dropped == 0  # every file fetched ahead was read
        # Not a new epoch: file 0 read again in the middle of a walk fetches nothing ahead.
        read_all(view, "000.bin")
        read_all(view, "005.bin")
        before = view.stats.files_ahead
        read_all(view, "000.bin")
        assert view.stats.files_ahead == before


def test_a_far_view_fetches_more_files_ahead_within_its_budget(s3_client, bucket, s3):
    contents = fill(s3_client, bucket, "far/", [MIB] * 24)
    cfg = ReadaheadConfig(prefetch_files=4, budget_bytes=32 * MIB, max_workers=16)
    with Proxy(s3.endpoint_url, FAR) as proxy, \
            FastFileView(f"s3://{bucket}/far/", Store(proxy.url), config=cfg) as view:
        for name, body in contents.items():  # the first epoch teaches the link
            assert read_all(view, name) == body
        assert view.pacing.far() is not None, view.transport.link.snapshot()
        before = view.stats.files_ahead
        assert read_all(view, "000.bin") == contents["000.bin"]
        ahead = view.stats.files_ahead - before
        for name in sorted(contents)[1:]:
            assert read_all(view, name) == contents[name]
    print(f"files ahead at the epoch's start: {ahead}; link {view.transport.link.snapshot()}")
    assert cfg.prefetch_files < ahead <= view.pacing.ahead_room(cfg.budget_bytes) // MIB
    assert view.budget.peak <= cfg.budget_bytes


@pytest.mark.parametrize("walk", [True, False])
def test_only_a_file_read_with_no_files_ahead_beside_it_comes_in_ranged_parts(s3_client, bucket, s3, walk):
    contents = fill(s3_client, bucket, "sh/", [2 * MIB] * 6)
    # Backwards, no file is read on with a recent one before it: no walk, nothing ahead.
    order = sorted(contents)[:4] if walk else ["005.bin", "004.bin", "003.bin", "002.bin"]
    with FastFileView(f"s3://{bucket}/sh/", config=ReadaheadConfig(prefetch_files=2)) as view:
        view.pacing.link = capped_link(rate=16e6)  # as if measured far
        view.pacing.min_part = 512 * KIB
        for name in order:
            assert read_all(view, name) == contents[name]
        st = view.stats.snapshot()
    if walk:  # far: all the other files ahead, fetched together, one GET each
        assert st["files_ahead"] == 5 and st["requests"] == 1 + st["files_ahead"]
    else:  # the first two as one GET each (a walk was not ruled out yet), then 4 ranges each
        assert st["files_ahead"] == 0 and st["requests"] == 1 + 1 + 4 + 4
