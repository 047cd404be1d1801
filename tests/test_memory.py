"""The one pool behind every budgeted buffer (transport parts, FastFile windows),
its spare shelf, and the counters every reader keeps."""

from __future__ import annotations

import mmap

import pytest

import channels.memory.budget as budget_module
from channels.memory.stats import Counters
from channels.memory import BufferPool, ByteBudget, SpareShelf, drop_spare, size_class
from channels.modes.fastfile.stats import ReadStats
from channels.transport.stats import TransportStats
from channels.units import KIB, MIB


def test_size_classes_are_powers_of_two_capped_at_the_largest_part():
    assert [size_class(n, 48 * KIB) for n in (1, 4 * KIB, 4 * KIB + 1, 20 * KIB, 40 * KIB)] == [
        4 * KIB, 4 * KIB, 8 * KIB, 32 * KIB, 48 * KIB]
    with pytest.raises(ValueError, match="exceeds the largest part"):
        size_class(48 * KIB + 1, 48 * KIB)


def test_buffer_pool_reuses_and_never_exceeds_budget():
    """The transport's use: size classes, every freed buffer kept, kept ones dropped for room."""
    pool = BufferPool(64 * KIB)
    a = pool.try_take(size_class(30 * KIB, 32 * KIB))
    b = pool.try_take(size_class(20 * KIB, 32 * KIB))
    assert len(a) == 32 * KIB and len(b) == 32 * KIB and pool.in_use == 64 * KIB
    assert pool.try_take(size_class(1, 32 * KIB)) is None  # spent
    pool.release(a)
    assert pool.try_take(64 * KIB) is None and pool.kept == 32 * KIB  # a refusal drops nothing
    assert pool.try_take(size_class(17 * KIB, 32 * KIB)) is a  # same class: reused, not reallocated
    pool.release(a)
    pool.release(b)
    c = pool.try_take(32 * KIB)  # one kept buffer of the size comes back; the other stays
    assert c in (a, b) and pool.kept == 32 * KIB
    pool.release(c)
    small = [pool.try_take(4 * KIB) for _ in range(16)]  # drops the kept 32 KiB ones for room
    assert all(s is not None for s in small) and pool.in_use == 64 * KIB and pool.kept == 0
    assert pool.peak == pool.peak_held == 64 * KIB
    with pytest.raises(RuntimeError, match="only 0 are in use"):
        BufferPool(MIB).release(bytearray(10))


def test_a_grant_shrinks_to_what_is_free_but_not_below_the_minimum():
    """FastFile's use: a window shrinks when the budget is short, never blocks."""
    pool = BufferPool(10 * MIB, allocate=lambda n: mmap.mmap(-1, n), keep_min=MIB)
    big = pool.try_take(8 * MIB)
    assert len(pool.try_take(4 * MIB, MIB)) == 2 * MIB  # what was left
    assert pool.try_take(4 * MIB, 1) is None and pool.peak == 10 * MIB and pool.in_use == 10 * MIB
    pool.release(big, reuse=False)  # a view of it was lent: not kept
    assert pool.in_use == 2 * MIB and pool.kept == 0
    pool.release(pool.try_take(MIB // 2))  # smaller than keep_min: not kept
    assert pool.kept == 0


def test_the_spare_shelf_keeps_the_largest_within_its_limit():
    shelf = SpareShelf(10)
    shelf.give([bytearray(3), bytearray(6), bytearray(2), bytearray(4)])
    assert sorted(map(len, shelf.buffers())) == [4, 6]  # 6 first, then what fits
    assert [len(b) for b in shelf.take(5)] == [4]  # the 6 stays for a taker with room
    assert [len(b) for b in shelf.buffers()] == [6]
    pool = BufferPool(100, spare=shelf)
    assert pool.kept == 6 == pool.peak_held and shelf.buffers() == []
    pool.close()
    assert [len(b) for b in shelf.buffers()] == [6]  # left for the next pool
    shelf.close()
    shelf.give([bytearray(1)])
    assert shelf.buffers() == [] and shelf.drop() == 0


def test_a_closed_budget_leaves_its_buffers_to_the_next_one():
    """Views opened one after another reuse memory (fresh pages cost a fault per 4 KiB)."""
    drop_spare()
    first = ByteBudget(64 * MIB)
    buf = first.try_take(MIB)
    assert isinstance(buf, mmap.mmap)
    first.release(buf)
    first.close()
    first.release(first.try_take(MIB))  # a file still open after its view closed: nothing kept now
    assert first.kept == 0
    small = ByteBudget(MIB // 2)  # a budget takes only what fits it
    assert small.kept == 0
    second = ByteBudget(64 * MIB)
    assert second.try_take(MIB) is buf
    second.close()
    assert drop_spare() == 0  # lent out, not released: nothing was left
    third = ByteBudget(64 * MIB)
    third.try_take(MIB)
    third.release(buf)
    third.close()
    assert budget_module.drop_spare() == MIB and ByteBudget(64 * MIB).kept == 0


class Hits(Counters):
    FIELDS = ("hits", "high")


def test_counters_add_to_their_parent_and_name_what_they_lack():
    total = Hits()
    one, two = Hits(total), Hits(total)
    one.add(hits=2)
    two.add(hits=3)
    one.peak("high", 7)
    two.peak("high", 5)
    assert (one.hits, two.hits, total.hits) == (2, 3, 5)
    assert total.snapshot() == {"hits": 5, "high": 7} and two.high == 5
    assert repr(one) == "Hits({'hits': 2, 'high': 7})"
    one.reset()
    assert one.snapshot() == {"hits": 0, "high": 0} and total.hits == 5
    with pytest.raises(AttributeError, match="counters: hits, high"):
        _ = one.misses
    with pytest.raises(KeyError):
        one.add(misses=1)


def test_the_transport_and_fastfile_declare_only_their_fields():
    for cls in (TransportStats, ReadStats):
        assert cls.__mro__[1] is Counters and set(vars(cls)) <= {"FIELDS", "__doc__", "__module__",
                                                                 "__qualname__", "__firstlineno__",
                                                                 "__static_attributes__"}
        stats = cls()
        stats.add(**{cls.FIELDS[0]: 4})
        assert getattr(stats, cls.FIELDS[0]) == 4 and stats.snapshot() == dict.fromkeys(cls.FIELDS, 0) | {
            cls.FIELDS[0]: 4}
