"""Resume mid-epoch, on the same or another rank and worker count: every record exactly once.

The job is simulated in process (ranks x workers consumers read in turn, as
DataLoaders interleave their workers) over local files through the Pipe
reader's transport, so that each hypothesis example is cheap; the real
torchrun and StatefulDataLoader are in test_torchrun.py and
test_adapters_torch.py.
"""

from __future__ import annotations

from collections import Counter

import pytest
from adapterdata import FRAMINGS, record_id, run_job, write_dataset
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from channels.adapters import Consumers, PipeReaderSource
from channels.transport import TransportConfig

#: Records per object: uneven, one object empty, one large enough to span parts.
SIZES = (7, 0, 12, 3, 40, 9, 1, 5)
CONFIG = TransportConfig(part_size=1024, budget_bytes=16 * 1024, max_workers=2, first_part_size=512)
SEED = 11


@pytest.fixture(scope="module")
def jobs(tmp_path_factory):
    """(framing, gzip, policy) -> (Consumers, the epoch's record ids); counts taken once per dataset."""
    out = {}
    for framing in FRAMINGS:
        for gz in (False, True):
            root = tmp_path_factory.mktemp(f"{framing}-{'gz' if gz else 'raw'}")
            ids = write_dataset(root, framing, SIZES, compressed=gz)
            counts = None
            for policy in ("none", "pad", "drop"):
                source = PipeReaderSource(str(root), framing=framing, compression="Gzip" if gz else "None",
                                          shuffle_seed=SEED, config=CONFIG)
                consumers = Consumers(source, policy=policy, tag_pads=True)
                if policy != "none":
                    if counts is None:
                        consumers.count_records()
                        counts = consumers.record_counts
                    consumers.record_counts = counts
                out[framing, gz, policy] = (consumers, ids)
    return out


def check_once(before: list, after: list, ids: list[str], policy: str) -> None:
    real = [record_id(r) for r, pad in before + after if not pad]
    pads = [record_id(r) for r, pad in before + after if pad]
    counts = Counter(real)
    assert max(counts.values(), default=1) == 1, f"delivered twice: {[i for i, n in counts.items() if n > 1][:5]}"
    assert set(pads) <= set(ids), "a pad is not a record of the epoch"
    if policy == "drop":
        assert set(real) <= set(ids) and not pads
    else:
        assert sorted(real) == sorted(ids), f"missing: {sorted(set(ids) - set(real))[:5]}"
    if policy == "none":
        assert not pads


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(framing=st.sampled_from(FRAMINGS), gz=st.booleans(), ranks=st.sampled_from([1, 2, 4]),
       workers=st.sampled_from([0, 1, 2, 4]), new_ranks=st.sampled_from([1, 2, 3, 4]),
       new_workers=st.sampled_from([0, 1, 2, 4]), same=st.booleans(), kill=st.floats(0, 1.1),
       policy=st.sampled_from(["none", "pad", "drop"]), epoch=st.integers(0, 2))
@example(framing="tfrecord", gz=False, ranks=4, workers=1, new_ranks=2, new_workers=1, same=False, kill=0.5,
         policy="none", epoch=0)
@example(framing="lines", gz=True, ranks=2, workers=2, new_ranks=3, new_workers=2, same=False, kill=0.3,
         policy="pad", epoch=1)
@example(framing="recordio", gz=False, ranks=1, workers=0, new_ranks=4, new_workers=0, same=False, kill=0.7,
         policy="none", epoch=2)
@example(framing="parquet", gz=True, ranks=1, workers=4, new_ranks=4, new_workers=1, same=False, kill=0.2,
         policy="drop", epoch=0)
def test_before_plus_after_is_the_epoch_exactly_once(jobs, framing, gz, ranks, workers, new_ranks, new_workers,
                                                     same, kill, policy, epoch):
    consumers, ids = jobs[framing, gz, policy]
    limit = int(kill * len(ids))
    before, state = run_job(consumers, ranks, workers, epoch, limit=limit)
    if same:
        new_ranks, new_workers = ranks, workers
    after, _ = run_job(consumers, new_ranks, new_workers, epoch=0, state=state)  # the state's epoch wins
    check_once(before, after, ids, policy)


@pytest.mark.parametrize("policy", ["pad", "drop"])
def test_equal_records_per_consumer_on_the_same_count(jobs, policy):
    consumers, ids = jobs["tfrecord", False, policy]
    for workers in (1, 3):
        got, state = run_job(consumers, 2, workers, 1)
        per = Counter(c for c, p in state["positions"].items() for _ in range(p[4] + p[5]))
        assert len(set(per.values())) == 1, f"records per consumer differ: {per}"
        check_once(got, [], ids, policy)
        # A resume at any point keeps every consumer's total equal.
        before, state = run_job(consumers, 2, workers, 1, limit=len(ids) // 3)
        after, end = run_job(consumers, 2, workers, 1, state=state)
        totals = {c: p[4] + p[5] for c, p in end["positions"].items()}
        assert len(set(totals.values())) == 1, totals
        check_once(before, after, ids, policy)
