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

from channels.memory.budget import ByteBudget
from channels.modes.fastfile.ahead import fetch_ahead
from channels.modes.fastfile.config import ReadaheadConfig
from channels.modes.fastfile.readahead import ReadaheadFile
from channels.modes.fastfile.stats import ReadStats
from channels.testing import wait_for
from channels.units import KIB, MIB

DATA = random.Random(7).randbytes(9 * MIB + 12345)


def memory_fetch(data: bytes, log: list | None = None, step: int = 256 * KIB):
    """``fetch(start, buf, cancel, progress)`` over bytes, recording each call's
    (start, length); it fills ``buf`` ``step`` bytes at a time, telling ``progress``."""

    def fetch(start: int, buf: memoryview, cancel=None, progress=None) -> None:
        if start < 0 or start + len(buf) > len(data):
            raise AssertionError(f"fetch past the end: [{start}, {start + len(buf)})")
        if log is not None:
            log.append((start, len(buf)))
        for lo in range(0, len(buf), step):
            hi = min(lo + step, len(buf))
            buf[lo:hi] = data[start + lo:start + hi]
            if progress is not None:
                progress(start + hi)

    return fetch


def open_mem(data: bytes = DATA, log: list | None = None, **config) -> ReadaheadFile:
    return ReadaheadFile(memory_fetch(data, log), len(data), name="mem",
                         config=ReadaheadConfig(**config) if config else None)


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


def random_4k_reads(f, data: bytes, reads: int, seed: int) -> int:
    """Seek and read 4 KiB at random ``reads`` times, checking each against ``data``; bytes returned."""
    rng = random.Random(seed)
    returned = 0
    for _ in range(reads):
        pos = rng.randrange(len(data))
        f.seek(pos)
        got = f.read(4 * KIB)
        assert got == data[pos:pos + 4 * KIB]
        returned += len(got)
    return returned


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


def test_freed_buffers_are_reused_but_never_under_a_held_view(monkeypatch):
    import channels.memory.budget as ra

    allocations = []
    real = ra.allocate
    monkeypatch.setattr(ra, "allocate", lambda n: allocations.append(n) or real(n))
    budget = ByteBudget(64 * MIB)
    first = ReadaheadFile(memory_fetch(DATA), len(DATA), name="a", budget=budget)
    first.pread(0, 100)  # fetches the first window
    held = first.pread(0, 100)  # a view into that window: its buffer must not be reused
    assert isinstance(held, memoryview) and bytes(held) == DATA[:100]
    first.close()
    other = bytes(reversed(DATA))
    for _ in range(3):  # same sizes again: kept buffers come back, fewer allocations each time
        before = len(allocations)
        with ReadaheadFile(memory_fetch(other), len(other), name="b", budget=budget) as f:
            f.pread(0, 100)
            assert f.pread(0, MIB) == other[:MIB]
            while f.read(MIB):
                pass
        assert budget.kept > 0
    assert len(allocations) - before < 2
    assert bytes(held) == DATA[:100]  # never overwritten
    assert wait_for(lambda: budget.in_use == 0)


def ahead(data: bytes, log: list, budget: ByteBudget, pool, **config):
    cfg = ReadaheadConfig(**config)
    return fetch_ahead(memory_fetch(data, log), len(data), config=cfg, budget=budget, executor=pool,
                       stats=ReadStats()), cfg


def test_a_window_fetched_ahead_serves_the_file_that_adopts_it():
    from concurrent.futures import ThreadPoolExecutor

    budget, log = ByteBudget(64 * MIB), []
    with ThreadPoolExecutor(4) as pool:
        w, cfg = ahead(DATA, log, budget, pool)  # 9 MiB: the whole object, as a cat-like first read would
        assert (w.start, w.end) == (0, len(DATA)) and budget.in_use == len(DATA)
        with ReadaheadFile(memory_fetch(DATA, log), len(DATA), config=cfg, budget=budget, executor=pool,
                           first=w) as f:
            assert b"".join(iter(lambda: f.read(MIB), b"")) == DATA
            assert f.stats.requests == 0  # every byte came from the window fetched ahead
        assert log == [(0, len(DATA))] and wait_for(lambda: budget.in_use == 0)
        w, cfg = ahead(DATA, log, budget, pool, whole_object_bytes=MIB)  # larger objects: the first window
        assert (w.start, w.end) == (0, MIB)
        with ReadaheadFile(memory_fetch(DATA, rest := []), len(DATA), config=cfg, budget=budget,
                           executor=pool, first=w) as f:
            assert f.read(MIB) == DATA[:MIB]  # from the window; the ramp goes on in the background
            assert f.read() == DATA[MIB:]
            assert min(start for start, _ in rest) == MIB and f.stats.prefetches >= 1
        assert wait_for(lambda: budget.in_use == 0)
        assert ahead(b"", log, budget, pool)[0] is None  # nothing to fetch
        assert ahead(DATA, log, ByteBudget(MIB), pool)[0] is None  # a fetch ahead never shrinks


def test_dropping_a_window_fetched_ahead_cancels_it_and_gives_the_budget_back():
    from concurrent.futures import ThreadPoolExecutor

    started, stopped = threading.Event(), threading.Event()

    def slow(start, buf, cancel, progress):
        started.set()
        if cancel.wait(30):
            stopped.set()
            raise RuntimeError("cancelled")

    budget = ByteBudget(64 * MIB)
    with ThreadPoolExecutor(2) as pool:
        w = fetch_ahead(slow, 4 * MIB, config=ReadaheadConfig(), budget=budget, executor=pool,
                        stats=ReadStats())
        assert started.wait(10) and budget.in_use == 4 * MIB
        w.drop()
        assert stopped.wait(10)
        assert wait_for(lambda: budget.in_use == 0)
        assert w.failed()


