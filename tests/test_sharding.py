"""Sharding and balance figures: pure logic, no server."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from channels.balance import compare, figures, report
from channels.errors import ShardingError
from channels.sharding import (
    FULLY_REPLICATED,
    SHARDED_BY_S3_KEY,
    SIZE_BALANCED,
    STRATEGIES,
    epoch_order,
    plan,
    strategy_name,
)
from channels.testing import lognormal_sizes, one_giant_sizes


def shares(p):
    return [p.units_for(h) for h in range(p.hosts)]


@pytest.mark.parametrize("strategy", [SHARDED_BY_S3_KEY, SIZE_BALANCED])
@given(n=st.integers(0, 300), hosts=st.integers(1, 20), seed=st.none() | st.integers(0, 2**63),
       epoch=st.integers(0, 5))
@settings(max_examples=60, deadline=None)
def test_sharded_plans_partition_the_units(strategy, n, hosts, seed, epoch):
    sizes = lognormal_sizes(n, median=1000, seed=n)
    p = plan(sizes, hosts, strategy, seed=seed, epoch=epoch)
    got = np.concatenate(shares(p)) if n else np.array([], dtype=np.int64)
    assert sorted(got.tolist()) == list(range(n))  # every unit exactly once
    assert p.host_objects().sum() == n and p.host_bytes().sum() == sizes.sum()


@given(n=st.integers(0, 500), hosts=st.integers(1, 40))
@settings(max_examples=80, deadline=None)
def test_sharded_by_key_counts_within_one_of_the_mean(n, hosts):
    p = plan(np.ones(n, dtype=np.int64), hosts, SHARDED_BY_S3_KEY)
    counts = p.host_objects()
    assert counts.max() - counts.min() <= 1
    assert all(abs(c - n / hosts) < 1 for c in counts)


def test_sharded_by_key_without_seed_is_contiguous_in_listing_order():
    p = plan(np.arange(10), 3, SHARDED_BY_S3_KEY)
    assert [s.tolist() for s in shares(p)] == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]


def test_fully_replicated_gives_everyone_everything_in_epoch_order():
    p = plan(np.arange(7), 4, FULLY_REPLICATED, seed=5, epoch=2)
    for s in shares(p):
        assert s.tolist() == epoch_order(7, 5, 2).tolist()
    assert p.host_bytes().tolist() == [21] * 4


def test_shuffle_is_deterministic_per_seed_and_epoch_and_crosses_hosts():
    a = epoch_order(1000, 42, 0)
    assert np.array_equal(a, epoch_order(1000, 42, 0))  # every host computes the same
    assert not np.array_equal(a, epoch_order(1000, 42, 1))  # next epoch differs
    assert not np.array_equal(a, epoch_order(1000, 43, 0))
    assert sorted(a.tolist()) == list(range(1000))
    e0 = set(plan(np.ones(1000), 4, SHARDED_BY_S3_KEY, seed=42, epoch=0).units_for(0).tolist())
    e1 = set(plan(np.ones(1000), 4, SHARDED_BY_S3_KEY, seed=42, epoch=1).units_for(0).tolist())
    assert e0 != e1 and len(e0 & e1) < 500  # host 0 gets other objects next epoch


def test_epoch_order_is_pinned():
    # The order is part of the documented contract: hosts with other installs
    # must agree. Changing this list breaks running jobs; don't, knowingly.
    assert epoch_order(10, 7, 0).tolist() == epoch_order(10, 7, 0).tolist()
    assert epoch_order(5, None, 3).tolist() == [0, 1, 2, 3, 4]
    pinned = epoch_order(8, 1, 0).tolist()
    assert pinned == [int(x) for x in np.argsort(_reference_keys(8, 1, 0), kind="stable")]


def _reference_keys(n, seed, epoch):
    # splitmix64 written with Python ints, independently of the numpy version.
    mask = (1 << 64) - 1

    def mix(x):
        x = (x + 0x9E3779B97F4A7C15) & mask
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & mask
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & mask
        return x ^ (x >> 31)

    salt = mix(mix(seed) ^ epoch)
    return [mix(i ^ salt) for i in range(n)]


def test_more_hosts_than_objects_names_the_empty_hosts():
    p = plan([5, 6, 7], 5, SHARDED_BY_S3_KEY)
    assert p.host_objects().tolist() == [1, 1, 1, 0, 0]
    assert len(p.warnings) == 1 and "algo-4" in p.warnings[0] and "algo-5" in p.warnings[0]
    assert "2 host(s) get nothing" in p.warnings[0]


def test_size_balanced_reaches_the_lower_bound_on_lognormal():
    sizes = lognormal_sizes(2000, sigma=2.0, seed=1)
    r_key = report(sizes, 8, SHARDED_BY_S3_KEY)
    r_bal = report(sizes, 8, SIZE_BALANCED)
    assert r_key.skewed and r_key.imbalance > 1.1
    assert r_bal.imbalance <= r_bal.lower_bound * 1.02 and not r_bal.skewed
    assert "size-balanced" in r_key.recommendation


def test_one_giant_object_sets_the_lower_bound():
    sizes = one_giant_sizes(100, small=1000, giant=1_000_000)
    r = report(sizes, 4, SIZE_BALANCED)
    fair = sizes.sum() / 4
    assert r.lower_bound == pytest.approx(1_000_000 / fair, rel=1e-3)
    assert r.imbalance == pytest.approx(r.lower_bound, rel=1e-3)
    assert r.skewed and "split objects" in r.recommendation


def test_figures_match_a_recount():
    sizes = np.array([10, 20, 30, 40, 50, 60, 70])
    p = plan(sizes, 3, SHARDED_BY_S3_KEY)
    per_host = [int(sizes[s].sum()) for s in shares(p)]
    assert per_host == [60, 90, 130]
    imbalance, bound, cv = figures(p)
    assert imbalance == pytest.approx(130 / (280 / 3))
    assert bound == 1.0
    assert cv == pytest.approx(sizes.std() / sizes.mean())


def test_compare_lists_every_strategy_and_json_shape():
    reps = compare(lognormal_sizes(100), 4)
    assert [r.strategy for r in reps] == list(STRATEGIES)
    d = reps[0].to_dict()
    for key in ("strategy", "hosts", "imbalance", "lower_bound", "skewed", "recommendation"):
        assert key in d
    assert set(d["hosts"][0]) >= {"host", "objects", "bytes"}


def test_bad_parameters_are_refused_with_the_fix():
    with pytest.raises(ShardingError, match="positive integer"):
        plan([1], 0)
    with pytest.raises(ValueError, match="use one of sharded-by-s3-key"):
        strategy_name("round-robin")
    assert strategy_name("ShardedByS3Key") == SHARDED_BY_S3_KEY
    with pytest.raises(ShardingError, match=r"out of range for 2 host\(s\): use 0..1"):
        plan([1, 2], 2).units_for(2)
    with pytest.raises(ShardingError, match="must be >= 0"):
        plan([1, -2], 2)


@pytest.mark.parametrize("strategy", [*STRATEGIES, "ShardedByS3Key", "FullyReplicated"])
@given(sizes=st.lists(st.integers(0, 2**40), min_size=1, max_size=200))
@settings(max_examples=40, deadline=None)
def test_one_host_report_without_a_plan_is_the_planned_one(strategy, sizes):
    # report() skips the plan (and numpy) for one host: the figures must be the plan's.
    from channels.balance import _one_host, _planned

    quick, planned = _one_host(sizes, strategy, "s3://b/p/"), _planned(sizes, 1, strategy, None, 0, "s3://b/p/")
    assert quick.cv == pytest.approx(planned.cv, abs=2e-4)
    assert quick == planned.__class__(**{**planned.__dict__, "cv": quick.cv})
    assert report(np.asarray(sizes), 1, strategy) == report(sizes, 1, strategy)


def test_one_host_report_refuses_what_the_plan_refuses():
    with pytest.raises(ShardingError, match="must be >= 0; got -2 at index 1"):
        report([1, -2], 1, SHARDED_BY_S3_KEY)
    with pytest.raises(ValueError, match="use one of sharded-by-s3-key"):
        report([1], 1, "round-robin")
    with pytest.raises(ShardingError, match="positive integer"):
        report([1], 1.0, SHARDED_BY_S3_KEY)
