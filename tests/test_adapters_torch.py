"""ChannelDataset under torchdata's StatefulDataLoader: checkpoint mid-epoch, resume, every record once.

Ranks are simulated one after the other in this process (identities as
torchrun sets them); the DataLoader workers are real processes, and the
state goes through StatefulDataLoader's own per-worker gathering.
"""

from __future__ import annotations

from collections import Counter

import pytest

torch = pytest.importorskip("torch", reason="the torch extra is not installed (pip install 'channels[torch]')")
stateful = pytest.importorskip("torchdata.stateful_dataloader",
                               reason="torchdata is not installed (pip install 'channels[test]')")

from channels.adapters import DirectorySource, merge_states  # noqa: E402
from channels.adapters.mix import draw  # noqa: E402
from channels.adapters.torch import ChannelDataset, MixedDataset  # noqa: E402
from channels.hosts import Identity  # noqa: E402

StatefulDataLoader = stateful.StatefulDataLoader
#: Lines per object: uneven, so that consumers' shares differ in records and pads are needed.
SIZES = (3, 11, 0, 6, 9, 2, 14, 5, 7, 1)
pytestmark = [pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning"),
              pytest.mark.filterwarnings("ignore:'set_vital' is deprecated:UserWarning")]


def rank(r: int, world: int) -> Identity:
    return Identity(0, 1, "algo-1", local_rank=r, local_world_size=world, rank=r, world_size=world)


def write(root, name: str, sizes=SIZES) -> list[str]:
    ids = []
    for o, n in enumerate(sizes):
        lines = [f"{name}{o:02d}:{k:02d}" for k in range(n)]
        (root / f"{o:02d}.txt").write_text("".join(x + "\n" for x in lines))
        ids += lines
    return ids


@pytest.fixture
def channel(tmp_path):
    root = tmp_path / "train"
    root.mkdir()
    return root, write(root, "a")


def dataset(root, r: int, world: int, **kwargs) -> ChannelDataset:
    return ChannelDataset(DirectorySource(root, framing="lines", shuffle_seed=5), identity=rank(r, world),
                          transform=bytes.decode, tag_pads=True, **kwargs)


def loader(ds, workers: int) -> StatefulDataLoader:
    return StatefulDataLoader(ds, batch_size=2, num_workers=workers,
                              multiprocessing_context="fork" if workers else None)


def stop_after(ds, workers: int, steps: int) -> tuple[list, dict]:
    """The first ``steps`` batches of a new loader, and its state then (the loader is dropped)."""
    first = loader(ds, workers)
    it = iter(first)
    batches = [next(it) for _ in range(steps)]
    return batches, first.state_dict()


def flat(batches) -> list[tuple[str, bool]]:
    return [(rec, bool(pad)) for recs, pads in batches for rec, pad in zip(recs, pads.tolist())]


def check(per_rank: list[list[tuple[str, bool]]], ids: list[str], policy: str = "pad") -> None:
    real = Counter(rec for got in per_rank for rec, pad in got if not pad)
    assert max(real.values()) == 1, "a record came out twice"
    if policy == "pad":
        assert sorted(real) == sorted(ids), f"missing {sorted(set(ids) - set(real))}"
    assert len({len(got) for got in per_rank}) == 1, f"ranks took different steps: {[len(g) for g in per_rank]}"


@pytest.mark.parametrize("workers", [0, 1, 2, 4])
def test_statefuldataloader_checkpoint_and_resume(channel, workers):
    root, ids = channel
    per_rank = []
    for r in range(2):
        ds = dataset(root, r, 2)
        ds.set_epoch(3)
        before, saved = stop_after(ds, workers, 3)
        # A new process: new dataset and loader, the checkpoint loaded.
        ds = dataset(root, r, 2)
        ds.set_epoch(3)
        second = loader(ds, workers)
        second.load_state_dict(saved)
        per_rank.append(flat(before) + flat(list(second)))
    check(per_rank, ids)


