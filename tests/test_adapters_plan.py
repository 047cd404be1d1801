"""Consumer shares: balanced by bytes (count split kept), changing with the epoch, host shares kept."""

from __future__ import annotations

import numpy as np
import pytest

from channels.adapters import Consumers, PipeReaderSource, Source, Split, split_for
from channels.adapters.plan import first_level, next_level
from channels.hosts import Identity
from channels.listing import Listing, ObjectRef
from channels.modes.pipe.resume import Cursor
from channels.sharding import plan


class SizesOnly(Source):
    """A listing of given sizes, never read (planning only)."""

    def __init__(self, sizes) -> None:
        self._listing = Listing("s3://b/p/", tuple(ObjectRef(f"s3://b/p/{i:05d}", int(s), f"e{i}")
                                                   for i, s in enumerate(sizes)))
        self.shuffle_seed = 7

    @property
    def label(self) -> str:
        return "s3://b/p/"

    def listing(self) -> Listing:
        return self._listing

    def read(self, items, cursor):  # pragma: no cover - never read
        raise AssertionError("planning only")


def consumer_bytes(sizes, split: str, epoch: int, ranks: int = 4, workers: int = 2) -> np.ndarray:
    """Bytes of each consumer of ``ranks`` x ``workers``, as ChannelDataset would place them."""
    consumers = Consumers(SizesOnly(sizes), split=split, policy="none")
    out = np.zeros(ranks * workers, dtype=np.int64)
    for rank in range(ranks):
        ident = Identity(0, 1, "algo-1", local_rank=rank, local_world_size=ranks, rank=rank, world_size=ranks)
        for w in range(workers):
            c = split_for(ident, "job", w, workers)
            read = consumers.open(c, epoch)
            out[c.index] = sum(sizes[p.unit] for p in read.works[c.index])
    return out


def test_byte_split_balances_lognormal_objects_where_the_count_split_cannot():
    sizes = (np.random.default_rng(0).lognormal(12, 2, 2000)).astype(np.int64) + 1
    for epoch in range(3):
        by_bytes = consumer_bytes(sizes, "bytes", epoch)
        by_count = consumer_bytes(sizes, "count", epoch)
        assert by_bytes.sum() == by_count.sum() == sizes.sum()  # every object placed once
        imbalance = by_bytes.max() / by_bytes.mean()
        count_imbalance = by_count.max() / by_count.mean()
        print(f"epoch {epoch}: max/mean bytes per consumer, 4 ranks x 2 workers: bytes {imbalance:.4f}, "
              f"count {count_imbalance:.4f}")
        assert imbalance <= 1.05
        assert count_imbalance > 1.2  # the straggler the issue names


def test_shares_move_between_consumers_with_the_seed():
    sizes = (np.random.default_rng(1).lognormal(10, 1, 300)).astype(np.int64) + 1
    listing = SizesOnly(sizes).listing()
    shares = [{p.unit for p in first_level(listing, 4, "bytes", 7, e)[0]} for e in range(3)]
    assert shares[0] != shares[1] != shares[2]
    assert first_level(listing, 4, "bytes", None, 0) == first_level(listing, 4, "bytes", None, 5)  # no seed: fixed
    # The count split is SageMaker's rule: contiguous runs of the epoch's order.
    order = plan(sizes, 4, seed=7, epoch=2).order
    runs = first_level(listing, 4, "count", 7, 2)
    assert [p.unit for w in runs for p in w] == order.tolist()
    with pytest.raises(ValueError, match="unknown split 'rows': use one of bytes, count"):
        first_level(listing, 4, "rows", 7, 2)


def test_the_remainder_is_replanned_by_bytes():
    sizes = (np.random.default_rng(2).lognormal(10, 2, 400)).astype(np.int64) + 1
    listing = SizesOnly(sizes).listing()
    works = first_level(listing, 8, "bytes", 7, 0)
    cut = [Cursor(len(w) // 3) for w in works]
    new = next_level(listing, works, cut, 3, "bytes")
    left = sorted(p.unit for w, c in zip(works, cut) for p in w[c.item:])
    assert sorted(p.unit for w in new for p in w) == left
    loads = [sum(sizes[p.unit] for p in w) for w in new]
    assert max(loads) / np.mean(loads) < 1.05


def test_a_pipe_channel_sharded_by_host_keeps_its_host_share(tmp_path):
    for i in range(12):
        (tmp_path / f"{i:02d}.txt").write_bytes(b"x\n" * (i + 1))
    source = PipeReaderSource(str(tmp_path), framing="lines", distribution="ShardedByS3Key", shuffle_seed=3,
                              scope="host")
    consumers = Consumers(source, policy="none")
    for epoch in (0, 1):
        sizes = source.listing().unit_sizes()
        for host in range(2):
            mine = set(plan(sizes, 2, "ShardedByS3Key", seed=3, epoch=epoch).units_for(host).tolist())
            read = consumers.open(Split(0, 3), epoch, host=(host, 2))
            assert {p.unit for w in read.works for p in w} == mine  # SageMaker's host share, split by 3 here
    ident = Identity(1, 2, "algo-2", local_rank=1, local_world_size=3, rank=4, world_size=6)
    assert split_for(ident, source.scope, 1, 2) == Split(3, 6)
