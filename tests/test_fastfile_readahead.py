"""ReadaheadFile against an in-memory copy: the pure part of FastFile mode."""

from __future__ import annotations

import hashlib
import io
import os
import random
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from memfetch import DATA, memory_fetch, open_mem, random_4k_reads

from channels.memory.budget import ByteBudget
from channels.modes.fastfile.config import ReadaheadConfig
from channels.modes.fastfile.readahead import ReadaheadFile
from channels.testing import wait_for
from channels.units import KIB, MIB


def test_is_a_real_io_object():
    with open_mem() as f:
        assert isinstance(f, io.RawIOBase)
        assert f.readable() and f.seekable() and not f.writable()
        assert not f.closed and f.mode == "rb"
        with pytest.raises(io.UnsupportedOperation):
            f.write(b"x")
        with pytest.raises(io.UnsupportedOperation):
            f.fileno()
    assert f.closed
    with pytest.raises(ValueError, match="closed"):
        f.read(1)
    with pytest.raises(ValueError, match="closed"):
        f.seek(0)


@pytest.mark.parametrize("n", [100, 64 * KIB, 3 * MIB + 7])
def test_readinto_fills_any_writable_buffer_and_refuses_a_read_only_one(n):
    import numpy as np

    with open_mem() as f:
        arr = np.zeros(n, np.uint8)  # copies of 64 KiB and more go through numpy (GIL released)
        assert f.readinto(arr) == n and arr.tobytes() == DATA[:n]
        wide = np.zeros(n // 4, np.uint32)  # any item size: filled as bytes
        assert f.readinto(wide) == len(wide) * 4 and wide.tobytes() == DATA[n:n + len(wide) * 4]
        assert f.preadinto(1, memoryview(buf := bytearray(n))) == n and buf == DATA[1:n + 1]
        with pytest.raises(TypeError, match="writable"):
            f.readinto(bytes(n))
        with pytest.raises(TypeError, match="writable"):
            f.preadinto(0, bytes(n))


def test_wraps_in_buffered_and_text_io():
    text = b"".join(b"line %d\n" % i for i in range(5000))
    raw = open_mem(text)
    with io.TextIOWrapper(io.BufferedReader(raw), encoding="ascii") as t:
        lines = t.readlines()
    assert lines[0] == "line 0\n" and lines[-1] == "line 4999\n" and len(lines) == 5000


def test_sequential_cat_reads_double_the_window_and_prefetch():
    data = random.Random(2).randbytes(48 * MIB)
    log: list = []
    with open_mem(data, log=log, part_size=64 * MIB, whole_object_bytes=0) as f:  # one part per window: the log shows windows
        chunks = iter(lambda: f.read(MIB), b"")
        assert hashlib.sha256(b"".join(chunks)).digest() == hashlib.sha256(data).digest()
        s = f.stats.snapshot()
    sizes = [n for _, n in sorted(log)]
    assert sizes[:3] == [MIB, 2 * MIB, 4 * MIB]  # about 1 MiB first, then doubling
    assert all(b >= 2 * a for a, b in zip(sizes[2:-1], sizes[3:-1]))  # at least doubling (per read)
    assert sum(sizes) == len(data) and s["bytes_fetched"] == len(data)  # nothing fetched twice
    assert s["prefetches"] == len(sizes) - 1 and s["seeks"] == 0  # all but the first in the background
    assert s["requests"] == len(log)


def test_window_is_capped_and_split_into_parts():
    log: list = []
    with open_mem(log=log, max_window=2 * MIB, part_size=512 * KIB, initial_window=256 * KIB,
                  whole_object_bytes=0) as f:
        assert f.read() == DATA
    assert max(n for _, n in log) <= 1.5 * 512 * KIB
    with open_mem(log=(log2 := []), max_window=2 * MIB, part_size=8 * MIB, whole_object_bytes=0) as f:
        while f.read(64 * KIB):
            pass
    assert max(n for _, n in log2) == 2 * MIB


def test_small_objects_read_from_the_start_are_fetched_whole():
    log: list = []
    with open_mem(log=log) as f:  # 9 MiB: cat-like reads from 0 fetch it in one request
        while f.read(128 * KIB):
            pass
    assert log == [(0, len(DATA))]
    log.clear()
    with open_mem(log=log) as f:  # a header probe gets the 1 MiB window
        assert f.read(8) == DATA[:8]
    assert log == [(0, MIB)]
    log.clear()
    with open_mem(log=log, whole_object_bytes=4 * MIB) as f:  # larger objects: the ramp
        while f.read(MIB):
            pass
    assert log[0] == (0, MIB) and len(log) > 2


def test_seek_resets_the_window():
    log: list = []
    with open_mem(log=log, whole_object_bytes=0) as f:
        f.read(MIB)
        f.read(MIB)  # sequential: a 2 MiB window, and a prefetch
        f.seek(100)  # outside every window: the first MiB was read straight into the caller's buffer
        log.clear()
        assert f.read(10) == DATA[100:110]
        assert log == [(100, 4 * KIB)]  # small again: seek_window
        assert f.stats.seeks == 1
        windows, prefetches = f.stats.windows, f.stats.prefetches
        assert f.read(10) == DATA[110:120]  # served from that window...
        assert f.stats.windows - windows == f.stats.prefetches - prefetches <= f.config.prefetch_depth  # ...plus prefetches


def test_random_4k_reads_fetch_at_most_4x():
    with open_mem() as f:
        ratio = f.stats.bytes_fetched / random_4k_reads(f, DATA, 400, seed=1)
    assert ratio <= 4, f"random 4 KiB reads fetched {ratio:.2f}x the bytes returned"


def test_read_beyond_end_and_empty_object():
    with open_mem() as f:
        f.seek(len(DATA) + 10)
        assert f.read(5) == b"" and f.readinto(bytearray(5)) == 0
        assert f.seek(-3, io.SEEK_END) == len(DATA) - 3
        assert f.read(100) == DATA[-3:]
        with pytest.raises(OSError):
            f.seek(-1)
        with pytest.raises(ValueError, match="whence"):
            f.seek(0, 7)
    log: list = []
    with open_mem(b"", log) as f:
        assert f.read() == b"" and f.read(10) == b""
    assert log == []


def test_pread_does_not_move_and_returns_views():
    with open_mem() as f:
        f.seek(5)
        assert bytes(f.pread(MIB, 100)) == DATA[MIB:MIB + 100]
        assert f.tell() == 5
        buf = bytearray(300)
        assert f.preadinto(2 * MIB, buf) == 300 and bytes(buf) == DATA[2 * MIB:2 * MIB + 300]


def test_fetch_error_surfaces_and_a_later_read_retries():
    calls = {"n": 0}

    def flaky(start, buf, cancel, progress):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("boom")
        if calls["n"] == 2:  # half the bytes land, then the connection breaks
            buf[:len(buf) // 2] = DATA[start:start + len(buf) // 2]
            progress(start + len(buf) // 2)
            raise ConnectionError("broken halfway")
        buf[:] = DATA[start:start + len(buf)]

    with ReadaheadFile(flaky, len(DATA), name="flaky") as f:
        with pytest.raises(ConnectionError, match="boom"):
            f.read(100)
        assert f.tell() == 0
        assert f.read(100) == DATA[:100]  # from the half that landed
        with pytest.raises(ConnectionError, match="halfway"):
            f.read(len(DATA))  # past it
        assert f.tell() == 100
        assert f.read(MIB) == DATA[100:100 + MIB]  # fetched anew


def test_budget_is_shared_and_never_exceeded():
    budget = ByteBudget(6 * MIB)
    cfg = ReadaheadConfig(budget_bytes=6 * MIB, max_window=4 * MIB, part_size=MIB)
    files = [ReadaheadFile(memory_fetch(DATA), len(DATA), name=f"f{i}", config=cfg, budget=budget)
             for i in range(8)]
    digests = [hashlib.sha256() for _ in files]
    # One thread, round-robin: must not deadlock on the budget.
    while True:
        progressed = False
        for f, d in zip(files, digests):
            b = f.read(256 * KIB)
            if b:
                d.update(b)
                progressed = True
        if not progressed:
            break
    want = hashlib.sha256(DATA).digest()
    assert all(d.digest() == want for d in digests)
    assert budget.peak <= budget.limit
    assert any(f.stats.budget_denied for f in files) or budget.peak == budget.limit
    for f in files:
        f.close()
    assert wait_for(lambda: budget.in_use == 0)  # once the last fetches have returned


def test_concurrent_preads_on_one_handle():
    with open_mem() as f:
        errors = []

        def worker(seed):
            rng = random.Random(seed)
            for _ in range(50):
                pos = rng.randrange(len(DATA))
                n = rng.choice([1, 4 * KIB, 128 * KIB])
                if bytes(f.pread(pos, n)) != DATA[pos:pos + n]:
                    errors.append((pos, n))

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors


def test_config_is_validated():
    with pytest.raises(ValueError, match="initial_window"):
        ReadaheadConfig(initial_window=0)
    with pytest.raises(ValueError, match="seek_window"):
        ReadaheadConfig(seek_window=2 * MIB, initial_window=MIB)


SMALL = os.urandom(300 * KIB)
ops = st.lists(st.one_of(
    st.tuples(st.just("read"), st.integers(-1, 70 * KIB)),
    st.tuples(st.just("readinto"), st.integers(0, 70 * KIB)),
    st.tuples(st.just("seek"), st.integers(0, len(SMALL) + 100), st.sampled_from([0, 1, 2])),
    st.tuples(st.just("pread"), st.integers(0, len(SMALL) + 10), st.integers(0, 40 * KIB)),
), max_size=40)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=ops, initial=st.sampled_from([4 * KIB, 16 * KIB, 64 * KIB]), part=st.sampled_from([5000, 64 * KIB]))
def test_random_seek_read_sequences_match_bytesio(ops, initial, part):
    ref = io.BytesIO(SMALL)
    cfg = ReadaheadConfig(initial_window=initial, max_window=128 * KIB, seek_window=4 * KIB, part_size=part,
                          budget_bytes=256 * KIB)
    with ReadaheadFile(memory_fetch(SMALL), len(SMALL), name="h", config=cfg) as f:
        for op in ops:
            if op[0] == "read":
                assert f.read(op[1]) == ref.read(op[1])
            elif op[0] == "readinto":
                a, b = bytearray(op[1]), bytearray(op[1])
                assert f.readinto(a) == ref.readinto(b) and a == b
            elif op[0] == "seek":
                offset = op[1] if op[2] == 0 else op[1] - len(SMALL) // 2 if op[2] == 1 else -min(op[1], len(SMALL))
                if ref.tell() + offset < 0 and op[2] == 1:
                    continue
                assert f.seek(offset, op[2]) == ref.seek(offset, op[2])
            else:
                assert bytes(f.pread(op[1], op[2])) == SMALL[op[1]:op[1] + op[2]]
            assert f.tell() == ref.tell()
        assert f._budget.in_use <= cfg.budget_bytes


def test_pread_views_lend_the_windows_and_pin_them_until_released():
    budget = ByteBudget(64 * MIB)
    f = ReadaheadFile(memory_fetch(DATA), len(DATA), name="mem", budget=budget,
                      config=ReadaheadConfig(initial_window=MIB, part_size=256 * KIB))
    first = f.pread_views(0, 4096)  # a short first read: a 1 MiB window, not the whole object
    assert [bytes(v) for v in first.views] == [DATA[:4096]]
    first.release()
    span = f.pread_views(MIB - 100, 300)  # the end of the first window and the start of the next
    assert [len(v) for v in span.views] == [100, 200]
    assert b"".join(span.views) == DATA[MIB - 100:MIB + 200]
    assert f.tell() == 0  # no position moved
    f.close()  # drops every window, but the two lent ones stay pinned, their bytes intact
    assert budget.in_use >= MIB and b"".join(span.views) == DATA[MIB - 100:MIB + 200]
    span.release()
    assert span.views == [] and wait_for(lambda: budget.in_use == 0)
    assert budget.kept >= MIB  # freed for reuse once released, not thrown away
    with open_mem() as g:
        assert g.pread_views(len(DATA), 10).views == []


def test_pread_views_unpin_what_they_lent_when_a_later_window_fails():
    failed = []

    def fetch(start, buf, cancel, progress):
        if start >= MIB and not failed:
            failed.append(start)
            raise ConnectionError("second window lost")
        memory_fetch(DATA)(start, buf, cancel, progress)

    budget = ByteBudget(64 * MIB)
    f = ReadaheadFile(fetch, len(DATA), name="flaky", budget=budget, config=ReadaheadConfig(initial_window=MIB))
    f.pread_views(0, 4096).release()
    with pytest.raises(ConnectionError, match="second window lost"):
        f.pread_views(MIB - 100, 300)  # its first 100 bytes were lent before the second window failed
    again = f.pread_views(MIB - 100, 300)
    assert b"".join(again.views) == DATA[MIB - 100:MIB + 200]  # fetched anew
    again.release()
    f.close()
    assert wait_for(lambda: budget.in_use == 0)  # nothing left pinned


def test_pread_views_without_budget_come_in_a_buffer_of_their_own():
    budget = ByteBudget(1)  # no window fits: each read is fetched straight into a buffer of its own
    with ReadaheadFile(memory_fetch(DATA), len(DATA), name="poor", budget=budget) as f:
        lent = f.pread_views(MIB + 7, 300_000)
        assert [len(v) for v in lent.views] == [300_000] and bytes(lent.views[0]) == DATA[MIB + 7:MIB + 300_007]
        lent.release()
        lent = f.pread_views(MIB + 300_007, 4096)  # read on: it wants a window, which the budget denies
        assert [bytes(v) for v in lent.views] == [DATA[MIB + 300_007:MIB + 304_103]]
        assert f.stats.budget_denied == 1 and budget.in_use == 0
        lent.release()