def test_a_reader_copies_the_front_of_a_part_while_the_rest_is_in_flight():
    from concurrent.futures import ThreadPoolExecutor

    half, release = 2 * MIB, threading.Event()

    def stalls_halfway(start, buf, cancel, progress):
        buf[:half] = DATA[start:start + half]
        progress(start + half)
        if not release.wait(30):  # the rest lands only once the test has read the front
            raise RuntimeError("never released")
        buf[half:] = DATA[start + half:start + len(buf)]

    budget = ByteBudget(64 * MIB)
    with ThreadPoolExecutor(2) as pool:
        w = fetch_ahead(stalls_halfway, 8 * MIB, config=ReadaheadConfig(), budget=budget, executor=pool,
                        stats=ReadStats())  # 8 MiB from 0: one whole-object part
        assert w is not None and len(w._parts) == 1
        assert wait_for(lambda: w.ready(0, MIB) == MIB)  # the front is in place...
        assert w.ready(half, MIB) == 0  # ...the back is not
        dest = bytearray(half)
        assert w.copy_into(0, memoryview(dest)) == half and dest == DATA[:half]  # no wait for the back
        with ReadaheadFile(stalls_halfway, 8 * MIB, first=w, budget=budget, executor=pool) as f:
            got = bytearray(4 * MIB)
            reader = pool.submit(f.preadinto, MIB, got)  # spans the part's front and back
            assert not reader.done()
            release.set()
            assert reader.result(10) == 4 * MIB and got == DATA[MIB:5 * MIB]
        assert wait_for(lambda: budget.in_use == 0)


def trickle_fetch(data: bytes, step: int = 16 * KIB, pause: float = 0.0002):
    """A fetch that lands ``step`` bytes at a time, pausing between steps (a slow network)."""
    import time

    def fetch(start, buf, cancel, progress):
        for lo in range(0, len(buf), step):
            hi = min(lo + step, len(buf))
            buf[lo:hi] = data[start + lo:start + hi]
            if progress is not None:  # None where the bytes go straight to the caller's buffer
                progress(start + hi)
            time.sleep(pause)

    return fetch


def test_readers_right_behind_the_fetch_threads_get_every_byte():
    import hashlib
    from concurrent.futures import ThreadPoolExecutor

    data = random.Random(11).randbytes(6 * MIB + 77)
    cfg = ReadaheadConfig(budget_bytes=24 * MIB, part_size=MIB, initial_window=256 * KIB, max_window=2 * MIB,
                          whole_object_bytes=0)  # windows and background parts, not one inline GET
    budget = ByteBudget(cfg.budget_bytes)
    with ThreadPoolExecutor(8) as pool, ThreadPoolExecutor(4) as readers:
        def whole(i: int) -> bytes:  # each reader its own file, in reads that straddle parts
            h = hashlib.sha256()
            with ReadaheadFile(trickle_fetch(data), len(data), name=f"r{i}", config=cfg, budget=budget,
                               executor=pool) as f:
                buf = bytearray(100_000 + 7 * i)
                while n := f.readinto(buf):
                    h.update(buf[:n])
            return h.digest()

        assert list(readers.map(whole, range(4))) == [hashlib.sha256(data).digest()] * 4
        # One file, four threads reading it in 1 MiB blocks as FUSE's requests come: out of order.
        with ReadaheadFile(trickle_fetch(data), len(data), name="fuse", config=cfg, budget=budget,
                           executor=pool) as f:
            def block(k: int) -> bool:
                got = bytearray(MIB)
                n = f.preadinto(k * MIB, got)
                return got[:n] == data[k * MIB:(k + 1) * MIB]

            assert all(readers.map(block, [1, 0, 2, 3, 5, 4, 6]))
    assert wait_for(lambda: budget.in_use == 0)


@pytest.mark.parametrize("reads, calls", [
    ([(0, MIB), (MIB, MIB), (2 * MIB, MIB)], 1),  # cat: a first read from 0 of whole_object_hint or more
    ([(0, 4 * KIB), (4 * KIB, 4 * KIB), (8 * KIB, 4 * KIB)], 1),  # tar: a second sequential read
    ([(0, 16)], 0),  # a header probe only
    ([(5 * MIB, MIB), (6 * MIB, MIB), (7 * MIB, MIB)], 0),  # sequential, but after a seek
    ([(0, 16), (3 * MIB, 4 * KIB), (3 * MIB + 4 * KIB, MIB)], 0),  # a probe, then random
], ids=["cat", "small-sequential", "probe", "after-a-seek", "random"])
def test_reading_on_is_reported_once_and_never_for_random_reads(reads, calls):
    seen = []
    with ReadaheadFile(memory_fetch(DATA), len(DATA), on_reading_on=lambda: seen.append(1)) as f:
        for pos, n in reads:
            f.seek(pos)
            assert f.read(n) == DATA[pos:pos + n]
    assert len(seen) == calls


def test_on_close_is_called_once():
    closed = []
    f = ReadaheadFile(memory_fetch(DATA), len(DATA), on_close=lambda: closed.append(1))
    f.close()
    f.close()
    assert closed == [1]
