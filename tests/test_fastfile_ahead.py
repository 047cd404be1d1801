"""ReadaheadFile with fetch threads: windows fetched ahead, bytes read as they land, buffers reused."""

from __future__ import annotations

import random
import threading

import pytest
from memfetch import DATA, memory_fetch

from channels.memory.budget import ByteBudget
from channels.modes.fastfile.ahead import fetch_ahead
from channels.modes.fastfile.config import ReadaheadConfig
from channels.modes.fastfile.readahead import ReadaheadFile
from channels.modes.fastfile.stats import ReadStats
from channels.testing import wait_for
from channels.units import KIB, MIB


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
