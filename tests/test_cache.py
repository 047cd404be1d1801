"""The local cache's store on its own: sizes, entries written whole, LRU within the scan guard, processes sharing a directory.

The transport's use of it (Pipe, FastFile, the adapters against the S3
endpoint) is in tests/test_transport_cache.py.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from channels.cache import CacheConfig, ObjectCache
from channels.cache.fill import Coverage
from channels.cache.layout import entry_key
from channels.errors import CacheDirError
from channels.units import KIB, parse_size

UNIT = 64 * KIB


def body(url: str, size: int = UNIT) -> bytes:
    seed = hashlib.sha256(url.encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


def read_whole(cache: ObjectCache, url: str, etag: str = "e1", size: int = UNIT, parts: int = 4,
               order: list[int] | None = None) -> None:
    """What the transport does for one object: access, then each part a miss written into the cache."""
    data = body(url + etag, size)
    cache.access(url, size, etag)
    step = -(-size // parts)
    offsets = list(range(0, size, step))
    for off in order and [offsets[i] for i in order] or offsets:
        view = memoryview(bytearray(min(step, size - off)))
        if not cache.read(url, etag, size, off, view):
            view[:] = data[off:off + len(view)]
            cache.write(url, etag, off, view)


def kept(cache: ObjectCache, url: str, etag: str = "e1", size: int = UNIT) -> bytes | None:
    buf = bytearray(size)
    return bytes(buf) if cache.read(url, etag, size, 0, memoryview(buf)) else None


def entry_files(directory) -> list[str]:
    out = []
    for _, _, names in os.walk(os.path.join(directory, "objects")):
        out += names
    return out


@pytest.mark.parametrize("text, size", [("20GiB", 20 << 30), ("500MB", 500_000_000), ("1.5K", 1536),
                                        ("1048576", 1 << 20), ("2 mib", 2 << 20), ("3G", 3 << 30)])
def test_sizes_read_as_people_write_them(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["ten", "5iB", "-3", "1.2.3", "", "GiB"])
def test_a_size_that_is_not_one_says_how_to_write_it(text):
    with pytest.raises(ValueError, match="is not a size: give bytes or a number with a unit, e.g. 500MiB"):
        parse_size(text)
    with pytest.raises(ValueError, match="invalid CacheConfig: size_bytes: .* is not a size"):
        CacheConfig("/tmp/c", text)


def test_a_cache_dir_that_cannot_be_made_names_it_and_the_fix(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("in the way")
    with pytest.raises(CacheDirError) as err:
        ObjectCache(CacheConfig(blocker / "cache", "1MiB"))
    assert str(blocker / "cache") in str(err.value)
    assert "give --cache-dir (CacheConfig.directory) a writable folder" in str(err.value)
    assert err.value.details["path"] == str(blocker / "cache")
    assert isinstance(err.value, OSError)


@given(st.integers(1, 200), st.lists(st.tuples(st.integers(0, 200), st.integers(0, 60)), max_size=30))
def test_coverage_is_whole_exactly_when_the_runs_cover_every_byte(size, runs):
    c = Coverage(size)
    seen = bytearray(size)
    for start, length in runs:
        start, end = min(start, size), min(start + length, size)
        c.add(start, end)
        seen[start:end] = b"\1" * (end - start)
    assert c.covered == sum(seen)
    assert c.whole == all(seen)


def test_an_object_becomes_an_entry_only_once_every_byte_is_in(tmp_path):
    with ObjectCache(CacheConfig(tmp_path, 16 * UNIT)) as cache:
        url = "s3://b/x.bin"
        data = body(url + "e1")
        cache.access(url, UNIT, "e1")
        half = UNIT // 2
        cache.write(url, "e1", half, memoryview(data[half:]))  # the second part arrives first
        assert entry_files(tmp_path) == [] and kept(cache, url) is None
        assert len(os.listdir(tmp_path / "tmp")) == 1
        cache.write(url, "e1", 0, memoryview(data[:half]))
        assert kept(cache, url) == data
        assert os.listdir(tmp_path / "tmp") == []
        cache.flush()
        assert cache.stats.admitted == 1 and cache.stats.admitted_bytes == UNIT and cache.stats.hits == 1


def test_the_key_is_url_and_etag_so_a_changed_object_misses(tmp_path):
    with ObjectCache(CacheConfig(tmp_path, 16 * UNIT)) as cache:
        read_whole(cache, "s3://b/x.bin", "e1")
        assert kept(cache, "s3://b/x.bin", "e1") == body("s3://b/x.bin" + "e1")
        assert kept(cache, "s3://b/x.bin", "e2") is None  # another version: not this entry
        assert kept(cache, "s3://b/y.bin", "e1") is None


def test_an_object_read_in_part_leaves_nothing(tmp_path):
    with ObjectCache(CacheConfig(tmp_path, 16 * UNIT)) as cache:
        cache.access("s3://b/x.bin", UNIT, "e1")
        cache.write("s3://b/x.bin", "e1", 0, memoryview(b"\0" * 100))
    assert entry_files(tmp_path) == [] and os.listdir(tmp_path / "tmp") == []
    assert cache.stats.abandoned == 1 and cache.stats.admitted == 0


def test_entries_stay_within_the_limit_and_the_least_recently_used_colder_one_goes(tmp_path):
    with ObjectCache(CacheConfig(tmp_path, 3 * UNIT)) as cache:
        for name in "abc":
            read_whole(cache, f"s3://b/{name}")
        cache.flush()
        read_whole(cache, "s3://b/a")  # a and b read again: c is the least recently used ...
        read_whole(cache, "s3://b/b")
        cache.flush()
        for _ in range(3):  # ... and d, read three times, is read more often than c (once)
            read_whole(cache, "s3://b/d")
            cache.flush()
        assert [kept(cache, f"s3://b/{n}") is not None for n in "abcd"] == [True, True, False, True]
        assert cache.stats.evicted == 1 and cache.stats.evicted_bytes == UNIT
        assert len(entry_files(tmp_path)) == 3


@pytest.mark.parametrize("order", ["sequential", "shuffled"])
def test_a_dataset_twice_the_cache_keeps_a_stable_resident_set(tmp_path, order):
    """Epoch after epoch, the same half of the objects is served; the rest is read, never written."""
    urls = [f"s3://b/{i:03d}" for i in range(40)]
    rng = random.Random(7)
    with ObjectCache(CacheConfig(tmp_path, 20 * UNIT)) as cache:
        hits = []
        resident = []
        for _ in range(5):
            epoch = list(urls)
            if order == "shuffled":
                rng.shuffle(epoch)
            before = cache.stats.snapshot()
            for url in epoch:
                read_whole(cache, url)
            cache.flush()
            after = cache.stats.snapshot()
            hits.append((after["hit_bytes"] - before["hit_bytes"]) // UNIT)
            resident.append(sorted(entry_files(tmp_path)))
        assert hits[1:] == [20] * 4  # from epoch 2 on, half the dataset comes from the cache
        assert all(r == resident[0] for r in resident) and len(resident[0]) == 20
        assert cache.stats.admitted == 20 and cache.stats.evicted == 0


def test_a_paid_fill_of_a_scan_that_cannot_fit_writes_only_what_its_hits_pay_for(tmp_path):
    """Announced as a whole, a scan twice the cache writes 1/16 of the limit first, then per epoch its kept bytes."""
    urls = [f"s3://b/{i:03d}" for i in range(32)]
    rng = random.Random(5)
    with ObjectCache(CacheConfig(tmp_path, 16 * UNIT, fill="paid")) as cache:
        rows = []
        for _ in range(7):
            epoch = list(urls)
            rng.shuffle(epoch)
            before = cache.stats.snapshot()
            cache.expect((url, UNIT, "e1") for url in epoch)
            for url in epoch:
                read_whole(cache, url)
            cache.flush()
            after = cache.stats.snapshot()
            rows.append({k: after[k] - before[k] for k in ("hits", "admitted", "deferred", "rejected")})
            rows[-1]["hits"] //= 4  # four parts per object
        # Each epoch writes as many objects as it finds kept (the first: one, 1/16 of the limit), so
        # the resident set doubles; once full, misses meet the scan guard and nothing is evicted.
        assert [r["hits"] for r in rows] == [0, 1, 2, 4, 8, 16, 16]
        assert [r["admitted"] for r in rows] == [1, 1, 2, 4, 8, 0, 0]
        assert [r["deferred"] for r in rows] == [31, 30, 28, 24, 16, 0, 0]
        assert [r["rejected"] for r in rows] == [0, 0, 0, 0, 0, 16, 16]
        assert cache.stats.evicted == 0 and len(entry_files(tmp_path)) == 16


def test_a_paid_fill_credits_a_kept_object_again_only_once_it_has_been_read_from_the_cache(tmp_path):
    """A scan announced twice before it reads (a stream restarted) is paid for once."""
    urls = [f"s3://b/{i:03d}" for i in range(32)]
    with ObjectCache(CacheConfig(tmp_path, 16 * UNIT, fill="paid")) as cache:
        cache.expect((url, UNIT, "e1") for url in urls)
        for url in urls:
            read_whole(cache, url)  # the seed: one object written
        cache.flush()
        assert cache.stats.admitted == 1
        for _ in range(2):  # the second epoch, announced, then announced again (restarted)
            cache.expect((url, UNIT, "e1") for url in urls)
        for url in urls:
            read_whole(cache, url)
        cache.flush()
        assert cache.stats.admitted == 2  # the one kept object pays for one more, not two
        cache.expect((url, UNIT, "e1") for url in urls)  # read since: both kept objects pay again
        for url in urls:
            read_whole(cache, url)
        cache.flush()
        assert cache.stats.admitted == 4


def test_an_eager_cache_writes_all_that_fits_in_the_first_epoch_of_a_scan_that_cannot(tmp_path):
    urls = [f"s3://b/{i:03d}" for i in range(32)]
    with ObjectCache(CacheConfig(tmp_path, 16 * UNIT)) as cache:  # eager, the default
        for epoch in range(2):
            cache.expect((url, UNIT, "e1") for url in urls)
            for url in urls:
                read_whole(cache, url)
            cache.flush()
        assert (cache.stats.admitted, cache.stats.deferred, cache.stats.evicted) == (16, 0, 0)
        assert cache.stats.hit_bytes == 16 * UNIT  # the second epoch reads the first 16 from the cache


def test_a_fill_that_is_not_one_names_the_valid_ones():
    with pytest.raises(ValueError, match="invalid CacheConfig: fill must be one of 'eager', 'paid', got 'lazy'"):
        CacheConfig("/tmp/c", "1GiB", fill="lazy")


def test_a_paid_fill_writes_a_scan_that_fits_whole_at_once_even_after_one_that_did_not(tmp_path):
    with ObjectCache(CacheConfig(tmp_path, 16 * UNIT, fill="paid")) as cache:
        cache.expect((f"s3://big/{i}", UNIT, "e1") for i in range(32))
        read_whole(cache, "s3://big/0")
        read_whole(cache, "s3://big/1")  # the seed, one object, is spent
        cache.flush()
        assert (cache.stats.admitted, cache.stats.deferred) == (1, 1)
        small = [f"s3://small/{i}" for i in range(8)]
        cache.expect((url, UNIT, "e1") for url in small)
        for url in small:
            read_whole(cache, url)
        cache.flush()
        assert (cache.stats.admitted, cache.stats.deferred) == (9, 1)
        assert all(kept(cache, url) == body(url + "e1") for url in small)


def test_a_killed_writer_leaves_no_entry_and_its_temporary_file_is_swept(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    child = ctx.Process(target=_write_half_then_die, args=(str(tmp_path),))
    child.start()
    child.join(60)
    assert child.exitcode == -9  # SIGKILL, mid-object
    assert entry_files(tmp_path) == []
    assert len(os.listdir(tmp_path / "tmp")) == 1  # the partial bytes, under a temporary name only
    with ObjectCache(CacheConfig(tmp_path, 16 * UNIT)) as cache:  # the next process to open the cache sweeps
        assert os.listdir(tmp_path / "tmp") == []
        assert kept(cache, "s3://b/x.bin") is None


def _write_half_then_die(directory: str) -> None:
    import signal

    cache = ObjectCache(CacheConfig(directory, 16 * UNIT))
    cache.access("s3://b/x.bin", UNIT, "e1")
    cache.write("s3://b/x.bin", "e1", 0, memoryview(body("s3://b/x.bine1")[: UNIT // 2]))
    os.kill(os.getpid(), signal.SIGKILL)


def test_two_processes_sharing_a_directory_keep_it_within_the_limit_and_whole(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    limit = 12 * UNIT
    procs = [ctx.Process(target=_read_many, args=(str(tmp_path), limit, seed)) for seed in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    files = entry_files(tmp_path)
    assert 0 < len(files) * UNIT <= limit
    with ObjectCache(CacheConfig(tmp_path, limit)) as cache:
        assert cache._index.used == len(files) * UNIT
        for i in range(30):  # every entry holds exactly its object's bytes
            url = f"s3://b/{i:02d}"
            got = kept(cache, url)
            assert got is None or got == body(url + "e1")
            assert (got is not None) == (entry_key(url, "e1") in files)
    assert os.listdir(tmp_path / "tmp") == []


def _read_many(directory: str, limit: int, seed: int) -> None:
    rng = random.Random(seed)
    with ObjectCache(CacheConfig(directory, limit)) as cache:
        for _ in range(4):
            urls = [f"s3://b/{i:02d}" for i in range(30)]
            rng.shuffle(urls)
            for url in urls:
                read_whole(cache, url, order=rng.sample(range(4), 4))


def test_a_lower_limit_evicts_down_to_it_when_the_cache_is_opened(tmp_path):
    with ObjectCache(CacheConfig(tmp_path, 8 * UNIT)) as cache:
        for i in range(8):
            read_whole(cache, f"s3://b/{i}")
    assert len(entry_files(tmp_path)) == 8
    with ObjectCache(CacheConfig(tmp_path, 3 * UNIT)) as cache:
        assert len(entry_files(tmp_path)) == 3 and cache._index.used == 3 * UNIT
        assert [kept(cache, f"s3://b/{i}") is not None for i in range(8)] == [False] * 5 + [True] * 3