@pytest.mark.parametrize(("ranks", "workers", "new_ranks", "new_workers"), [(2, 4, 2, 2), (1, 2, 3, 0)])
def test_resume_on_another_rank_or_worker_count(channel, ranks, workers, new_ranks, new_workers):
    root, ids = channel
    saved, before = [], []
    for r in range(ranks):
        ds = dataset(root, r, ranks)
        ds.set_epoch(1)
        batches, state = stop_after(ds, workers, 2)
        before += flat(batches)
        saved.append(state)
    after = []
    for r in range(new_ranks):
        ds = dataset(root, r, new_ranks)
        ds.load_state_dict(saved)  # every rank's loader state: merged, the remainder re-planned
        assert ds.epoch == 1
        after.append(flat(list(loader(ds, new_workers))))
    check([before + [x for got in after for x in got]], ids)
    check(after, [i for i in ids if i not in {rec for rec, pad in before if not pad}])


def test_a_second_epoch_after_a_resume_starts_afresh(channel):
    root, ids = channel
    _, saved = stop_after(dataset(root, 0, 1), 2, 1)
    ds = dataset(root, 0, 1)
    second = loader(ds, 2)
    second.load_state_dict(saved)
    list(second)
    ds.set_epoch(1)
    again = flat(list(second))  # the same StatefulDataLoader, next epoch: the whole epoch
    assert sorted(rec for rec, pad in again if not pad) == sorted(ids)


def test_states_merge_from_loader_dicts_and_refuse_mixed_steps(channel):
    root, _ = channel
    _, a = stop_after(dataset(root, 0, 1), 2, 1)
    _, b = stop_after(dataset(root, 0, 1), 2, 2)
    merged = merge_states(a)
    assert sorted(merged["positions"]) == [0, 1] and merged["epoch"] == 0
    with pytest.raises(ValueError, match=r"consumer \d has two positions .*merge the states saved at one step"):
        merge_states(a, b)


def test_mixed_channels_by_weight_resume_and_repeat(tmp_path):
    a_root, b_root = tmp_path / "a", tmp_path / "b"
    a_root.mkdir()
    b_root.mkdir()
    ids = write(a_root, "a") + write(b_root, "b", (20, 20, 20))

    def mixed():
        chans = [ChannelDataset(DirectorySource(root, framing="lines", shuffle_seed=5), identity=rank(0, 1),
                                transform=bytes.decode, policy="none") for root in (a_root, b_root)]
        return MixedDataset(chans, [1, 3], seed=9)

    whole = list(StatefulDataLoader(mixed(), batch_size=None, num_workers=0))
    assert whole == list(StatefulDataLoader(mixed(), batch_size=None, num_workers=0))  # seeded: the same order
    assert sorted(whole) == sorted(ids)
    # Draw k picks channel a when its uniform number falls in a's quarter, while both channels last.
    a_left = sum(i.startswith("a") for i in ids)
    for k, rec in enumerate(whole[: a_left]):
        assert rec[0] == ("a" if draw(9, 0, 0, 0, k) < 1 / 4 else "b"), k
    first = StatefulDataLoader(mixed(), batch_size=None, num_workers=2, multiprocessing_context="fork")
    it = iter(first)
    before = [next(it) for _ in range(17)]
    saved = first.state_dict()
    del it, first
    second = StatefulDataLoader(mixed(), batch_size=None, num_workers=2, multiprocessing_context="fork")
    second.load_state_dict(saved)
    assert sorted(before + list(second)) == sorted(ids)


def test_load_state_dict_refuses_a_state_that_does_not_fit_at_once(channel):
    root, _ = channel
    _, saved = stop_after(dataset(root, 0, 1), 2, 1)
    other = ChannelDataset(DirectorySource(root, framing="lines", shuffle_seed=6), identity=rank(0, 1))
    with pytest.raises(ValueError, match="seed: saved 5, here 6"):
        other.load_state_dict(saved)  # before any worker starts
    (root / "99.txt").write_text("new\n")
    with pytest.raises(ValueError, match=r"lists other objects .*99.txt"):
        dataset(root, 0, 1).load_state_dict(saved)
    with pytest.raises(ValueError, match="no channels consumer state found"):
        dataset(root, 0, 1).load_state_dict({"step": 3})
